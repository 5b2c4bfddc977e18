package postgresql

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors"
)

// checkOrdered fails unless items are each row once, in non-decreasing (updatedAt, pk)
// order, where pk is an integer key.
func checkOrdered(t testing.TB, items []connectors.Item, want int) {
	t.Helper()
	if len(items) != want {
		t.Fatalf("%d items, want %d", len(items), want)
	}
	seen := make(map[string]bool, len(items))
	var lastT time.Time
	lastK := int64(-1 << 63)
	for i, it := range items {
		if seen[it.ID] {
			t.Fatalf("item %s delivered twice", it.Key)
		}
		seen[it.ID] = true
		k, err := strconv.ParseInt(pkOf(t, it)[0], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && (it.UpdatedAt.Before(lastT) || (it.UpdatedAt.Equal(lastT) && k <= lastK)) {
			t.Fatalf("item %d (%s at %v) comes after (%d at %v)", i, it.Key, it.UpdatedAt, lastK, lastT)
		}
		lastT, lastK = it.UpdatedAt, k
	}
}

func TestChangesThreeTablesComplete(t *testing.T) {
	s := schemaFor(t)
	const rows = 20000
	var tables []v1alpha1.PostgreSQLTable
	for i, name := range []string{"alpha", "beta", "gamma"} {
		q := pgx.Identifier{s, name}.Sanitize()
		exec(t, "CREATE TABLE "+q+" (id bigint PRIMARY KEY, updated_at timestamptz NOT NULL, v text)")
		exec(t, "CREATE INDEX ON "+q+" (updated_at, id)")
		// Keys and timestamps in different orders, 4 rows to a timestamp, microseconds set.
		exec(t, "INSERT INTO "+q+" SELECT i, timestamptz '2024-01-01 00:00:00+00' + ((i * 7919 + $1) % 5000) * interval '1.000001 second', 'v' || i FROM generate_series(1, $2) i", i, rows)
		tables = append(tables, v1alpha1.PostgreSQLTable{Name: s + "." + name, CursorColumn: "updated_at"})
	}
	c := newClient(t, config(t, tables))
	for _, tb := range tables {
		checkOrdered(t, walkChanges(t, c, tb.Name, time.Time{}, 1000), rows)
	}
	// Since keeps rows at or after it, to the microsecond.
	since := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Add(4000 * 1000001 * time.Microsecond)
	got := walkChanges(t, c, tables[0].Name, since, 333)
	checkOrdered(t, got, 1000*rows/5000)
	if got[0].UpdatedAt.Before(since) || !got[0].UpdatedAt.Equal(since) {
		t.Fatalf("first item at %v, want exactly %v", got[0].UpdatedAt, since)
	}
}

func TestChangesTiesAcrossPages(t *testing.T) {
	s := schemaFor(t)
	orders := ordersTable(t, s)
	q := pgx.Identifier{s, "orders"}.Sanitize()
	exec(t, "INSERT INTO "+q+" (id, updated_at) SELECT i, timestamptz '2024-06-01 12:00:00.5+00' FROM generate_series(1, 500) i")
	exec(t, "INSERT INTO "+q+" (id, updated_at) VALUES (1000, '2024-06-01 11:00:00+00'), (0, '2024-06-01 13:00:00+00')")
	c := newClient(t, config(t, []v1alpha1.PostgreSQLTable{orders}))
	for _, limit := range []int{1, 37, 100, 499, 500, 1000} {
		items := walkChanges(t, c, orders.Name, time.Time{}, limit)
		checkOrdered(t, items, 502)
		if pkOf(t, items[0])[0] != "1000" || pkOf(t, items[501])[0] != "0" {
			t.Fatalf("limit %d: first %s, last %s", limit, items[0].Key, items[501].Key)
		}
	}
}

func TestChangesNullableTimestampCursor(t *testing.T) {
	s := schemaFor(t)
	q := pgx.Identifier{s, "events"}.Sanitize()
	exec(t, "CREATE TABLE "+q+" (id int PRIMARY KEY, changed timestamp)")
	exec(t, "INSERT INTO "+q+" VALUES (1, '2024-05-01 10:00:00'), (2, NULL), (3, '2024-05-01 09:00:00.25'), (4, NULL), (5, 'infinity')")
	events := v1alpha1.PostgreSQLTable{Name: s + ".events", CursorColumn: "changed"}
	c := newClient(t, config(t, []v1alpha1.PostgreSQLTable{events}))
	items := walkChanges(t, c, events.Name, time.Time{}, 1)
	var keys []string
	for _, it := range items {
		keys = append(keys, pkOf(t, it)[0])
	}
	if strings.Join(keys, " ") != "2 4 3 1 5" {
		t.Fatalf("order %v, want NULLs (as the epoch) first, infinity last", keys)
	}
	if !items[0].UpdatedAt.Equal(epoch) || !items[2].UpdatedAt.Equal(time.Date(2024, 5, 1, 9, 0, 0, 250000000, time.UTC)) {
		t.Fatalf("updatedAt %v, %v: a timestamp reads as UTC, NULL as the epoch", items[0].UpdatedAt, items[2].UpdatedAt)
	}
	since := walkChanges(t, c, events.Name, time.Date(2024, 5, 1, 9, 30, 0, 0, time.UTC), 10)
	if len(since) != 2 || pkOf(t, since[0])[0] != "1" {
		t.Fatalf("since 09:30: %d items", len(since))
	}
}

func TestChangesCursorChecks(t *testing.T) {
	s := schemaFor(t)
	orders := ordersTable(t, s)
	seedOrders(t, s, 10)
	other := ordersTableNamed(t, s, "other")
	c := newClient(t, config(t, []v1alpha1.PostgreSQLTable{orders, other}))
	ctx := testContext(t)
	p, err := c.Changes(ctx, connectors.ChangeQuery{Container: connectors.Container{Key: orders.Name}, Limit: 3})
	if err != nil || p.NextCursor == "" {
		t.Fatalf("Changes: %v", err)
	}
	for name, cur := range map[string]string{
		"garbage":             "pg1.%%%",
		"other prefix":        "s1.e30",
		"items cursor":        pageCursor{K: kindItems, T: orders.Name, P: []string{"3"}}.encode(),
		"unreadable time":     pageCursor{K: kindChanges, T: orders.Name, C: "yesterday-ish", P: []string{"3"}}.encode(),
		"unreadable key":      pageCursor{K: kindChanges, T: orders.Name, C: "2024-01-01T00:00:00Z", P: []string{"three"}}.encode(),
		"SQL in the position": pageCursor{K: kindChanges, T: orders.Name, C: "2024-01-01T00:00:00Z", P: []string{"3) OR (1=1"}}.encode(),
	} {
		_, err := c.Changes(ctx, connectors.ChangeQuery{Container: connectors.Container{Key: orders.Name}, Cursor: cur})
		if connectors.KindOf(err) != connectors.KindInvalid {
			t.Errorf("%s: %v, want Invalid", name, err)
		}
	}
	_, err = c.Changes(ctx, connectors.ChangeQuery{Container: connectors.Container{Key: other.Name}, Cursor: p.NextCursor})
	wantKind(t, err, connectors.KindInvalid)
	_, err = c.Changes(ctx, connectors.ChangeQuery{Container: connectors.Container{Key: orders.Name}, Filter: "1=1"})
	wantKind(t, err, connectors.KindInvalid)
	if n := countRows(t, s, "orders"); n != 10 {
		t.Fatalf("orders has %d rows", n)
	}
}

func ordersTableNamed(t testing.TB, schema, name string) v1alpha1.PostgreSQLTable {
	exec(t, "CREATE TABLE "+pgx.Identifier{schema, name}.Sanitize()+" (id bigint PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT now())")
	return v1alpha1.PostgreSQLTable{Name: schema + "." + name, CursorColumn: "updated_at"}
}

func TestChangesUnsupportedInLogicalReplication(t *testing.T) {
	s := schemaFor(t)
	orders := ordersTable(t, s)
	cfg := config(t, []v1alpha1.PostgreSQLTable{orders})
	cfg.Connection.Spec.PostgreSQL.Mode = v1alpha1.PostgreSQLModeLogicalReplication
	c := newClient(t, cfg)
	if c.mode != logicalReplication {
		t.Fatalf("mode = %q", c.mode)
	}
	_, err := c.Changes(testContext(t), connectors.ChangeQuery{Container: connectors.Container{Key: orders.Name}})
	wantKind(t, err, connectors.KindUnsupported)
	// Reading still works.
	if _, err := c.LiveIDs(testContext(t), connectors.Container{Key: orders.Name}, ""); err != nil {
		t.Fatal(err)
	}
}

// TestHostileNames: a schema, a table and columns whose names hold quotes, spaces and
// SQL are read like any other, and nothing but data reaches the server.
func TestHostileNames(t *testing.T) {
	schema := `we"ird s`
	table := `Weird "Name"; DROP TABLE x`
	sq := pgx.Identifier{schema}.Sanitize()
	exec(t, "DROP SCHEMA IF EXISTS "+sq+" CASCADE")
	exec(t, "CREATE SCHEMA "+sq)
	t.Cleanup(func() { exec(t, "DROP SCHEMA "+sq+" CASCADE") })
	exec(t, "GRANT USAGE ON SCHEMA "+sq+" TO "+readerRole)
	q := pgx.Identifier{schema, table}.Sanitize()
	exec(t, "CREATE TABLE "+pgx.Identifier{schema, "x"}.Sanitize()+" (id int)")
	exec(t, "CREATE TABLE "+q+` ("I d" int, "K'ey" text, "Up""dated At" timestamptz NOT NULL, "Ti tle" text, """Body""; --" text, PRIMARY KEY ("I d", "K'ey"))`)
	exec(t, "GRANT SELECT ON ALL TABLES IN SCHEMA "+sq+" TO "+readerRole)
	exec(t, "INSERT INTO "+q+` SELECT i, 'k''' || i, timestamptz '2024-01-01 00:00:00+00' + (i % 3) * interval '1 minute', 'title ' || i, 'body; DROP TABLE x; -- ' || i FROM generate_series(1, 250) i`)
	spec := v1alpha1.PostgreSQLTable{
		Name:         `"we""ird s".` + table,
		CursorColumn: `Up"dated At`, TitleColumn: "Ti tle", TextColumns: []string{`"Body"; --`},
	}
	c := newClient(t, config(t, []v1alpha1.PostgreSQLTable{spec}))
	ctx := testContext(t)
	if _, err := c.Identity(ctx); err != nil {
		t.Fatal(err)
	}
	items := walkChanges(t, c, spec.Name, time.Time{}, 40)
	if len(items) != 250 {
		t.Fatalf("%d items", len(items))
	}
	got, err := c.Item(ctx, items[17].ID)
	if err != nil || got.Key != items[17].Key || !strings.HasPrefix(got.Title, "title ") || !strings.HasPrefix(got.Text, "body; DROP") {
		t.Fatalf("Item: %+v, %v", got, err)
	}
	ids, err := c.LiveIDs(ctx, connectors.Container{Key: spec.Name}, "")
	if err != nil || len(ids.Items) != 250 {
		t.Fatalf("LiveIDs: %d, %v", len(ids.Items), err)
	}
	n := 0
	for cur := ""; ; {
		p, err := c.Items(ctx, connectors.ItemQuery{Container: spec.Name, Cursor: cur, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		n += len(p.Items)
		if cur = p.NextCursor; cur == "" {
			break
		}
	}
	if n != 250 {
		t.Fatalf("Items: %d", n)
	}
	p, err := c.Search(ctx, connectors.SearchQuery{Text: `DROP "x"; --`})
	if err != nil || len(p.Items) == 0 {
		t.Fatalf("Search: %d, %v", len(p.Items), err)
	}
	if countRows(t, schema, "x") != 0 || countRows(t, schema, table) != 250 {
		t.Fatal("tables changed")
	}
}

// BenchmarkChanges reads 20,000 rows through Changes, 1,000 a page (rows/s).
func BenchmarkChanges(b *testing.B) {
	s := schemaFor(b)
	q := pgx.Identifier{s, "orders"}.Sanitize()
	exec(b, "CREATE TABLE "+q+" (id bigint PRIMARY KEY, updated_at timestamptz NOT NULL, title text, body text, n numeric, flag bool)")
	exec(b, "CREATE INDEX ON "+q+" (updated_at, id)")
	const rows = 20000
	exec(b, "INSERT INTO "+q+" SELECT i, now() - i * interval '1 second', 'order ' || i, repeat('text ', 40), i * 1.5, i % 2 = 0 FROM generate_series(1, $1) i", rows)
	spec := v1alpha1.PostgreSQLTable{Name: s + ".orders", CursorColumn: "updated_at", TitleColumn: "title", TextColumns: []string{"body"}}
	c := newClient(b, config(b, []v1alpha1.PostgreSQLTable{spec}))
	walkChanges(b, c, spec.Name, time.Time{}, 1000) // the pool and the catalog
	b.ResetTimer()
	for b.Loop() {
		if n := len(walkChanges(b, c, spec.Name, time.Time{}, 1000)); n != rows {
			b.Fatalf("%d rows", n)
		}
	}
	b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
}
