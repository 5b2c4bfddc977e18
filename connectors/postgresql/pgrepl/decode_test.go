package pgrepl

import (
	"context"
	"math/big"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

func TestDecodeRowChanges(t *testing.T) {
	exec(t, srv(t), `CREATE TYPE mood AS ENUM ('calm', 'busy');
		CREATE TABLE "Typed Rows" (
			tenant text, id int, n numeric, ts timestamptz, doc jsonb, flag bool, raw bytea,
			tags text[], note text, big bigint, m mood, PRIMARY KEY (tenant, id))`)
	c, rc := newCDC(t, srv(t), "dec", TableName{"public", "Typed Rows"})
	st := c.start(rc, StreamOptions{})

	exec(t, srv(t), `INSERT INTO "Typed Rows" VALUES
		('acme', 1, 12345.678901234567890, '2024-05-06 07:08:09.123456+02', '{"a": [1, "x"], "b": null}', true,
		 '\x00ff10', '{"x", "y z", NULL}', 'it''s', 9007199254740993, 'busy'),
		('acme', 2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`)
	exec(t, srv(t), `UPDATE "Typed Rows" SET note = 'changed' WHERE tenant = 'acme' AND id = 1`)
	exec(t, srv(t), `UPDATE "Typed Rows" SET id = 3 WHERE tenant = 'acme' AND id = 2`)
	exec(t, srv(t), `DELETE FROM "Typed Rows" WHERE tenant = 'acme' AND id = 1`)
	exec(t, srv(t), `TRUNCATE "Typed Rows"`)

	tx := commits(t, st, 5)
	table := TableName{"public", "Typed Rows"}
	cols := []string{"tenant", "id", "n", "ts", "doc", "flag", "raw", "tags", "note", "big", "m"}
	key := []string{"tenant", "id"}

	// Inserts: every column, decoded by type; NULLs as nil.
	ins := tx[0]
	if len(ins) != 2 || ins[0].Op != Insert || ins[0].Table != table || !slices.Equal(ins[0].Columns, cols) || !slices.Equal(ins[0].KeyColumns, key) {
		t.Fatalf("insert: %+v", ins)
	}
	v := ins[0].Values
	wantNum, _ := new(big.Int).SetString("12345678901234567890", 10)
	if n, ok := v[2].(pgtype.Numeric); !ok || n.Int.Cmp(wantNum) != 0 || n.Exp != -15 {
		t.Errorf("numeric: %#v", v[2])
	}
	if ts, ok := v[3].(time.Time); !ok || !ts.Equal(time.Date(2024, 5, 6, 5, 8, 9, 123456000, time.UTC)) {
		t.Errorf("timestamptz: %#v", v[3])
	}
	if doc := v[4]; !reflect.DeepEqual(doc, map[string]any{"a": []any{float64(1), "x"}, "b": nil}) {
		t.Errorf("jsonb: %#v", doc)
	}
	if v[5] != true {
		t.Errorf("bool: %#v", v[5])
	}
	if raw, ok := v[6].([]byte); !ok || string(raw) != "\x00\xff\x10" {
		t.Errorf("bytea: %#v", v[6])
	}
	if tags := v[7]; !reflect.DeepEqual(tags, []any{"x", "y z", nil}) {
		t.Errorf("text[]: %#v", tags)
	}
	if v[0] != "acme" || v[1] != int32(1) || v[8] != "it's" || v[9] != int64(9007199254740993) {
		t.Errorf("text/int: %#v %#v %#v %#v", v[0], v[1], v[8], v[9])
	}
	if v[10] != "busy" { // an enum: a type pgx does not know, so its text
		t.Errorf("enum: %#v", v[10])
	}
	if got := *ins[0].ValuesText[2]; got != "12345.678901234567890" {
		t.Errorf("numeric text %q", got)
	}
	if ins[0].Key != nil || slices.Contains(ins[0].Unchanged, true) {
		t.Errorf("insert has an old key or unchanged columns: %+v", ins[0])
	}
	for i, val := range ins[1].Values[2:] {
		if val != nil || ins[1].ValuesText[i+2] != nil {
			t.Errorf("NULL column %s: %#v", cols[i+2], val)
		}
	}

	// An update that keeps the key sends no old row; one that changes it sends the old key.
	up := tx[1][0]
	if up.Op != Update || up.Key != nil || up.Values[8] != "changed" || up.Values[1] != int32(1) {
		t.Errorf("update: %+v", up)
	}
	moved := tx[2][0]
	if moved.Op != Update || !reflect.DeepEqual(moved.Key, []any{"acme", int32(2)}) || moved.Values[1] != int32(3) ||
		*moved.KeyText[1] != "2" {
		t.Errorf("update of the key: %+v", moved)
	}

	// A delete: only the old key (REPLICA IDENTITY DEFAULT sends the key columns).
	del := tx[3][0]
	if del.Op != Delete || del.Table != table || del.Values != nil || del.Columns != nil ||
		!slices.Equal(del.KeyColumns, key) || !reflect.DeepEqual(del.Key, []any{"acme", int32(1)}) || *del.KeyText[0] != "acme" {
		t.Errorf("delete: %+v", del)
	}
	if tr := tx[4]; len(tr) != 1 || tr[0].Op != Truncate || tr[0].Table != table || tr[0].Values != nil {
		t.Errorf("truncate: %+v", tr)
	}
}

func TestReplicaIdentityFull(t *testing.T) {
	exec(t, srv(t), `CREATE TABLE full_rows (id int, v text); ALTER TABLE full_rows REPLICA IDENTITY FULL;
		INSERT INTO full_rows VALUES (1, 'a')`)
	c, rc := newCDC(t, srv(t), "full", TableName{"public", "full_rows"})
	st := c.start(rc, StreamOptions{})
	exec(t, srv(t), `UPDATE full_rows SET v = 'b'`)
	exec(t, srv(t), `DELETE FROM full_rows`)
	tx := commits(t, st, 2)
	up, del := tx[0][0], tx[1][0]
	// FULL: every column is the key, and the whole old row comes along.
	if !slices.Equal(up.KeyColumns, []string{"id", "v"}) || !reflect.DeepEqual(up.Key, []any{int32(1), "a"}) || up.Values[1] != "b" {
		t.Errorf("update under FULL: %+v", up)
	}
	if !reflect.DeepEqual(del.Key, []any{int32(1), "b"}) {
		t.Errorf("delete under FULL: %+v", del)
	}
}

func TestToastedColumnUnchanged(t *testing.T) {
	exec(t, srv(t), `CREATE TABLE docs (id int PRIMARY KEY, title text, body text);
		ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL`)
	c, rc := newCDC(t, srv(t), "toast", TableName{"public", "docs"})
	st := c.start(rc, StreamOptions{})
	body := strings.Repeat("0123456789", 1000) // 10 kB, stored out of line uncompressed
	exec(t, srv(t), `INSERT INTO docs VALUES (1, 'first', $1)`, body)
	exec(t, srv(t), `UPDATE docs SET title = 'second' WHERE id = 1`)
	exec(t, srv(t), `UPDATE docs SET body = $1 WHERE id = 1`, body+"!")
	tx := commits(t, st, 3)
	if ins := tx[0][0]; ins.Values[2] != body || ins.Unchanged[2] {
		t.Fatalf("insert carries the body: %d bytes, unchanged %v", len(ins.Values[2].(string)), ins.Unchanged[2])
	}
	up := tx[1][0]
	if !up.Unchanged[2] || up.Values[2] != nil || up.ValuesText[2] != nil || up.Unchanged[1] || up.Values[1] != "second" {
		t.Fatalf("update without the body: unchanged %v values %v", up.Unchanged, up.Values[:2])
	}
	if up := tx[2][0]; up.Unchanged[2] || up.Values[2] != body+"!" {
		t.Fatalf("update of the body: unchanged %v", up.Unchanged)
	}
}

func TestRelationChangesMidStream(t *testing.T) {
	exec(t, srv(t), `CREATE TABLE grows (id int PRIMARY KEY)`)
	c, rc := newCDC(t, srv(t), "grows", TableName{"public", "grows"})
	st := c.start(rc, StreamOptions{})
	exec(t, srv(t), `INSERT INTO grows VALUES (1)`)
	exec(t, srv(t), `ALTER TABLE grows ADD COLUMN label text DEFAULT 'x'; INSERT INTO grows VALUES (2, 'two')`)
	tx := commits(t, st, 2)
	if a, b := tx[0][0], tx[1][0]; len(a.Columns) != 1 || !slices.Equal(b.Columns, []string{"id", "label"}) || b.Values[1] != "two" {
		t.Fatalf("before and after ADD COLUMN: %+v / %+v", a, b)
	}
}

func TestConcurrentTransactionsArriveInCommitOrder(t *testing.T) {
	ctx := testCtx(t)
	exec(t, srv(t), `CREATE TABLE events (id int PRIMARY KEY, who text)`)
	c, rc := newCDC(t, srv(t), "order", TableName{"public", "events"})
	st := c.start(rc, StreamOptions{})

	first, err := srv(t).SuperConn(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = first.Close(context.Background()) }()
	second, err := srv(t).SuperConn(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = second.Close(context.Background()) }()
	// first begins and writes first; second begins later and commits first.
	mustExec := func(c *pgx.Conn, sql string) {
		t.Helper()
		if _, err := c.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	mustExec(first, `BEGIN`)
	mustExec(first, `INSERT INTO events VALUES (1, 'first'), (2, 'first')`)
	mustExec(second, `BEGIN`)
	mustExec(second, `INSERT INTO events VALUES (3, 'second')`)
	mustExec(first, `INSERT INTO events VALUES (4, 'first')`)
	mustExec(second, `COMMIT`)
	mustExec(first, `COMMIT`)

	var batches []Batch
	for len(batches) < 2 {
		if b := nextData(t, st); b.Commit {
			batches = append(batches, b)
		}
	}
	if got := ids(batches[0].Changes, 1); !slices.Equal(got, []string{"second"}) {
		t.Fatalf("first transaction delivered: %v, want the one that committed first", got)
	}
	if got := ids(batches[1].Changes, 0); !slices.Equal(got, []string{"1", "2", "4"}) {
		t.Fatalf("second transaction delivered: %v", got)
	}
	if batches[0].CommitLSN >= batches[1].CommitLSN || batches[0].EndLSN > batches[1].CommitLSN {
		t.Fatalf("commit positions out of order: %s/%s then %s/%s", batches[0].CommitLSN, batches[0].EndLSN, batches[1].CommitLSN, batches[1].EndLSN)
	}
	if batches[0].CommitTime.IsZero() || batches[1].CommitTime.Before(batches[0].CommitTime) {
		t.Fatalf("commit times %v, %v", batches[0].CommitTime, batches[1].CommitTime)
	}
}
