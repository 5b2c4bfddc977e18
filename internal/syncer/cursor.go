package syncer

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/unified-connectors/connector-operator/connectors"
)

// Cursor is how far a container has been delivered: every item updated before From, and
// the items updated at or after From listed in Seen (by update instant).
//
// A run asks the vendor for the items updated at or after From, skips what Seen lists and
// delivers the rest. From trails the newest delivered instant by the look-back window
// (spec.sync.lookback): a vendor whose search index lags, or whose timestamps are set
// before commit, can show an item updated at t1 only after items updated later were
// delivered; re-reading the window finds it, and Seen keeps the re-read from repeating
// what was already sent. Items sharing one instant (bulk edits) are exact the same way.
//
// Seen is bounded (Trim): past the bound the oldest entries are forgotten, so an item
// inside the window may be sent once more, never lost (at-least-once).
type Cursor struct {
	From time.Time
	Seen []Instant
}

// Instant lists the ids of delivered items updated at At.
type Instant struct {
	At  time.Time
	IDs []string
}

// maxIDLength is the longest id kept verbatim; longer ones (composite database keys),
// and ids with characters outside [A-Za-z0-9_.~-], are kept as a 72-bit digest so that no
// id can bloat status or break the cursor's text form.
const maxIDLength = 24

// seenID is how an item id is kept in Seen.
func seenID(id string) string {
	if len(id) <= maxIDLength && id != "" && strings.IndexFunc(id, func(r rune) bool { return !plainIDRune(r) }) < 0 {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return "#" + base64.RawURLEncoding.EncodeToString(sum[:9])
}

func plainIDRune(r rune) bool {
	return r < utf8.RuneSelf && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_.~-", r))
}

// Covers reports whether the item id updated at at was delivered by the cursor's account.
func (c Cursor) Covers(id string, at time.Time) bool {
	if at.Before(c.From) {
		return true
	}
	i, ok := c.find(at)
	return ok && slices.Contains(c.Seen[i].IDs, seenID(id))
}

// Delivered reports whether it was delivered.
func (c Cursor) Delivered(it connectors.Item) bool { return c.Covers(it.ID, it.UpdatedAt) }

// find returns the index of the instant at (ok) or where it would be inserted.
func (c Cursor) find(at time.Time) (int, bool) {
	return slices.BinarySearchFunc(c.Seen, at, func(in Instant, t time.Time) int { return in.At.Compare(t) })
}

// Add records that it was delivered (the sink acknowledged it).
func (c *Cursor) Add(it connectors.Item) {
	if it.UpdatedAt.Before(c.From) {
		return
	}
	id := seenID(it.ID)
	i, ok := c.find(it.UpdatedAt)
	if !ok {
		c.Seen = slices.Insert(c.Seen, i, Instant{At: it.UpdatedAt})
	}
	if !slices.Contains(c.Seen[i].IDs, id) {
		c.Seen[i].IDs = append(c.Seen[i].IDs, id)
	}
}

// Settle moves From forward to mark (never back) and forgets what lies before it: the
// caller has established that every item updated before mark was delivered.
func (c *Cursor) Settle(mark time.Time) {
	if !mark.After(c.From) {
		return
	}
	c.From = mark
	i, _ := c.find(mark)
	c.Seen = slices.Clone(c.Seen[i:])
}

// Trim bounds Seen to max ids, forgetting the oldest first: those may be sent again if a
// later run re-reads them, which at-least-once allows.
func (c *Cursor) Trim(limit int) {
	over := c.Len() - limit
	for over > 0 && len(c.Seen) > 0 {
		first := &c.Seen[0]
		if len(first.IDs) <= over {
			over -= len(first.IDs)
			c.Seen = c.Seen[1:]
			continue
		}
		first.IDs = slices.Clone(first.IDs[over:])
		over = 0
	}
}

// Len is the number of ids in Seen.
func (c Cursor) Len() int {
	n := 0
	for _, in := range c.Seen {
		n += len(in.IDs)
	}
	return n
}

// Latest is the newest instant the cursor knows delivered: the last of Seen, else From.
func (c Cursor) Latest() time.Time {
	if len(c.Seen) > 0 {
		return c.Seen[len(c.Seen)-1].At
	}
	return c.From
}

// IDs lists the ids in Seen (digests for long ids), oldest instant first.
func (c Cursor) IDs() []string {
	var ids []string
	for _, in := range c.Seen {
		ids = append(ids, in.IDs...)
	}
	return ids
}

// Encode renders the cursor for status: opaque to users, stable for the operator, and
// compact (status holds up to MaxContainers of them): "v2." From in Unix nanoseconds,
// then per instant ";" its offset from From in base-36 nanoseconds, ":" and its ids
// joined by ",".
func (c Cursor) Encode() string {
	if c.From.IsZero() && len(c.Seen) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("v2.")
	b.WriteString(strconv.FormatInt(c.From.UnixNano(), 10))
	for _, in := range c.Seen {
		if len(in.IDs) == 0 {
			continue
		}
		b.WriteByte(';')
		b.WriteString(strconv.FormatInt(int64(in.At.Sub(c.From)), 36))
		b.WriteByte(':')
		b.WriteString(strings.Join(in.IDs, ","))
	}
	return b.String()
}

// v1Cursor is the format written before the look-back window: the items updated before
// At, and those at At whose ids are listed.
type v1Cursor struct {
	At  time.Time `json:"t"`
	IDs []string  `json:"ids,omitempty"`
}

// errBadCursor is returned for a cursor the operator did not write; the container then
// starts again from spec.sync.since (at-least-once: repeats, never losses).
var errBadCursor = errors.New("unreadable sync cursor")

// maxCursorLength bounds what ParseCursor reads.
const maxCursorLength = 1 << 20

// ParseCursor reads a cursor written by Encode (or by the v1 format). "" is the zero
// cursor.
func ParseCursor(s string) (Cursor, error) {
	if s == "" {
		return Cursor{}, nil
	}
	if len(s) > maxCursorLength || len(s) < 3 {
		return Cursor{}, errBadCursor
	}
	switch s[:3] {
	case "v1.":
		b, err := base64.RawURLEncoding.DecodeString(s[3:])
		if err != nil {
			return Cursor{}, errBadCursor
		}
		var v1 v1Cursor
		if err := json.Unmarshal(b, &v1); err != nil {
			return Cursor{}, errBadCursor
		}
		c := Cursor{From: v1.At}
		if len(v1.IDs) > 0 {
			c.Seen = []Instant{{At: v1.At, IDs: v1.IDs}}
		}
		return c, nil
	case "v2.":
		parts := strings.Split(s[3:], ";")
		from, err := strconv.ParseInt(parts[0], 10, 64)
		if err != nil {
			return Cursor{}, errBadCursor
		}
		c := Cursor{From: time.Unix(0, from).UTC()}
		for _, p := range parts[1:] {
			off, ids, ok := strings.Cut(p, ":")
			o, err := strconv.ParseInt(off, 36, 64)
			if !ok || err != nil || o < 0 || ids == "" || from > math.MaxInt64-o {
				return Cursor{}, errBadCursor
			}
			at := c.From.Add(time.Duration(o))
			if len(c.Seen) > 0 && !at.After(c.Seen[len(c.Seen)-1].At) {
				return Cursor{}, errBadCursor // instants are strictly increasing
			}
			list := strings.Split(ids, ",")
			for _, id := range list {
				if id == "" || seenID(id) != id && !strings.HasPrefix(id, "#") {
					return Cursor{}, errBadCursor
				}
			}
			c.Seen = append(c.Seen, Instant{At: at, IDs: list})
		}
		return c, nil
	default:
		return Cursor{}, errBadCursor
	}
}
