package postgresql

import (
	"context"
	"strings"
	"time"

	"github.com/unified-connectors/connector-operator/connectors"
)

// Cursors are opaque to callers, who may hand back anything: "pg1." and the unpadded
// base64url of a small JSON object of positions (connectors.EncodeCursor). A key-set
// position is the last row's cursorColumn value and primary key as text, which go back
// to the server as bind parameters of the columns' types, never into a statement's
// text; a value the type cannot read is an invalid cursor.
const cursorPrefix = "pg1."

// maxCursorLen bounds what a cursor may be (a composite key of long text values).
const maxCursorLen = 32 << 10

// Cursor kinds.
const (
	kindItems   = "items"
	kindChanges = "changes"
	kindLiveIDs = "ids"
	kindSearch  = "search"
)

// Page sizes of the change feed.
const (
	defaultChangesLimit = 100
	maxChangesLimit     = 1000
	liveIDsPage         = 1000
)

// pageCursor is a listing's state between pages.
type pageCursor struct {
	K string `json:"k"`
	// T is the table the listing reads.
	T string `json:"t,omitempty"`
	// C and P are the last row's position: cursorColumn value (changes) and primary key.
	C string   `json:"c,omitempty"`
	P []string `json:"p,omitempty"`
	// O is an offset and H the query's fingerprint (search).
	O int    `json:"o,omitempty"`
	H string `json:"h,omitempty"`
}

func (pc pageCursor) encode() string { return connectors.EncodeCursor(cursorPrefix, pc) }

// decodePageCursor reads a key-set cursor of kind for table t.
func decodePageCursor(op, s, kind string, t *table) (pageCursor, error) {
	var pc pageCursor
	if !connectors.DecodeCursor(s, cursorPrefix, maxCursorLen, &pc) || pc.K != kind || pc.T != t.name || len(pc.P) != len(t.pk) ||
		(kind == kindChanges && pc.C == "") {
		return pageCursor{}, invalid(op, "invalid cursor")
	}
	return pc, nil
}

// cursorError says "invalid cursor" for a value the server could not read back from
// one (SQLSTATE class 22) rather than the type's complaint.
func (c *client) cursorError(op, cursor string, err error) error {
	if cursor != "" && strings.HasPrefix(sqlState(err), "22") {
		return invalid(op, "invalid cursor")
	}
	return err
}

// Changes lists the rows of q.Container whose cursorColumn is at or after q.Since, in
// (cursorColumn, primary key) order, oldest first: ties on the cursorColumn are broken
// by the primary key, so any number of rows sharing one timestamp page exactly. The
// page cursor is the last row's position, compared as a row value:
//
//	WHERE c >= $since AND c >= $c AND (c, k1, k2) > ($c, $k1, $k2) ORDER BY c, k1, k2
//
// A NULL cursorColumn reads as the Unix epoch. Rows of a transaction that commits after
// a later-stamped one was read appear behind the cursor: the engine's look-back
// (DefaultLookback) re-reads for them. In logicalReplication mode the engine streams
// instead (Streamer) and Changes is KindUnsupported.
func (c *client) Changes(ctx context.Context, q connectors.ChangeQuery) (connectors.Page[connectors.Item], error) {
	name := containerName(q.Container)
	op := "SELECT " + name
	if c.mode == logicalReplication {
		return connectors.Page[connectors.Item]{}, unsupported(op, "a logicalReplication Connection syncs from its replication stream, not by cursorColumn")
	}
	if strings.TrimSpace(q.Filter) != "" {
		return connectors.Page[connectors.Item]{}, invalid(op, "spec.scope.filter is not supported by postgresql")
	}
	t, err := c.table(ctx, name, false)
	if err != nil {
		return connectors.Page[connectors.Item]{}, err
	}
	if t.cursor == "" {
		return connectors.Page[connectors.Item]{}, invalid(op, "table "+t.name+" has no cursorColumn")
	}
	limit := limitOf(q.Limit, defaultChangesLimit, maxChangesLimit)
	cur := t.cursorExpr()
	var where []string
	var args []any
	if !q.Since.IsZero() {
		// Microseconds are the server's resolution; truncating only widens the window.
		args = append(args, q.Since.UTC().Truncate(time.Microsecond))
		where = append(where, cur+" >= $1")
	}
	if q.Cursor != "" {
		pc, err := decodePageCursor(op, q.Cursor, kindChanges, t)
		if err != nil {
			return connectors.Page[connectors.Item]{}, err
		}
		n := len(args) + 1
		args = append(args, pc.C)
		args = append(args, anys(pc.P)...)
		// The plain bound lets an index on the cursorColumn serve the row comparison.
		where = append(where, cur+" >= "+params(n, 1),
			"("+cur+", "+t.pkList()+") > ("+params(n, 1+len(t.pk))+")")
	}
	args = append(args, limit+1)
	sql := "SELECT t.* FROM " + t.ident + " t" + whereClause(where) +
		" ORDER BY " + cur + ", " + t.pkList() + " LIMIT " + params(len(args), 1)
	items, pos, _, err := c.readRows(ctx, op, t, 0, sql, args...)
	if err != nil {
		return connectors.Page[connectors.Item]{}, c.cursorError(op, q.Cursor, err)
	}
	page := connectors.Page[connectors.Item]{Items: items}
	if len(items) > limit {
		page.Items = items[:limit]
		last := pos[limit-1]
		page.NextCursor = pageCursor{K: kindChanges, T: t.name, C: last.cursor, P: last.pk}.encode()
	}
	return page, nil
}

// LiveIDs lists the ids of every row of the container now, by primary key key set,
// 1,000 a page: exact while rows come and go (a row deleted before its page is absent,
// none is listed twice), which OFFSET paging is not.
func (c *client) LiveIDs(ctx context.Context, container connectors.Container, cursor string) (connectors.Page[string], error) {
	name := containerName(container)
	op := "SELECT " + name
	t, err := c.table(ctx, name, false)
	if err != nil {
		return connectors.Page[string]{}, err
	}
	var where []string
	var args []any
	if cursor != "" {
		pc, err := decodePageCursor(op, cursor, kindLiveIDs, t)
		if err != nil {
			return connectors.Page[string]{}, err
		}
		where = append(where, "("+t.pkList()+") > ("+params(1, len(t.pk))+")")
		args = append(args, anys(pc.P)...)
	}
	args = append(args, liveIDsPage+1)
	sql := "SELECT " + t.pkList() + " FROM " + t.ident + " t" + whereClause(where) +
		" ORDER BY " + t.pkList() + " LIMIT " + params(len(args), 1)
	p, err := c.pool(ctx)
	if err != nil {
		return connectors.Page[string]{}, c.mapError(op, t.name, err)
	}
	rows, err := p.Query(ctx, sql, args...)
	if err != nil {
		return connectors.Page[string]{}, c.cursorError(op, cursor, c.readError(op, t, err))
	}
	defer rows.Close()
	var ids []string
	var last []string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return connectors.Page[string]{}, c.readError(op, t, err)
		}
		pk := make([]string, len(vals))
		for i, v := range vals {
			if pk[i], err = pkText(v); err != nil {
				return connectors.Page[string]{}, invalid(op, "primary key column "+quoteName(t.pk[i])+": "+err.Error())
			}
		}
		if len(ids) == liveIDsPage {
			return connectors.Page[string]{Items: ids, NextCursor: pageCursor{K: kindLiveIDs, T: t.name, P: last}.encode()}, nil
		}
		ids = append(ids, t.itemID(pk))
		last = pk
	}
	if err := rows.Err(); err != nil {
		return connectors.Page[string]{}, c.cursorError(op, cursor, c.readError(op, t, err))
	}
	return connectors.Page[string]{Items: ids}, nil
}

// containerName is the table a Container names (Key, else ID).
func containerName(ct connectors.Container) string {
	if ct.Key != "" {
		return ct.Key
	}
	return ct.ID
}
