package jira

import (
	"cmp"
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/connectors/atlassian"
)

// Changes and LiveIDs page by key set, not by Jira's tokens. Each page is a fresh query
// from the last issue delivered, (M, A): its time in epoch milliseconds and its id,
//
//	project = "KEY" AND updated >= M AND (updated >= M+1 OR id > A) [AND (filter)]
//	ORDER BY updated ASC, id ASC
//
// (the first page: project = "KEY" AND updated >= <Since> …). Offset-like tokens would
// skip an issue whenever one on an earlier page changed (and so moved to the end)
// between two requests; a key-set position cannot move. Because the position names an
// id as well as a millisecond, any number of issues sharing one millisecond (a bulk edit
// of thousands) pages through in id order, each exactly once, with a cursor of constant
// size. The bound is epoch milliseconds because Jira reads a date string in the time
// zone of the account that searches, with minute precision: a UTC cursor sent as
// "2024/01/31 10:00" skips or repeats issues for an account in Sydney or Los Angeles.
// Should Jira round a millisecond bound down, the query only widens: issues before the
// position are dropped here, by their own times.

// millis renders t as JQL epoch milliseconds.
func millis(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

// maxSteps bounds the pages a key-set call reads past issues before its position, which
// only a vendor that widens the bound (see above) returns; with exact bounds the first
// page of every query is new.
const maxSteps = 50

// keysetQuery is one page of a key-set listing.
type keysetQuery struct {
	op, kind string
	project  string
	filter   string
	field    string   // updated or created
	fields   []string // fields asked for; must include field
	since    time.Time
	cursor   string
	limit    int
}

// keysetIssue is an issue with the time it is ordered by.
type keysetIssue struct {
	issueJSON
	millis int64
	id     int64
}

// keysetJQL is the query of the page after position (from, after): issues of project
// whose field is at or after from, past the issue with id after at exactly from ("":
// none delivered there yet).
func keysetJQL(k keysetQuery, project string, from int64, after string) string {
	clauses := []string{projectClause([]string{project})}
	if from > 0 {
		clauses = append(clauses, k.field+" >= "+strconv.FormatInt(from, 10))
	}
	if after != "" {
		clauses = append(clauses, "("+k.field+" >= "+strconv.FormatInt(from+1, 10)+" OR id > "+after+")")
	}
	if f := strings.TrimSpace(k.filter); f != "" {
		clauses = append(clauses, "("+f+")")
	}
	return strings.Join(clauses, " AND ") + " ORDER BY " + k.field + " ASC, id ASC"
}

// keyset returns the next page of a key-set listing and the cursor after it ("" at the
// end): issues of k.project whose k.field is at or after the position, in (field, id)
// order.
func (c *Client) keyset(ctx context.Context, k keysetQuery) ([]keysetIssue, string, error) {
	project := strings.TrimSpace(k.project)
	if project == "" {
		return nil, "", invalid(k.op, "container is required")
	}
	if f := strings.TrimSpace(k.filter); f != "" {
		if err := checkFilter(f); err != nil {
			return nil, "", invalid(k.op, err.Error())
		}
	}
	from, after := max(k.since.UnixMilli(), 0), ""
	if k.cursor != "" {
		cur, err := decodeCursor(k.cursor, k.op, k.kind, project)
		if err != nil {
			return nil, "", err
		}
		from, after = cur.Millis, cur.After
	}
	afterID, _ := strconv.ParseInt(after, 10, 64) // checked by decodeCursor
	jql := keysetJQL(k, project, from, after)
	limit := limitOf(k.limit)

	var (
		fresh []keysetIssue
		page  searchPage
		at    position
	)
	for step := 0; ; step++ {
		var err error
		if page, err = c.search(ctx, jql, k.fields, limit, at); err != nil {
			return nil, "", err
		}
		for _, is := range page.issues {
			raw := is.Fields.Updated
			if k.field == "created" {
				raw = is.Fields.Created
			}
			t, err := atlassian.ParseTime(raw)
			if err != nil {
				return nil, "", c.badAnswer(k.op, "issue "+is.ID+": "+k.field+": "+err.Error())
			}
			if !isIssueID(is.ID) {
				return nil, "", c.badAnswer(k.op, "an issue id is not a number")
			}
			ms := t.UnixMilli()
			id, _ := strconv.ParseInt(is.ID, 10, 64)
			if ms < from || (after != "" && ms == from && id <= afterID) {
				continue // before the position: Jira widened the bound
			}
			fresh = append(fresh, keysetIssue{issueJSON: is, millis: ms, id: id})
		}
		if len(fresh) > 0 || page.last {
			break
		}
		if step+1 >= maxSteps {
			return nil, "", c.badAnswer(k.op, "search keeps answering issues before the position asked for")
		}
		// A whole page before the position: step over it with Jira's own paging.
		at = page.next
	}

	slices.SortStableFunc(fresh, func(a, b keysetIssue) int {
		return cmp.Or(cmp.Compare(a.millis, b.millis), cmp.Compare(a.id, b.id))
	})
	more := !page.last
	if len(fresh) > limit {
		fresh, more = fresh[:limit], true
	}
	if !more {
		return fresh, "", nil
	}
	last := fresh[len(fresh)-1]
	return fresh, cursor{Kind: k.kind, Scope: project, Millis: last.millis, After: last.ID}.encode(), nil
}

// Changes lists the issues of q.Container updated at or after q.Since (and within
// q.Filter), oldest first: by update time, then by id. Every issue that Jira's search
// shows updated at or after Since is on some page exactly once, even when issues change
// between pages and however many share one millisecond, whatever the account's time
// zone; an issue that changes again after it was delivered is delivered again, with its
// new update time. A cursor continues from the last issue delivered, and Since is then
// ignored.
//
// Search is eventually consistent: an update can reach it after a later one. Callers
// resuming from their own position re-read a window behind it (Provider.DefaultLookback)
// and skip the (id, update time) pairs they delivered: Since is inclusive, so nothing
// updated in that same millisecond is lost.
func (c *Client) Changes(ctx context.Context, q connectors.ChangeQuery) (connectors.Page[connectors.Item], error) {
	op := c.searchOp()
	issues, next, err := c.keyset(ctx, keysetQuery{
		op: op, kind: kindChanges, project: containerRef(q.Container), filter: q.Filter,
		field: "updated", fields: itemFields, since: q.Since, cursor: q.Cursor, limit: q.Limit,
	})
	if err != nil {
		return connectors.Page[connectors.Item]{}, err
	}
	items := make([]connectors.Item, 0, len(issues))
	for _, is := range issues {
		it, err := c.item(op, is.issueJSON)
		if err != nil {
			return connectors.Page[connectors.Item]{}, err
		}
		items = append(items, it)
	}
	return connectors.Page[connectors.Item]{Items: items, NextCursor: next}, nil
}

// LiveIDs lists the ids of every issue of container, for pruning, a page of up to 100
// per call. It pages by creation time, which never changes: an issue deleted or moved
// between two pages cannot make Jira's offsets skip a live one, which the consumer
// would then drop.
func (c *Client) LiveIDs(ctx context.Context, container connectors.Container, cur string) (connectors.Page[string], error) {
	issues, next, err := c.keyset(ctx, keysetQuery{
		op: c.searchOp(), kind: kindLiveIDs, project: containerRef(container),
		field: "created", fields: []string{"created"}, cursor: cur, limit: maxLimit,
	})
	if err != nil {
		return connectors.Page[string]{}, err
	}
	ids := make([]string, len(issues))
	for i, is := range issues {
		ids[i] = is.ID
	}
	return connectors.Page[string]{Items: ids, NextCursor: next}, nil
}

// containerRef is how JQL names a container: its key, or its id.
func containerRef(c connectors.Container) string {
	return cmp.Or(strings.TrimSpace(c.Key), strings.TrimSpace(c.ID))
}
