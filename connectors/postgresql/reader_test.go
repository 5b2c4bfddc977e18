package postgresql

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors"
)

// seedOrders fills schema.orders with ids 1..n, updated_at one second apart from
// 2024-01-01 UTC.
func seedOrders(t testing.TB, schema string, n int) {
	exec(t, "INSERT INTO "+pgx.Identifier{schema, "orders"}.Sanitize()+
		" SELECT i, timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second', 'order ' || i, 'body of ' || i FROM generate_series(1, $1) i", n)
}

func TestContainersAreTheTables(t *testing.T) {
	tables := []v1alpha1.PostgreSQLTable{{Name: "b.two", CursorColumn: "u"}, {Name: `"a.x".One Two`, CursorColumn: "u"}}
	c := newClient(t, config(t, tables))
	p, err := c.Containers(testContext(t), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []connectors.Container{{ID: "b.two", Key: "b.two", Name: "b.two"}, {ID: `"a.x".One Two`, Key: `"a.x".One Two`, Name: `"a.x".One Two`}}
	if fmt.Sprint(p.Items) != fmt.Sprint(want) || p.NextCursor != "" {
		t.Fatalf("Containers = %+v", p)
	}
	_, err = c.Containers(testContext(t), "x", 0)
	wantKind(t, err, connectors.KindInvalid)
}

func TestItemsKeysetExact(t *testing.T) {
	s := schemaFor(t)
	orders := ordersTable(t, s)
	seedOrders(t, s, 2500)
	c := newClient(t, config(t, []v1alpha1.PostgreSQLTable{orders}))
	ctx := testContext(t)
	walk := func(q connectors.ItemQuery) []connectors.Item {
		var all []connectors.Item
		for {
			p, err := c.Items(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Items) > 100 {
				t.Fatalf("a page of %d items", len(p.Items))
			}
			all = append(all, p.Items...)
			if p.NextCursor == "" {
				return all
			}
			q.Cursor = p.NextCursor
		}
	}
	all := walk(connectors.ItemQuery{Container: orders.Name, Limit: 1000})
	if len(all) != 2500 {
		t.Fatalf("%d items, want 2500", len(all))
	}
	for i, it := range all {
		if want := strconv.Itoa(i + 1); pkOf(t, it)[0] != want || it.Key != orders.Name+":"+want {
			t.Fatalf("item %d is %s (%s)", i, it.Key, it.ID)
		}
	}
	first, err := c.Items(ctx, connectors.ItemQuery{Container: orders.Name})
	if err != nil || len(first.Items) != defaultItemsLimit {
		t.Fatalf("default page: %d items, %v", len(first.Items), err)
	}
	since := walk(connectors.ItemQuery{Container: orders.Name, UpdatedSince: time.Date(2024, 1, 1, 0, 40, 0, 0, time.UTC), Limit: 77})
	if len(since) != 2500-2400+1 {
		t.Fatalf("updatedSince kept %d items, want 101", len(since))
	}
	_, err = c.Items(ctx, connectors.ItemQuery{Container: orders.Name, Cursor: "pg1.garbage"})
	wantKind(t, err, connectors.KindInvalid)
	_, err = c.Items(ctx, connectors.ItemQuery{Container: "public.unlisted"})
	wantKind(t, err, connectors.KindNotFound)
}

func TestItemRoundTripCompositeKey(t *testing.T) {
	s := schemaFor(t)
	q := pgx.Identifier{s, "lines"}.Sanitize()
	exec(t, "CREATE TABLE "+q+` (region text, n int, u uuid, d date, ts timestamptz, updated_at timestamptz NOT NULL DEFAULT now(), note text,
		PRIMARY KEY (region, n, u, d, ts))`)
	exec(t, "INSERT INTO "+q+` (region, n, u, d, ts, note) VALUES
		('a,b', 1, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2024-02-29', '2024-01-01 10:00:00.123456+02', 'first'),
		('x"y''z', -7, '00000000-0000-0000-0000-000000000000', '1999-12-31', '1970-01-01 00:00:00+00', 'second'),
		('日本 ', 2147483647, 'ffffffff-ffff-ffff-ffff-ffffffffffff', '0001-01-01', '2262-04-11 23:47:16.854775+00', NULL)`)
	lines := v1alpha1.PostgreSQLTable{Name: s + ".lines", CursorColumn: "updated_at", TitleColumn: "note"}
	c := newClient(t, config(t, []v1alpha1.PostgreSQLTable{lines}))
	ctx := testContext(t)
	p, err := c.Items(ctx, connectors.ItemQuery{Container: lines.Name, Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	p2, err := c.Items(ctx, connectors.ItemQuery{Container: lines.Name, Limit: 2, Cursor: p.NextCursor})
	if err != nil {
		t.Fatal(err)
	}
	items := append(p.Items, p2.Items...)
	if len(items) != 3 || p2.NextCursor != "" {
		t.Fatalf("%d items over two pages", len(items))
	}
	seen := map[string]bool{}
	for _, it := range items {
		if seen[it.ID] {
			t.Fatalf("id %s twice", it.ID)
		}
		seen[it.ID] = true
		if strings.ContainsAny(it.ID, "/?#%+= ") {
			t.Fatalf("id %q is not URL-path safe", it.ID)
		}
		got, err := c.Item(ctx, it.ID)
		if err != nil {
			t.Fatalf("Item(%s): %v", it.Key, err)
		}
		if got.ID != it.ID || got.Key != it.Key || got.Title != it.Title || fmt.Sprint(got.Fields) != fmt.Sprint(it.Fields) {
			t.Fatalf("Item(id) = %+v, want %+v", got, it)
		}
		if it.Kind != connectors.KindRow || it.Container != lines.Name || it.URL != "" {
			t.Fatalf("item %+v", it)
		}
	}
	// Rows decoded from their text form (as a stream decodes them) have the same ids.
	sameItems(t, textDecoded(t, c, lines.Name), items)
	// LiveIDs pages through the same key by key set.
	ids, err := c.LiveIDs(ctx, connectors.Container{Key: lines.Name}, "")
	if err != nil || len(ids.Items) != 3 {
		t.Fatalf("LiveIDs: %v, %v", ids.Items, err)
	}
	for _, id := range ids.Items {
		if !seen[id] {
			t.Fatalf("LiveIDs has %s, which Items did not", id)
		}
	}
	// The first row (by key: "a,b" sorts first in the C collation) has this key.
	if want := lines.Name + ":a,b,1,a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11,2024-02-29T00:00:00Z,2024-01-01T08:00:00.123456Z"; items[0].Key != want {
		t.Fatalf("key = %q, want %q", items[0].Key, want)
	}
	if items[0].Title != "first" {
		t.Fatalf("title = %q", items[0].Title)
	}
	for _, it := range items {
		if it.Fields["note"] == nil && it.Title != it.Key {
			t.Fatalf("a NULL title column gives title %q, want the key", it.Title)
		}
	}
}

func TestItemNotFound(t *testing.T) {
	s := schemaFor(t)
	orders := ordersTable(t, s)
	seedOrders(t, s, 3)
	c := newClient(t, config(t, []v1alpha1.PostgreSQLTable{orders}))
	ctx := testContext(t)
	raw := func(parts ...string) string {
		b, _ := json.Marshal(parts)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	for name, id := range map[string]string{
		"garbage":          "not an id!",
		"not json":         base64.RawURLEncoding.EncodeToString([]byte("{")),
		"table only":       raw(orders.Name),
		"unlisted table":   raw(s+".other", "1"),
		"missing row":      raw(orders.Name, "4"),
		"too many values":  raw(orders.Name, "1", "2"),
		"not of the type":  raw(orders.Name, "one"),
		"out of range":     raw(orders.Name, "99999999999999999999999"),
		"sql in the value": raw(orders.Name, "1; DROP TABLE x"),
	} {
		if _, err := c.Item(ctx, id); connectors.KindOf(err) != connectors.KindNotFound {
			t.Errorf("%s: Item = %v, want NotFound", name, err)
		}
	}
	if it, err := c.Item(ctx, raw(orders.Name, "2")); err != nil || it.Title != "order 2" {
		t.Fatalf("Item: %+v, %v", it, err)
	}
}

func TestFieldsTypesAndBounds(t *testing.T) {
	s := schemaFor(t)
	exec(t, "CREATE TYPE "+pgx.Identifier{s, "mood"}.Sanitize()+" AS ENUM ('happy', 'sad')")
	q := pgx.Identifier{s, "typed"}.Sanitize()
	exec(t, "CREATE TABLE "+q+` (id int PRIMARY KEY, updated_at timestamptz NOT NULL,
		i2 smallint, i8 bigint, num numeric, f4 real, f8 double precision, nan double precision, b boolean,
		t text, vc varchar(10), ch char(3), ba bytea, j json, jb jsonb, ia int[], ta text[], tz timestamptz, ts timestamp,
		d date, u uuid, ip inet, iv interval, m `+pgx.Identifier{s, "mood"}.Sanitize()+`, nothing text, big text)`)
	exec(t, "INSERT INTO "+q+` VALUES (1, '2024-03-01 12:00:00+00',
		-32768, 9223372036854775807, 123456789012345678901234567890.000000001, 1.5, 0.1, 'NaN', true,
		'héllo', 'short', 'ab', '\x00ff10', '{"n": 12345678901234567890, "s": [1, "x"]}', '{"b": 1, "a": [true, null]}',
		'{1,2,3}', '{"a",NULL,"c d"}', '2024-01-01 10:00:00.5+02', '2024-01-01 10:00:00', '2024-02-29',
		'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '10.1.2.3', '1 day 02:00:00', 'sad', NULL, NULL)`)
	typed := v1alpha1.PostgreSQLTable{Name: s + ".typed", CursorColumn: "updated_at", TitleColumn: "t", TextColumns: []string{"t", "vc", "nothing", "big"}}
	c := newClient(t, config(t, []v1alpha1.PostgreSQLTable{typed}))
	ctx := testContext(t)
	p, err := c.Items(ctx, connectors.ItemQuery{Container: typed.Name})
	if err != nil {
		t.Fatal(err)
	}
	it := p.Items[0]
	b, err := json.Marshal(it.Fields)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"id": "1", "updated_at": `"2024-03-01T12:00:00Z"`, "i2": "-32768", "i8": "9223372036854775807",
		"num": "123456789012345678901234567890.000000001", "f4": "1.5", "f8": "0.1", "nan": `"NaN"`, "b": "true",
		"t": `"héllo"`, "vc": `"short"`, "ch": `"ab "`, "ba": `"AP8Q"`,
		"j": `"{\"n\": 12345678901234567890, \"s\": [1, \"x\"]}"`, "jb": `"{\"a\": [true, null], \"b\": 1}"`,
		"ia": "[1,2,3]", "ta": `["a",null,"c d"]`, "tz": `"2024-01-01T08:00:00.5Z"`, "ts": `"2024-01-01T10:00:00Z"`,
		"d": `"2024-02-29T00:00:00Z"`, "u": `"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"`, "ip": `"10.1.2.3/32"`,
		"m": `"sad"`, "nothing": "null", "big": "null",
	}
	for k, w := range want {
		v, ok := got[k]
		if !ok {
			t.Errorf("field %s missing", k)
			continue
		}
		vb, _ := json.Marshal(v)
		if string(vb) != w {
			t.Errorf("field %s = %s, want %s", k, vb, w)
		}
	}
	if _, ok := got["iv"].(string); !ok {
		t.Errorf("interval field = %#v, want its text", got["iv"])
	}
	if it.Title != "héllo" || it.Text != "héllo\n\nshort" || !it.UpdatedAt.Equal(time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)) || it.UpdatedAt.Location() != time.UTC {
		t.Fatalf("title %q, text %q, updatedAt %v", it.Title, it.Text, it.UpdatedAt)
	}

	// Decoded from their text form (as a stream decodes them), the same item.
	sameItems(t, textDecoded(t, c, typed.Name), p.Items)

	// A large value is dropped from the fields (the largest first) and the text is bounded.
	exec(t, "UPDATE "+q+" SET big = repeat('é', 50000), t = repeat('x', 10000)")
	it, err = c.Item(ctx, it.ID)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = json.Marshal(it.Fields)
	if len(b) > connectors.MaxFieldsBytes {
		t.Fatalf("fields are %d bytes", len(b))
	}
	if _, ok := it.Fields["big"]; ok {
		t.Fatal("the largest value was kept")
	}
	if it.Fields["t"] == nil || it.Fields["id"] == nil || it.Fields["i8"] == nil {
		t.Fatalf("smaller values were dropped: %v", it.Fields)
	}
	if len(it.Text) > maxTextBytes || !strings.HasPrefix(it.Text, strings.Repeat("x", 10000)+"\n\nshort\n\né") || !utf8Valid(it.Text) {
		t.Fatalf("text is %d bytes", len(it.Text))
	}
	if len(it.Title) > maxTitleBytes {
		t.Fatalf("title is %d bytes", len(it.Title))
	}
}

// textDecoded reads the rows of t in primary key order as a change stream gets them:
// in text form (the simple protocol's results, like pgoutput's tuples), decoded by a
// type map on which registerTypes ran, mapped by table.item.
func textDecoded(t *testing.T, c *client, name string) []connectors.Item {
	t.Helper()
	ctx := testContext(t)
	tb, err := c.table(ctx, name, false)
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.pool(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := p.Query(ctx, "SELECT t.* FROM "+tb.ident+" t ORDER BY "+tb.pkList(), pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var cols []string
	for _, fd := range rows.FieldDescriptions() {
		if fd.Format != pgx.TextFormatCode {
			t.Fatalf("column %s is not in text form", fd.Name)
		}
		cols = append(cols, fd.Name)
	}
	var out []connectors.Item
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		it, err := tb.item(cols, vals)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, it)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// sameItems fails unless the rows read two ways map to the same items.
func sameItems(t *testing.T, got, want []connectors.Item) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d items, want %d", len(got), len(want))
	}
	for i := range got {
		gb, _ := json.Marshal(got[i])
		wb, _ := json.Marshal(want[i])
		if string(gb) != string(wb) {
			t.Fatalf("from text:\n%s\nfrom binary:\n%s", gb, wb)
		}
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

func TestLiveIDsExactWhileRowsAreDeleted(t *testing.T) {
	s := schemaFor(t)
	orders := ordersTable(t, s)
	seedOrders(t, s, 3500)
	c := newClient(t, config(t, []v1alpha1.PostgreSQLTable{orders}))
	ctx := testContext(t)
	ct := connectors.Container{Key: orders.Name}
	first, err := c.LiveIDs(ctx, ct, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Items) != liveIDsPage || first.NextCursor == "" {
		t.Fatalf("first page: %d ids", len(first.Items))
	}
	// Delete rows of the page already read and of pages to come.
	exec(t, "DELETE FROM "+pgx.Identifier{s, "orders"}.Sanitize()+" WHERE id % 10 = 0")
	ids := append([]string(nil), first.Items...)
	for cur := first.NextCursor; cur != ""; {
		p, err := c.LiveIDs(ctx, ct, cur)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, p.Items...)
		cur = p.NextCursor
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Fatalf("id %s twice", id)
		}
		seen[id] = true
		n, _ := strconv.Atoi(pkOf(t, connectors.Item{ID: id})[0])
		if n > liveIDsPage && n%10 == 0 {
			t.Fatalf("row %d was deleted before its page and is listed", n)
		}
	}
	tb := &table{name: orders.Name}
	for n := 1; n <= 3500; n++ {
		if n%10 != 0 || n <= liveIDsPage {
			if !seen[tb.itemID([]string{strconv.Itoa(n)})] {
				t.Fatalf("row %d missing", n)
			}
		}
	}
	if want := 3500 - 250; len(ids) != want {
		t.Fatalf("%d ids, want %d", len(ids), want)
	}
}

func TestSearch(t *testing.T) {
	s := schemaFor(t)
	orders := ordersTable(t, s)
	q := pgx.Identifier{s, "orders"}.Sanitize()
	exec(t, "INSERT INTO "+q+` (id, title, body) VALUES
		(1, 'apple', 'apple apple apple pie'), (2, 'banana', 'one apple'), (3, 'cherry', NULL), (4, NULL, 'apple and banana')`)
	notes := v1alpha1.PostgreSQLTable{Name: s + ".notes", CursorColumn: "updated_at", TextColumns: []string{"body"}}
	exec(t, "CREATE TABLE "+pgx.Identifier{s, "notes"}.Sanitize()+" (id int PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT now(), body text)")
	exec(t, "INSERT INTO "+pgx.Identifier{s, "notes"}.Sanitize()+" SELECT i, now(), 'apple note ' || i FROM generate_series(1, 30) i")
	plain := v1alpha1.PostgreSQLTable{Name: s + ".plain", CursorColumn: "updated_at"}
	exec(t, "CREATE TABLE "+pgx.Identifier{s, "plain"}.Sanitize()+" (id int PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT now(), body text)")
	exec(t, "INSERT INTO "+pgx.Identifier{s, "plain"}.Sanitize()+" VALUES (1, now(), 'apple')")
	c := newClient(t, config(t, []v1alpha1.PostgreSQLTable{orders, notes, plain}))
	ctx := testContext(t)

	p, err := c.Search(ctx, connectors.SearchQuery{Text: "apple", Containers: []string{orders.Name}})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, it := range p.Items {
		keys = append(keys, it.Key)
	}
	if len(keys) != 3 || keys[0] != orders.Name+":1" {
		t.Fatalf("search apple in orders = %v, want :1 first of 3", keys)
	}
	// websearch syntax: phrases and exclusions.
	p, err = c.Search(ctx, connectors.SearchQuery{Text: `apple -banana`, Containers: []string{orders.Name}})
	if err != nil || len(p.Items) != 1 || p.Items[0].Key != orders.Name+":1" {
		t.Fatalf("apple -banana: %v, %v", p.Items, err)
	}
	// Every table with textColumns, paged without repeats; the table without is skipped.
	seen := map[string]bool{}
	cursor := ""
	for {
		p, err := c.Search(ctx, connectors.SearchQuery{Text: "apple", Limit: 7, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range p.Items {
			if seen[it.ID] || it.Container == plain.Name {
				t.Fatalf("search page has %s (again, or from a table without textColumns)", it.Key)
			}
			seen[it.ID] = true
		}
		if cursor = p.NextCursor; cursor == "" {
			break
		}
	}
	if len(seen) != 33 {
		t.Fatalf("%d results, want 33", len(seen))
	}
	if _, err := c.Search(ctx, connectors.SearchQuery{Text: "pear", Cursor: encodeSearchCursorFor("apple")}); connectors.KindOf(err) != connectors.KindInvalid {
		t.Fatalf("a cursor of another query: %v", err)
	}
	if p, err := c.Search(ctx, connectors.SearchQuery{Text: "apple", Kind: connectors.KindIssue}); err != nil || len(p.Items) != 0 {
		t.Fatalf("kind issue: %v, %v", p.Items, err)
	}

	// SQL and tsquery metacharacters are only data.
	for _, text := range []string{`'); DROP TABLE orders; --`, `%`, `\`, `"`, `'`, `&|!():*<->`, `apple' OR '1'='1`, "\x01", ``, ` `, `$1`, `"unterminated`} {
		if _, err := c.Search(ctx, connectors.SearchQuery{Text: text}); err != nil {
			t.Fatalf("search %q: %v", text, err)
		}
	}
	if n := countRows(t, s, "orders"); n != 4 {
		t.Fatalf("orders has %d rows after the searches", n)
	}
}

func encodeSearchCursorFor(text string) string {
	return pageCursor{K: kindSearch, O: 7, H: searchHash(connectors.SearchQuery{Text: text})}.encode()
}

func countRows(t testing.TB, schema, table string) int {
	t.Helper()
	conn, err := srv.SuperConn(testContext(t), testDB)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(testContext(t)) }()
	var n int
	if err := conn.QueryRow(testContext(t), "SELECT count(*) FROM "+pgx.Identifier{schema, table}.Sanitize()).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestCreateAndCommentsUnsupported(t *testing.T) {
	c := newClient(t, config(t, nil))
	_, err := c.Create(testContext(t), connectors.NewItem{Container: "public.orders", Title: "x"})
	wantKind(t, err, connectors.KindUnsupported)
	_, err = c.Comments(testContext(t), "x", "", 0)
	wantKind(t, err, connectors.KindUnsupported)
}
