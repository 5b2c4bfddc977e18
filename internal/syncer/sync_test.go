package syncer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"testing"
	"time"
	_ "time/tzdata"

	. "github.com/onsi/gomega"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
	"github.com/unified-connectors/connector-operator/controllers"
	"github.com/unified-connectors/connector-operator/internal/manager"
	"github.com/unified-connectors/connector-operator/internal/syncer"
	"github.com/unified-connectors/connector-operator/internal/syncer/sinktest"
	"github.com/unified-connectors/connector-operator/internal/testenv"
)

const (
	operatorNamespace = "connector-system"
	persistEvery      = time.Second
)

var (
	// cfg is the manager's config: it acts as the operator's ServiceAccount, which holds
	// only the RBAC config/rbac ships, so a verb the code lacks fails here as in a cluster.
	cfg *rest.Config
	// k8s is a direct admin client, for setting tests up and for assertions.
	k8s client.Client
	// operator is a direct client on cfg, for operator code a test runs without the
	// manager (a WebhookHandler, say).
	operator client.Client
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.Level(zapLevel()))))
	code := m.Run()
	if env != nil {
		_ = env.Stop()
	}
	os.Exit(code)
}

var (
	env     *testenv.Environment
	envOnce sync.Once
	envErr  error
)

// controlPlane starts the package's kube-apiserver on first use, so that unit tests and
// fuzz workers in this package do not pay for one.
func controlPlane(t testing.TB) {
	t.Helper()
	envOnce.Do(func() {
		if env, envErr = testenv.Start(testenv.Options{Namespace: operatorNamespace, Scheme: manager.Scheme}); envErr != nil {
			return
		}
		cfg, k8s = env.ManagerConfig, env.Client
		operator, envErr = client.New(cfg, client.Options{Scheme: manager.Scheme})
	})
	if envErr != nil {
		t.Fatalf("control plane: %v", envErr)
	}
}

// startManager runs the real manager (reconcilers and sync engine) until stop is called
// or the test ends. stop returns once the manager has stopped.
func startManager(t testing.TB) (stop func()) {
	t.Helper()
	return startManagerWith(t, nil)
}

// startManagerWith is startManager with the manager's options adjusted by mutate.
func startManagerWith(t testing.TB, mutate func(*manager.Options)) (stop func()) {
	t.Helper()
	controlPlane(t)
	opts := manager.Options{
		Namespace: operatorNamespace, MetricsBindAddress: "0", HealthProbeBindAddress: "0",
		AllowInsecureVendorURLs: true, SyncPersistEvery: persistEvery,
		Controllers: controllers.ControllerOptions{RetryMinBackoff: 100 * time.Millisecond, RetryMaxBackoff: time.Second,
			SkipNameValidation: true},
	}
	if mutate != nil {
		mutate(&opts)
	}
	mgr, err := manager.New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(ctx); err != nil {
			t.Errorf("manager: %v", err)
		}
	}()
	stop = func() {
		cancel()
		<-done
	}
	refusedBefore := len(env.Refused())
	t.Cleanup(func() {
		stop()
		if refused := env.Refused()[refusedBefore:]; len(refused) > 0 {
			t.Errorf("the API server refused the manager (config/rbac lacks a verb the code needs): %q", refused)
		}
	})
	return stop
}

// site is a fake Atlassian site, a sink, a Connector and a tenant namespace with a valid
// credential Secret.
type site struct {
	t       testing.TB
	fake    *atlassiantest.Server
	sink    *sinktest.Sink
	account atlassiantest.Account
	ns      string
	jira    string // Connector names
	wiki    string
}

func newSite(t testing.TB, timeZone string) *site {
	t.Helper()
	controlPlane(t)
	ctx := context.Background()
	s := &site{t: t, fake: atlassiantest.NewServer(), sink: sinktest.NewServer()}
	t.Cleanup(s.fake.Close)
	t.Cleanup(s.sink.Close)
	s.account = atlassiantest.Account{ID: "acct-" + rand.String(6), DisplayName: "Sync Bot", Email: "bot@example.com",
		TimeZone: timeZone, APIToken: "token-" + rand.String(16)}
	s.fake.AddAccount(s.account)
	for _, typ := range []v1alpha1.ConnectorType{v1alpha1.ConnectorTypeJira, v1alpha1.ConnectorTypeConfluence} {
		cnr := &v1alpha1.Connector{
			ObjectMeta: metav1.ObjectMeta{Name: string(typ) + "-" + rand.String(6)},
			Spec: v1alpha1.ConnectorSpec{Type: typ, BaseURL: v1alpha1.EndpointURL(s.fake.URL()),
				RateLimit: v1alpha1.RateLimitSpec{RequestsPerSecond: 500, Burst: 500}},
		}
		if err := k8s.Create(ctx, cnr); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = k8s.Delete(context.Background(), cnr) })
		if typ == v1alpha1.ConnectorTypeJira {
			s.jira = cnr.Name
		} else {
			s.wiki = cnr.Name
		}
	}
	s.ns = "sync-" + rand.String(6)
	must(t, k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: s.ns}}))
	must(t, k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: "creds"},
		StringData: map[string]string{"email": s.account.Email, "apiToken": s.account.APIToken}}))
	return s
}

// connection creates a Connection syncing to the site's sink; mutate adjusts its spec.
func (s *site) connection(connector string, mutate func(*v1alpha1.ConnectionSpec)) client.ObjectKey {
	s.t.Helper()
	conn := &v1alpha1.Connection{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: "conn-" + rand.String(6)},
		Spec: v1alpha1.ConnectionSpec{
			ConnectorRef: v1alpha1.ConnectorReference{Name: connector},
			Auth:         v1alpha1.AuthSpec{Method: v1alpha1.AuthMethodAPIToken, SecretRef: v1alpha1.SecretReference{Name: "creds"}},
			Sync: &v1alpha1.SyncSpec{
				Interval: &metav1.Duration{Duration: time.Hour}, // runs come from the test's triggers
				Sink:     &v1alpha1.SinkSpec{URL: v1alpha1.URL(s.sink.URL()), BatchSize: 100},
			},
		},
	}
	if mutate != nil {
		mutate(&conn.Spec)
	}
	must(s.t, k8s.Create(context.Background(), conn))
	key := client.ObjectKeyFromObject(conn)
	s.t.Cleanup(func() { _ = k8s.Delete(context.Background(), conn) })
	return key
}

func get(t testing.TB, key client.ObjectKey) *v1alpha1.Connection {
	t.Helper()
	var c v1alpha1.Connection
	must(t, k8s.Get(context.Background(), key, &c))
	return &c
}

func synced(t testing.TB, key client.ObjectKey) func() string {
	return func() string {
		c := meta.FindStatusCondition(get(t, key).Status.Conditions, v1alpha1.SyncedCondition)
		if c == nil {
			return ""
		}
		return string(c.Status) + "/" + c.Reason
	}
}

// requestSync asks for an immediate run, as a user would.
func requestSync(t testing.TB, key client.ObjectKey) {
	t.Helper()
	c := get(t, key)
	patch := client.MergeFrom(c.DeepCopy())
	if c.Annotations == nil {
		c.Annotations = map[string]string{}
	}
	c.Annotations[v1alpha1.RequestedAtAnnotation] = time.Now().Format(time.RFC3339Nano)
	must(t, k8s.Patch(context.Background(), c, patch))
}

func itemIDs(items []sinktest.Item) []string {
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = it.ID
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func zapLevel() int8 {
	if os.Getenv("SYNC_TEST_DEBUG") != "" {
		return -2
	}
	return 2 // errors only: the suite moves thousands of items
}

// TestBackfillThenIncremental: 3 projects × 2,000 issues and 2 spaces × 1,000 pages reach
// the sink complete and in update order, then only what changed is delivered.
func TestBackfillThenIncremental(t *testing.T) {
	g := NewWithT(t)
	s := newSite(t, "America/Los_Angeles")
	start := time.Now().Add(-90 * 24 * time.Hour)
	s.fake.SeedJira(atlassiantest.JiraSeed{Projects: 3, IssuesPerProject: 2000, Seed: 1, Start: start})
	s.fake.SeedConfluence(atlassiantest.ConfluenceSeed{Spaces: 2, PagesPerSpace: 1000, Seed: 2, Start: start})
	wikiSink := sinktest.NewServer()
	t.Cleanup(wikiSink.Close)
	startManager(t)

	jira := s.connection(s.jira, nil)
	wiki := s.connection(s.wiki, func(spec *v1alpha1.ConnectionSpec) { spec.Sync.Sink.URL = v1alpha1.URL(wikiSink.URL()) })

	g.Eventually(synced(t, jira), 3*time.Minute, 250*time.Millisecond).Should(Equal("True/Succeeded"))
	g.Eventually(synced(t, wiki), 3*time.Minute, 250*time.Millisecond).Should(Equal("True/Succeeded"))

	for _, tc := range []struct {
		key        client.ObjectKey
		sink       *sinktest.Sink
		containers []string
		items      int
	}{
		{jira, s.sink, []string{"PRJA", "PRJB", "PRJC"}, 6000},
		{wiki, wikiSink, []string{"SPA", "SPB"}, 2000},
	} {
		rep := tc.sink.Check()
		g.Expect(rep.Distinct).To(Equal(tc.items), "every item delivered")
		g.Expect(rep.Duplicates).To(BeZero())
		g.Expect(rep.OutOfOrder).To(BeZero(), "each container in update order")
		st := get(t, tc.key).Status.Sync
		g.Expect(st).NotTo(BeNil())
		g.Expect(st.ItemsDelivered).To(Equal(int64(tc.items)))
		g.Expect(st.LastSuccessfulSyncTime).NotTo(BeNil())
		var keys []string
		for _, c := range st.Containers {
			keys = append(keys, c.Key)
			cur, err := syncer.ParseCursor(c.Cursor)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(cur.Latest().IsZero()).To(BeFalse(), "container %s has a cursor", c.Key)
			g.Expect(c.ItemsDelivered).To(Equal(int64(tc.items / len(tc.containers))))
		}
		g.Expect(keys).To(ConsistOf(tc.containers))
	}
	ready := meta.FindStatusCondition(get(t, jira).Status.Conditions, v1alpha1.ReadyCondition)
	g.Expect(ready.Status).To(Equal(metav1.ConditionTrue))

	// 50 updates and 10 creations: the next run delivers those and nothing else.
	s.sink.Reset()
	var want []string
	keys := s.fake.JiraIssueKeys("PRJB")
	now := time.Now()
	for i := range 50 {
		s.fake.UpdateIssue(keys[i*37%len(keys)], now.Add(time.Duration(i)*time.Millisecond))
	}
	for i := range 50 {
		info, _ := s.fake.JiraIssue(keys[i*37%len(keys)])
		want = append(want, info.ID)
	}
	for i := range 10 {
		key := s.fake.CreateIssue("PRJC", fmt.Sprintf("new issue %d", i), "created after the backfill", now.Add(time.Second))
		info, _ := s.fake.JiraIssue(key)
		want = append(want, info.ID)
	}
	slices.Sort(want)
	want = slices.Compact(want)
	requestSync(t, jira)
	g.Eventually(func() []string { return itemIDs(s.sink.Items()) }, time.Minute).Should(Equal(want))
	g.Consistently(func() int { return len(s.sink.Items()) }, 2*time.Second).Should(Equal(len(want)), "nothing else")
	g.Eventually(func() int64 { return get(t, jira).Status.Sync.ItemsDelivered }, 10*time.Second).Should(Equal(int64(6000 + len(want))))
}

// TestSameMinuteInSydney: issues updated in the very minute (and millisecond) of the
// cursor are neither lost nor repeated, with the account in Australia/Sydney.
func TestSameMinuteInSydney(t *testing.T) {
	g := NewWithT(t)
	s := newSite(t, "Australia/Sydney")
	s.fake.SeedJira(atlassiantest.JiraSeed{Projects: 1, IssuesPerProject: 300, Seed: 7, Start: time.Now().Add(-48 * time.Hour)})
	startManager(t)
	key := s.connection(s.jira, nil)
	g.Eventually(synced(t, key), time.Minute).Should(Equal("True/Succeeded"))
	g.Expect(s.sink.Check().Distinct).To(Equal(300))

	for round := range 3 {
		// An issue updated now: the cursor remembers its instant...
		keys := s.fake.JiraIssueKeys("PRJA")
		at := time.Now().Truncate(time.Millisecond)
		first := keys[round*7%len(keys)]
		s.fake.UpdateIssue(first, at)
		s.sink.Reset()
		requestSync(t, key)
		g.Eventually(func() int { return len(s.sink.Items()) }, 30*time.Second).Should(Equal(1), "round %d", round)
		firstInfo, _ := s.fake.JiraIssue(first)
		g.Eventually(func() bool {
			cur, err := syncer.ParseCursor(get(t, key).Status.Sync.Containers[0].Cursor)
			g.Expect(err).NotTo(HaveOccurred())
			return cur.Covers(firstInfo.ID, at) && !cur.From.After(at)
		}, 10*time.Second).Should(BeTrue(), "the cursor holds the instant")
		// ...then three issues in that very millisecond and two later in its minute.
		s.sink.Reset()
		var want []string
		for i, t := range []time.Time{at, at, at, at.Add(10 * time.Second), at.Add(20 * time.Second)} {
			k := keys[(round*5+i+1)*7%len(keys)]
			s.fake.UpdateIssue(k, t)
			info, _ := s.fake.JiraIssue(k)
			want = append(want, info.ID)
		}
		slices.Sort(want)
		requestSync(t, key)
		g.Eventually(func() []string { return itemIDs(s.sink.Items()) }, 30*time.Second).Should(Equal(slices.Compact(want)), "round %d", round)
		g.Consistently(func() int { return s.sink.Check().Deliveries }, time.Second).Should(Equal(len(slices.Compact(want))), "no repeats")
	}
}

// TestSinkOutageAndRejection: a sink answering 503 for 20 s mid-backfill loses nothing
// and the cursor never runs ahead of it; a sink answering 400 stalls without a retry loop.
func TestSinkOutageAndRejection(t *testing.T) {
	g := NewWithT(t)
	s := newSite(t, "UTC")
	s.fake.SeedJira(atlassiantest.JiraSeed{Projects: 2, IssuesPerProject: 1500, Seed: 3, Start: time.Now().Add(-30 * 24 * time.Hour)})
	startManager(t)

	// After 10 batches the sink goes down for 20 s.
	outage := make(chan struct{})
	s.sink.OnBatch(func([]sinktest.Event) {
		if s.sink.Batches() == 10 {
			s.sink.Fail(sinktest.Failure{Status: http.StatusServiceUnavailable})
			close(outage)
			time.AfterFunc(20*time.Second, s.sink.Recover)
		}
	})
	key := s.connection(s.jira, func(spec *v1alpha1.ConnectionSpec) { spec.Sync.Sink.BatchSize = 50 })
	<-outage

	// While the sink is down, the cursor of every container must stay behind what the
	// sink acknowledged.
	g.Eventually(synced(t, key), 10*time.Second).Should(Equal("False/SinkUnavailable"))
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		acked := map[string]bool{}
		for _, it := range s.sink.Items() {
			acked[it.ID] = true
		}
		for _, c := range get(t, key).Status.Sync.Containers {
			cur, err := syncer.ParseCursor(c.Cursor)
			g.Expect(err).NotTo(HaveOccurred())
			for _, id := range cur.IDs() {
				g.Expect(acked).To(HaveKey(id), "the cursor of %s is past an item the sink never acknowledged", c.Key)
			}
			g.Expect(c.ItemsDelivered).To(BeNumerically("<=", len(acked)))
		}
		time.Sleep(500 * time.Millisecond)
	}
	g.Eventually(synced(t, key), 2*time.Minute).Should(Equal("True/Succeeded"), "recovers without intervention")
	rep := s.sink.Check()
	g.Expect(rep.Distinct).To(Equal(3000), "no event lost")
	g.Expect(rep.Duplicates).To(BeZero())

	// A sink that refuses (400) stalls the sync; it is not retried in a loop.
	s.sink.Fail(sinktest.Failure{Status: http.StatusBadRequest})
	s.fake.UpdateIssue(s.fake.JiraIssueKeys("PRJA")[0], time.Now())
	requestSync(t, key)
	g.Eventually(synced(t, key), 30*time.Second).Should(Equal("False/SinkRejected"))
	stalled := meta.FindStatusCondition(get(t, key).Status.Conditions, v1alpha1.StalledCondition)
	g.Expect(stalled).NotTo(BeNil())
	g.Expect(stalled.Reason).To(Equal(v1alpha1.SinkRejectedReason))
	attempts := s.sink.Attempts()
	g.Consistently(s.sink.Attempts, 5*time.Second).Should(Equal(attempts), "no retries while stalled")

	// Fixing the sink and changing the Connection resumes.
	s.sink.Recover()
	c := get(t, key)
	patch := client.MergeFrom(c.DeepCopy())
	c.Spec.Sync.Sink.BatchSize = 60
	must(t, k8s.Patch(context.Background(), c, patch))
	g.Eventually(synced(t, key), 30*time.Second).Should(Equal("True/Succeeded"))
}

// TestCrashMidBackfill stops the manager in the middle of a backfill (no final status
// write) and starts a new one: every item arrives at least once, and the repeats are at
// most what was acknowledged after the last persisted cursor.
func TestCrashMidBackfill(t *testing.T) {
	g := NewWithT(t)
	s := newSite(t, "UTC")
	s.fake.SeedJira(atlassiantest.JiraSeed{Projects: 1, IssuesPerProject: 3000, Seed: 4, Start: time.Now().Add(-30 * 24 * time.Hour)})
	// Slow the vendor so the backfill takes a while.
	s.fake.SetFault(atlassiantest.Fault{Latency: 50 * time.Millisecond})
	stop := startManager(t)
	key := s.connection(s.jira, func(spec *v1alpha1.ConnectionSpec) { spec.Sync.Sink.BatchSize = 20 })

	g.Eventually(func() int { return len(s.sink.Items()) }, time.Minute).Should(BeNumerically(">=", 600))
	stop()
	// What the next leader will start from.
	persisted := get(t, key).Status.Sync.Containers[0]
	cur, err := syncer.ParseCursor(persisted.Cursor)
	g.Expect(err).NotTo(HaveOccurred())
	var unpersisted int
	for _, it := range s.sink.Items() {
		if !cur.Covers(it.ID, it.UpdatedAt) {
			unpersisted++
		}
	}
	s.fake.ClearFault()
	startManager(t)
	g.Eventually(synced(t, key), 2*time.Minute).Should(Equal("True/Succeeded"))
	rep := s.sink.Check()
	g.Expect(rep.Distinct).To(Equal(3000), "every item delivered at least once")
	g.Expect(rep.Duplicates).To(BeNumerically("<=", unpersisted), "repeats bounded by the unpersisted window")
	t.Logf("crash: %d items acknowledged after the last persisted cursor, %d delivered twice", unpersisted, rep.Duplicates)
}

// TestResyncSuspendScopeAndPrune covers resyncRequest, suspend, adding and removing a
// container, and prune snapshots.
func TestResyncSuspendScopeAndPrune(t *testing.T) {
	g := NewWithT(t)
	s := newSite(t, "UTC")
	s.fake.SeedJira(atlassiantest.JiraSeed{Projects: 2, IssuesPerProject: 120, Seed: 5, Start: time.Now().Add(-10 * 24 * time.Hour)})
	startManager(t)
	key := s.connection(s.jira, func(spec *v1alpha1.ConnectionSpec) {
		spec.Scope.Containers = []string{"PRJA"}
		spec.Sync.PruneInterval = &metav1.Duration{Duration: time.Minute} // the shortest allowed
	})
	g.Eventually(synced(t, key), time.Minute).Should(Equal("True/Succeeded"))
	g.Expect(s.sink.Check().Distinct).To(Equal(120))
	g.Expect(snapshots(s.sink)).To(BeEmpty(), "the first backfill is the first snapshot: no prune right after it")

	update := func(mutate func(*v1alpha1.ConnectionSpec)) {
		c := get(t, key)
		patch := client.MergeFrom(c.DeepCopy())
		mutate(&c.Spec)
		must(t, k8s.Patch(context.Background(), c, patch))
	}

	// Adding a container backfills it; removing one drops it from status.
	s.sink.Reset()
	update(func(spec *v1alpha1.ConnectionSpec) { spec.Scope.Containers = []string{"PRJA", "PRJB"} })
	g.Eventually(func() int { return s.sink.Check().Distinct }, time.Minute).Should(Equal(120), "PRJB backfilled, PRJA not repeated")
	g.Eventually(func() []string { return containerKeys(get(t, key)) }, 10*time.Second).Should(ConsistOf("PRJA", "PRJB"))
	update(func(spec *v1alpha1.ConnectionSpec) { spec.Scope.Containers = []string{"PRJB"} })
	g.Eventually(func() []string { return containerKeys(get(t, key)) }, 30*time.Second).Should(ConsistOf("PRJB"))

	// resyncRequest rewinds every cursor to since and is acknowledged.
	s.sink.Reset()
	update(func(spec *v1alpha1.ConnectionSpec) { spec.Sync.ResyncRequest = "again-1" })
	g.Eventually(func() string { return get(t, key).Status.Sync.LastHandledResyncRequest }, 30*time.Second).Should(Equal("again-1"))
	g.Eventually(func() int { return s.sink.Check().Distinct }, time.Minute).Should(Equal(120))

	// Suspend: no vendor calls, reason Suspended; resume picks up changes.
	update(func(spec *v1alpha1.ConnectionSpec) { spec.Sync.Suspend = true })
	g.Eventually(synced(t, key), 30*time.Second).Should(Equal("False/Suspended"))
	s.sink.Reset()
	s.fake.ResetRequests()
	s.fake.UpdateIssue(s.fake.JiraIssueKeys("PRJB")[3], time.Now())
	requestSync(t, key)
	g.Consistently(func() int { return len(s.sink.Items()) }, 3*time.Second).Should(BeZero())
	for _, r := range s.fake.Requests() {
		g.Expect(r.Path).NotTo(ContainSubstring("/search"), "no sync calls while suspended")
	}
	update(func(spec *v1alpha1.ConnectionSpec) { spec.Sync.Suspend = false })
	g.Eventually(func() int { return len(s.sink.Items()) }, 30*time.Second).Should(Equal(1))
	g.Eventually(synced(t, key), 30*time.Second).Should(Equal("True/Succeeded"))

	// Prune: a pruneInterval after PRJB's backfill, its live ids arrive as snapshot
	// chunks, the last one marked final, without anyone asking.
	s.fake.DeleteIssue(s.fake.JiraIssueKeys("PRJB")[0])
	var live []string
	for _, k := range s.fake.JiraIssueKeys("PRJB") {
		info, _ := s.fake.JiraIssue(k)
		live = append(live, info.ID)
	}
	g.Eventually(func() []syncer.Snapshot { return snapshots(s.sink) }, 2*time.Minute, time.Second).ShouldNot(BeEmpty())
	var ids []string
	final := false
	for _, snap := range snapshots(s.sink) {
		g.Expect(snap.Container).To(Equal("PRJB"))
		ids = append(ids, snap.IDs...)
		final = final || snap.Final
	}
	g.Expect(final).To(BeTrue(), "last snapshot chunk marked final")
	g.Expect(ids).To(ConsistOf(live), "exactly the live ids: the deleted issue is missing")
	g.Expect(get(t, key).Status.Sync.Containers[0].LastPruneTime).NotTo(BeNil())
}

// snapshots decodes the container.snapshot events the sink received.
func snapshots(sink *sinktest.Sink) []syncer.Snapshot {
	var out []syncer.Snapshot
	for _, e := range sink.Events() {
		if e.Type == syncer.EventContainerSnapshot {
			var snap syncer.Snapshot
			if json.Unmarshal(e.Data, &snap) == nil {
				out = append(out, snap)
			}
		}
	}
	return out
}

// TestWebhook: a signed Jira event syncs its project within seconds; unsigned, badly
// signed, oversize, stale and unknown-Connection requests are refused and reach no vendor.
func TestWebhook(t *testing.T) {
	g := NewWithT(t)
	s := newSite(t, "UTC")
	s.fake.SeedJira(atlassiantest.JiraSeed{Projects: 2, IssuesPerProject: 50, Seed: 6, Start: time.Now().Add(-24 * time.Hour)})
	secret := []byte("webhook-secret-" + rand.String(12))
	must(t, k8s.Create(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: "hook"},
		Data: map[string][]byte{"secret": secret}}))
	startManager(t)
	key := s.connection(s.jira, func(spec *v1alpha1.ConnectionSpec) {
		spec.Webhook = &v1alpha1.WebhookSpec{SecretRef: v1alpha1.SecretReference{Name: "hook"}}
	})
	g.Eventually(synced(t, key), time.Minute).Should(Equal("True/Succeeded"))

	mux := http.NewServeMux()
	mux.Handle("POST /webhooks/v1/namespaces/{ns}/connections/{name}", &syncer.WebhookHandler{Client: operator, Reader: operator})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	post := func(path string, body []byte, signature string) int {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, bytes.NewReader(body))
		if signature != "" {
			req.Header.Set("X-Hub-Signature", signature)
		}
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	path := "/webhooks/v1/namespaces/" + key.Namespace + "/connections/" + key.Name
	issue := s.fake.JiraIssueKeys("PRJB")[7]
	info, _ := s.fake.JiraIssue(issue)
	event := func(at time.Time) []byte {
		return []byte(fmt.Sprintf(`{"webhookEvent":"jira:issue_updated","timestamp":%d,"issue":{"id":%q,"key":%q,"fields":{"project":{"key":"PRJB"}}}}`,
			at.UnixMilli(), info.ID, issue))
	}

	// Refusals first: none of them may reach the vendor.
	s.fake.ResetRequests()
	body := event(time.Now())
	g.Expect(post(path, body, "")).To(Equal(http.StatusUnauthorized), "unsigned")
	g.Expect(post(path, body, syncer.Sign([]byte("wrong"), body))).To(Equal(http.StatusUnauthorized), "wrongly signed")
	g.Expect(post(path, body, "sha256=zz")).To(Equal(http.StatusUnauthorized), "garbage signature")
	stale := event(time.Now().Add(-time.Hour))
	g.Expect(post(path, stale, syncer.Sign(secret, stale))).To(Equal(http.StatusUnauthorized), "stale")
	big := bytes.Repeat([]byte("x"), syncer.MaxWebhookBody+1)
	g.Expect(post(path, big, syncer.Sign(secret, big))).To(Equal(http.StatusRequestEntityTooLarge), "oversize")
	g.Expect(post("/webhooks/v1/namespaces/"+key.Namespace+"/connections/nope", body, syncer.Sign(secret, body))).To(Equal(http.StatusUnauthorized), "unknown Connection")
	g.Consistently(func() int { return len(s.fake.Requests()) }, time.Second).Should(BeZero(), "refused webhooks reach no vendor")
	g.Expect(s.sink.Check().Distinct).To(Equal(100))

	// A signed event: its project is synced within seconds.
	s.sink.Reset()
	s.fake.UpdateIssue(issue, time.Now())
	body = event(time.Now())
	sent := time.Now()
	g.Expect(post(path, body, syncer.Sign(secret, body))).To(Equal(http.StatusAccepted))
	g.Eventually(func() []string { return itemIDs(s.sink.Items()) }, 3*time.Second, 50*time.Millisecond).Should(Equal([]string{info.ID}))
	t.Logf("webhook → sink: %s", time.Since(sent).Round(time.Millisecond))
	for _, r := range s.fake.Requests() {
		g.Expect(r.Path).NotTo(ContainSubstring("PRJA"))
	}
}

func containerKeys(c *v1alpha1.Connection) []string {
	var keys []string
	if c.Status.Sync != nil {
		for _, cs := range c.Status.Sync.Containers {
			keys = append(keys, cs.Key)
		}
	}
	return keys
}
