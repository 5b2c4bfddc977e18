package postgresql_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/internal/pgtest"
	"github.com/unified-connectors/connector-operator/internal/syncer/sinktest"
)

// replicationRole creates a role that may run logicalReplication on srv: REPLICATION,
// CREATE on the database (CREATE PUBLICATION needs it) and ownership of tables
// (CREATE PUBLICATION … FOR TABLE needs it).
func (s *suite) replicationRole(t *testing.T, srv *pgtest.Server, tables ...string) string {
	t.Helper()
	role := s.role(t, srv, "REPLICATION")
	exec(t, srv, fmt.Sprintf(`GRANT CREATE ON DATABASE %s TO %s`, quoteIdent(db), quoteIdent(role)))
	for _, tbl := range tables {
		exec(t, srv, fmt.Sprintf(`ALTER TABLE %s OWNER TO %s`, tbl, quoteIdent(role)))
	}
	return role
}

// rowState renders what the test compares of a row: its columns but the key.
type rowState = string

// tableState reads the rows of tbl (id, val, note) from srv.
func tableState(t testing.TB, srv *pgtest.Server, tbl string) map[int64]rowState {
	t.Helper()
	out := map[int64]rowState{}
	withConn(t, srv, func(c *pgx.Conn) {
		rows, err := c.Query(context.Background(), fmt.Sprintf(`SELECT id, val, coalesce(note, '<null>') FROM %s`, tbl))
		must(t, err)
		defer rows.Close()
		for rows.Next() {
			var id, val int64
			var note string
			must(t, rows.Scan(&id, &val, &note))
			out[id] = fmt.Sprintf("val=%d note=%s", val, note)
		}
		must(t, rows.Err())
	})
	return out
}

// sinkState is the sink's final state of a table's rows: the last event of each item,
// upserts rendered as tableState renders rows, deletions removed. deleted holds the
// ids whose last event is an item.deleted.
func sinkState(t testing.TB, sink *sinktest.Sink) (state map[int64]rowState, deleted map[int64]bool, unknown int) {
	t.Helper()
	state, deleted = map[int64]rowState{}, map[int64]bool{}
	idOf := map[string]int64{} // item id → primary key, from the upserts
	for _, e := range rowEvents(t, sink) {
		switch e.Type {
		case eventUpserted:
			id := num(e.Fields, "id")
			idOf[e.ID] = id
			note, ok := e.Fields["note"].(string)
			if !ok {
				note = "<null>"
			}
			state[id] = fmt.Sprintf("val=%d note=%s", num(e.Fields, "val"), note)
			delete(deleted, id)
		case eventDeleted:
			id, ok := idOf[e.ID]
			if !ok {
				unknown++ // a deletion of an item never upserted
				continue
			}
			delete(state, id)
			deleted[id] = true
		}
	}
	return state, deleted, unknown
}

// diffStates lists up to 10 differences between want and got, and counts them all.
func diffStates(want, got map[int64]rowState) (n int, examples []string) {
	var ids []int64
	for id := range want {
		ids = append(ids, id)
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		w, inWant := want[id]
		g, inGot := got[id]
		if inWant == inGot && w == g {
			continue
		}
		n++
		if len(examples) < 10 {
			examples = append(examples, fmt.Sprintf("id %d: table %q (present %v), sink %q (present %v)", id, w, inWant, g, inGot))
		}
	}
	return n, examples
}

// sameState waits until the sink's final state equals tbl's rows.
func sameState(t *testing.T, srv *pgtest.Server, sink *sinktest.Sink, tbl string) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		got, _, unknown := sinkState(t, sink)
		n, examples := diffStates(tableState(t, srv, tbl), got)
		g.Expect(n).To(BeZero(), "rows whose final state in the sink differs from the table: %v", examples)
		g.Expect(unknown).To(BeZero(), "deletions of items the sink never had")
	}, timeout, poll).Should(Succeed())
}

// changer makes ops random inserts, updates and deletes on tbl over workers
// connections of their own; inserted ids start at 1,000,000 and are unique.
func changer(t *testing.T, srv *pgtest.Server, tbl string, existing int64, workers, ops int, pause time.Duration) (deleted map[int64]bool, wait func()) {
	t.Helper()
	var mu sync.Mutex
	deleted = map[int64]bool{}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		c, err := srv.SuperConn(context.Background(), db)
		must(t, err)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { _ = c.Close(context.Background()) }()
			rnd := rand.New(rand.NewPCG(uint64(w), 42))
			ctx := context.Background()
			for i := range ops / workers {
				var err error
				id := 1 + rnd.Int64N(existing)
				switch p := rnd.IntN(10); {
				case p < 4:
					_, err = c.Exec(ctx, fmt.Sprintf(`UPDATE %s SET val = val + 1, note = $2 WHERE id = $1`, tbl), id,
						fmt.Sprintf("updated by %d/%d", w, i))
				case p < 7:
					_, err = c.Exec(ctx, fmt.Sprintf(`INSERT INTO %s (id, val, note) VALUES ($1, $2, 'inserted')`, tbl),
						1_000_000+int64(w)*100_000+int64(i), i)
				default:
					var tag interface{ RowsAffected() int64 }
					tag, err = c.Exec(ctx, fmt.Sprintf(`DELETE FROM %s WHERE id = $1`, tbl), id)
					if err == nil && tag.RowsAffected() > 0 {
						mu.Lock()
						deleted[id] = true
						mu.Unlock()
					}
				}
				if err != nil {
					errs <- err
					return
				}
				time.Sleep(pause)
			}
		}()
	}
	return deleted, func() {
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}
}

// 9. logicalReplication: a 5,000-row table, and 1,000 concurrent inserts, updates and
// deletes from several connections while the initial snapshot runs. At the end the
// sink's last event of every row equals the table (deleted rows' is an item.deleted);
// the Connection shows its slot and carries the replication-slot finalizer.
func TestLogicalReplication(t *testing.T) {
	s, g := testEnv(t), NewWithT(t)
	const tbl = "public.repl"
	exec(t, s.pg, `CREATE TABLE public.repl (id bigint PRIMARY KEY, val integer NOT NULL, note text);
		INSERT INTO public.repl SELECT g, g, CASE WHEN g % 10 = 0 THEN NULL ELSE 'row ' || g END FROM generate_series(1, 5000) g`)
	role := s.replicationRole(t, s.pg, tbl)
	sink := sinktest.NewServer()
	t.Cleanup(sink.Close)
	// A slower sink stretches the snapshot over the concurrent changes.
	sink.OnBatch(func([]sinktest.Event) { time.Sleep(20 * time.Millisecond) })
	s.connector(t, "pg-repl", s.pg, nil)
	start := time.Now()
	conn := s.connection(t, "repl", "pg-repl", secretOf(role), replicationMode(table(tbl, "", "note", "note")), sink.URL(), 100, nil)
	slot := slotName(conn.UID)

	// The changes start once the slot exists: the snapshot is being taken and sent.
	g.Eventually(func() bool { ok, _ := slotExists(t, s.pg, slot); return ok }, timeout, 10*time.Millisecond).Should(BeTrue(), "slot %s created", slot)
	atSlot := len(sink.Events())
	deleted, wait := changer(t, s.pg, tbl, 5000, 4, 1000, 2*time.Millisecond)
	wait()
	atDone := len(sink.Events())
	got := s.synced(t, "repl", start)
	sameState(t, s.pg, sink, tbl)

	_, lastDeleted, _ := sinkState(t, sink)
	for id := range deleted {
		g.Expect(lastDeleted).To(HaveKey(id), "row %d was deleted: its last event is item.deleted", id)
	}
	g.Expect(len(sink.Deletions())).To(BeNumerically(">=", len(deleted)))
	got = s.get(g, "repl")
	g.Expect(got.Status.PostgreSQL).NotTo(BeNil())
	g.Expect(got.Status.PostgreSQL.Slot).To(Equal(slot))
	g.Expect(controllerutil.ContainsFinalizer(&got, slotFinalizer)).To(BeTrue(), "finalizers %v", got.Finalizers)
	r := sink.Check()
	t.Logf("replication: %d events when the slot appeared, %d when the changes were done, %d at the end; %d rows deleted; %d upserts (%d distinct items), %d deletions; status.postgresql %+v",
		atSlot, atDone, len(sink.Events()), len(deleted), r.Deliveries, r.Distinct, len(sink.Deletions()), *got.Status.PostgreSQL)
}

// replicated starts a logicalReplication Connection of a fresh rows-table tbl (id, val,
// note, updated_at) on srv and waits until it is Synced with the slot in place.
func (s *suite) replicated(t *testing.T, srv *pgtest.Server, name, tbl string, rows int, sink *sinktest.Sink, mutate func(*v1alpha1.Connection)) (v1alpha1.Connection, string) {
	t.Helper()
	exec(t, srv, fmt.Sprintf(`CREATE TABLE %s (id bigint PRIMARY KEY, val integer NOT NULL, note text,
		updated_at timestamptz NOT NULL DEFAULT now());
		INSERT INTO %[1]s (id, val, note) SELECT g, g, 'row ' || g FROM generate_series(1, %d) g`, tbl, rows))
	role := s.replicationRole(t, srv, tbl)
	s.connector(t, "pg-"+name, srv, nil)
	start := time.Now()
	conn := s.connection(t, name, "pg-"+name, secretOf(role), replicationMode(table(tbl, "updated_at", "note", "note")), sink.URL(), 100, mutate)
	s.synced(t, name, start)
	sameState(t, srv, sink, tbl)
	slot := slotName(conn.UID)
	g := NewWithT(t)
	g.Eventually(func() []bool { a, b := slotExists(t, srv, slot); return []bool{a, b} }, timeout, poll).Should(Equal([]bool{true, true}), "slot and publication %s", slot)
	var got v1alpha1.Connection
	g.Eventually(func(g Gomega) {
		got = s.get(g, name)
		g.Expect(got.Finalizers).To(ContainElement(slotFinalizer))
	}, timeout, poll).Should(Succeed())
	return got, slot
}

// 10. Deleting a logicalReplication Connection drops its slot and publication, then
// lets it go.
func TestDeleteDropsSlot(t *testing.T) {
	s, g := testEnv(t), NewWithT(t)
	sink := sinktest.NewServer()
	t.Cleanup(sink.Close)
	conn, slot := s.replicated(t, s.pg, "drop", "public.dropped", 100, sink, nil)
	must(t, s.k8s.Delete(context.Background(), &conn))
	s.gone(t, "drop")
	a, b := slotExists(t, s.pg, slot)
	g.Expect(a).To(BeFalse(), "slot %s dropped", slot)
	g.Expect(b).To(BeFalse(), "publication %s dropped", slot)
}

// 11. Switching a logicalReplication Connection to cursorColumn drops the slot and the
// publication and removes the finalizer; the Connection keeps syncing.
func TestModeChangeDropsSlot(t *testing.T) {
	s, g := testEnv(t), NewWithT(t)
	sink := sinktest.NewServer()
	t.Cleanup(sink.Close)
	_, slot := s.replicated(t, s.pg, "switch", "public.switched", 100, sink, nil)
	s.update(t, "switch", func(c *v1alpha1.Connection) { c.Spec.PostgreSQL.Mode = v1alpha1.PostgreSQLModeCursorColumn })
	g.Eventually(func() []bool { a, b := slotExists(t, s.pg, slot); return []bool{a, b} }, timeout, poll).Should(Equal([]bool{false, false}),
		"slot and publication %s dropped", slot)
	g.Eventually(func(g Gomega) {
		c := s.get(g, "switch")
		g.Expect(c.Finalizers).NotTo(ContainElement(slotFinalizer))
	}, timeout, poll).Should(Succeed())

	exec(t, s.pg, `INSERT INTO public.switched (id, val, note) VALUES (5000, 5000, 'after the switch')`)
	asked := s.requestNow(t, "switch")
	s.synced(t, "switch", asked)
	sameState(t, s.pg, sink, "public.switched")
	c := s.get(g, "switch")
	g.Expect(condition(c, v1alpha1.ReadyCondition).Status).To(Equal(metav1.ConditionTrue))
	a, _ := slotExists(t, s.pg, slot)
	g.Expect(a).To(BeFalse(), "cursorColumn runs create no slot")
}

// 12. A slot whose WAL the server removed (max_slot_wal_keep_size) while the sink was
// down: Synced=False StreamLost and Stalled, telling to request a resync; a resync
// request then rebuilds the stream from a new snapshot and the sink has every row.
func TestLostSlotStalls(t *testing.T) {
	s, g := testEnv(t), NewWithT(t)
	small, err := pgtest.New(pgtest.Options{Databases: []string{db}, Settings: []string{"max_slot_wal_keep_size = '1MB'"}})
	must(t, err)
	t.Cleanup(func() { must(t, small.Close()) })
	sink := sinktest.NewServer()
	t.Cleanup(sink.Close)
	const tbl = "public.lost"
	conn, slot := s.replicated(t, small, "lost", tbl, 200, sink, nil)

	// The sink fails: the stream holds a batch it cannot deliver, so the slot's
	// confirmed position stays behind it.
	sink.Fail(sinktest.Failure{Status: 503})
	attempts := sink.Attempts()
	exec(t, small, `INSERT INTO public.lost (id, val, note) SELECT g, g, 'while the sink fails' FROM generate_series(1001, 1010) g`)
	g.Eventually(sink.Attempts, timeout, poll).Should(BeNumerically(">", attempts), "the stream tried to deliver")
	exec(t, small, `CREATE TABLE public.filler (id bigserial PRIMARY KEY, pad text NOT NULL)`)
	walStatus := func() string {
		var st string
		withConn(t, small, func(c *pgx.Conn) {
			must(t, c.QueryRow(context.Background(), `SELECT coalesce(wal_status, '') FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&st))
		})
		return st
	}
	rounds := 0
	for ; walStatus() != "lost"; rounds++ {
		if rounds == 40 {
			t.Fatalf("slot %s not lost after %d rounds of 5 MB of WAL (wal_status %q)", slot, rounds, walStatus())
		}
		exec(t, small, `INSERT INTO public.filler (pad) SELECT repeat(md5(g::text), 32) FROM generate_series(1, 5000) g`)
		exec(t, small, `SELECT pg_switch_wal()`)
		exec(t, small, `CHECKPOINT`)
	}
	exec(t, small, `INSERT INTO public.lost (id, val, note) SELECT g, g, 'after the loss' FROM generate_series(2001, 2010) g`)
	// The stream learns of the loss when it next reads: the engine delivers (retrying)
	// the batch it holds first, so the sink comes back now.
	sink.Recover()
	g.Eventually(func(g Gomega) {
		c := s.get(g, "lost")
		sc := condition(c, v1alpha1.SyncedCondition)
		g.Expect(sc.Status).To(Equal(metav1.ConditionFalse), "%s: %s", sc.Reason, sc.Message)
		g.Expect(sc.Reason).To(Equal(v1alpha1.StreamLostReason), sc.Message)
		g.Expect(sc.Message).To(MatchRegexp(`(?i)resync`))
		g.Expect(condition(c, v1alpha1.StalledCondition).Status).To(Equal(metav1.ConditionTrue))
	}, 2*timeout, poll).Should(Succeed())
	sc := condition(s.get(g, "lost"), v1alpha1.SyncedCondition)
	t.Logf("lost after %d rounds of WAL; Synced: %s: %s", rounds, sc.Reason, sc.Message)

	asked := time.Now().Truncate(time.Second).Add(time.Second)
	time.Sleep(time.Until(asked)) // whole seconds: see requestNow
	s.update(t, "lost", func(c *v1alpha1.Connection) { c.Spec.Sync.ResyncRequest = "after-lost-slot" })
	got := s.synced(t, "lost", asked)
	g.Expect(got.Status.Sync.LastHandledResyncRequest).To(Equal("after-lost-slot"))
	sameState(t, small, sink, tbl)
	g.Expect(walStatus()).NotTo(Equal("lost"), "a new slot")
	g.Expect(condition(s.get(g, "lost"), v1alpha1.StalledCondition).Status).NotTo(Equal(metav1.ConditionTrue))
	// The Connection (and its slot) go before the server does.
	must(t, s.k8s.Delete(context.Background(), &conn))
	s.gone(t, "lost")
}
