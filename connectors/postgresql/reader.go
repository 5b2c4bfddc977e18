package postgresql

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"slices"
	"strings"
	"time"

	"github.com/unified-connectors/connector-operator/connectors"
)

// Page sizes.
const (
	defaultItemsLimit  = 50
	maxItemsLimit      = 100
	defaultSearchLimit = 20
	maxSearchLimit     = 100
	// maxSearchResults bounds how deep search pages go (offset paging).
	maxSearchResults = 1000
	// searchTextChars bounds the text a row's tsvector is built from: to_tsvector fails
	// above 1 MB of lexemes, which would fail the whole search.
	searchTextChars = 256 << 10
)

func limitOf(n, def, most int) int {
	switch {
	case n <= 0:
		return def
	case n > most:
		return most
	}
	return n
}

const sqlIdentity = `SELECT current_user::text, version(), current_setting('server_version'), current_setting('TimeZone'), current_database()::text`

// Identity connects as the Connection's role and reports it (AccountID and DisplayName
// the role, Organization the database, TimeZone the session's, ServerVersion
// server_version); then checks every table in scope: it exists, the role may read it
// (USAGE on its schema, SELECT on it), it has a primary key (the spec's or the
// catalog's) and the columns the spec names exist, the cursorColumn as a timestamp.
func (c *client) Identity(ctx context.Context) (connectors.Identity, error) {
	p, err := c.pool(ctx)
	if err != nil {
		return connectors.Identity{}, c.mapError("connect", "", err)
	}
	var id connectors.Identity
	var version string
	if err := p.QueryRow(ctx, sqlIdentity).Scan(&id.AccountID, &version, &id.ServerVersion, &id.TimeZone, &id.Organization); err != nil {
		return connectors.Identity{}, c.mapError("connect", "", err)
	}
	id.DisplayName = id.AccountID
	for _, ts := range c.set.tables {
		if !c.set.inScope(ts.name) {
			continue
		}
		if _, err := c.table(ctx, ts.name, true); err != nil {
			return connectors.Identity{}, err
		}
	}
	return id, nil
}

// Containers lists spec.postgresql.tables in order, in one page: each table is a
// container whose ID, Key and Name are its name as written.
func (c *client) Containers(_ context.Context, cursor string, _ int) (connectors.Page[connectors.Container], error) {
	if cursor != "" {
		return connectors.Page[connectors.Container]{}, invalid("list tables", "invalid cursor: the table listing is one page")
	}
	out := make([]connectors.Container, 0, len(c.set.tables))
	for _, t := range c.set.tables {
		out = append(out, connectors.Container{ID: t.name, Key: t.name, Name: t.name})
	}
	return connectors.Page[connectors.Container]{Items: out}, nil
}

// readRows runs a statement whose select list is t.* followed by extra columns, and
// maps each row; extras are the trailing values of each row.
func (c *client) readRows(ctx context.Context, op string, t *table, extra int, sql string, args ...any) ([]connectors.Item, []rowPos, [][]any, error) {
	p, err := c.pool(ctx)
	if err != nil {
		return nil, nil, nil, c.mapError(op, t.name, err)
	}
	rows, err := p.Query(ctx, sql, args...)
	if err != nil {
		return nil, nil, nil, c.readError(op, t, err)
	}
	defer rows.Close()
	fds := rows.FieldDescriptions()
	n := len(fds) - extra
	cols := make([]string, n)
	for i := range cols {
		cols[i] = fds[i].Name
	}
	var items []connectors.Item
	var pos []rowPos
	var extras [][]any
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return nil, nil, nil, c.readError(op, t, err)
		}
		it, rp, err := t.rowItem(cols, vals[:n])
		if err != nil {
			return nil, nil, nil, err
		}
		items, pos = append(items, it), append(pos, rp)
		if extra > 0 {
			extras = append(extras, vals[n:])
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, nil, c.readError(op, t, err)
	}
	return items, pos, extras, nil
}

// readError maps a failed read of t; a table or column gone forgets the catalog kept
// for it.
func (c *client) readError(op string, t *table, err error) error {
	mapped := c.mapError(op, t.name, err)
	switch sqlState(mapped) {
	case "42P01", "42703", "42501", "0A000":
		c.mu.Lock()
		e := c.entry
		c.mu.Unlock()
		if e != nil {
			e.forget(t.name)
		}
	}
	return mapped
}

// Items lists the rows of table q.Container in primary key order, by key set (at most
// 100 a page, 50 by default); q.UpdatedSince keeps the rows whose cursorColumn is at or
// after it.
func (c *client) Items(ctx context.Context, q connectors.ItemQuery) (connectors.Page[connectors.Item], error) {
	op := "SELECT " + q.Container
	if strings.TrimSpace(q.Filter) != "" {
		return connectors.Page[connectors.Item]{}, invalid(op, "spec.scope.filter is not supported by postgresql")
	}
	t, err := c.table(ctx, q.Container, false)
	if err != nil {
		return connectors.Page[connectors.Item]{}, err
	}
	limit := limitOf(q.Limit, defaultItemsLimit, maxItemsLimit)
	var where []string
	var args []any
	if !q.UpdatedSince.IsZero() {
		if t.cursor == "" {
			return connectors.Page[connectors.Item]{}, invalid(op, "table "+t.name+" has no cursorColumn to filter on updatedSince")
		}
		args = append(args, q.UpdatedSince.UTC().Truncate(time.Microsecond))
		where = append(where, t.cursorExpr()+" >= $1")
	}
	if q.Cursor != "" {
		pc, err := decodePageCursor(op, q.Cursor, kindItems, t)
		if err != nil {
			return connectors.Page[connectors.Item]{}, err
		}
		where = append(where, "("+t.pkList()+") > ("+params(len(args)+1, len(t.pk))+")")
		args = append(args, anys(pc.P)...)
	}
	args = append(args, limit+1)
	sql := "SELECT t.* FROM " + t.ident + " t" + whereClause(where) +
		" ORDER BY " + t.pkList() + " LIMIT " + params(len(args), 1)
	items, pos, _, err := c.readRows(ctx, op, t, 0, sql, args...)
	if err != nil {
		return connectors.Page[connectors.Item]{}, c.cursorError(op, q.Cursor, err)
	}
	page := connectors.Page[connectors.Item]{Items: items}
	if len(items) > limit {
		page.Items = items[:limit]
		page.NextCursor = pageCursor{K: kindItems, T: t.name, P: pos[limit-1].pk}.encode()
	}
	return page, nil
}

// Item reads one row by id (see itemID). An id that names no table of the Connection,
// or no row, is KindNotFound.
func (c *client) Item(ctx context.Context, id string) (connectors.Item, error) {
	name, pk, ok := decodeItemID(id)
	if !ok {
		return connectors.Item{}, notFound("SELECT", "not an item id of this connector")
	}
	op := "SELECT " + name
	if c.set.table(name) == nil {
		return connectors.Item{}, notFound("SELECT", "the id names a table the Connection does not list")
	}
	t, err := c.table(ctx, name, false)
	if err != nil {
		return connectors.Item{}, err
	}
	if len(pk) != len(t.pk) {
		return connectors.Item{}, notFound(op, "no such row")
	}
	conds := make([]string, len(t.pk))
	for i, k := range t.pk {
		conds[i] = col(k) + " = " + params(i+1, 1)
	}
	sql := "SELECT t.* FROM " + t.ident + " t WHERE " + strings.Join(conds, " AND ") + " LIMIT 1"
	items, _, _, err := c.readRows(ctx, op, t, 0, sql, anys(pk)...)
	if err != nil {
		if strings.HasPrefix(sqlState(err), "22") {
			// A key value the column's type cannot hold: no row has it.
			return connectors.Item{}, notFound(op, "no such row")
		}
		return connectors.Item{}, err
	}
	if len(items) == 0 {
		return connectors.Item{}, notFound(op, "no such row")
	}
	return items[0], nil
}

// Comments: rows have none.
func (c *client) Comments(context.Context, string, string, int) (connectors.Page[connectors.Comment], error) {
	return connectors.Page[connectors.Comment]{}, unsupported("comments", "rows have no comments")
}

// Create: the operator only reads databases (its sessions are read only).
func (c *client) Create(context.Context, connectors.NewItem) (connectors.Item, error) {
	return connectors.Item{}, unsupported("INSERT", "the postgresql connector reads only; it does not create rows")
}

// Search matches q.Text (websearch_to_tsquery syntax, 'simple' configuration: no
// stemming, any language) against the textColumns of the tables in scope (q.Containers
// narrows; tables without textColumns are not searched), best ts_rank first, at most
// 1,000 results deep. The text is only ever a bind parameter.
func (c *client) Search(ctx context.Context, q connectors.SearchQuery) (connectors.Page[connectors.Item], error) {
	op := "search"
	if strings.TrimSpace(q.Filter) != "" {
		return connectors.Page[connectors.Item]{}, invalid(op, "spec.scope.filter is not supported by postgresql")
	}
	if q.Kind != "" && q.Kind != connectors.KindRow {
		return connectors.Page[connectors.Item]{}, nil
	}
	limit := limitOf(q.Limit, defaultSearchLimit, maxSearchLimit)
	hash := searchHash(q)
	offset := 0
	if q.Cursor != "" {
		var pc pageCursor
		if !connectors.DecodeCursor(q.Cursor, cursorPrefix, maxCursorLen, &pc) || pc.K != kindSearch || pc.H != hash || pc.O <= 0 || pc.O >= maxSearchResults {
			return connectors.Page[connectors.Item]{}, invalid(op, "invalid cursor")
		}
		offset = pc.O
	}
	if strings.TrimSpace(q.Text) == "" {
		return connectors.Page[connectors.Item]{}, nil
	}
	want := min(offset+limit, maxSearchResults) + 1
	type hit struct {
		rank  float32
		table int
		n     int
		item  connectors.Item
	}
	var hits []hit
	for ti, ts := range c.set.tables {
		if len(ts.spec.TextColumns) == 0 || (len(q.Containers) > 0 && !slices.Contains(q.Containers, ts.name)) {
			continue
		}
		t, err := c.table(ctx, ts.name, false)
		if err != nil {
			return connectors.Page[connectors.Item]{}, err
		}
		parts := make([]string, len(t.text))
		for i, tc := range t.text {
			parts[i] = "coalesce(" + col(tc) + "::text, '')"
		}
		doc := "to_tsvector('simple', left(" + strings.Join(parts, " || ' ' || ") + ", " + params(2, 1) + "))"
		sql := "SELECT t.*, ts_rank(v.d, q.q) FROM " + t.ident + " t" +
			" CROSS JOIN websearch_to_tsquery('simple', $1) AS q(q)" +
			" CROSS JOIN LATERAL " + doc + " AS v(d)" +
			" WHERE v.d @@ q.q ORDER BY ts_rank(v.d, q.q) DESC, " + t.pkList() + " LIMIT $3"
		items, _, extras, err := c.readRows(ctx, "search "+t.name, t, 1, sql, q.Text, searchTextChars, want)
		if err != nil {
			return connectors.Page[connectors.Item]{}, err
		}
		for i, it := range items {
			r, _ := extras[i][0].(float32)
			hits = append(hits, hit{rank: r, table: ti, n: i, item: it})
		}
	}
	slices.SortFunc(hits, func(a, b hit) int {
		if c := cmp.Compare(b.rank, a.rank); c != 0 {
			return c
		}
		if c := cmp.Compare(a.table, b.table); c != 0 {
			return c
		}
		return cmp.Compare(a.n, b.n)
	})
	page := connectors.Page[connectors.Item]{}
	end := min(offset+limit, len(hits), maxSearchResults)
	for i := offset; i < end; i++ {
		page.Items = append(page.Items, hits[i].item)
	}
	if len(hits) > end && end < maxSearchResults {
		page.NextCursor = pageCursor{K: kindSearch, O: end, H: hash}.encode()
	}
	return page, nil
}

// searchHash ties a search cursor to its query.
func searchHash(q connectors.SearchQuery) string {
	h := sha256.New()
	h.Write([]byte(q.Text))
	for _, c := range q.Containers {
		h.Write([]byte{0})
		h.Write([]byte(c))
	}
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:12])
}

func whereClause(conds []string) string {
	if len(conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(conds, " AND ")
}

func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
