package confluence

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/unified-connectors/connector-operator/connectors"
)

// Changes: the pages of a space modified at or after Since, ordered by modification
// time then id, exact whatever the account's time zone.
//
// The trap: only CQL can select by modification time, and CQL reads a date literal
// (lastmodified >= "2024-01-31 10:00") with minute precision in the time zone of the
// account that runs the search, which /wiki/rest/api/user/current may not report. A UTC
// date sent for an account in Sydney repeats eleven hours of changes; for one in Los
// Angeles it skips eight.
//
// The design:
//
//  1. Widen. The lower bound sent is Since minus zoneSlack (26 hours, more than any
//     zone's offset from UTC, −12 to +14, plus the minute rounding), so whatever zone
//     the vendor reads it in, it is at or before Since. The exact filter (hit time ≥
//     Since, to the nanosecond the vendor gives) is applied here, on each hit's version
//     time, which is an instant and zone-free.
//  2. Walk in order. The query is ORDER BY lastmodified ASC, asking for version numbers
//     and times only (no bodies), in pages of walkPage hits. Ties (the same millisecond)
//     come in the index's order, so each page of results is sorted by (time, id) here.
//     Memory is bounded by limit plus one page of hits: the selection keeps the first
//     limit candidates and stops reading once it is full and hits are newer than its
//     last. A call reads at most maxWalkRequests pages of hits and returns what is final,
//     but always reads the tie group it is in to its end: CQL cannot bound a query by id
//     or to the millisecond, so a bulk edit of thousands of pages in one millisecond is
//     one group, read whole by every call that returns part of it (N hits cost about
//     N/limit calls of N/walkPage requests), each of its pages exactly once, in id order.
//  3. Resume by keyset, checked. The cursor holds the last item returned (time, id) —
//     the next page starts strictly after it, so nothing repeats within a run — and the
//     offset at which its tie group starts, with the hit just before that offset as an
//     anchor. Offsets are only trusted while the anchor is still there: an update moves a
//     page to the end of the results and a delete removes it, which shifts everything
//     after it forward, and offset paging alone would then skip a page. The same check
//     runs between the pages of hits within one call. When it fails, the walk restarts
//     from offset 0 and the keyset alone keeps the result exact.
//  4. Fill. The selected pages are read with their bodies in one call (v2 GET
//     /wiki/api/v2/pages?id=… on Cloud, CQL id in (…) on Data Center). A page deleted
//     since the search is left out. A page whose version moved on since the search saw
//     it (a new version made meanwhile, or one made earlier that the index has not
//     caught up with) is delivered at its new version when that still sorts no later
//     than the last hit of the page of results, in its place by (time, id): the
//     cursor stays at that hit, so nothing after it is skipped, and the next page starts
//     after it, so the new version is not repeated. Otherwise it is left out, and its
//     new version comes later in the feed: its time is after the last hit returned, so
//     a later page of this walk finds it once it is searchable, and else a later run
//     does, because the caller re-reads a look-back window behind its position
//     (Provider.DefaultLookback) and the new version is either newer than the walk's
//     searches or older than them by no more than the index's lag. Only the live
//     version is ever delivered, never the version the search saw, so an item never
//     goes back in time.
//
// Search is eventually consistent: what a walk cannot see (a version not indexed yet)
// it cannot deliver, and a version indexed late may sort before the position of a run
// that already went past it. Changes is exact for what the search shows when it reads;
// the caller's look-back window catches the rest. Across runs the caller moves Since to
// its position minus that window and drops the (id, UpdatedAt) pairs it already
// delivered (Since is inclusive).
//
// The cost is the 26 hours before Since, walked once per run without bodies, and one
// overlapping hit per page of hits.

// zoneSlack widens the CQL lower bound past any time zone's offset (see above).
const zoneSlack = 26 * time.Hour

// Bounds on one Changes call: pages of hits read (the call then returns what is final
// with a cursor to go on), and restarts after shifted offsets (the call then fails as
// unavailable, to be retried).
const (
	maxWalkRequests = 20
	maxRestarts     = 3
	// maxTieRequests bounds the pages of hits read past maxWalkRequests to finish one
	// tie group: far more hits than one instant ever holds (see Changes).
	maxTieRequests = 1000
)

// cqlDateLayout is how CQL spells a minute.
const cqlDateLayout = "2006-01-02 15:04"

// changesCQL is the query Changes walks.
func changesCQL(spaceKey string, since time.Time, filter string) string {
	lower := ""
	if since.Year() > 1970 { // before, there was no Confluence content to miss
		lower = "lastmodified >= " + cqlString(since.Add(-zoneSlack).UTC().Format(cqlDateLayout))
	}
	return andCQL("space = "+cqlString(spaceKey), "type = page", lower, filterClause(filter)) + " ORDER BY lastmodified ASC"
}

// filled is a page read in the fill step, with the version number it was read at.
type filled struct {
	item    connectors.Item
	version int
}

// hitKey orders hits as Changes answers them: by time, then by id (as numbers).
type hitKey struct {
	at int64
	id string
}

func (a hitKey) less(b hitKey) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	return compareIDs(a.id, b.id) < 0
}

func compareIDs(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}

func keyOf(h searchHit) hitKey { return hitKey{h.at, h.id} }

// tieGroup is where a run of hits with the same time starts: its offset, and the hit
// just before it (nil at offset 0), which vouches for the offset later.
type tieGroup struct {
	at     int64
	offset int
	anchor *searchHit
}

type candidate struct {
	hit   searchHit
	group tieGroup
}

// walk is the state of one Changes call's reading of the hits.
type walk struct {
	since int64
	after *hitKey // the last item the previous call returned
	limit int

	sel     []candidate // the first candidates so far, sorted, at most limit
	dropped bool        // a candidate was pushed out of sel: there is more
	prev    *searchHit  // the last hit read
	group   tieGroup    // the tie group being read
}

func (w *walk) reset() {
	w.sel, w.dropped, w.prev, w.group = nil, false, nil, tieGroup{}
}

// see reads the hit at offset; it returns true when no later hit can enter the
// selection.
func (w *walk) see(h searchHit, offset int) (full bool) {
	if w.prev == nil || h.at != w.prev.at {
		w.group = tieGroup{at: h.at, offset: offset, anchor: w.prev}
	}
	w.prev = &h
	if len(w.sel) == w.limit && h.at > w.sel[len(w.sel)-1].hit.at {
		return true
	}
	if h.at < w.since || (w.after != nil && !w.after.less(keyOf(h))) {
		return false // before Since, or returned already
	}
	i, _ := slices.BinarySearchFunc(w.sel, keyOf(h), func(c candidate, k hitKey) int {
		switch {
		case keyOf(c.hit).less(k):
			return -1
		case k.less(keyOf(c.hit)):
			return 1
		}
		return 0
	})
	if i < len(w.sel) && keyOf(w.sel[i].hit) == keyOf(h) {
		return false // the same hit twice (the index moved under us)
	}
	w.sel = slices.Insert(w.sel, i, candidate{hit: h, group: w.group})
	if len(w.sel) > w.limit {
		w.sel = w.sel[:w.limit]
		w.dropped = true
	}
	return false
}

// Changes returns the pages of q.Container (by Key) modified at or after q.Since, oldest
// first, ties by id, q.Limit at a time; see the top of this file for how it stays exact.
// q.Filter (the Connection's CQL filter) is ANDed on. A page may come with an empty list
// and a cursor when the call read its bound of hits without finishing.
func (c *Client) Changes(ctx context.Context, q connectors.ChangeQuery) (connectors.Page[connectors.Item], error) {
	var page connectors.Page[connectors.Item]
	path := c.wiki + "/rest/api/search"
	if !c.api.IsCloud() {
		path = "/rest/api/content/search"
	}
	key := q.Container.Key
	if key == "" {
		return page, c.invalid(http.MethodGet, path, "a space key is required")
	}
	if err := c.checkFilter(http.MethodGet, path, q.Filter); err != nil {
		return page, err
	}
	cql := changesCQL(key, q.Since, q.Filter)
	digest := queryDigest(cql, instant(q.Since))
	st, err := decodeCursor(q.Cursor, opChanges, digest)
	if err != nil {
		return page, c.invalid(http.MethodGet, path, err.Error())
	}

	w := &walk{since: q.Since.UnixNano(), limit: clampLimit(q.Limit)}
	if q.Since.IsZero() {
		w.since = 0
	}
	if st.ID != "" {
		w.after = &hitKey{st.T, st.ID}
	}
	pos := st.Start
	if st.AID != "" {
		w.prev = &searchHit{id: st.AID, at: st.AT}
	}
	full, exhausted, boundary, restarts := false, false, false, 0
	for req := 0; !full && !exhausted && !boundary; req++ {
		// Past the request bound the walk only finishes the tie group it is in, and stops
		// at the next one: a call that stopped inside a group could return none of it
		// (its members are sorted by id, so any unread one may come first), and the next
		// call would start the group over, for ever once a group (a bulk edit) holds
		// more hits than one call reads. However large, a group is read to its end.
		finishing := req >= maxWalkRequests
		if finishing && w.prev == nil {
			break // nothing read within the bound: no group to finish
		}
		if req >= maxWalkRequests+maxTieRequests {
			return connectors.Page[connectors.Item]{}, &connectors.Error{Kind: connectors.KindUnavailable,
				Vendor: Type, Op: c.api.Op(http.MethodGet, path), Status: http.StatusOK,
				Reason: "search answered no end to the pages sharing one modification time"}
		}
		from, size := pos, c.walkPage
		check := w.prev != nil && pos > 0
		if check {
			from, size = pos-1, size+1 // read the hit before pos again, to check it
		}
		hits, more, err := c.searchPage(ctx, cql, from, min(size, maxLimit))
		if err != nil {
			return connectors.Page[connectors.Item]{}, err
		}
		if check {
			if len(hits) == 0 || hits[0].id != w.prev.id || hits[0].at != w.prev.at {
				// Something before pos left the results: offsets moved. Start over; the
				// keyset keeps the answer exact.
				if restarts++; restarts > maxRestarts {
					return connectors.Page[connectors.Item]{}, &connectors.Error{Kind: connectors.KindUnavailable,
						Vendor: Type, Op: c.api.Op(http.MethodGet, path), Status: http.StatusOK,
						Reason: "search results kept shifting while being read; try again"}
				}
				// A fresh request bound too (restarts are bounded): the bound would
				// otherwise end the walk before it is back where it was.
				w.reset()
				pos, req = 0, -1
				continue
			}
			hits = hits[1:]
		}
		for i, h := range hits {
			if finishing && h.at != w.group.at {
				boundary, pos = true, pos+i // h starts the next group: stop before it
				break
			}
			if full = w.see(h, pos+i); full {
				break
			}
		}
		if boundary {
			break
		}
		pos += len(hits)
		// A page holding only the hit read again makes no progress; the request bound
		// ends that, with a cursor to go on.
		exhausted = !more
	}

	sel := w.sel
	more := full || w.dropped || boundary
	if !full && !exhausted && !boundary {
		// Out of requests before anything was read: nothing is final.
		more = true
		sel = slices.DeleteFunc(sel, func(c candidate) bool { return c.hit.at >= w.group.at })
	}
	if more {
		next := cursor{Op: opChanges, Q: digest}
		g := w.group
		if boundary {
			// Every group before pos is read to its end: go on from pos.
			g = tieGroup{offset: pos, anchor: w.prev}
		}
		if len(sel) > 0 {
			last := sel[len(sel)-1]
			next.T, next.ID, g = last.hit.at, last.hit.id, last.group
		} else if w.after != nil {
			next.T, next.ID = w.after.at, w.after.id
		}
		next.Start = g.offset
		if g.anchor != nil && g.offset > 0 {
			next.AT, next.AID = g.anchor.at, g.anchor.id
		} else {
			next.Start = 0
		}
		page.NextCursor = next.encode()
	}
	if page.Items, err = c.fill(ctx, key, sel); err != nil {
		return connectors.Page[connectors.Item]{}, err
	}
	return page, nil
}

// fill reads the selected pages with their bodies, in (time, id) order: each at its
// live version, leaving out those deleted since the search saw them and those whose new
// version sorts after the last hit selected (see the top of this file).
func (c *Client) fill(ctx context.Context, spaceKey string, sel []candidate) ([]connectors.Item, error) {
	if len(sel) == 0 {
		return []connectors.Item{}, nil
	}
	ids := make([]string, len(sel))
	for i, cd := range sel {
		ids[i] = cd.hit.id
	}
	var pages map[string]filled
	var err error
	if c.api.IsCloud() {
		pages, err = c.v2PagesByID(ctx, spaceKey, ids)
	} else {
		pages, err = c.dcPagesByID(ctx, spaceKey, ids)
	}
	if err != nil {
		return nil, err
	}
	bound := keyOf(sel[len(sel)-1].hit)
	items := make([]connectors.Item, 0, len(sel))
	moved := false
	for _, cd := range sel {
		f, ok := pages[cd.hit.id]
		if !ok {
			continue // deleted since the search
		}
		newer := f.version > cd.hit.version
		if cd.hit.version == 0 { // the search gave a time but no version
			newer = f.item.UpdatedAt.UnixNano() > cd.hit.at
		}
		if newer {
			if bound.less(itemKey(f.item)) {
				continue // its new version comes later in the feed
			}
			moved = true
		}
		items = append(items, f.item)
	}
	if moved {
		slices.SortStableFunc(items, func(a, b connectors.Item) int {
			switch ka, kb := itemKey(a), itemKey(b); {
			case ka.less(kb):
				return -1
			case kb.less(ka):
				return 1
			}
			return 0
		})
	}
	return items, nil
}

// itemKey is where an item sorts in the feed.
func itemKey(it connectors.Item) hitKey { return hitKey{it.UpdatedAt.UnixNano(), it.ID} }
