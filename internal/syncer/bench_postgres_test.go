package syncer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/internal/pgtest"
	"github.com/unified-connectors/connector-operator/internal/syncer/sinktest"
)

var (
	pgOnce   sync.Once
	pgServer *pgtest.Server
	pgErr    error
)

// postgres starts the package's PostgreSQL server on first use (benchmarks only).
func postgres(b *testing.B) *pgtest.Server {
	b.Helper()
	pgOnce.Do(func() { pgServer, pgErr = pgtest.New(pgtest.Options{Databases: []string{"bench"}}) })
	if pgErr != nil {
		b.Fatal(pgErr)
	}
	return pgServer
}

// pgBench is one benchmark's database role, Connector and namespace.
type pgBench struct {
	pg        *pgtest.Server
	connector string
	ns        string
	role      string
}

// newPGBench creates a role owning fresh tables (ownership is what CREATE PUBLICATION
// needs; REPLICATION what the slot needs), a Connector verifying the server with its CA,
// and a namespace holding the role's Secret.
func newPGBench(b *testing.B, tables, rows int) *pgBench {
	b.Helper()
	controlPlane(b)
	ctx := context.Background()
	pg := postgres(b)
	s := &pgBench{pg: pg, role: "bench_" + rand.String(6), ns: "sync-pg-" + rand.String(6)}
	password := "pw-" + rand.String(20)
	must(b, pg.CreateRole(ctx, s.role, password, "REPLICATION"))
	must(b, pg.Exec(ctx, "bench", fmt.Sprintf("CREATE SCHEMA %s AUTHORIZATION %s", s.role, s.role)))
	for i := range tables {
		name := fmt.Sprintf("%s.t%d", s.role, i)
		must(b, pg.Exec(ctx, "bench", fmt.Sprintf(`CREATE TABLE %s (id bigint PRIMARY KEY, title text NOT NULL, body text,
			updated_at timestamptz NOT NULL DEFAULT clock_timestamp())`, name)))
		must(b, pg.Exec(ctx, "bench", fmt.Sprintf(`INSERT INTO %s (id, title, body) SELECT g, 'row ' || g, repeat('text ', 20) FROM generate_series(1, %d) g`, name, rows)))
		must(b, pg.Exec(ctx, "bench", fmt.Sprintf("ALTER TABLE %s OWNER TO %s", name, s.role)))
	}
	must(b, k8s.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: operatorNamespace, Name: "ca-" + strings.ReplaceAll(s.role, "_", "-")},
		Data: map[string]string{"ca.crt": string(pg.CAPEM)}}))
	cnr := &v1alpha1.Connector{ObjectMeta: metav1.ObjectMeta{Name: "pg-" + rand.String(6)},
		Spec: v1alpha1.ConnectorSpec{Type: v1alpha1.ConnectorTypePostgreSQL, BaseURL: v1alpha1.EndpointURL(pg.URL("bench")),
			AuthMethods: []v1alpha1.AuthMethod{v1alpha1.AuthMethodPassword},
			PostgreSQL:  &v1alpha1.PostgreSQLConnectorSpec{CARef: &v1alpha1.KeyReference{Kind: "ConfigMap", Name: "ca-" + strings.ReplaceAll(s.role, "_", "-"), Key: "ca.crt"}}}}
	must(b, k8s.Create(ctx, cnr))
	b.Cleanup(func() { _ = k8s.Delete(context.Background(), cnr) })
	s.connector = cnr.Name
	must(b, k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: s.ns}}))
	must(b, k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: "db"},
		StringData: map[string]string{"username": s.role, "password": password}}))
	return s
}

// connection creates a Connection of mode over the role's tables, syncing to sinkURL.
func (s *pgBench) connection(b *testing.B, mode string, tables int, sinkURL string) client.ObjectKey {
	b.Helper()
	spec := &v1alpha1.PostgreSQLConnectionSpec{Mode: mode}
	for i := range tables {
		spec.Tables = append(spec.Tables, v1alpha1.PostgreSQLTable{Name: fmt.Sprintf("%s.t%d", s.role, i),
			CursorColumn: "updated_at", TitleColumn: "title", TextColumns: []string{"title", "body"}})
	}
	conn := &v1alpha1.Connection{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: "conn-" + rand.String(6)},
		Spec: v1alpha1.ConnectionSpec{
			ConnectorRef: v1alpha1.ConnectorReference{Name: s.connector},
			Auth:         v1alpha1.AuthSpec{Method: v1alpha1.AuthMethodPassword, SecretRef: v1alpha1.SecretReference{Name: "db"}},
			PostgreSQL:   spec,
			Sync: &v1alpha1.SyncSpec{Interval: &metav1.Duration{Duration: time.Hour},
				Sink: &v1alpha1.SinkSpec{URL: v1alpha1.URL(sinkURL), BatchSize: 100}},
		},
	}
	must(b, k8s.Create(context.Background(), conn))
	b.Cleanup(func() {
		// The finalizer drops the slot once the manager has seen the deletion.
		_ = k8s.Delete(context.Background(), conn)
	})
	return client.ObjectKeyFromObject(conn)
}

// BenchmarkSyncPipelinePostgreSQL is BenchmarkSyncPipeline with a PostgreSQL source: three
// tables of 4,000 rows each from a real server, in both sync modes (logicalReplication's
// run is its initial snapshot). The vendor-bound figure is not measured here (the server
// is on loopback); compare items/s with BenchmarkSyncPipeline's Jira figure.
func BenchmarkSyncPipelinePostgreSQL(b *testing.B) {
	const tables, rows = 3, 4000
	for _, mode := range []string{v1alpha1.PostgreSQLModeCursorColumn, v1alpha1.PostgreSQLModeLogicalReplication} {
		b.Run("mode="+mode, func(b *testing.B) {
			s := newPGBench(b, tables, rows)
			startManager(b)
			measurePipeline(b, tables*rows, 0, func(sinkURL string) client.ObjectKey {
				return s.connection(b, mode, tables, sinkURL)
			})
		})
	}
}

// BenchmarkReplicationLag measures, for a logicalReplication Connection that has caught
// up, the time from each insert's commit to the sink's receipt of its row, while a writer
// commits 1,000 single-row transactions a second for 10 s.
func BenchmarkReplicationLag(b *testing.B) {
	const rate, seconds = 1000, 10
	for range b.N {
		s := newPGBench(b, 1, 10)
		startManager(b)
		sink := sinktest.NewServer()
		b.Cleanup(sink.Close)
		var mu sync.Mutex
		received := map[string]time.Time{}
		sink.OnBatch(func(events []sinktest.Event) {
			now := time.Now()
			mu.Lock()
			defer mu.Unlock()
			for _, e := range events {
				var it struct {
					Fields map[string]any `json:"fields"`
				}
				if json.Unmarshal(e.Data, &it) == nil {
					if id, ok := it.Fields["id"]; ok {
						received[fmt.Sprint(id)] = now
					}
				}
			}
		})
		key := s.connection(b, v1alpha1.PostgreSQLModeLogicalReplication, 1, sink.URL())
		waitSynced(b, key)

		ctx := context.Background()
		conn, err := s.pg.SuperConn(ctx, "bench")
		must(b, err)
		committed := map[string]time.Time{}
		tick := time.NewTicker(time.Second / rate)
		start := time.Now()
		for id := 1000; time.Since(start) < seconds*time.Second; id++ {
			<-tick.C
			if _, err := conn.Exec(ctx, fmt.Sprintf("INSERT INTO %s.t0 (id, title) VALUES ($1, 'lag')", s.role), id); err != nil {
				b.Fatal(err)
			}
			committed[fmt.Sprint(id)] = time.Now()
		}
		tick.Stop()
		writeRate := float64(len(committed)) / time.Since(start).Seconds()
		_ = conn.Close(ctx)
		deadline := time.Now().Add(time.Minute)
		var lags []time.Duration
		for {
			mu.Lock()
			lags = lags[:0]
			for id, at := range committed {
				if got, ok := received[id]; ok {
					lags = append(lags, got.Sub(at))
				}
			}
			mu.Unlock()
			if len(lags) == len(committed) || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if len(lags) != len(committed) {
			b.Fatalf("the sink received %d of %d rows", len(lags), len(committed))
		}
		slices.Sort(lags)
		b.ReportMetric(writeRate, "writes/s")
		b.ReportMetric(float64(lags[len(lags)/2].Milliseconds()), "p50_lag_ms")
		b.ReportMetric(float64(lags[len(lags)*99/100].Milliseconds()), "p99_lag_ms")
		b.ReportMetric(float64(lags[len(lags)-1].Milliseconds()), "max_lag_ms")
	}
}

// waitSynced waits until the Connection's Synced condition is True.
func waitSynced(b *testing.B, key client.ObjectKey) {
	b.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		for _, c := range get(b, key).Status.Conditions {
			if c.Type == v1alpha1.SyncedCondition && c.Status == metav1.ConditionTrue {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.Fatalf("%s did not sync", key)
}
