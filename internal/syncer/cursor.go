package syncer

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/unified-connectors/connector-operator/connectors"
)

// Cursor is how far a container has been delivered: every item updated before At, and
// the items updated exactly at At whose ids are in IDs. Keeping the ids at the boundary
// instant makes the next run exact: it asks the vendor for items updated at or after At
// and drops those already delivered, so items sharing a timestamp (common: bulk edits)
// are neither lost nor repeated.
type Cursor struct {
	At  time.Time `json:"t"`
	IDs []string  `json:"ids,omitempty"`
}

// maxBoundaryIDs bounds the cursor's size in status; a bulk edit touching more items in
// one millisecond repeats at most the overflow, which at-least-once allows.
const maxBoundaryIDs = 200

// Delivered reports whether it was delivered by the cursor's position.
func (c Cursor) Delivered(it connectors.Item) bool {
	if it.UpdatedAt.Before(c.At) {
		return true
	}
	return it.UpdatedAt.Equal(c.At) && slices.Contains(c.IDs, it.ID)
}

// Advance moves the cursor past it, which the sink has acknowledged. Items arrive in
// (updatedAt, id) order, so the cursor never moves backwards.
func (c Cursor) Advance(it connectors.Item) Cursor {
	switch {
	case it.UpdatedAt.After(c.At):
		return Cursor{At: it.UpdatedAt, IDs: []string{it.ID}}
	case it.UpdatedAt.Equal(c.At) && !slices.Contains(c.IDs, it.ID) && len(c.IDs) < maxBoundaryIDs:
		return Cursor{At: c.At, IDs: append(slices.Clone(c.IDs), it.ID)}
	default:
		return c
	}
}

// Encode renders the cursor for status: opaque to users, stable for the operator.
func (c Cursor) Encode() string {
	if c.At.IsZero() && len(c.IDs) == 0 {
		return ""
	}
	b, _ := json.Marshal(Cursor{At: c.At.UTC(), IDs: c.IDs})
	return "v1." + base64.RawURLEncoding.EncodeToString(b)
}

// errBadCursor is returned for a cursor the operator did not write; the container then
// starts again from spec.sync.since (at-least-once: repeats, never losses).
var errBadCursor = errors.New("unreadable sync cursor")

// ParseCursor reads a cursor written by Encode. "" is the zero cursor.
func ParseCursor(s string) (Cursor, error) {
	if s == "" {
		return Cursor{}, nil
	}
	if len(s) > 64<<10 || len(s) < 3 || s[:3] != "v1." {
		return Cursor{}, errBadCursor
	}
	b, err := base64.RawURLEncoding.DecodeString(s[3:])
	if err != nil {
		return Cursor{}, errBadCursor
	}
	var c Cursor
	if err := json.Unmarshal(b, &c); err != nil || len(c.IDs) > maxBoundaryIDs {
		return Cursor{}, errBadCursor
	}
	return c, nil
}
