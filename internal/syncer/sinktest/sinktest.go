// Package sinktest is a CloudEvents batch sink for tests and benchmarks, over real HTTP:
// it records what it acknowledges, fails on command, and checks deliveries for loss and
// duplicates.
package sinktest

import (
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"time"
)

// Event is one received CloudEvent (structured JSON, as in a batch).
type Event struct {
	SpecVersion string          `json:"specversion"`
	ID          string          `json:"id"`
	Source      string          `json:"source"`
	Type        string          `json:"type"`
	Subject     string          `json:"subject"`
	Time        time.Time       `json:"time"`
	DataType    string          `json:"datacontenttype"`
	Data        json.RawMessage `json:"data"`
}

// Item is the part of an upserted item's data the checks read.
type Item struct {
	ID        string    `json:"id"`
	Key       string    `json:"key"`
	Container string    `json:"container"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// Failure makes the sink answer Status (with Retry-After when set) instead of accepting.
type Failure struct {
	Status     int
	RetryAfter time.Duration
}

// Sink is a recording sink. It is safe for concurrent use.
type Sink struct {
	srv *httptest.Server

	mu            sync.Mutex
	failure       Failure
	events        []Event // acknowledged, in order
	batches       int     // acknowledged batches
	attempts      int     // every POST
	authorization string
	lastAuth      string
	onBatch       func([]Event)
}

// New returns a sink that is not listening: serve Handler yourself (make dev does).
func New() *Sink { return &Sink{} }

// NewServer starts a sink on http://127.0.0.1.
func NewServer() *Sink {
	s := New()
	s.srv = httptest.NewServer(s.Handler())
	return s
}

// Handler receives batches.
func (s *Sink) Handler() http.Handler { return http.HandlerFunc(s.serve) }

// URL is where to POST; "" for a Sink from New.
func (s *Sink) URL() string {
	if s.srv == nil {
		return ""
	}
	return s.srv.URL
}

// Close stops a started sink.
func (s *Sink) Close() {
	if s.srv != nil {
		s.srv.Close()
	}
}

// RequireAuthorization makes the sink answer 401 to batches without this header value.
func (s *Sink) RequireAuthorization(v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.authorization = v
}

// Fail makes the sink refuse every batch until Recover.
func (s *Sink) Fail(f Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failure = f
}

// Recover makes the sink accept batches again.
func (s *Sink) Recover() { s.Fail(Failure{}) }

// OnBatch calls f with every acknowledged batch (after recording it).
func (s *Sink) OnBatch(f func([]Event)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onBatch = f
}

func (s *Sink) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.attempts++
	s.lastAuth = r.Header.Get("Authorization")
	f, auth := s.failure, s.authorization
	s.mu.Unlock()

	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/cloudevents-batch+json" {
		http.Error(w, "want application/cloudevents-batch+json", http.StatusUnsupportedMediaType)
		return
	}
	if auth != "" && r.Header.Get("Authorization") != auth {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	if f.Status != 0 {
		if f.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int((f.RetryAfter+time.Second-1)/time.Second)))
		}
		http.Error(w, http.StatusText(f.Status), f.Status)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err != nil {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	var batch []Event
	if err := json.Unmarshal(body, &batch); err != nil {
		http.Error(w, "bad batch", http.StatusBadRequest)
		return
	}
	for _, e := range batch {
		if e.SpecVersion != "1.0" || e.ID == "" || e.Source == "" || e.Type == "" {
			http.Error(w, "invalid CloudEvent", http.StatusBadRequest)
			return
		}
	}
	s.mu.Lock()
	s.events = append(s.events, batch...)
	s.batches++
	cb := s.onBatch
	s.mu.Unlock()
	if cb != nil {
		cb(batch)
	}
	w.WriteHeader(http.StatusAccepted)
}

// Events returns every acknowledged event, in order.
func (s *Sink) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.events...)
}

// Attempts counts every POST, failed or not.
func (s *Sink) Attempts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts
}

// Batches counts acknowledged batches.
func (s *Sink) Batches() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.batches
}

// LastAuthorization is the Authorization header of the last POST.
func (s *Sink) LastAuthorization() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastAuth
}

// Reset forgets what was received.
func (s *Sink) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events, s.batches, s.attempts = nil, 0, 0
}

// Items decodes the acknowledged item.upserted events, in order.
func (s *Sink) Items() []Item {
	var out []Item
	for _, e := range s.Events() {
		if e.Type != "dev.unified.connectors.item.upserted" {
			continue
		}
		var it Item
		if err := json.Unmarshal(e.Data, &it); err == nil {
			out = append(out, it)
		}
	}
	return out
}

// Deletion is the data of an acknowledged item.deleted event.
type Deletion struct {
	ID        string    `json:"id"`
	Container string    `json:"container"`
	DeletedAt time.Time `json:"deletedAt"`
}

// Deletions decodes the acknowledged item.deleted events, in order.
func (s *Sink) Deletions() []Deletion {
	var out []Deletion
	for _, e := range s.Events() {
		if e.Type != "dev.unified.connectors.item.deleted" {
			continue
		}
		var d Deletion
		if err := json.Unmarshal(e.Data, &d); err == nil {
			out = append(out, d)
		}
	}
	return out
}

// Report summarises the item deliveries: distinct items, deliveries in all, and the
// deliveries beyond the first of each event id (duplicates).
type Report struct {
	Distinct, Deliveries, Duplicates int
	// OutOfOrder counts items of a container delivered with an update time earlier than
	// the item before them in the same container (update order broken).
	OutOfOrder int
}

// Check computes a Report.
func (s *Sink) Check() Report {
	seenEvent := map[string]bool{}
	seenItem := map[string]bool{}
	last := map[string]time.Time{}
	var r Report
	for _, e := range s.Events() {
		if e.Type != "dev.unified.connectors.item.upserted" {
			continue
		}
		r.Deliveries++
		if seenEvent[e.ID] {
			r.Duplicates++
		}
		seenEvent[e.ID] = true
		var it Item
		if err := json.Unmarshal(e.Data, &it); err != nil {
			continue
		}
		seenItem[it.ID] = true
		if prev, ok := last[it.Container]; ok && it.UpdatedAt.Before(prev) {
			r.OutOfOrder++
		}
		last[it.Container] = it.UpdatedAt
	}
	r.Distinct = len(seenItem)
	return r
}
