package postgresql

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/unified-connectors/connector-operator/connectors"
)

// catalog is what the server's catalog says about one table.
type catalog struct {
	oid     uint32
	relkind string
	columns []column // in attnum order
	pk      []string // the primary key's columns in key order; empty when none
	// canUseSchema, canSelect: current_user's USAGE on the schema and SELECT on the
	// table (or on every column).
	canUseSchema, canSelect bool
	user                    string
}

// column is one column of a table.
type column struct {
	name     string
	typeOID  uint32
	typeName string // format_type: for messages only, never in SQL
	notNull  bool
}

func (cat *catalog) column(name string) *column {
	for i := range cat.columns {
		if cat.columns[i].name == name {
			return &cat.columns[i]
		}
	}
	return nil
}

// table is a spec table resolved against the catalog: everything a statement and the
// item mapping need.
type table struct {
	name    string // as written: the container key
	ident   string // "schema"."table", quoted
	pk      []string
	cursor  string // the cursorColumn, "" when none
	nullCur bool   // the cursorColumn may be NULL (read as the Unix epoch)
	title   string
	text    []string
	columns []column
}

// Relation kinds a row source may be: table, partitioned table, view, materialized
// view, foreign table.
const readableKinds = "rpvmf"

// Catalog statements; $1 schema, $2 table name, or $1 the table's oid.
const (
	sqlRelation = `SELECT c.oid, c.relkind::text,
		pg_catalog.has_schema_privilege(n.oid, 'USAGE'),
		pg_catalog.has_table_privilege(c.oid, 'SELECT'),
		current_user::text
	FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
	WHERE n.nspname = $1 AND c.relname = $2`
	sqlColumns = `SELECT a.attname::text, a.atttypid, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull,
		pg_catalog.has_column_privilege(a.attrelid, a.attnum, 'SELECT')
	FROM pg_catalog.pg_attribute a
	WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
	ORDER BY a.attnum`
	sqlPrimaryKey = `SELECT a.attname::text
	FROM pg_catalog.pg_index i
	CROSS JOIN LATERAL unnest(i.indkey::pg_catalog.int2[]) WITH ORDINALITY AS k(attnum, ord)
	JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
	WHERE i.indrelid = $1 AND i.indisprimary
	ORDER BY k.ord`
)

// loadCatalog reads the catalog facts of t.
func loadCatalog(ctx context.Context, p *pgxpool.Pool, t *tableSpec) (*catalog, bool, error) {
	cat := &catalog{}
	err := p.QueryRow(ctx, sqlRelation, t.schema, t.rel).Scan(&cat.oid, &cat.relkind, &cat.canUseSchema, &cat.canSelect, &cat.user)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	b := &pgx.Batch{}
	b.Queue(sqlColumns, cat.oid)
	b.Queue(sqlPrimaryKey, cat.oid)
	res := p.SendBatch(ctx, b)
	defer func() { _ = res.Close() }()
	rows, err := res.Query()
	if err != nil {
		return nil, false, err
	}
	allColumns := true
	for rows.Next() {
		var col column
		var canSelect bool
		if err := rows.Scan(&col.name, &col.typeOID, &col.typeName, &col.notNull, &canSelect); err != nil {
			rows.Close()
			return nil, false, err
		}
		allColumns = allColumns && canSelect
		cat.columns = append(cat.columns, col)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, false, err
	}
	// SELECT * needs every column; column privileges on all of them are as good as the
	// table's.
	cat.canSelect = cat.canSelect || (allColumns && len(cat.columns) > 0)
	rows, err = res.Query()
	if err != nil {
		return nil, false, err
	}
	cat.pk, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, false, err
	}
	return cat, true, res.Close()
}

// table resolves the Connection's table name against the catalog (kept per pool for
// catalogTTL; fresh reads it again). Errors: KindNotFound when the Connection lists no
// such table or the database has none; KindAuth when the role may not read it;
// KindInvalid when the table has no primary key (and the spec gives none), or a column
// the spec names is missing or has the wrong type.
func (c *client) table(ctx context.Context, name string, fresh bool) (*table, error) {
	op := "SELECT " + name
	ts := c.set.table(name)
	if ts == nil {
		return nil, notFound(op, "the Connection lists no table "+quoteName(name)+" in spec.postgresql.tables")
	}
	e, err := c.poolEntry(ctx)
	if err != nil {
		return nil, c.mapError(op, name, err)
	}
	cat := e.cached(name)
	if cat == nil || fresh {
		var ok bool
		cat, ok, err = loadCatalog(ctx, e.pool, ts)
		if err != nil {
			return nil, c.mapError("read the catalog of "+name, name, err)
		}
		if !ok {
			e.forget(name)
			return nil, notFound(op, fmt.Sprintf("table %s does not exist in database %s (or role %q cannot see it)", name, c.set.database, c.user))
		}
		e.remember(name, cat)
	}
	return resolve(ts, cat)
}

// resolve checks t against its catalog facts.
func resolve(ts *tableSpec, cat *catalog) (*table, error) {
	op := "SELECT " + ts.name
	switch {
	case !strings.Contains(readableKinds, cat.relkind):
		return nil, invalid(op, fmt.Sprintf("%s is not a table or view (relkind %s)", ts.name, cat.relkind))
	case !cat.canUseSchema:
		return nil, newError(connectors.KindAuth, op, fmt.Sprintf("role %q lacks USAGE on schema %s, so it may not read table %s: GRANT USAGE ON SCHEMA %s TO %s",
			cat.user, pgx.Identifier{ts.schema}.Sanitize(), ts.name, pgx.Identifier{ts.schema}.Sanitize(), pgx.Identifier{cat.user}.Sanitize()), nil)
	case !cat.canSelect:
		return nil, newError(connectors.KindAuth, op, fmt.Sprintf("role %q lacks SELECT on table %s: GRANT SELECT ON %s TO %s",
			cat.user, ts.name, ts.ident(), pgx.Identifier{cat.user}.Sanitize()), nil)
	}
	t := &table{name: ts.name, ident: ts.ident(), columns: cat.columns}
	missing := func(what, col string) error {
		return invalid(op, fmt.Sprintf("table %s has no column %s (%s)", ts.name, quoteName(col), what))
	}
	t.pk = ts.spec.PrimaryKey
	if len(t.pk) == 0 {
		t.pk = cat.pk
	}
	if len(t.pk) == 0 {
		return nil, invalid(op, fmt.Sprintf("table %s has no primary key: set tables[].primaryKey to columns that identify a row", ts.name))
	}
	for _, k := range t.pk {
		if cat.column(k) == nil {
			return nil, missing("primaryKey", k)
		}
	}
	if cc := ts.spec.CursorColumn; cc != "" {
		col := cat.column(cc)
		if col == nil {
			return nil, missing("cursorColumn", cc)
		}
		if col.typeOID != pgtype.TimestamptzOID && col.typeOID != pgtype.TimestampOID {
			return nil, invalid(op, fmt.Sprintf("table %s: cursorColumn %s is %s; it must be timestamptz or timestamp", ts.name, quoteName(cc), col.typeName))
		}
		t.cursor, t.nullCur = cc, !col.notNull
	}
	if tc := ts.spec.TitleColumn; tc != "" {
		if cat.column(tc) == nil {
			return nil, missing("titleColumn", tc)
		}
		t.title = tc
	}
	for _, tc := range ts.spec.TextColumns {
		if cat.column(tc) == nil {
			return nil, missing("textColumns", tc)
		}
	}
	t.text = ts.spec.TextColumns
	return t, nil
}

// quoteName shows a raw name in a message.
func quoteName(s string) string { return fmt.Sprintf("%q", s) }

// col is column name qualified by the statement's table alias t: never ambiguous with
// an output column.
func col(name string) string { return "t." + pgx.Identifier{name}.Sanitize() }

// cursorExpr orders by the cursorColumn, a NULL as the Unix epoch. A NOT NULL column is
// used as it is, so that an index on it serves the ordering.
func (t *table) cursorExpr() string {
	if t.nullCur {
		return "coalesce(" + col(t.cursor) + ", 'epoch')"
	}
	return col(t.cursor)
}

// pkList is the primary key columns, qualified: t."a", t."b".
func (t *table) pkList() string {
	parts := make([]string, len(t.pk))
	for i, k := range t.pk {
		parts[i] = col(k)
	}
	return strings.Join(parts, ", ")
}

// params returns "$from, …, $from+n-1".
func params(from, n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf("$%d", from+i)
	}
	return strings.Join(parts, ", ")
}
