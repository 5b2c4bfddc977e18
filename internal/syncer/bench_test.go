package syncer_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/connectors/atlassian"
	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
	"github.com/unified-connectors/connector-operator/connectors/jira"
	"github.com/unified-connectors/connector-operator/internal/egress"
	"github.com/unified-connectors/connector-operator/internal/syncer/sinktest"
	"github.com/unified-connectors/connector-operator/internal/vendorhttp"
)

// BenchmarkSyncPipeline measures items per second delivered from the fake vendor into a
// local sink by the whole operator (reconciler, engine, vendor client, sink posts, status
// writes), next to the vendor-bound rate: the same Changes walk, containers in parallel,
// measured directly against the same fake in the same run. It also reports status writes
// per 1,000 items.
func BenchmarkSyncPipeline(b *testing.B) {
	for _, latency := range []time.Duration{0, 50 * time.Millisecond} {
		b.Run(fmt.Sprintf("vendorLatency=%s", latency), func(b *testing.B) {
			const projects, perProject = 3, 4000
			s := newSite(b, "UTC")
			s.fake.SeedJira(atlassiantest.JiraSeed{Projects: projects, IssuesPerProject: perProject, Seed: 11, Start: time.Now().Add(-30 * 24 * time.Hour)})
			s.fake.SetFault(atlassiantest.Fault{Latency: latency})
			startManager(b)

			vendorRate := vendorBoundRate(b, s, projects)
			measurePipeline(b, projects*perProject, vendorRate, func(sinkURL string) client.ObjectKey {
				return s.connection(s.jira, func(spec *v1alpha1.ConnectionSpec) { spec.Sync.Sink.URL = v1alpha1.URL(sinkURL) })
			})
		})
	}
}

// measurePipeline times b.N syncs of a new Connection (connect creates it syncing to the
// given sink) that each deliver want items, and reports the rates next to vendorRate.
func measurePipeline(b *testing.B, want int, vendorRate float64, connect func(sinkURL string) client.ObjectKey) {
	b.Helper()
	b.ResetTimer()
	var total, steady time.Duration
	var writes float64
	for range b.N {
		sink := sinktest.NewServer()
		before := counter(b, "connector_sync_status_writes_total")
		var mu sync.Mutex
		var first, last time.Time
		sink.OnBatch(func([]sinktest.Event) {
			mu.Lock()
			if first.IsZero() {
				first = time.Now()
			}
			last = time.Now()
			mu.Unlock()
		})
		start := time.Now()
		key := connect(sink.URL())
		for {
			c := meta.FindStatusCondition(get(b, key).Status.Conditions, v1alpha1.SyncedCondition)
			if c != nil && c.Status == "True" {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if n := sink.Check().Distinct; n != want {
			b.Fatalf("delivered %d items, want %d", n, want)
		}
		mu.Lock()
		total += last.Sub(start)
		steady += last.Sub(first)
		mu.Unlock()
		writes += counter(b, "connector_sync_status_writes_total") - before
		sink.Close()
	}
	items := float64(want * b.N)
	pipeline := items / total.Seconds()
	// End to end counts from the Connection's creation (reconcile, probe, container
	// listing included); steady counts from the first batch to the last.
	steadyRate := items / steady.Seconds()
	b.ReportMetric(pipeline, "items/s")
	b.ReportMetric(steadyRate, "steady_items/s")
	if vendorRate > 0 {
		b.ReportMetric(vendorRate, "vendor_items/s")
		b.ReportMetric(100*pipeline/vendorRate, "%_of_vendor")
		b.ReportMetric(100*steadyRate/vendorRate, "steady_%_of_vendor")
	}
	b.ReportMetric(1000*writes/items, "status_writes/1000items")
}

// vendorBoundRate walks every project's Changes directly, in parallel, with a client as
// fast as the one the engine uses, and returns the items per second the fake serves.
func vendorBoundRate(b *testing.B, s *site, projects int) float64 {
	b.Helper()
	client, err := jira.Provider{}.NewClient(connectors.Config{
		BaseURL:     s.fake.URL(),
		HTTP:        vendorhttp.New(vendorhttp.Options{ConnectorType: "jira", RequestsPerSecond: 500, Burst: 500, Egress: egress.Vendor.WithAllowInsecure(true)}),
		Credentials: atlassian.APITokenCredentials(s.account.Email, s.account.APIToken),
	})
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var items int
	start := time.Now()
	for p := range projects {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cursor := ""
			for {
				page, err := client.Changes(context.Background(), connectors.ChangeQuery{
					Container: connectors.Container{Key: fmt.Sprintf("PRJ%c", 'A'+p)}, Cursor: cursor, Limit: 100})
				if err != nil {
					b.Error(err)
					return
				}
				mu.Lock()
				items += len(page.Items)
				mu.Unlock()
				if page.NextCursor == "" {
					return
				}
				cursor = page.NextCursor
			}
		}()
	}
	wg.Wait()
	return float64(items) / time.Since(start).Seconds()
}

// counter reads a counter from controller-runtime's metrics registry.
func counter(b *testing.B, name string) float64 {
	b.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name {
			var sum float64
			for _, m := range f.GetMetric() {
				sum += value(m)
			}
			return sum
		}
	}
	return 0
}

func value(m *dto.Metric) float64 {
	if c := m.GetCounter(); c != nil {
		return c.GetValue()
	}
	return 0
}
