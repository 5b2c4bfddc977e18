package postgresql_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	. "github.com/onsi/gomega"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/internal/syncer/sinktest"
)

// 5. Backfill in cursorColumn mode: 3 tables × 20,000 rows reach the sink, every row
// once with its columns as the table has them; status counts them per table.
func TestCursorColumnBackfill(t *testing.T) {
	s, g := testEnv(t), NewWithT(t)
	const perTable = 20000
	names := []string{"public.backfill_a", "public.backfill_b", "public.backfill_c"}
	role := s.role(t, s.pg)
	var tables []v1alpha1.PostgreSQLTable
	for i, name := range names {
		exec(t, s.pg, fmt.Sprintf(`CREATE TABLE %s (id bigint PRIMARY KEY, label text NOT NULL, n integer NOT NULL,
			updated_at timestamptz NOT NULL);
			INSERT INTO %[1]s SELECT g, 'row ' || g || ' of %[2]d', (g * 7) %% 1000,
				now() - interval '1 hour' + g * interval '100 ms' FROM generate_series(1, %[3]d) g;
			GRANT SELECT ON %[1]s TO %[4]q`, name, i, perTable, role))
		tables = append(tables, table(name, "updated_at", "label", "label"))
	}
	sink := sinktest.NewServer()
	t.Cleanup(sink.Close)
	s.connector(t, "pg-backfill", s.pg, nil)
	start := time.Now()
	s.connection(t, "backfill", "pg-backfill", secretOf(role), cursorMode(tables...), sink.URL(), 500, nil)
	g.Eventually(func() int { return sink.Check().Distinct }, 3*timeout, poll).Should(Equal(3 * perTable))
	took := time.Since(start)
	got := s.synced(t, "backfill", start)

	perContainer := map[string]int{}
	bad := 0
	for _, e := range rowEvents(t, sink) {
		g.Expect(e.Type).To(Equal(eventUpserted))
		perContainer[e.Container]++
		id := num(e.Fields, "id")
		i := indexOf(names, e.Container)
		if id < 1 || id > perTable || i < 0 || e.Fields["label"] != fmt.Sprintf("row %d of %d", id, i) ||
			num(e.Fields, "n") != id*7%1000 || e.Kind != "row" || e.Title != e.Fields["label"] {
			if bad < 5 {
				t.Errorf("row of %s not as in the table: %+v", e.Container, e)
			}
			bad++
		}
	}
	g.Expect(bad).To(BeZero(), "rows whose fields differ from the table")
	r := sink.Check()
	t.Logf("backfill: %d rows in %s (from creation, probe included), %d deliveries, %d batches", r.Distinct,
		took.Round(10*time.Millisecond), r.Deliveries, sink.Batches())
	g.Expect(r.Duplicates).To(BeZero())
	g.Expect(got.Status.Sync.ItemsDelivered).To(BeNumerically(">=", 3*perTable))
	g.Expect(got.Status.Sync.ItemsDelivered).To(BeEquivalentTo(r.Deliveries), "status counts what the sink acknowledged")
	g.Expect(got.Status.Sync.Containers).To(HaveLen(3))
	for _, cs := range got.Status.Sync.Containers {
		g.Expect(names).To(ContainElement(cs.Key))
		g.Expect(cs.ItemsDelivered).To(BeNumerically(">=", perTable), cs.Key)
		g.Expect(cs.ItemsDelivered).To(BeEquivalentTo(perContainer[cs.Key]), cs.Key)
	}
}

func indexOf(list []string, v string) int {
	for i, s := range list {
		if s == v {
			return i
		}
	}
	return -1
}

// 6. A transaction that began before rows a sync already delivered, and commits after,
// is delivered by the next run (the look-back), and the rows delivered before are not
// delivered again (the remembered ids).
func TestLateCommitDelivered(t *testing.T) {
	s, g := testEnv(t), NewWithT(t)
	ctx := context.Background()
	role := s.role(t, s.pg)
	exec(t, s.pg, fmt.Sprintf(`CREATE TABLE public.late (id bigint PRIMARY KEY, note text NOT NULL,
		updated_at timestamptz NOT NULL DEFAULT now());
		INSERT INTO public.late (id, note, updated_at) SELECT g, 'old', now() - interval '2 hours' FROM generate_series(1, 10) g;
		GRANT SELECT ON public.late TO %q`, role))
	sink := sinktest.NewServer()
	t.Cleanup(sink.Close)
	s.connector(t, "pg-late", s.pg, nil)
	start := time.Now()
	s.connection(t, "late", "pg-late", secretOf(role), cursorMode(table("public.late", "updated_at", "note")), sink.URL(), 50, nil)
	g.Eventually(func() int { return sink.Check().Distinct }, timeout, poll).Should(Equal(10))
	s.synced(t, "late", start)

	// Transaction A writes a row whose updated_at is A's start, and stays open.
	a, err := s.pg.SuperConn(ctx, db)
	must(t, err)
	t.Cleanup(func() { _ = a.Close(context.Background()) })
	txA, err := a.Begin(ctx)
	must(t, err)
	_, err = txA.Exec(ctx, `INSERT INTO public.late (id, note) VALUES (1000, 'late')`)
	must(t, err)
	// B starts after A and commits first: its rows carry later updated_at values.
	exec(t, s.pg, `INSERT INTO public.late (id, note) SELECT g, 'b' FROM generate_series(100, 119) g`)
	asked := s.requestNow(t, "late")
	g.Eventually(func() int { return sink.Check().Distinct }, timeout, poll).Should(Equal(30))
	s.synced(t, "late", asked)

	must(t, txA.Commit(ctx))
	g.Expect(queryInt(t, s.pg, `SELECT count(*) FROM public.late
		WHERE id = 1000 AND updated_at < (SELECT min(updated_at) FROM public.late WHERE note = 'b')`)).
		To(BeEquivalentTo(1), "the late row's updated_at is older than the rows delivered before it")
	asked = s.requestNow(t, "late")
	s.synced(t, "late", asked)
	g.Eventually(func() bool {
		for _, e := range rowEvents(t, sink) {
			if num(e.Fields, "id") == 1000 {
				return true
			}
		}
		return false
	}, timeout, poll).Should(BeTrue(), "the row of the late commit is delivered")
	// One more run: the look-back re-reads the same window again.
	asked = s.requestNow(t, "late")
	s.synced(t, "late", asked)
	n := map[int64]int{}
	for _, e := range rowEvents(t, sink) {
		n[num(e.Fields, "id")]++
	}
	repeats := 0
	for _, c := range n {
		repeats += c - 1
	}
	t.Logf("late commit: %d rows, %d deliveries, %d repeats", len(n), sink.Check().Deliveries, repeats)
	g.Expect(n).To(HaveLen(31))
	g.Expect(repeats).To(BeZero(), "rows delivered before the late commit are not delivered again")
}

// 7. 500 rows sharing one updated_at, in batches of 50: each delivered exactly once,
// in that run and the next.
func TestSharedTimestamp(t *testing.T) {
	s, g := testEnv(t), NewWithT(t)
	role := s.role(t, s.pg)
	exec(t, s.pg, fmt.Sprintf(`CREATE TABLE public.tied (id bigint PRIMARY KEY, updated_at timestamptz NOT NULL);
		INSERT INTO public.tied SELECT g, timestamptz '2024-03-01 12:00:00+00' FROM generate_series(1, 500) g;
		GRANT SELECT ON public.tied TO %q`, role))
	sink := sinktest.NewServer()
	t.Cleanup(sink.Close)
	s.connector(t, "pg-tied", s.pg, nil)
	start := time.Now()
	s.connection(t, "tied", "pg-tied", secretOf(role), cursorMode(table("public.tied", "updated_at", "")), sink.URL(), 50, nil)
	g.Eventually(func() int { return sink.Check().Distinct }, timeout, poll).Should(Equal(500))
	s.synced(t, "tied", start)
	asked := s.requestNow(t, "tied")
	s.synced(t, "tied", asked)
	n := map[int64]int{}
	for _, e := range rowEvents(t, sink) {
		n[num(e.Fields, "id")]++
	}
	g.Expect(n).To(HaveLen(500))
	for id, c := range n {
		g.Expect(c).To(Equal(1), "row %d delivered %d times", id, c)
	}
	g.Expect(sink.Batches()).To(BeNumerically(">=", 10), "batches of 50")
}

// 8. Names holding quotes, spaces and SQL are only names: the table syncs; a search
// string of SQL is only data (200, the tables intact); one row is read by id; creating
// items answers 501 NOT_SUPPORTED.
func TestQuotedNames(t *testing.T) {
	s, g := testEnv(t), NewWithT(t)
	const (
		schema = `Sales "Q1"`
		tbl    = `Weird "Name"; DROP TABLE x`
		pk     = `Order "ID"`
		cursor = `Up"dated At`
		title  = `Title; --`
		body   = `Body'); DROP TABLE t; --`
	)
	name := schema + "." + tbl
	q := quoteIdent
	role := s.role(t, s.pg)
	exec(t, s.pg, fmt.Sprintf(`CREATE TABLE public.t (id int PRIMARY KEY); INSERT INTO public.t VALUES (1);
		CREATE TABLE public.x (id int PRIMARY KEY); INSERT INTO public.x VALUES (1);
		CREATE SCHEMA %[1]s;
		CREATE TABLE %[1]s.%[2]s (%[3]s bigint PRIMARY KEY, %[4]s timestamptz NOT NULL, %[5]s text, %[6]s text);
		INSERT INTO %[1]s.%[2]s SELECT g, now() - interval '1 hour' + g * interval '1 s', 'Order ' || g,
			CASE WHEN g = 7 THEN 'the zeppelin order' ELSE 'plain text ' || g END FROM generate_series(1, 30) g;
		GRANT USAGE ON SCHEMA %[1]s TO %[7]s; GRANT SELECT ON %[1]s.%[2]s TO %[7]s; GRANT SELECT ON public.t TO %[7]s`,
		q(schema), q(tbl), q(pk), q(cursor), q(title), q(body), q(role)))
	sink := sinktest.NewServer()
	t.Cleanup(sink.Close)
	s.connector(t, "pg-quoted", s.pg, nil)
	start := time.Now()
	s.connection(t, "quoted", "pg-quoted", secretOf(role), cursorMode(
		v1alpha1.PostgreSQLTable{Name: name, CursorColumn: cursor, TitleColumn: title, TextColumns: []string{body}}),
		sink.URL(), 10, nil)
	g.Eventually(func() int { return sink.Check().Distinct }, timeout, poll).Should(Equal(30))
	s.synced(t, "quoted", start)
	var seven rowEvent
	for _, e := range rowEvents(t, sink) {
		g.Expect(e.Container).To(Equal(name))
		g.Expect(e.Title).To(Equal(fmt.Sprintf("Order %d", num(e.Fields, pk))))
		if num(e.Fields, pk) == 7 {
			seven = e
		}
	}
	g.Expect(seven.ID).NotTo(BeEmpty(), "row 7 delivered")
	g.Expect(seven.Fields).To(HaveKeyWithValue(body, "the zeppelin order"))

	type found struct {
		Items []struct {
			ID        string `json:"id"`
			Title     string `json:"title"`
			Container string `json:"container"`
		} `json:"items"`
		Sources []struct {
			Name, Status, Message string
		} `json:"sources"`
	}
	search := func(text string) found {
		var f found
		s.call(t, http.MethodGet, "/api/v1/search?connections="+tenant+"/quoted&q="+url.QueryEscape(text), nil, http.StatusOK, &f)
		return f
	}
	for _, text := range []string{`'); DROP TABLE t; --`, `"; DROP TABLE x; --`, `% \ _ ' "`} {
		f := search(text)
		g.Expect(f.Sources).To(HaveLen(1))
		g.Expect(f.Sources[0].Status).To(Equal("ok"), "search %q: %s", text, f.Sources[0].Message)
	}
	g.Expect(queryInt(t, s.pg, `SELECT count(*) FROM public.t`)).To(BeEquivalentTo(1), "public.t intact")
	g.Expect(queryInt(t, s.pg, `SELECT count(*) FROM public.x`)).To(BeEquivalentTo(1), "public.x intact")
	g.Expect(queryInt(t, s.pg, fmt.Sprintf(`SELECT count(*) FROM %s.%s`, q(schema), q(tbl)))).To(BeEquivalentTo(30), "the synced table intact")
	f := search("zeppelin")
	g.Expect(f.Sources).To(HaveLen(1))
	g.Expect(f.Sources[0].Status).To(Equal("ok"), f.Sources[0].Message)
	g.Expect(f.Items).To(HaveLen(1), "the one row whose text holds the word")
	g.Expect(f.Items[0].ID).To(Equal(seven.ID))
	g.Expect(f.Items[0].Container).To(Equal(name))

	base := "/api/v1/namespaces/" + tenant + "/connections/quoted/items"
	var item struct {
		ID, Kind, Title, Container string
		Fields                     map[string]any
	}
	s.call(t, http.MethodGet, base+"/"+url.PathEscape(seven.ID), nil, http.StatusOK, &item)
	g.Expect(item.ID).To(Equal(seven.ID))
	g.Expect(item.Kind).To(Equal("row"))
	g.Expect(item.Title).To(Equal("Order 7"))
	g.Expect(item.Container).To(Equal(name))
	g.Expect(num(item.Fields, pk)).To(BeEquivalentTo(7))
	g.Expect(item.Fields).To(HaveKeyWithValue(body, "the zeppelin order"))

	var problem struct{ Code string }
	s.call(t, http.MethodPost, base, map[string]string{"container": name, "title": "new row"}, http.StatusNotImplemented, &problem)
	g.Expect(problem.Code).To(Equal("NOT_SUPPORTED"))
}

// quoteIdent quotes a PostgreSQL identifier (the test's own SQL).
func quoteIdent(s string) string { return pgx.Identifier{s}.Sanitize() }
