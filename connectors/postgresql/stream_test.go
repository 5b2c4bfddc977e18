package postgresql

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"k8s.io/apimachinery/pkg/types"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/connectors/postgresql/pgrepl"
	"github.com/unified-connectors/connector-operator/internal/pgtest"
)

// streamWait bounds every wait of the stream tests (they poll; nothing is timed).
const streamWait = 90 * time.Second

// replEnv is one logicalReplication Connection on a server: a role with REPLICATION that
// owns the tables (what the docs ask of a DBA), and a client built for it.
type replEnv struct {
	t        testing.TB
	srv      *pgtest.Server
	schema   string
	role, pw string
	uid      types.UID
	tables   []v1alpha1.PostgreSQLTable
	batch    int32
	c        *client
}

// newReplEnv creates schema tables (each "name (columns)") owned by a fresh replication
// role, and a client for them; the slot and publication are released at the end.
func newReplEnv(t testing.TB, s *pgtest.Server, batch int32, tables ...string) *replEnv {
	t.Helper()
	e := &replEnv{t: t, srv: s, batch: batch, uid: types.UID(fmt.Sprintf("%08x-1111-4222-8333-%012x", rand.Uint32(), rand.Uint64()&0xffffffffffff))}
	e.schema = "r_" + randomHex(4)
	e.role, e.pw = "repl_"+randomHex(4), randomHex(16)
	ctx := testContext(t)
	must(t, s.CreateRole(ctx, e.role, e.pw, "REPLICATION"))
	q := pgx.Identifier{e.schema}.Sanitize()
	e.exec("CREATE SCHEMA " + q + " AUTHORIZATION " + pgx.Identifier{e.role}.Sanitize())
	e.exec("GRANT CREATE ON DATABASE " + testDB + " TO " + pgx.Identifier{e.role}.Sanitize())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		r := pgx.Identifier{e.role}.Sanitize()
		_ = s.Exec(ctx, testDB, "DROP SCHEMA "+q+" CASCADE")
		_ = s.Exec(ctx, testDB, "REASSIGN OWNED BY "+r+" TO postgres")
		_ = s.Exec(ctx, testDB, "DROP OWNED BY "+r)
		_ = s.Exec(ctx, "postgres", "DROP ROLE IF EXISTS "+r)
	})
	for _, def := range tables {
		name, _, _ := strings.Cut(def, " ")
		if strings.HasPrefix(def, `"`) {
			name = def[1 : 1+strings.Index(def[1:], `"`)]
		}
		e.exec("CREATE TABLE " + q + "." + def)
		e.exec("ALTER TABLE " + e.ident(name) + " OWNER TO " + pgx.Identifier{e.role}.Sanitize())
		e.tables = append(e.tables, v1alpha1.PostgreSQLTable{Name: e.schema + "." + name})
	}
	e.c = e.client(v1alpha1.PostgreSQLModeLogicalReplication)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := e.c.Release(ctx); err != nil {
			t.Errorf("release at test end: %v", err)
		}
	})
	return e
}

// client builds a client of the Connection in mode.
func (e *replEnv) client(mode string) *client {
	e.t.Helper()
	cfg := config(e.t, e.tables, func(cfg *connectors.Config) {
		cfg.BaseURL = e.srv.URL(testDB)
		cfg.Credentials.Values = map[string]string{KeyUsername: e.role, KeyPassword: e.pw}
		cfg.ReadRef = func(context.Context, v1alpha1.KeyReference) ([]byte, error) { return e.srv.CAPEM, nil }
		cfg.Connection = &v1alpha1.Connection{Spec: v1alpha1.ConnectionSpec{
			PostgreSQL: &v1alpha1.PostgreSQLConnectionSpec{Mode: mode, Tables: e.tables},
			Sync:       &v1alpha1.SyncSpec{Sink: &v1alpha1.SinkSpec{BatchSize: e.batch}},
		}}
		cfg.Connection.Namespace, cfg.Connection.Name, cfg.Connection.UID = "test", "repl", e.uid
	})
	return newClient(e.t, cfg)
}

func (e *replEnv) ident(table string) string { return pgx.Identifier{e.schema, table}.Sanitize() }

// try is exec for deliver hooks, which run on Stream's goroutine and must not stop it.
func (e *replEnv) try(sql string, args ...any) error {
	return e.srv.Exec(context.Background(), testDB, sql, args...)
}

func (e *replEnv) exec(sql string, args ...any) {
	e.t.Helper()
	if err := e.srv.Exec(testContext(e.t), testDB, sql, args...); err != nil {
		e.t.Fatal(err)
	}
}

func (e *replEnv) slotName() string {
	name, err := replicationName(string(e.uid))
	must(e.t, err)
	return name
}

// slot reads the slot as the superuser.
func (e *replEnv) slot() pgrepl.SlotInfo {
	e.t.Helper()
	conn, err := e.srv.SuperConn(testContext(e.t), testDB)
	must(e.t, err)
	defer func() { _ = conn.Close(context.Background()) }()
	info, err := pgrepl.Slot(testContext(e.t), conn, e.slotName())
	must(e.t, err)
	return info
}

func (e *replEnv) queryInt(sql string, args ...any) int64 {
	e.t.Helper()
	conn, err := e.srv.SuperConn(testContext(e.t), testDB)
	must(e.t, err)
	defer func() { _ = conn.Close(context.Background()) }()
	var n int64
	must(e.t, conn.QueryRow(testContext(e.t), sql, args...).Scan(&n))
	return n
}

// id is the item id of the row of table with primary key pk.
func (e *replEnv) id(table string, pk ...string) string { return encodeItemID(e.schema+"."+table, pk) }

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// recorder is a deliver func that keeps what it accepted: every batch, the last item per
// id, the last non-empty position. hook runs before a batch is accepted (outside the
// lock): an error refuses the batch.
type recorder struct {
	hook func(n int, b connectors.StreamBatch) error

	mu       sync.Mutex
	calls    int
	batches  []connectors.StreamBatch
	last     map[string]connectors.Item
	position string
	items    int
	caughtUp int
}

func newRecorder() *recorder { return &recorder{last: map[string]connectors.Item{}} }

func (r *recorder) deliver(_ context.Context, b connectors.StreamBatch) error {
	r.mu.Lock()
	r.calls++
	n := r.calls
	r.mu.Unlock()
	if r.hook != nil {
		if err := r.hook(n, b); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batches = append(r.batches, b)
	for _, it := range b.Items {
		r.last[it.ID] = it
	}
	r.items += len(b.Items)
	if b.Position != "" {
		r.position = b.Position
	}
	if b.CaughtUp {
		r.caughtUp++
	}
	return nil
}

func (r *recorder) snapshot() (items int, caughtUp int, position string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.items, r.caughtUp, r.position
}

// delivered is every accepted item, in order.
func (r *recorder) delivered() []connectors.Item {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []connectors.Item
	for _, b := range r.batches {
		out = append(out, b.Items...)
	}
	return out
}

// state is the rows of table container as the accepted items leave them: id -> rendered
// fields (deletions and rows never seen absent).
func (r *recorder) state(container string, cols ...string) map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]string{}
	for id, it := range r.last {
		if it.Deleted || it.Container != container {
			continue
		}
		parts := make([]string, len(cols))
		for i, c := range cols {
			parts[i] = fmt.Sprint(it.Fields[c])
		}
		out[id] = strings.Join(parts, "|")
	}
	return out
}

// tableState reads table (id and cols) as the state of recorder renders it.
func (e *replEnv) tableState(table string, cols ...string) map[string]string {
	e.t.Helper()
	conn, err := e.srv.SuperConn(testContext(e.t), testDB)
	must(e.t, err)
	defer func() { _ = conn.Close(context.Background()) }()
	list := make([]string, len(cols))
	for i, c := range cols {
		list[i] = pgx.Identifier{c}.Sanitize()
	}
	rows, err := conn.Query(testContext(e.t), "SELECT id::text, "+strings.Join(list, ", ")+" FROM "+e.ident(table))
	must(e.t, err)
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		vals, err := rows.Values()
		must(e.t, err)
		parts := make([]string, len(cols))
		for i := range cols {
			parts[i] = fmt.Sprint(vals[i+1])
		}
		out[e.id(table, vals[0].(string))] = strings.Join(parts, "|")
	}
	must(e.t, rows.Err())
	return out
}

// diff counts the ids whose state differs, and describes the first few.
func diff(want, got map[string]string) (int, string) {
	var b strings.Builder
	n := 0
	note := func(id, w, g string) {
		n++
		if n <= 5 {
			_, pk, _ := decodeItemID(id)
			fmt.Fprintf(&b, " %v: want %q got %q;", pk, w, g)
		}
	}
	for id, w := range want {
		if g, ok := got[id]; !ok || g != w {
			note(id, w, g)
		}
	}
	for id, g := range got {
		if _, ok := want[id]; !ok {
			note(id, "<absent>", g)
		}
	}
	return n, b.String()
}

// streamRun is one Stream call running in the background.
type streamRun struct {
	cancel context.CancelFunc
	done   chan error
}

func startStream(t testing.TB, c *client, position string, rec *recorder) *streamRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &streamRun{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- c.Stream(ctx, position, rec.deliver) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-r.done:
			_ = err // the test reads errors it cares about itself
		case <-time.After(streamWait):
			t.Error("Stream did not return after its context ended")
		}
	})
	return r
}

// wait is what Stream returned.
func (r *streamRun) wait(t testing.TB) error {
	t.Helper()
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		return err
	case <-time.After(streamWait):
		t.Fatal("Stream did not return")
		return nil
	}
}

// stop cancels the run and waits for Stream, which must return the context's error.
func (r *streamRun) stop(t testing.TB) {
	t.Helper()
	r.cancel()
	if err := r.wait(t); !errors.Is(err, context.Canceled) {
		t.Fatalf("Stream after cancel: %v", err)
	}
}

// eventually polls cond until it holds or streamWait passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(streamWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// converge waits until the recorder's state of table equals the table's.
func (e *replEnv) converge(rec *recorder, table string, cols ...string) {
	e.t.Helper()
	var n int
	var desc string
	deadline := time.Now().Add(streamWait)
	for {
		if n, desc = diff(e.tableState(table, cols...), rec.state(e.schema+"."+table, cols...)); n == 0 {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("after %s, %d rows of %s differ from what was delivered:%s", streamWait, n, table, desc)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func decodePosition(t testing.TB, s string) streamPosition {
	t.Helper()
	var p streamPosition
	if err := json.Unmarshal([]byte(s), &p); err != nil {
		t.Fatalf("position %q: %v", s, err)
	}
	return p
}

func pkInt(t testing.TB, it connectors.Item) int {
	t.Helper()
	n, err := strconv.Atoi(pkOf(t, it)[0])
	if err != nil {
		t.Fatalf("item %s: %v", it.Key, err)
	}
	return n
}

// changer runs n random inserts, updates and deletes of rows of table (id bigint,
// val int, note text) from conns connections; ids above maxID are new. It returns
// the number of changes committed so far, live.
func (e *replEnv) changer(table string, maxID, conns, n int) (committed *atomic.Int64, wait func()) {
	committed = &atomic.Int64{}
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	next := &atomic.Int64{}
	next.Store(int64(maxID))
	for w := 0; w < conns; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			ctx := testContext(e.t)
			conn, err := e.srv.SuperConn(ctx, testDB)
			if err != nil {
				errs <- err
				return
			}
			defer func() { _ = conn.Close(context.Background()) }()
			rnd := rand.New(rand.NewPCG(uint64(w), 42))
			for i := 0; i < n/conns; i++ {
				var sql string
				var args []any
				switch k := rnd.IntN(10); {
				case k < 3:
					id := next.Add(1)
					sql, args = "INSERT INTO "+e.ident(table)+" (id, val, note) VALUES ($1, $2, $3)", []any{id, i, fmt.Sprintf("new %d", id)}
				case k < 8:
					sql, args = "UPDATE "+e.ident(table)+" SET val = val + 1, note = $2 WHERE id = $1", []any{1 + rnd.Int64N(next.Load()), fmt.Sprintf("w%d.%d", w, i)}
				default:
					sql, args = "DELETE FROM "+e.ident(table)+" WHERE id = $1", []any{1 + rnd.Int64N(next.Load())}
				}
				if _, err := conn.Exec(ctx, sql, args...); err != nil {
					errs <- err
					return
				}
				committed.Add(1)
			}
		}(w)
	}
	return committed, func() {
		wg.Wait()
		close(errs)
		for err := range errs {
			e.t.Fatal(err)
		}
	}
}

// TestStreamBackfillWithConcurrentChanges: 5,000 rows, and 1,000 inserts, updates and
// deletes from 4 connections that start once the snapshot is under way (its first
// batch is held until 100 of them committed). The last item of every id equals the
// table at the end.
func TestStreamBackfillWithConcurrentChanges(t *testing.T) {
	e := newReplEnv(t, srv, 100, "rows (id bigint PRIMARY KEY, val integer NOT NULL, note text)")
	e.exec(`INSERT INTO ` + e.ident("rows") + ` SELECT g, g, CASE WHEN g % 10 = 0 THEN NULL ELSE 'row ' || g END FROM generate_series(1, 5000) g`)
	rec := newRecorder()
	started, release := make(chan struct{}), make(chan struct{})
	var atSnapshotEnd atomic.Int64
	var committed *atomic.Int64
	rec.hook = func(n int, b connectors.StreamBatch) error {
		if n == 1 {
			close(started)
			<-release
		}
		if b.Position != "" && strings.Contains(b.Position, `"snapshotDone":true`) && atSnapshotEnd.Load() == 0 {
			atSnapshotEnd.Store(committed.Load() + 1)
		}
		return nil
	}
	run := startStream(t, e.c, "", rec)
	<-started
	var wait func()
	committed, wait = e.changer("rows", 5000, 4, 1000)
	eventually(t, "100 changes committed", func() bool { return committed.Load() >= 100 })
	close(release)
	wait()
	e.converge(rec, "rows", "val", "note")
	items, caughtUp, pos := rec.snapshot()
	if caughtUp == 0 {
		t.Error("the stream never reported CaughtUp")
	}
	if p := decodePosition(t, pos); !p.SnapshotDone || p.Slot != e.slotName() || p.LSN == "" {
		t.Errorf("last position %s", pos)
	}
	if atSnapshotEnd.Load() < 100 {
		t.Errorf("only %d changes committed before the snapshot ended", atSnapshotEnd.Load()-1)
	}
	t.Logf("5,000 rows + 1,000 changes (%d committed before the snapshot's last batch): %d items delivered", atSnapshotEnd.Load()-1, items)
	run.stop(t)
}

// TestStreamRestartAfterCrashes cancels the Stream mid-snapshot and mid-stream and
// restarts it from the last position the deliver func accepted: nothing is lost, and the
// repeats are bounded.
func TestStreamRestartAfterCrashes(t *testing.T) {
	e := newReplEnv(t, srv, 100, "rows (id bigint PRIMARY KEY, val integer NOT NULL, note text)")
	e.exec(`INSERT INTO ` + e.ident("rows") + ` SELECT g, g, 'row ' || g FROM generate_series(1, 3000) g`)
	tbl := e.ident("rows")
	rec := newRecorder()

	// Run 1: changes while the snapshot runs (after batch 3), a crash before batch 8.
	const duringSnapshot = 130
	var run1 *streamRun
	rec.hook = func(n int, b connectors.StreamBatch) error {
		switch n {
		case 3:
			for i := 1; i <= 50; i++ {
				if err := errors.Join(
					e.try("UPDATE "+tbl+" SET val = -val WHERE id = $1", i), // delivered already
					e.try("UPDATE "+tbl+" SET val = -val WHERE id = $1", 2000+i)); err != nil {
					return err
				}
			}
			for i := 1; i <= 10; i++ {
				if err := e.try("DELETE FROM "+tbl+" WHERE id = $1", 2900+i); err != nil {
					return err
				}
			}
			for i := 1; i <= 20; i++ {
				if err := e.try("INSERT INTO "+tbl+" VALUES ($1, 0, 'inserted during the snapshot')", 3000+i); err != nil {
					return err
				}
			}
		case 8:
			run1.cancel()
			return context.Canceled
		}
		return nil
	}
	run1 = startStream(t, e.c, "", rec)
	if err := run1.wait(t); !errors.Is(err, context.Canceled) {
		t.Fatalf("run 1: %v", err)
	}
	_, _, pos1 := rec.snapshot()
	if p := decodePosition(t, pos1); p.SnapshotDone || !slices.Equal(p.After, []string{"700"}) {
		t.Fatalf("position after 7 batches: %s", pos1)
	}
	accepted1 := len(rec.delivered())

	// Run 2: resumes the snapshot after row 700, streams the changes since the slot's
	// consistent point, then a crash mid-stream: after caught up, 300 single-row
	// transactions; the third batch of them is refused.
	var run2 *streamRun
	var streamed atomic.Int64
	wrote := false
	rec.hook = func(n int, b connectors.StreamBatch) error {
		if b.CaughtUp && len(b.Items) == 0 && !wrote {
			wrote = true
			for i := 1; i <= 300; i++ {
				if err := e.try("INSERT INTO "+tbl+" VALUES ($1, $2, 'streamed')", 3100+i, i); err != nil {
					return err
				}
			}
			return nil
		}
		if wrote && len(b.Items) > 0 && streamed.Add(1) == 3 {
			run2.cancel()
			return context.Canceled
		}
		return nil
	}
	run2 = startStream(t, e.c, pos1, rec)
	if err := run2.wait(t); !errors.Is(err, context.Canceled) {
		t.Fatalf("run 2: %v", err)
	}
	all := rec.delivered()
	if first := pkInt(t, all[accepted1]); first != 701 {
		t.Errorf("run 2 starts at row %d, want 701 (the first row after the accepted position)", first)
	}
	_, _, pos2 := rec.snapshot()
	accepted2 := len(all)
	if last := pkInt(t, all[accepted2-1]); last != 3300 {
		t.Fatalf("run 2 accepted up to row %d, want 3300", last)
	}

	// Run 3: from the slot's confirmed position, which is the accepted one.
	run3 := startStream(t, e.c, pos2, rec)
	e.converge(rec, "rows", "val", "note")
	all = rec.delivered()
	if first := pkInt(t, all[accepted2]); first != 3301 {
		t.Errorf("run 3 starts at row %d, want 3301", first)
	}
	run3.stop(t)

	// Repeats: an item delivered again with the same content.
	seen := map[string]int{}
	repeats := 0
	for _, it := range all {
		b, _ := json.Marshal(it.Fields)
		k := it.ID + string(b) + strconv.FormatBool(it.Deleted)
		if seen[k]++; seen[k] > 1 {
			repeats++
		}
	}
	t.Logf("%d items accepted over 3 runs for 3,310 rows and %d changes during the snapshot: %d repeats", len(all), duringSnapshot, repeats)
	if repeats > duringSnapshot {
		t.Errorf("%d repeats: more than the %d changes made during the snapshot, which the stream replays after a crash mid-snapshot", repeats, duringSnapshot)
	}
}

// TestStreamDeliverFailureHoldsTheSlot: deliver refuses a batch; the slot's confirmed
// position stays at the last accepted batch's end, and the refused rows come again.
func TestStreamDeliverFailureHoldsTheSlot(t *testing.T) {
	e := newReplEnv(t, srv, 100, "rows (id bigint PRIMARY KEY, val integer NOT NULL, note text)")
	tbl := e.ident("rows")
	rec := newRecorder()
	errSink := errors.New("sink down")
	wrote := false
	streamed := 0
	rec.hook = func(n int, b connectors.StreamBatch) error {
		if b.CaughtUp && !wrote {
			wrote = true
			for i := 1; i <= 250; i++ {
				if err := e.try("INSERT INTO "+tbl+" VALUES ($1, $2, 'x')", i, i); err != nil {
					return err
				}
			}
			return nil
		}
		if len(b.Items) > 0 {
			if streamed++; streamed == 2 {
				return errSink
			}
		}
		return nil
	}
	run := startStream(t, e.c, "", rec)
	if err := run.wait(t); !errors.Is(err, errSink) {
		t.Fatalf("Stream returned %v, want the deliver error", err)
	}
	_, _, pos := rec.snapshot()
	accepted, err := pglogrepl.ParseLSN(decodePosition(t, pos).LSN)
	must(t, err)
	all := rec.delivered()
	if len(all) != 100 || pkInt(t, all[99]) != 100 {
		t.Fatalf("accepted %d items", len(all))
	}
	eventually(t, "the slot's confirmed position reaching the accepted batch", func() bool {
		info := e.slot()
		if info.ConfirmedFlush > accepted {
			t.Fatalf("slot confirmed %s, past the accepted %s", info.ConfirmedFlush, accepted)
		}
		return info.ConfirmedFlush == accepted
	})
	rec.hook = nil
	run = startStream(t, e.c, pos, rec)
	e.converge(rec, "rows", "val", "note")
	if first := pkInt(t, rec.delivered()[100]); first != 101 {
		t.Errorf("the restart starts at row %d, want 101 (the refused batch)", first)
	}
	if info := e.slot(); info.ConfirmedFlush <= accepted {
		// Flushed at the idle point after the restart delivered everything.
		eventually(t, "the slot moving on", func() bool { return e.slot().ConfirmedFlush > accepted })
	}
	run.stop(t)
}

// TestStreamToastedColumnIsReadAgain: an UPDATE that leaves an out-of-line value alone
// is delivered with it (the row read again); when the row is gone by then, only its
// deletion is.
func TestStreamToastedColumnIsReadAgain(t *testing.T) {
	e := newReplEnv(t, srv, 100, "docs (id int PRIMARY KEY, title text, body text)")
	e.exec("ALTER TABLE " + e.ident("docs") + " ALTER COLUMN body SET STORAGE EXTERNAL")
	body := strings.Repeat("0123456789", 1000) // 10 kB, out of line, uncompressed
	e.exec("INSERT INTO "+e.ident("docs")+" VALUES (1, 'first', $1), (2, 'other', $1)", body)
	rec := newRecorder()
	run := startStream(t, e.c, "", rec)
	id1, id2 := e.id("docs", "1"), e.id("docs", "2")
	eventually(t, "the snapshot", func() bool { _, up, _ := rec.snapshot(); return up > 0 })
	e.exec("UPDATE " + e.ident("docs") + " SET title = 'second' WHERE id = 1")
	eventually(t, "the update", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return rec.last[id1].Fields["title"] == "second"
	})
	rec.mu.Lock()
	got := rec.last[id1].Fields["body"]
	rec.mu.Unlock()
	if got != body {
		t.Fatalf("the update's body: %d bytes, want the row's %d", len(fmt.Sprint(got)), len(body))
	}
	run.stop(t)
	_, _, pos := rec.snapshot()

	// Stopped: the update is read back after the row is gone.
	e.exec("UPDATE " + e.ident("docs") + " SET title = 'third' WHERE id = 2")
	e.exec("DELETE FROM " + e.ident("docs") + " WHERE id = 2")
	before := len(rec.delivered())
	run = startStream(t, e.c, pos, rec)
	eventually(t, "the deletion", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return rec.last[id2].Deleted
	})
	for _, it := range rec.delivered()[before:] {
		if it.ID == id2 && !it.Deleted {
			t.Errorf("an upsert of a row deleted before its update was read back: %+v", it.Fields)
		}
	}
	run.stop(t)
}

// TestStreamDeletionIDs: deletions carry the ids of the rows' upserts (composite keys of
// int, timestamptz, uuid and quoted text; REPLICA IDENTITY FULL); a changed key is a
// deletion of the old id; TRUNCATE delivers nothing.
func TestStreamDeletionIDs(t *testing.T) {
	e := newReplEnv(t, srv, 50,
		`pairs (a int, b timestamptz, c uuid, d text, v int, PRIMARY KEY (a, b, c, d))`,
		`"Full Table" (id int PRIMARY KEY, v int)`,
		`gone (id int PRIMARY KEY)`)
	e.exec(`ALTER TABLE ` + e.ident("Full Table") + ` REPLICA IDENTITY FULL`)
	pairs, full, gone := e.ident("pairs"), e.ident("Full Table"), e.ident("gone")
	e.exec(`INSERT INTO ` + pairs + ` SELECT g, timestamptz '2024-02-29 12:34:56.789+02' + g * interval '1 microsecond',
		md5(g::text)::uuid, 'key "' || g || '", with spaces', g FROM generate_series(1, 20) g`)
	e.exec(`INSERT INTO ` + full + ` SELECT g, g FROM generate_series(1, 10) g`)
	e.exec(`INSERT INTO ` + gone + ` SELECT g FROM generate_series(1, 10) g`)
	rec := newRecorder()
	run := startStream(t, e.c, "", rec)
	eventually(t, "the snapshot", func() bool { _, up, _ := rec.snapshot(); return up > 0 })
	e.exec(`INSERT INTO ` + pairs + ` SELECT g, now(), gen_random_uuid(), 'new ' || g, g FROM generate_series(21, 30) g`)
	e.exec(`DELETE FROM ` + pairs + ` WHERE a % 2 = 0`)
	e.exec(`UPDATE ` + pairs + ` SET a = a + 1000 WHERE a = 1`) // a key change
	e.exec(`UPDATE ` + full + ` SET v = -v`)                    // FULL: an old row, the same key
	e.exec(`DELETE FROM ` + full + ` WHERE id > 5`)
	e.exec(`TRUNCATE ` + gone)
	e.exec(`INSERT INTO ` + full + ` VALUES (100, 100)`) // the marker
	eventually(t, "the marker", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		_, ok := rec.last[e.id("Full Table", "100")]
		return ok
	})
	run.stop(t)

	upserts, deletions := map[string]bool{}, map[string]bool{}
	for _, it := range rec.delivered() {
		switch {
		case it.Deleted && it.Container == e.schema+".gone":
			t.Errorf("TRUNCATE delivered a deletion: %+v", it)
		case it.Deleted:
			deletions[it.ID] = true
			if it.UpdatedAt.IsZero() || it.Kind != connectors.KindRow {
				t.Errorf("deletion without commit time or kind: %+v", it)
			}
		default:
			upserts[it.ID] = true
		}
	}
	for id := range deletions {
		if !upserts[id] {
			_, pk, _ := decodeItemID(id)
			t.Errorf("deletion of %v, an id no upsert had", pk)
		}
	}
	if want := 15 + 1 + 5; len(deletions) != want { // even a of 1..30, the old key of a = 1, ids 6..10 of Full Table
		t.Errorf("%d deletions, want %d", len(deletions), want)
	}
	e.converge(rec, "Full Table", "v")
	// The key change: the row is delivered under its new key.
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var moved []string
	for _, it := range rec.last {
		if it.Container == e.schema+".pairs" && !it.Deleted && fmt.Sprint(it.Fields["v"]) == "1" {
			moved = append(moved, pkOf(t, it)[0])
		}
	}
	if !slices.Equal(moved, []string{"1001"}) {
		t.Errorf("the row whose key changed is delivered as a = %v, want [1001]", moved)
	}
}

// TestStreamReleaseAndReport: Report shows the slot, Release drops it and the
// publication (even while a stream holds the slot), and a cursorColumn client reports
// nothing.
func TestStreamReleaseAndReport(t *testing.T) {
	e := newReplEnv(t, srv, 100, "rows (id bigint PRIMARY KEY, val integer NOT NULL, note text)")
	e.exec(`INSERT INTO ` + e.ident("rows") + ` SELECT g, g, 'x' FROM generate_series(1, 10) g`)
	if !e.c.Streaming() || e.c.Finalizer() != SlotFinalizer {
		t.Fatalf("logicalReplication client: Streaming %v, Finalizer %q", e.c.Streaming(), e.c.Finalizer())
	}
	ctx := testContext(t)
	var st v1alpha1.ConnectionStatus
	must(t, e.c.Report(ctx, &st))
	if want := (v1alpha1.PostgreSQLStatus{Slot: e.slotName(), Publication: e.slotName()}); st.PostgreSQL == nil || *st.PostgreSQL != want {
		t.Fatalf("Report before any stream: %+v", st.PostgreSQL)
	}
	rec := newRecorder()
	run := startStream(t, e.c, "", rec)
	eventually(t, "caught up", func() bool { _, up, _ := rec.snapshot(); return up > 0 })
	e.exec(`INSERT INTO ` + e.ident("rows") + ` VALUES (11, 11, 'x')`)
	eventually(t, "the insert confirmed", func() bool {
		must(t, e.c.Report(ctx, &st))
		return st.PostgreSQL.ConfirmedLSN != "" && e.slot().ConfirmedFlush > 0 && len(rec.delivered()) == 11
	})
	ps := st.PostgreSQL
	if ps.Slot != e.slotName() || ps.Publication != e.slotName() || ps.WALStatus != "reserved" || ps.RetainedWALBytes < 0 {
		t.Errorf("Report: %+v", ps)
	}
	if _, err := pglogrepl.ParseLSN(ps.ConfirmedLSN); err != nil {
		t.Errorf("confirmedLSN %q: %v", ps.ConfirmedLSN, err)
	}
	t.Logf("status.postgresql while streaming: %+v", *ps)

	// Release while the stream holds the slot: it ends the stream.
	must(t, e.c.Release(ctx))
	if err := run.wait(t); err == nil {
		t.Error("the stream went on after its slot was dropped")
	} else {
		t.Logf("the stream after Release: %v", err)
	}
	if n := e.queryInt(`SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1`, e.slotName()); n != 0 {
		t.Error("the slot is still there")
	}
	if n := e.queryInt(`SELECT count(*) FROM pg_publication WHERE pubname = $1`, e.slotName()); n != 0 {
		t.Error("the publication is still there")
	}
	must(t, e.c.Release(ctx)) // nothing held: no error

	// After a switch to cursorColumn (every table needs a cursorColumn there).
	for i := range e.tables {
		e.tables[i].CursorColumn = "ts"
	}
	cc := e.client(v1alpha1.PostgreSQLModeCursorColumn)
	if cc.Streaming() || cc.Finalizer() != "" {
		t.Errorf("cursorColumn client: Streaming %v, Finalizer %q", cc.Streaming(), cc.Finalizer())
	}
	st.PostgreSQL = &v1alpha1.PostgreSQLStatus{Slot: "stale"}
	must(t, cc.Report(ctx, &st))
	if st.PostgreSQL != nil {
		t.Errorf("cursorColumn Report with no slot: %+v", st.PostgreSQL)
	}
	must(t, cc.Release(ctx))
}

// TestStreamSlotHeldElsewhere: a slot another connection streams from (an old leader) is
// a transient error, not a lost stream.
func TestStreamSlotHeldElsewhere(t *testing.T) {
	e := newReplEnv(t, srv, 100, "rows (id bigint PRIMARY KEY, val integer NOT NULL, note text)")
	rec := newRecorder()
	run := startStream(t, e.c, "", rec)
	eventually(t, "caught up", func() bool { _, up, _ := rec.snapshot(); return up > 0 })
	run.stop(t)
	_, _, pos := rec.snapshot()

	ctx := testContext(t)
	cfg, err := e.c.connConfig(ctx)
	must(t, err)
	rc, err := pgrepl.ConnectReplication(ctx, cfg)
	must(t, err)
	var st *pgrepl.Stream
	eventually(t, "the other holder streaming", func() bool {
		st, err = pgrepl.StartStream(ctx, rc, pgrepl.StreamOptions{Slot: e.slotName(), Publication: e.slotName()})
		return err == nil
	})
	defer func() { _ = st.Close(context.Background()) }()
	err = e.c.Stream(ctx, pos, rec.deliver)
	if connectors.KindOf(err) != connectors.KindUnavailable || !strings.Contains(err.Error(), "active") {
		t.Fatalf("Stream on a slot held elsewhere: %v (kind %q)", err, connectors.KindOf(err))
	}
	t.Logf("Stream on a slot held elsewhere: %v", err)
}

// TestStreamPrivileges: without REPLICATION, or without owning the tables, Stream says
// what the role needs.
func TestStreamPrivileges(t *testing.T) {
	e := newReplEnv(t, srv, 100, "rows (id bigint PRIMARY KEY, val integer NOT NULL, note text)")
	ctx := testContext(t)
	role := pgx.Identifier{e.role}.Sanitize()

	e.exec("ALTER ROLE " + role + " NOREPLICATION")
	err := e.c.Stream(ctx, "", newRecorder().deliver)
	if connectors.KindOf(err) != connectors.KindAuth || !strings.Contains(err.Error(), "REPLICATION") {
		t.Errorf("without REPLICATION: %v (kind %q)", err, connectors.KindOf(err))
	}
	t.Logf("without REPLICATION: %v", err)

	e.exec("ALTER ROLE " + role + " REPLICATION")
	must(t, e.c.Release(ctx))
	e.exec("ALTER TABLE " + e.ident("rows") + " OWNER TO postgres")
	e.exec("GRANT SELECT ON " + e.ident("rows") + " TO " + role)
	err = e.c.Stream(ctx, "", newRecorder().deliver)
	if connectors.KindOf(err) != connectors.KindAuth || !strings.Contains(err.Error(), "owns every table") {
		t.Errorf("without owning the table: %v (kind %q)", err, connectors.KindOf(err))
	}
	t.Logf("without owning the table: %v", err)
	if strings.Contains(fmt.Sprint(err), e.pw) {
		t.Error("the error shows the password")
	}
}

// TestStreamLostSlot: a slot whose WAL the server removed (max_slot_wal_keep_size) is
// KindStreamLost, telling to request a resync.
func TestStreamLostSlot(t *testing.T) {
	small := pgtest.Start(t, pgtest.Options{Databases: []string{testDB}, Settings: []string{"max_slot_wal_keep_size = '1MB'"}})
	e := newReplEnv(t, small, 100, "wide (id serial PRIMARY KEY, pad text)")
	rec := newRecorder()
	run := startStream(t, e.c, "", rec)
	eventually(t, "caught up", func() bool { _, up, _ := rec.snapshot(); return up > 0 })
	run.stop(t)
	_, _, pos := rec.snapshot()
	for round := 0; e.slot().WALStatus != "lost"; round++ {
		if round == 20 {
			t.Fatalf("slot not lost after %d rounds of WAL: %+v", round, e.slot())
		}
		// Another table: WAL the slot need not decode.
		e.exec(`CREATE TABLE IF NOT EXISTS public.filler (pad text)`)
		e.exec(`INSERT INTO public.filler SELECT repeat(md5(g::text), 32) FROM generate_series(1, 2000) g`)
		e.exec(`SELECT pg_switch_wal()`)
		e.exec(`CHECKPOINT`)
		e.exec(`CHECKPOINT`)
	}
	err := e.c.Stream(testContext(t), pos, rec.deliver)
	if connectors.KindOf(err) != connectors.KindStreamLost || !strings.Contains(err.Error(), "spec.sync.resyncRequest") || !strings.Contains(err.Error(), e.slotName()) {
		t.Fatalf("Stream from a lost slot: %v (kind %q)", err, connectors.KindOf(err))
	}
	t.Logf("Stream from a lost slot: %v", err)

	// A resync (position "") starts over with a new slot.
	rec2 := newRecorder()
	run = startStream(t, e.c, "", rec2)
	eventually(t, "caught up again", func() bool { _, up, _ := rec2.snapshot(); return up > 0 })
	if s := e.slot(); s.WALStatus == "lost" {
		t.Errorf("after a resync the slot is still lost: %+v", s)
	}
	run.stop(t)

	// A slot dropped behind the operator's back is lost too.
	_, _, pos = rec2.snapshot()
	must(t, small.Exec(testContext(t), testDB, `SELECT pg_drop_replication_slot($1)`, e.slotName()))
	err = e.c.Stream(testContext(t), pos, rec.deliver)
	if connectors.KindOf(err) != connectors.KindStreamLost {
		t.Fatalf("Stream from a dropped slot: %v", err)
	}
}

func TestStreamNamesAndPositions(t *testing.T) {
	name, err := replicationName("6f1c1c9e-3c1b-4c1e-9d5e-0123456789ab")
	if err != nil || name != "connectors_6f1c1c9e3c1b4c1e9d5e0123456789ab" {
		t.Errorf("replicationName: %q, %v", name, err)
	}
	for _, bad := range []string{"", "x'; DROP", strings.Repeat("a", 60)} {
		if _, err := replicationName(bad); err == nil {
			t.Errorf("replicationName(%q) accepted", bad)
		}
	}
	long := streamPosition{Slot: name, Done: []string{tableHash("a")}, Table: tableHash("b"), After: []string{strings.Repeat("k", 9000)}, LSN: "0/16B3748"}
	enc := long.encode()
	if len(enc) > maxPositionBytes {
		t.Fatalf("position of %d bytes", len(enc))
	}
	if p := decodePosition(t, enc); p.Table != "" || p.After != nil || p.Slot != name || len(p.Done) != 1 {
		t.Errorf("a position too long for status keeps its table's progress: %s", enc)
	}
	var c client
	if c.Finalizer() != "" || c.Streaming() {
		t.Error("a cursorColumn client streams")
	}
	if err := c.Release(context.Background()); err != nil {
		t.Errorf("Release without a Connection: %v", err)
	}
}

// BenchmarkStream measures Stream to a deliver func that only counts (batches of 100, the
// default): the snapshot of 20,000 rows, 20,000 rows inserted (20 transactions) while it
// streams, and the replication lag (a row's commit to its delivery) under about 1,000
// single-row transactions a second for 10 s. Each part runs once per b.N; run it with
// -benchtime=1x.
func BenchmarkStream(b *testing.B) {
	for range b.N {
		benchStream(b)
	}
}

func benchStream(b *testing.B) {
	e := newReplEnv(b, srv, 100, "bench (id bigint PRIMARY KEY, val integer NOT NULL, note text)")
	tbl := e.ident("bench")
	const rows = 20000
	e.exec(`INSERT INTO `+tbl+` SELECT g, g, 'row ' || g FROM generate_series(1, $1) g`, rows)

	var (
		delivered atomic.Int64
		snapDone  atomic.Int64 // UnixNano of the snapshot's last batch
		lagMu     sync.Mutex
		lags      []time.Duration
		measure   atomic.Bool
	)
	deliver := func(_ context.Context, bt connectors.StreamBatch) error {
		now := time.Now()
		delivered.Add(int64(len(bt.Items)))
		if snapDone.Load() == 0 && strings.Contains(bt.Position, `"snapshotDone":true`) {
			snapDone.Store(now.UnixNano())
		}
		if measure.Load() {
			lagMu.Lock()
			for _, it := range bt.Items {
				lags = append(lags, now.Sub(it.UpdatedAt))
			}
			lagMu.Unlock()
		}
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- e.c.Stream(ctx, "", deliver) }()
	defer func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			b.Logf("Stream ended: %v", err)
		}
	}()
	eventually(b, "the snapshot", func() bool { return snapDone.Load() != 0 })
	snapshot := time.Unix(0, snapDone.Load()).Sub(start)

	start = time.Now()
	for i := range 20 {
		e.exec(`INSERT INTO `+tbl+` SELECT g, g, 'streamed' FROM generate_series($1::bigint, $2::bigint) g`, rows+1+i*1000, rows+(i+1)*1000)
	}
	eventually(b, "20,000 streamed rows", func() bool { return delivered.Load() >= 2*rows })
	streamed := time.Since(start)

	// Lag: 2 writers, each a single-row transaction every 2 ms, for 10 s.
	measure.Store(true)
	var next atomic.Int64
	next.Store(3 * rows)
	var wg sync.WaitGroup
	var writes atomic.Int64
	lagStart := time.Now()
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := e.srv.SuperConn(context.Background(), testDB)
			if err != nil {
				b.Error(err)
				return
			}
			defer func() { _ = conn.Close(context.Background()) }()
			tick := time.NewTicker(2 * time.Millisecond)
			defer tick.Stop()
			for time.Since(lagStart) < 10*time.Second {
				<-tick.C
				if _, err := conn.Exec(context.Background(), `INSERT INTO `+tbl+` VALUES ($1, 0, 'lag')`, next.Add(1)); err != nil {
					b.Error(err)
					return
				}
				writes.Add(1)
			}
		}()
	}
	wg.Wait()
	writeSecs := time.Since(lagStart).Seconds()
	eventually(b, "the lag rows", func() bool { return delivered.Load() >= 2*rows+writes.Load() })
	lagMu.Lock()
	slices.Sort(lags)
	p50, p99 := lags[len(lags)/2], lags[len(lags)*99/100]
	lagMu.Unlock()

	b.ReportMetric(rows/snapshot.Seconds(), "snapshot-rows/s")
	b.ReportMetric(rows/streamed.Seconds(), "stream-rows/s")
	b.ReportMetric(float64(writes.Load())/writeSecs, "load-writes/s")
	b.ReportMetric(float64(p50.Microseconds())/1000, "lag-p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "lag-p99-ms")
}
