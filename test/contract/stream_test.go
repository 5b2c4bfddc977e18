package contract_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/controllers"
	"github.com/unified-connectors/connector-operator/internal/manager"
	"github.com/unified-connectors/connector-operator/internal/syncer/sinktest"
	"github.com/unified-connectors/connector-operator/internal/testenv"
)

// acmelog is a second vendor the operator has never heard of: its Connections sync from
// an ordered change log (connectors.Streamer) and hold a resource at the vendor
// (connectors.ExternalResources) unless their spec.scope.filter is logOff (a spec change,
// as PostgreSQL's mode is). The log and the
// vendor's view of each Connection live in memory, shared with the test.
const (
	logType      = "acmelog"
	logFinalizer = "connectors.unified.dev/acme-cursor"
	logOff       = "no-stream"
	logBatch     = 20
)

func init() { connectors.Register(logProvider{}) }

// logVendor is the vendor's state: the log, and per Connection UID what it holds.
var logVendor = struct {
	sync.Mutex
	entries   []string
	confirmed map[types.UID]int // the vendor-side cursor: the last position deliver accepted
	held      map[types.UID]bool
	released  map[types.UID]int
	streams   map[types.UID][]string // the position each Stream call started from
	reports   int
}{confirmed: map[types.UID]int{}, held: map[types.UID]bool{}, released: map[types.UID]int{}, streams: map[types.UID][]string{}}

func appendLog(n int) {
	logVendor.Lock()
	defer logVendor.Unlock()
	for range n {
		logVendor.entries = append(logVendor.entries, fmt.Sprintf("entry-%04d", len(logVendor.entries)))
	}
}

type logProvider struct{}

func (logProvider) Type() string                                 { return logType }
func (logProvider) Validate(connectors.Config) ([]string, error) { return nil, nil }
func (logProvider) NewClient(cfg connectors.Config) (connectors.Client, error) {
	c := &logClient{}
	if conn := cfg.Connection; conn != nil {
		c.uid, c.streaming = conn.UID, conn.Spec.Scope.Filter != logOff
	}
	return c, nil
}
func (logProvider) Describe() connectors.Description {
	return connectors.Description{
		Auth:         []connectors.AuthSpec{{Method: connectors.AuthPAT, SecretKeys: []string{"token"}}},
		ItemKinds:    []string{"entry"},
		Capabilities: connectors.Capabilities{ChangeFeed: true, Deletions: true},
	}
}

type logClient struct {
	uid       types.UID
	streaming bool
}

func (c *logClient) Identity(context.Context) (connectors.Identity, error) {
	return connectors.Identity{AccountID: "log-1", DisplayName: "Log Reader"}, nil
}

func (c *logClient) Containers(context.Context, string, int) (connectors.Page[connectors.Container], error) {
	return connectors.Page[connectors.Container]{Items: []connectors.Container{{ID: "log", Key: "log", Name: "The log"}}}, nil
}

func (c *logClient) Items(context.Context, connectors.ItemQuery) (connectors.Page[connectors.Item], error) {
	return connectors.Page[connectors.Item]{}, nil
}

func (c *logClient) Item(context.Context, string) (connectors.Item, error) {
	return connectors.Item{}, &connectors.Error{Kind: connectors.KindNotFound, Vendor: logType, Op: "item", Reason: "none"}
}

func (c *logClient) Comments(context.Context, string, string, int) (connectors.Page[connectors.Comment], error) {
	return connectors.Page[connectors.Comment]{}, unsupported("comments")
}

func (c *logClient) Search(context.Context, connectors.SearchQuery) (connectors.Page[connectors.Item], error) {
	return connectors.Page[connectors.Item]{}, unsupported("search")
}

func (c *logClient) Create(context.Context, connectors.NewItem) (connectors.Item, error) {
	return connectors.Item{}, unsupported("create")
}

// Changes serves a Connection that does not stream: nothing changes.
func (c *logClient) Changes(context.Context, connectors.ChangeQuery) (connectors.Page[connectors.Item], error) {
	return connectors.Page[connectors.Item]{}, nil
}

func (c *logClient) LiveIDs(context.Context, connectors.Container, string) (connectors.Page[string], error) {
	return connectors.Page[string]{}, nil
}

func (c *logClient) Streaming() bool { return c.streaming }

// Stream delivers the log from position (an index; "" is 0) in batches, confirming a
// position at the vendor only once deliver accepted it, then reports CaughtUp every
// 20 ms until ctx ends.
func (c *logClient) Stream(ctx context.Context, position string, deliver func(context.Context, connectors.StreamBatch) error) error {
	logVendor.Lock()
	logVendor.streams[c.uid] = append(logVendor.streams[c.uid], position)
	logVendor.held[c.uid] = true
	logVendor.Unlock()
	pos, _ := strconv.Atoi(position)
	for {
		logVendor.Lock()
		end := min(len(logVendor.entries), pos+logBatch)
		entries := slices.Clone(logVendor.entries[pos:end])
		logVendor.Unlock()
		b := connectors.StreamBatch{CaughtUp: len(entries) == 0}
		for _, e := range entries {
			b.Items = append(b.Items, connectors.Item{ID: e, Key: e, Kind: "entry", Title: e, Container: "log", Type: logType,
				UpdatedAt: time.Now()})
		}
		if len(entries) > 0 {
			b.Position = strconv.Itoa(end)
		}
		if err := deliver(ctx, b); err != nil {
			return err
		}
		pos = end
		logVendor.Lock()
		logVendor.confirmed[c.uid] = pos
		logVendor.Unlock()
		if len(entries) == 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
}

func (c *logClient) Finalizer() string {
	if c.streaming {
		return logFinalizer
	}
	return ""
}

func (c *logClient) Release(context.Context) error {
	logVendor.Lock()
	defer logVendor.Unlock()
	delete(logVendor.held, c.uid)
	logVendor.released[c.uid]++
	return nil
}

func (c *logClient) Report(context.Context, *v1alpha1.ConnectionStatus) error {
	logVendor.Lock()
	defer logVendor.Unlock()
	logVendor.reports++
	return nil
}

// TestStreamingVendorThroughTheContract: a Connection whose vendor streams gets the
// vendor's finalizer before its first Stream call; the engine delivers the log in order
// and stores each position only once the sink acknowledged it (the vendor confirms no
// further); an idle stream writes no status; a resync starts the stream over; a spec that
// no longer streams releases the vendor resource and drops the finalizer, as a deletion
// does before the object goes.
func TestStreamingVendorThroughTheContract(t *testing.T) {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
	g := NewWithT(t)
	env, err := testenv.Start(testenv.Options{Scheme: manager.Scheme, Namespaces: []string{tenant}})
	must(t, err)
	t.Cleanup(func() { _ = env.Stop() })
	ctx := context.Background()
	k8s := env.Client
	allowType(t, g, k8s, logType)
	appendLog(300)
	sink := sinktest.NewServer()
	t.Cleanup(sink.Close)

	mgr, err := manager.New(env.ManagerConfig, manager.Options{
		Namespace: env.Namespace, MetricsBindAddress: "0", HealthProbeBindAddress: "0",
		AllowInsecureVendorURLs: true, SyncPersistEvery: 200 * time.Millisecond,
		Controllers: controllers.ControllerOptions{RetryMinBackoff: 100 * time.Millisecond, RetryMaxBackoff: time.Second,
			SkipNameValidation: true},
	})
	must(t, err)
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(mctx); err != nil {
			t.Errorf("manager: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })

	must(t, k8s.Create(ctx, &v1alpha1.Connector{ObjectMeta: metav1.ObjectMeta{Name: "acmelog"},
		Spec: v1alpha1.ConnectorSpec{Type: logType, BaseURL: "https://log.acme.example",
			AuthMethods: []v1alpha1.AuthMethod{v1alpha1.AuthMethodPAT}}}))
	must(t, k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: "log-creds"},
		StringData: map[string]string{"token": "log-token"}}))
	conn := &v1alpha1.Connection{ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: "log"},
		Spec: v1alpha1.ConnectionSpec{
			ConnectorRef: v1alpha1.ConnectorReference{Name: "acmelog"},
			Auth:         v1alpha1.AuthSpec{Method: v1alpha1.AuthMethodPAT, SecretRef: v1alpha1.SecretReference{Name: "log-creds"}},
			Sync: &v1alpha1.SyncSpec{Interval: &metav1.Duration{Duration: time.Hour},
				Sink: &v1alpha1.SinkSpec{URL: v1alpha1.URL(sink.URL()), BatchSize: logBatch}},
		}}
	must(t, k8s.Create(ctx, conn))
	key := client.ObjectKeyFromObject(conn)
	get := func(g Gomega) *v1alpha1.Connection {
		var got v1alpha1.Connection
		g.Expect(k8s.Get(ctx, key, &got)).To(Succeed())
		return &got
	}
	synced := func(g Gomega, position string) {
		got := get(g)
		c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.SyncedCondition)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(metav1.ConditionTrue), "%s: %s", c.Reason, c.Message)
		g.Expect(got.Status.Sync).NotTo(BeNil())
		g.Expect(got.Status.Sync.Position).To(Equal(position))
	}

	// Every entry once, in log order; the finalizer came first.
	g.Eventually(func(g Gomega) { synced(g, "300") }, timeout, 50*time.Millisecond).Should(Succeed())
	got := get(g)
	g.Expect(got.Finalizers).To(ContainElement(logFinalizer))
	uid := got.UID
	ids := func() []string {
		var out []string
		for _, it := range sink.Items() {
			out = append(out, it.ID)
		}
		return out
	}
	g.Expect(ids()).To(HaveLen(300))
	g.Expect(slices.IsSorted(ids())).To(BeTrue(), "delivered in log order")
	logVendor.Lock()
	g.Expect(logVendor.streams[uid]).To(Equal([]string{""}))
	g.Expect(logVendor.reports).To(BeNumerically(">", 0), "the provider reported its status block at probe time")
	logVendor.Unlock()

	// Idle: the stream reports CaughtUp every 20 ms; none of it is a status write.
	writes := counter(t, "connector_sync_status_writes_total")
	time.Sleep(time.Second)
	g.Expect(counter(t, "connector_sync_status_writes_total")).To(Equal(writes), "an idle stream writes no status")

	// The sink refuses for a while: the position waits, and so does the vendor's cursor.
	sink.Fail(sinktest.Failure{Status: 503})
	attempts := sink.Attempts()
	appendLog(10)
	g.Eventually(sink.Attempts, timeout, 20*time.Millisecond).Should(BeNumerically(">=", attempts+3))
	g.Expect(get(g).Status.Sync.Position).To(Equal("300"))
	logVendor.Lock()
	g.Expect(logVendor.confirmed[uid]).To(Equal(300))
	logVendor.Unlock()
	sink.Recover()
	g.Eventually(func(g Gomega) { synced(g, "310") }, timeout, 50*time.Millisecond).Should(Succeed())

	// A resync starts the stream over from "": the whole log again.
	got = get(g)
	got.Spec.Sync.ResyncRequest = "again"
	must(t, k8s.Update(ctx, got))
	g.Eventually(func(g Gomega) {
		logVendor.Lock()
		defer logVendor.Unlock()
		g.Expect(logVendor.streams[uid]).To(ContainElement(""))
		g.Expect(logVendor.streams[uid][len(logVendor.streams[uid])-1]).To(Equal(""))
	}, timeout, 50*time.Millisecond).Should(Succeed())
	g.Eventually(func(g Gomega) { synced(g, "310") }, timeout, 50*time.Millisecond).Should(Succeed())
	g.Eventually(func() int { return len(sink.Items()) }, timeout, 50*time.Millisecond).Should(Equal(620))

	// No longer streaming (a mode change): released, finalizer gone, still synced.
	got = get(g)
	got.Spec.Scope.Filter = logOff
	must(t, k8s.Update(ctx, got))
	g.Eventually(func(g Gomega) {
		g.Expect(get(g).Finalizers).NotTo(ContainElement(logFinalizer))
		logVendor.Lock()
		defer logVendor.Unlock()
		g.Expect(logVendor.released[uid]).To(Equal(1))
		g.Expect(logVendor.held[uid]).To(BeFalse())
	}, timeout, 50*time.Millisecond).Should(Succeed())

	// Streaming again, then deleted: released before the object goes.
	got = get(g)
	got.Spec.Scope.Filter = ""
	must(t, k8s.Update(ctx, got))
	g.Eventually(func(g Gomega) { g.Expect(get(g).Finalizers).To(ContainElement(logFinalizer)) }, timeout, 50*time.Millisecond).Should(Succeed())
	g.Eventually(func() bool { logVendor.Lock(); defer logVendor.Unlock(); return logVendor.held[uid] }, timeout, 50*time.Millisecond).Should(BeTrue())
	must(t, k8s.Delete(ctx, got))
	g.Eventually(func() bool {
		var gone v1alpha1.Connection
		return k8s.Get(ctx, key, &gone) != nil
	}, timeout, 50*time.Millisecond).Should(BeTrue(), "the Connection went")
	logVendor.Lock()
	defer logVendor.Unlock()
	g.Expect(logVendor.released[uid]).To(Equal(2))
	g.Expect(logVendor.held[uid]).To(BeFalse())
}

// counter sums a counter of the in-process manager's metrics registry.
func counter(t *testing.T, name string) float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	must(t, err)
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			sum += counterValue(m)
		}
	}
	return sum
}

func counterValue(m *dto.Metric) float64 {
	if c := m.GetCounter(); c != nil {
		return c.GetValue()
	}
	return 0
}
