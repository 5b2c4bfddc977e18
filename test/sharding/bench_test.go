package sharding_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
	"github.com/unified-connectors/connector-operator/internal/manager"
	"github.com/unified-connectors/connector-operator/internal/testenv"
)

// benchConnections is how many Connections each layout brings to Ready; half are
// labelled for one shard, half for the other.
const benchConnections = 300

// BenchmarkShards measures, against one API server and a vendor answering in 100 ms, the
// time from the first create to every Connection Ready for: one instance (4 workers), one
// instance with 8 workers, and two shards of 4 workers each. It reports seconds and vendor
// calls per Connection for each (docs/sharding.md quotes the figures).
func BenchmarkShards(b *testing.B) {
	env, err := testenv.Start(testenv.Options{Scheme: manager.Scheme})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = env.Stop() })
	ctx := context.Background()
	k8s := env.Client
	acct := atlassiantest.Account{ID: "acct-bench", DisplayName: "Bench Bot", Email: "bench@example.com", APIToken: "token-bench-0123456789"}
	fake := atlassiantest.NewServer()
	b.Cleanup(fake.Close)
	fake.AddAccount(acct)
	fake.SetFault(atlassiantest.Fault{Latency: 100 * time.Millisecond})
	must(b, k8s.Create(ctx, &v1alpha1.Connector{
		ObjectMeta: metav1.ObjectMeta{Name: "jira"},
		Spec: v1alpha1.ConnectorSpec{Type: v1alpha1.ConnectorTypeJira, BaseURL: v1alpha1.EndpointURL(fake.URL()),
			RateLimit: v1alpha1.RateLimitSpec{RequestsPerSecond: 1000, Burst: 1000}},
	}))
	// Each layout has shard names of its own, so no instance sees another layout's
	// Connections.
	both := manager.ShardLabel + " in (%[1]s-shard1,%[1]s-shard2)"
	layouts := []struct {
		name      string
		instances []struct {
			selector string
			workers  int
		}
	}{
		{"one-instance-4-workers", []struct {
			selector string
			workers  int
		}{{both, 4}}},
		{"one-instance-8-workers", []struct {
			selector string
			workers  int
		}{{both, 8}}},
		{"two-shards-4-workers-each", []struct {
			selector string
			workers  int
		}{{manager.ShardLabel + "=%[1]s-shard1", 4}, {manager.ShardLabel + "=%[1]s-shard2", 4}}},
	}
	for _, l := range layouts {
		b.Run(l.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				ns := fmt.Sprintf("%s-%d", l.name, i)
				must(b, k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
				must(b, k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "creds"},
					StringData: map[string]string{"email": acct.Email, "apiToken": acct.APIToken}}))
				var running []*shard
				for j, in := range l.instances {
					running = append(running, startInstance(b, env, fmt.Sprintf("%s-%d", ns, j), fmt.Sprintf(in.selector, ns), in.workers))
				}
				calls := len(fake.Requests())
				start := time.Now()
				for c := range benchConnections {
					must(b, k8s.Create(ctx, &v1alpha1.Connection{
						ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("c%d", c),
							Labels: map[string]string{manager.ShardLabel: fmt.Sprintf("%s-shard%d", ns, c%2+1)}},
						Spec: v1alpha1.ConnectionSpec{
							ConnectorRef: v1alpha1.ConnectorReference{Name: "jira"},
							Auth:         v1alpha1.AuthSpec{Method: v1alpha1.AuthMethodAPIToken, SecretRef: v1alpha1.SecretReference{Name: "creds"}},
						},
					}))
				}
				for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
					var list v1alpha1.ConnectionList
					must(b, k8s.List(ctx, &list, client.InNamespace(ns)))
					ready := 0
					for _, c := range list.Items {
						if meta.IsStatusConditionTrue(c.Status.Conditions, v1alpha1.ReadyCondition) {
							ready++
						}
					}
					if ready == benchConnections {
						break
					}
					if time.Now().After(deadline) {
						b.Fatalf("%s: %d of %d Ready after 5 minutes", l.name, ready, benchConnections)
					}
				}
				elapsed := time.Since(start)
				b.ReportMetric(elapsed.Seconds(), "s-to-ready")
				b.ReportMetric(float64(len(fake.Requests())-calls)/benchConnections, "vendor-calls/conn")
				for _, s := range running {
					s.stop()
				}
			}
		})
	}
}
