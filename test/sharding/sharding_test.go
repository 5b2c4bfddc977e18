// Package sharding_test runs two shards of the operator (internal/manager.New, each with
// its own --watch-label-selector and Lease) against one envtest API server, as the
// operator's ServiceAccount, and checks what docs/sharding.md promises: each Connection is
// reconciled, probed and synced by exactly one shard, a Connection no shard selects is
// left alone, the Connector counts cover every Connection, and the HTTP API of either
// shard serves every Connection.
package sharding_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"go.uber.org/zap/zapcore"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
	"github.com/unified-connectors/connector-operator/controllers"
	"github.com/unified-connectors/connector-operator/internal/api"
	"github.com/unified-connectors/connector-operator/internal/manager"
	"github.com/unified-connectors/connector-operator/internal/syncer"
	"github.com/unified-connectors/connector-operator/internal/syncer/sinktest"
	"github.com/unified-connectors/connector-operator/internal/testenv"
)

const (
	tenant       = "tenant"
	usersNS      = "api-users"
	issuesPerRun = 120
	// probeWord is in one issue of each shard's site, so a search shows which shards'
	// Connections it reached.
	probeWord = "shardprobe"
	timeout   = 60 * time.Second
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
	os.Exit(m.Run())
}

// shard is one running manager.
type shard struct {
	name    string // its label value and its User-Agent, hence its field manager
	mgr     ctrl.Manager
	baseURL string // its HTTP API
	stop    func()
}

func startShard(t testing.TB, env *testenv.Environment, name string) *shard {
	t.Helper()
	return startInstance(t, env, name, manager.ShardLabel+"="+name, 0)
}

// startInstance runs a manager with the given selector and reconcile workers (0: the
// default) until the test ends, and waits until it leads its Lease.
func startInstance(t testing.TB, env *testenv.Environment, name, selector string, workers int) *shard {
	t.Helper()
	cfg := rest.CopyConfig(env.ManagerConfig)
	// The API server names the field manager of every write after the User-Agent:
	// managedFields then say which shard wrote a Connection's status.
	cfg.UserAgent = name
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := manager.New(cfg, manager.Options{
		Namespace: env.Namespace, MetricsBindAddress: "0", HealthProbeBindAddress: "0",
		LeaderElection:          true,
		WatchLabelSelector:      selector,
		AllowInsecureVendorURLs: true,
		Controllers: controllers.ControllerOptions{SkipNameValidation: true, MaxConcurrentReconciles: workers,
			RetryMinBackoff: 100 * time.Millisecond, RetryMaxBackoff: time.Second},
		API: api.Options{Listener: ln},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(ctx); err != nil {
			t.Errorf("shard %s: %v", name, err)
		}
	}()
	s := &shard{name: name, mgr: mgr, baseURL: "http://" + ln.Addr().String()}
	s.stop = func() { cancel(); <-done }
	t.Cleanup(s.stop)
	select {
	case <-mgr.Elected():
	case <-time.After(timeout):
		t.Fatalf("shard %s was not elected leader of its own Lease within %s", name, timeout)
	}
	return s
}

func TestTwoShards(t *testing.T) {
	g := NewWithT(t)
	env, err := testenv.Start(testenv.Options{Scheme: manager.Scheme, Namespaces: []string{tenant, usersNS}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	ctx := context.Background()
	k8s := env.Client

	// One fake site per shard, and one for a Connection that no shard selects.
	acct := atlassiantest.Account{ID: "acct-shard", DisplayName: "Shard Bot", Email: "bot@example.com", APIToken: "token-sharding-0123456789"}
	sites := map[string]*atlassiantest.Server{}
	for i, name := range []string{"shard1", "shard2", "none"} {
		fake := atlassiantest.NewServer()
		t.Cleanup(fake.Close)
		fake.AddAccount(acct)
		fake.SeedJira(atlassiantest.JiraSeed{Projects: 1, IssuesPerProject: issuesPerRun - 1, Seed: int64(i + 1), Start: time.Now().Add(-10 * 24 * time.Hour)})
		fake.CreateIssue("PRJA", "The "+probeWord+" of "+name, "Which shard serves this?", time.Now().Add(-24*time.Hour))
		sites[name] = fake
		must(t, k8s.Create(ctx, &v1alpha1.Connector{
			ObjectMeta: metav1.ObjectMeta{Name: "jira-" + name},
			Spec: v1alpha1.ConnectorSpec{Type: v1alpha1.ConnectorTypeJira, BaseURL: v1alpha1.EndpointURL(fake.URL()),
				RateLimit: v1alpha1.RateLimitSpec{RequestsPerSecond: 1000, Burst: 1000}},
		}))
	}
	must(t, k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: "creds"},
		StringData: map[string]string{"email": acct.Email, "apiToken": acct.APIToken}}))
	hookSecret := []byte("webhook-secret-sharding-0123")
	must(t, k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: "hook"},
		Data: map[string][]byte{"secret": hookSecret}}))

	// Two Connections per shard and one unlabelled, each with a sink of its own.
	type connection struct {
		key   client.ObjectKey
		shard string // "" when no shard selects it
		sink  *sinktest.Sink
	}
	var conns []connection
	for _, c := range []struct{ name, shard, site string }{
		{"a1", "shard1", "shard1"}, {"a2", "shard1", "shard1"},
		{"b1", "shard2", "shard2"}, {"b2", "shard2", "shard2"},
		{"c1", "", "none"},
	} {
		sink := sinktest.NewServer()
		t.Cleanup(sink.Close)
		obj := &v1alpha1.Connection{
			ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: c.name},
			Spec: v1alpha1.ConnectionSpec{
				ConnectorRef: v1alpha1.ConnectorReference{Name: "jira-" + c.site},
				Auth:         v1alpha1.AuthSpec{Method: v1alpha1.AuthMethodAPIToken, SecretRef: v1alpha1.SecretReference{Name: "creds"}},
				Sync: &v1alpha1.SyncSpec{Interval: &metav1.Duration{Duration: time.Hour},
					Sink: &v1alpha1.SinkSpec{URL: v1alpha1.URL(sink.URL()), BatchSize: 50}},
			},
		}
		if c.shard != "" {
			obj.Labels = map[string]string{manager.ShardLabel: c.shard}
		}
		if c.name == "b1" {
			obj.Spec.Webhook = &v1alpha1.WebhookSpec{SecretRef: v1alpha1.SecretReference{Name: "hook"}}
		}
		must(t, k8s.Create(ctx, obj))
		conns = append(conns, connection{key: client.ObjectKeyFromObject(obj), shard: c.shard, sink: sink})
	}
	get := func(key client.ObjectKey) *v1alpha1.Connection {
		var c v1alpha1.Connection
		must(t, k8s.Get(ctx, key, &c))
		return &c
	}
	syncedAll := func(shardName string) func(g Gomega) {
		return func(g Gomega) {
			for _, c := range conns {
				if c.shard != shardName {
					continue
				}
				obj := get(c.key)
				g.Expect(meta.IsStatusConditionTrue(obj.Status.Conditions, v1alpha1.ReadyCondition)).To(BeTrue(), "%s Ready: %+v", c.key, obj.Status.Conditions)
				g.Expect(meta.IsStatusConditionTrue(obj.Status.Conditions, v1alpha1.SyncedCondition)).To(BeTrue(), "%s Synced: %+v", c.key, obj.Status.Conditions)
				g.Expect(c.sink.Check().Distinct).To(Equal(issuesPerRun), "%s delivered", c.key)
			}
		}
	}
	untouched := func(site string, names ...string) {
		t.Helper()
		g.Expect(sites[site].Requests()).To(BeEmpty(), "nobody may call the site of %s", site)
		for _, name := range names {
			st := get(client.ObjectKey{Namespace: tenant, Name: name}).Status
			g.Expect(st.Conditions).To(BeEmpty(), "%s must have no status: no shard running selects it", name)
			g.Expect(st.Probe).To(BeNil(), "%s must not be probed", name)
		}
	}

	// Phase 1: shard1 alone. Its Connections become Ready and synced; shard2's and the
	// unlabelled one (whose create events it received just the same) are not touched.
	shard1 := startShard(t, env, "shard1")
	g.Eventually(syncedAll("shard1"), timeout, 100*time.Millisecond).Should(Succeed())
	untouched("shard2", "b1", "b2")
	untouched("none", "c1")

	// Phase 2: shard2 joins, with a Lease of its own.
	shard2 := startShard(t, env, "shard2")
	g.Eventually(syncedAll("shard2"), timeout, 100*time.Millisecond).Should(Succeed())
	untouched("none", "c1")
	var leases coordinationv1.LeaseList
	must(t, k8s.List(ctx, &leases, client.InNamespace(env.Namespace)))
	holders := map[string]string{}
	for _, l := range leases.Items {
		holders[l.Name] = ptr.Deref(l.Spec.HolderIdentity, "")
	}
	for _, s := range []*shard{shard1, shard2} {
		sel, err := manager.WatchSelector(manager.ShardLabel + "=" + s.name)
		must(t, err)
		g.Expect(holders).To(HaveKeyWithValue(manager.LeaseName("", sel), Not(BeEmpty())), "each shard leads its own Lease")
	}

	// Every item once, in each sink; only the owning shard ever wrote a Connection's status.
	for _, c := range conns {
		rep := c.sink.Check()
		if c.shard == "" {
			g.Expect(rep.Deliveries).To(BeZero(), "%s: no shard syncs it", c.key)
			continue
		}
		g.Expect(rep).To(Equal(sinktest.Report{Distinct: issuesPerRun, Deliveries: issuesPerRun}), "%s: exactly once, in order", c.key)
		g.Expect(statusWriters(get(c.key))).To(Equal([]string{c.shard}), "%s: status written by its shard only", c.key)
	}

	// The Connector counts see every Connection, the unlabelled one included.
	g.Eventually(func(g Gomega) {
		for site, want := range map[string][2]int32{"shard1": {2, 2}, "shard2": {2, 2}, "none": {1, 0}} {
			var cnr v1alpha1.Connector
			g.Expect(k8s.Get(ctx, client.ObjectKey{Name: "jira-" + site}, &cnr)).To(Succeed())
			g.Expect([2]int32{cnr.Status.Connections, cnr.Status.ReadyConnections}).To(Equal(want), "Connector jira-%s: connections, ready", site)
		}
	}, timeout, 100*time.Millisecond).Should(Succeed())

	// The HTTP API of either shard serves every Connection: lists, reads and searches
	// across both shards (c1 has no verdict on its credential, so search leaves it out).
	token := reader(t, g, env)
	for _, s := range []*shard{shard1, shard2} {
		list := getAPI(t, s, token, "/api/v1/namespaces/"+tenant+"/connections")
		g.Expect(names(list)).To(ConsistOf("a1", "a2", "b1", "b2", "c1"), "shard %s lists every Connection", s.name)
		for _, other := range []string{"a1", "b1"} {
			one := getAPI(t, s, token, "/api/v1/namespaces/"+tenant+"/connections/"+other)
			g.Expect(one).To(And(HaveKeyWithValue("name", other), HaveKeyWithValue("ready", true)), "shard %s reads %s", s.name, other)
		}
		found := getAPI(t, s, token, "/api/v1/search?q="+probeWord+"&namespaces="+tenant)
		g.Expect(sourcesOK(found)).To(ConsistOf("a1", "a2", "b1", "b2"), "shard %s searches every servable Connection: %v", s.name, found["sources"])
		g.Expect(itemConnections(found)).To(ConsistOf("a1", "a2", "b1", "b2"), "shard %s finds the probe issue in both shards' sites", s.name)
	}

	// A webhook for b1 (shard2's) received by shard1's API reaches shard2, which syncs it.
	issue := sites["shard2"].JiraIssueKeys("PRJA")[3]
	sites["shard2"].UpdateIssue(issue, time.Now())
	info, _ := sites["shard2"].JiraIssue(issue)
	body := fmt.Appendf(nil, `{"webhookEvent":"jira:issue_updated","timestamp":%d,"issue":{"id":%q,"key":%q,"fields":{"project":{"key":"PRJA"}}}}`,
		time.Now().UnixMilli(), info.ID, issue)
	req, err := http.NewRequest(http.MethodPost, shard1.baseURL+"/webhooks/v1/namespaces/"+tenant+"/connections/b1", bytes.NewReader(body))
	must(t, err)
	req.Header.Set("X-Hub-Signature", syncer.Sign(hookSecret, body))
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	_ = resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(http.StatusAccepted), "shard1 receives a webhook for shard2's Connection")
	b1Sink := conns[2].sink
	g.Eventually(func() bool {
		for _, it := range b1Sink.Items() {
			if it.ID == info.ID && it.UpdatedAt.Equal(info.Updated) {
				return true
			}
		}
		return false
	}, timeout, 100*time.Millisecond).Should(BeTrue(), "shard2 syncs the issue the webhook named")
	g.Expect(statusWriters(get(conns[2].key))).To(Equal([]string{"shard2"}))

	// Phase 3: shard1 stops. A request on a1 (shard1's) and on b1 (shard2's): shard2
	// acknowledges b1's and never touches a1, though both reached it in one event stream.
	shard1.stop()
	before := len(sites["shard1"].Requests())
	at := time.Now().Format(time.RFC3339Nano)
	for _, name := range []string{"a1", "b1"} {
		c := get(client.ObjectKey{Namespace: tenant, Name: name})
		patch := client.MergeFrom(c.DeepCopy())
		c.Annotations = map[string]string{v1alpha1.RequestedAtAnnotation: at}
		must(t, k8s.Patch(ctx, c, patch))
	}
	g.Eventually(func() string {
		return get(client.ObjectKey{Namespace: tenant, Name: "b1"}).Status.LastHandledReconcileAt
	}, timeout, 100*time.Millisecond).Should(Equal(at))
	g.Expect(get(client.ObjectKey{Namespace: tenant, Name: "a1"}).Status.LastHandledReconcileAt).NotTo(Equal(at), "shard2 handled shard1's request")
	g.Expect(sites["shard1"].Requests()).To(HaveLen(before), "shard2 called the site of shard1's Connections")

	// Relabelled to shard2, a2 moves: shard2 reconciles it and its status says so.
	a2 := get(client.ObjectKey{Namespace: tenant, Name: "a2"})
	patch := client.MergeFrom(a2.DeepCopy())
	a2.Labels[manager.ShardLabel] = "shard2"
	must(t, k8s.Patch(ctx, a2, patch))
	g.Eventually(func() []string { return statusWriters(get(client.ObjectKeyFromObject(a2))) }, timeout, 100*time.Millisecond).
		Should(ContainElement("shard2"), "shard2 takes a relabelled Connection")
	g.Expect(meta.IsStatusConditionTrue(get(client.ObjectKeyFromObject(a2)).Status.Conditions, v1alpha1.ReadyCondition)).To(BeTrue())

	shard2.stop()
	g.Expect(env.Refused()).To(BeEmpty(), "the API server refused the operator's ServiceAccount")
}

// statusWriters are the field managers of a Connection's status subresource, sorted.
func statusWriters(c *v1alpha1.Connection) []string {
	var out []string
	for _, mf := range c.ManagedFields {
		if mf.Subresource == "status" && !slices.Contains(out, mf.Manager) {
			out = append(out, mf.Manager)
		}
	}
	slices.Sort(out)
	return out
}

// reader is the token of a ServiceAccount that may list, get and read the data of the
// tenant's Connections.
func reader(t *testing.T, _ Gomega, env *testenv.Environment) string {
	t.Helper()
	token, err := env.Caller(context.Background(), usersNS, "reader", map[string][]rbacv1.PolicyRule{tenant: {
		{APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"connections"}, Verbs: []string{"get", "list"}},
		{APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"connections/data"}, Verbs: []string{"get"}},
	}})
	must(t, err)
	return token
}

// getAPI GETs path from a shard's API and returns the data of an ok envelope.
func getAPI(t *testing.T, s *shard, token, path string) map[string]any {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.baseURL+path, nil)
	must(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	must(t, err)
	var env struct {
		Status string         `json:"status"`
		Data   map[string]any `json:"data"`
	}
	if err := json.Unmarshal(b, &env); err != nil || resp.StatusCode != http.StatusOK || env.Status != "ok" {
		t.Fatalf("shard %s GET %s: %d %s", s.name, path, resp.StatusCode, b)
	}
	return env.Data
}

func names(list map[string]any) []string {
	var out []string
	items, _ := list["items"].([]any)
	for _, it := range items {
		m, _ := it.(map[string]any)
		out = append(out, fmt.Sprint(m["name"]))
	}
	return out
}

// sourcesOK names the search sources that answered ok.
func sourcesOK(found map[string]any) []string {
	var out []string
	sources, _ := found["sources"].([]any)
	for _, s := range sources {
		m, _ := s.(map[string]any)
		if m["status"] == "ok" {
			out = append(out, fmt.Sprint(m["name"]))
		}
	}
	return out
}

// itemConnections names the Connection of each item found.
func itemConnections(found map[string]any) []string {
	var out []string
	items, _ := found["items"].([]any)
	for _, it := range items {
		m, _ := it.(map[string]any)
		c, _ := m["connection"].(map[string]any)
		out = append(out, fmt.Sprint(c["name"]))
	}
	return out
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
