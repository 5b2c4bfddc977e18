package pgrepl

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/unified-connectors/connector-operator/internal/pgtest"
)

// shared is the server most tests share (each with its own tables, publication and slot),
// started by the first test that needs it (the unit and fuzz tests do not); the lost-slot test
// starts its own, with a small max_slot_wal_keep_size.
var shared struct {
	once sync.Once
	s    *pgtest.Server
	err  error
}

const db = "app"

// srv is the shared server.
func srv(t *testing.T) *pgtest.Server {
	t.Helper()
	shared.once.Do(func() { shared.s, shared.err = pgtest.New(pgtest.Options{Databases: []string{db}}) })
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.s
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.s != nil {
		if err := shared.s.Close(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			if code == 0 {
				code = 1
			}
		}
	}
	os.Exit(code)
}

// testCtx bounds a test; every wait inside it polls until this deadline.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// exec runs statements as the superuser (test setup, and the tenant's own writes).
func exec(t *testing.T, s *pgtest.Server, sql string, args ...any) {
	t.Helper()
	if err := s.Exec(context.Background(), db, sql, args...); err != nil {
		t.Fatal(err)
	}
}

// userCfg is the pgconn config a caller builds: TCP, verify-full TLS, sessions read-only by
// default, as user/password when given (else the superuser).
func userCfg(t *testing.T, s *pgtest.Server, user, password string) *pgconn.Config {
	t.Helper()
	cfg, err := pgconn.ParseConfig(s.SuperDSN(db))
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		cfg.User, cfg.Password = user, password
	}
	cfg.RuntimeParams["default_transaction_read_only"] = "on"
	return cfg
}

// regular opens a regular (pgx) connection as the caller would.
func regular(t *testing.T, s *pgtest.Server, user, password string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(s.SuperDSN(db))
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		cfg.User, cfg.Password = user, password
	}
	cfg.RuntimeParams["default_transaction_read_only"] = "on"
	c, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

func replication(t *testing.T, s *pgtest.Server, user, password string) *pgconn.PgConn {
	t.Helper()
	rc, err := ConnectReplication(testCtx(t), userCfg(t, s, user, password))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rc.Close(context.Background()) })
	return rc
}

// cdc is one Connection's worth of replication on a server: publication, slot and their cleanup.
type cdc struct {
	t          *testing.T
	s          *pgtest.Server
	conn       *pgx.Conn
	pub, slot  string
	consistent LSN
	snapshot   string
}

// newCDC publishes tables and creates the slot (its exported snapshot in c.snapshot, valid
// until rc runs another command).
func newCDC(t *testing.T, s *pgtest.Server, name string, tables ...TableName) (*cdc, *pgconn.PgConn) {
	t.Helper()
	ctx := testCtx(t)
	c := &cdc{t: t, s: s, conn: regular(t, s, "", ""), pub: name + "_pub", slot: name + "_slot"}
	if err := EnsurePublication(ctx, c.conn, c.pub, tables); err != nil {
		t.Fatal(err)
	}
	rc := replication(t, s, "", "")
	var err error
	c.consistent, c.snapshot, err = CreateSlot(ctx, rc, c.slot)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := DropSlot(ctx, c.conn, c.slot); err != nil {
			t.Error(err)
		}
		if err := DropPublication(ctx, c.conn, c.pub); err != nil {
			t.Error(err)
		}
	})
	return c, rc
}

func (c *cdc) start(rc *pgconn.PgConn, o StreamOptions) *Stream {
	c.t.Helper()
	o.Slot, o.Publication = c.slot, c.pub
	st, err := StartStream(testCtx(c.t), rc, o)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { _ = st.Close(context.Background()) })
	return st
}

// restart opens a new replication connection and streams from the slot's position.
func (c *cdc) restart(o StreamOptions) *Stream {
	c.t.Helper()
	return c.start(replication(c.t, c.s, "", ""), o)
}

// nextData returns the next batch that is not Idle.
func nextData(t *testing.T, st *Stream) Batch {
	t.Helper()
	ctx := testCtx(t)
	for {
		b, err := st.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !b.Idle {
			return b
		}
	}
}

// commits reads batches until n transactions committed, returning each transaction's changes.
func commits(t *testing.T, st *Stream, n int) [][]Change {
	t.Helper()
	var out [][]Change
	var cur []Change
	for len(out) < n {
		b := nextData(t, st)
		cur = append(cur, b.Changes...)
		if b.Commit {
			out = append(out, cur)
			cur = nil
		}
	}
	return out
}

// untilIdle reads batches until an Idle one and returns the changes met on the way.
func untilIdle(t *testing.T, st *Stream) []Change {
	t.Helper()
	ctx := testCtx(t)
	var out []Change
	for {
		b, err := st.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if b.Idle {
			return out
		}
		out = append(out, b.Changes...)
	}
}

// poll calls f until it returns true, failing the test at the deadline.
func poll(t *testing.T, what string, f func() (bool, error)) {
	t.Helper()
	ctx := testCtx(t)
	for {
		ok, err := f()
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("gave up waiting for %s", what)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func ids(changes []Change, col int) []string {
	var out []string
	for _, c := range changes {
		switch {
		case c.Op == Delete || c.Op == Truncate:
			out = append(out, c.Op.String())
		case c.ValuesText[col] == nil:
			out = append(out, "NULL")
		default:
			out = append(out, *c.ValuesText[col])
		}
	}
	return out
}

func publicationTables(t *testing.T, conn *pgx.Conn, pub string) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(),
		`SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1`, pub)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestPublication(t *testing.T) {
	ctx := testCtx(t)
	exec(t, srv(t), `CREATE SCHEMA "Odd Schema"; CREATE TABLE pub_a (id int PRIMARY KEY);
		CREATE TABLE "Odd Schema"."Tab""le" (id int PRIMARY KEY); CREATE TABLE pub_nokey (v int);
		CREATE TABLE pub_full (v int); ALTER TABLE pub_full REPLICA IDENTITY FULL`)
	conn := regular(t, srv(t), "", "") // read-only by default: the DDL needs its READ WRITE transaction
	a := TableName{"public", "pub_a"}
	odd := TableName{"Odd Schema", `Tab"le`}

	if err := EnsurePublication(ctx, conn, "pub_t", []TableName{a}); err != nil {
		t.Fatal(err)
	}
	if got := publicationTables(t, conn, "pub_t"); !slices.Equal(got, []string{"public.pub_a"}) {
		t.Fatalf("tables %v", got)
	}
	var ins, upd, del, trunc, viaRoot bool
	if err := conn.QueryRow(ctx, `SELECT pubinsert, pubupdate, pubdelete, pubtruncate, pubviaroot FROM pg_publication WHERE pubname = 'pub_t'`).
		Scan(&ins, &upd, &del, &trunc, &viaRoot); err != nil {
		t.Fatal(err)
	}
	if !ins || !upd || !del || !trunc || !viaRoot {
		t.Fatalf("publishes insert %v update %v delete %v truncate %v via root %v", ins, upd, del, trunc, viaRoot)
	}
	// Again, the same: nothing to do. Then another set: ALTER ... SET TABLE.
	if err := EnsurePublication(ctx, conn, "pub_t", []TableName{a}); err != nil {
		t.Fatal(err)
	}
	if err := EnsurePublication(ctx, conn, "pub_t", []TableName{odd, {"public", "pub_full"}}); err != nil {
		t.Fatal(err)
	}
	if got := publicationTables(t, conn, "pub_t"); !slices.Equal(got, []string{`Odd Schema.Tab"le`, "public.pub_full"}) {
		t.Fatalf("tables after SET TABLE %v", got)
	}
	// Someone narrowed what it publishes: restored.
	exec(t, srv(t), `ALTER PUBLICATION pub_t SET (publish = 'insert')`)
	if err := EnsurePublication(ctx, conn, "pub_t", []TableName{odd, {"public", "pub_full"}}); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, `SELECT pubupdate AND pubdelete AND pubtruncate FROM pg_publication WHERE pubname = 'pub_t'`).Scan(&upd); err != nil || !upd {
		t.Fatalf("publish not restored: %v %v", upd, err)
	}

	// A table without replica identity is refused, and the publication keeps its tables: once
	// published, the tenant's UPDATEs and DELETEs on it would fail.
	err := EnsurePublication(ctx, conn, "pub_t", []TableName{a, {"public", "pub_nokey"}})
	if err == nil || !strings.Contains(err.Error(), "no replica identity") {
		t.Fatalf("table without key: %v", err)
	}
	if got := publicationTables(t, conn, "pub_t"); len(got) != 2 {
		t.Fatalf("tables changed by a refused call: %v", got)
	}
	exec(t, srv(t), `UPDATE pub_nokey SET v = 1`) // still allowed: it was never published
	for _, bad := range [][]TableName{nil, {{"public", "nope"}}, {{"", "pub_a"}}, {a, a}} {
		if err := EnsurePublication(ctx, conn, "pub_t", bad); err == nil {
			t.Errorf("EnsurePublication(%v) = nil", bad)
		}
	}
	for _, name := range []string{"", "Pub", "pub'x", "pub x", strings.Repeat("p", 64)} {
		if err := EnsurePublication(ctx, conn, name, []TableName{a}); err == nil {
			t.Errorf("publication name %q accepted", name)
		}
	}
	exec(t, srv(t), `CREATE PUBLICATION pub_all FOR ALL TABLES`)
	if err := EnsurePublication(ctx, conn, "pub_all", []TableName{a}); err == nil || !strings.Contains(err.Error(), "FOR ALL TABLES") {
		t.Errorf("FOR ALL TABLES publication: %v", err)
	}
	exec(t, srv(t), `DROP PUBLICATION pub_all`)

	if err := DropPublication(ctx, conn, "pub_t"); err != nil {
		t.Fatal(err)
	}
	if got := publicationTables(t, conn, "pub_t"); len(got) != 0 {
		t.Fatalf("tables after drop: %v", got)
	}
	if err := DropPublication(ctx, conn, "pub_t"); err != nil {
		t.Fatalf("dropping a missing publication: %v", err)
	}
}

func TestSnapshotIsConsistentWithSlot(t *testing.T) {
	ctx := testCtx(t)
	exec(t, srv(t), `CREATE TABLE snap (id int PRIMARY KEY, v text); INSERT INTO snap VALUES (1, 'a'), (2, 'b'), (3, 'c')`)
	c, rc := newCDC(t, srv(t), "snap", TableName{"public", "snap"})
	if c.consistent == 0 || !snapshotRe.MatchString(c.snapshot) {
		t.Fatalf("consistent point %s, snapshot %q", c.consistent, c.snapshot)
	}
	// Written after the slot: in the stream, not in the snapshot.
	exec(t, srv(t), `INSERT INTO snap VALUES (4, 'd'); UPDATE snap SET v = 'B' WHERE id = 2`)

	read := func(snapshot string) []string {
		t.Helper()
		var got []string
		err := InSnapshot(ctx, c.conn, snapshot, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, `SELECT id || v FROM snap ORDER BY id`)
			if err != nil {
				return err
			}
			got, err = pgx.CollectRows(rows, pgx.RowTo[string])
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := read(c.snapshot); !slices.Equal(got, []string{"1a", "2b", "3c"}) {
		t.Fatalf("exported snapshot sees %v", got)
	}
	if got := read(""); !slices.Equal(got, []string{"1a", "2B", "3c", "4d"}) {
		t.Fatalf("fresh snapshot sees %v", got)
	}
	// Writes are refused inside it (READ ONLY), and names that are not snapshot names never
	// reach the server.
	err := InSnapshot(ctx, c.conn, "", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO snap VALUES (9, 'x')`)
		return err
	})
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "25006" {
		t.Fatalf("write in snapshot transaction: %v", err)
	}
	for _, bad := range []string{"00000003-00000002-1'; DROP TABLE snap; --", "abc", "3-2"} {
		if err := InSnapshot(ctx, c.conn, bad, func(pgx.Tx) error { return nil }); err == nil {
			t.Errorf("snapshot %q accepted", bad)
		}
	}

	st := c.start(rc, StreamOptions{})
	got := commits(t, st, 1)[0]
	if len(got) != 2 || got[0].Op != Insert || got[1].Op != Update || !slices.Equal(ids(got, 1), []string{"d", "B"}) {
		t.Fatalf("stream after the snapshot: %+v", got)
	}
	if rest := untilIdle(t, st); len(rest) != 0 {
		t.Fatalf("more changes than were made after the slot: %+v", rest)
	}
}

// password is a fresh random password for a test role; it is never logged.
func password(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
