package syncer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/internal/egress"
)

// CloudEvents types of the sink protocol (DESIGN.md).
const (
	EventItemUpserted      = "dev.unified.connectors.item.upserted"
	EventItemDeleted       = "dev.unified.connectors.item.deleted"
	EventContainerSnapshot = "dev.unified.connectors.container.snapshot"
	batchContentType       = "application/cloudevents-batch+json"
)

// SinkError is a sink failure. Rejected failures (a 4xx other than 429) need a human;
// the others are retried.
type SinkError struct {
	Status     int
	Rejected   bool
	RetryAfter time.Duration
	// Egress marks a destination the egress guard refused.
	Egress bool
	Reason string
}

func (e *SinkError) Error() string {
	if e.Egress {
		return "sink refused by the egress guard: " + e.Reason
	}
	if e.Status != 0 {
		return fmt.Sprintf("sink answered %d %s", e.Status, http.StatusText(e.Status))
	}
	return "sink unreachable: " + e.Reason
}

// sink posts CloudEvents batches to one Connection's sink.
type sink struct {
	url           string
	authorization string // never logged
	http          *http.Client
	timeout       time.Duration
}

// post sends one batch. It does not retry: the caller decides, keeping its cursor.
func (s *sink) post(ctx context.Context, events []cloudevents.Event) error {
	body, err := encodeBatch(events)
	if err != nil {
		return fmt.Errorf("encoding events: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return &SinkError{Rejected: true, Reason: "invalid sink URL"}
	}
	req.Header.Set("Content-Type", batchContentType)
	if s.authorization != "" {
		req.Header.Set("Authorization", s.authorization)
	}
	resp, err := s.http.Do(req)
	if err != nil {
		// The url.Error would print the sink URL, which may carry a path the user
		// considers sensitive; say what happened instead.
		reason := "connection failed"
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			reason = "timed out"
		case ctx.Err() != nil:
			return ctx.Err()
		}
		var denied *egress.DeniedError
		if errors.As(err, &denied) {
			return &SinkError{Rejected: true, Egress: true, Reason: denied.Error()}
		}
		return &SinkError{Reason: reason}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 || resp.StatusCode == http.StatusRequestTimeout:
		return &SinkError{Status: resp.StatusCode, RetryAfter: connectors.ParseRetryAfter(resp.Header, time.Now())}
	default:
		return &SinkError{Status: resp.StatusCode, Rejected: true}
	}
}

// encodeBatch renders a structured-mode batch: a JSON array of events. Each event
// renders itself; joining them directly spares encoding/json a second pass that would
// re-validate and compact every event's bytes.
func encodeBatch(events []cloudevents.Event) ([]byte, error) {
	buf := bytes.NewBuffer(make([]byte, 0, 4096*len(events)))
	buf.WriteByte('[')
	for i := range events {
		if i > 0 {
			buf.WriteByte(',')
		}
		b, err := events[i].MarshalJSON()
		if err != nil {
			return nil, err
		}
		buf.Write(b)
	}
	buf.WriteByte(']')
	return buf.Bytes(), nil
}

// itemEvent is the upsert event of one item, or the deletion event of one the source
// reports deleted (Item.Deleted). Its id is deterministic from the item id and update
// time, so a repeated delivery carries the same id and consumers can de-duplicate.
func itemEvent(source string, it connectors.Item) (cloudevents.Event, error) {
	e := cloudevents.New(cloudevents.CloudEventsVersionV1)
	e.SetID(it.ID + "@" + it.UpdatedAt.UTC().Format("20060102T150405.000000000Z"))
	e.SetSource(source)
	e.SetSubject(it.Container + "/" + it.Key)
	e.SetTime(it.UpdatedAt)
	if it.Deleted {
		e.SetType(EventItemDeleted)
		e.SetID(e.ID() + "-deleted")
		return e, e.SetData(cloudevents.ApplicationJSON, Deletion{ID: it.ID, Container: it.Container, DeletedAt: it.UpdatedAt})
	}
	e.SetType(EventItemUpserted)
	return e, e.SetData(cloudevents.ApplicationJSON, it)
}

// Deletion is the data of an item.deleted event (DESIGN.md): the item is gone from the
// source since DeletedAt. Nothing else of it is sent.
type Deletion struct {
	ID        string    `json:"id"`
	Container string    `json:"container"`
	DeletedAt time.Time `json:"deletedAt"`
}

// Snapshot is the data of a container.snapshot event: one chunk of the ids of every live
// item of a container. A consumer drops the items of the container missing from the
// union of a snapshot's chunks once it has seen the chunk marked Final.
type Snapshot struct {
	SnapshotID string   `json:"snapshotID"`
	Container  string   `json:"container"`
	Chunk      int      `json:"chunk"`
	Final      bool     `json:"final"`
	IDs        []string `json:"ids"`
}

func snapshotEvent(source string, s Snapshot, at time.Time) (cloudevents.Event, error) {
	e := cloudevents.New(cloudevents.CloudEventsVersionV1)
	e.SetID(fmt.Sprintf("%s-%d", s.SnapshotID, s.Chunk))
	e.SetSource(source)
	e.SetType(EventContainerSnapshot)
	e.SetSubject(s.Container)
	e.SetTime(at)
	return e, e.SetData(cloudevents.ApplicationJSON, s)
}
