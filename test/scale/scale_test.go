// Package scale_test is the scale benchmark of issue 9 (make bench): 1,000 and 10,000
// probe-only Connections over 100 namespaces (one Secret each) against a fake Atlassian
// site answering after 50 ms, with the manager running as the operator's ServiceAccount
// (the shipped RBAC) in a process of its own. See BenchmarkScale for what it reports.
package scale_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
	"github.com/unified-connectors/connector-operator/internal/manager"
	"github.com/unified-connectors/connector-operator/internal/testenv"
)

const (
	namespaces    = 100
	vendorLatency = 50 * time.Millisecond
	// clientWorkers is how many goroutines create objects, for the plain client and for
	// the Connections the manager reconciles alike.
	clientWorkers = 8
	// probeEvery sets the probe interval to size × probeEvery (30 s at 1,000, the 5 min
	// default at 10,000): about 33 probes a second in the steady state at either size.
	probeEvery = 30 * time.Millisecond
	// idleWindow is the "idle minute": nothing changes, only probes are due.
	idleWindow = time.Minute
	// scaleLabel marks the Connections the benchmark counts.
	scaleLabel = "scale.connectors.unified.dev/run"
)

func TestMain(m *testing.M) {
	if path := os.Getenv(childEnv); path != "" {
		if err := runChild(path); err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// results keeps each size's figures, so the 10,000 run can report the memory cost of each
// Connection beyond the first 1,000.
var results sync.Map // size → figures

type figures struct {
	size                     int
	load                     string
	plain, ready             time.Duration
	rssPeak, heapPeak        uint64
	writesUntilReady         map[string]int64
	idleWrites, idleVendor   int64
	idleStatusWrites         int64
	startPeakVendor          int64
	readyPeakVendor          int64
	startWrites, startVendor int64
	startDuration            time.Duration
	probeInterval            time.Duration
}

// BenchmarkScale measures, for 1,000 and 10,000 Connections:
//
//   - plain: a plain client (clientWorkers goroutines, the envtest admin's QPS) creating and
//     status-patching as many Connections on the same API server (deleted before the
//     manager starts);
//   - ready: from the first create of the benchmark's Connections to all Ready, the manager
//     already running, and its ratio to plain (target ≤ 2 at 10,000);
//   - the manager process's peak RSS (VmHWM) and peak heap in use (target < 256 MiB at
//     10,000, < 20 KiB per Connection beyond 1,000);
//   - the manager's API-server writes per Connection until all are Ready, by resource
//     (target: one Connection status write where the first reconcile succeeds);
//   - over the idle minute that starts 0.9 probe intervals after the first create (or at
//     all Ready, if later), when the first periodic probes are due: status writes (target
//     0), vendor calls, and writes per Connection per hour extrapolated from the writes
//     per probe in that minute at the probe interval;
//   - the peak of concurrent vendor requests while Connections are created, and after a
//     manager restart with every Connection already Ready ("leader start"), with the
//     writes and vendor calls of the 2 minutes after that start.
//
// The manager runs without leader election (one replica: a start is a leader start).
// Absolute times depend on the machine's load (reported next to them); the ratio to the
// plain client, measured in the same run on the same API server, is the figure to read.
func BenchmarkScale(b *testing.B) {
	// The harness's own clients log nothing worth reading.
	ctrllog.SetLogger(logr.Discard())
	for _, size := range []int{1000, 10000} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			f := runScale(b, size)
			results.Store(size, f)
			b.ReportMetric(f.ready.Seconds(), "ready-s")
			b.ReportMetric(f.plain.Seconds(), "plain-s")
			b.ReportMetric(f.ready.Seconds()/f.plain.Seconds(), "ready/plain")
			b.ReportMetric(float64(f.rssPeak)/(1<<20), "rss-MiB")
			b.ReportMetric(float64(f.heapPeak)/(1<<20), "heap-MiB")
			b.ReportMetric(float64(f.writesUntilReady["connections/status"])/float64(size), "status-writes/conn")
			b.ReportMetric(float64(sum(f.writesUntilReady))/float64(size), "writes/conn")
			b.ReportMetric(float64(f.idleStatusWrites), "idle-status-writes")
			b.ReportMetric(float64(f.idleVendor), "idle-vendor-calls")
			b.ReportMetric(perHour(f), "writes/conn/h")
			b.ReportMetric(float64(f.startPeakVendor), "start-peak-vendor")
			printTable(b, f)
			b.ReportMetric(0, "ns/op") // one run, not a per-op figure
		})
	}
}

// perHour extrapolates steady-state writes per Connection per hour: writes per probe in
// the idle minute times the probes an hour.
func perHour(f figures) float64 {
	if f.idleVendor == 0 {
		return 0
	}
	return float64(f.idleWrites) / float64(f.idleVendor) * float64(time.Hour/f.probeInterval)
}

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

func runScale(b *testing.B, size int) figures {
	ctx := context.Background()
	f := figures{size: size, probeInterval: time.Duration(size) * probeEvery}
	var nsNames, plainNames []string
	for i := range namespaces {
		nsNames = append(nsNames, fmt.Sprintf("scale-%02d", i))
		plainNames = append(plainNames, fmt.Sprintf("plain-%02d", i))
	}
	env, err := testenv.Start(testenv.Options{Scheme: manager.Scheme, Namespaces: append(nsNames, plainNames...)})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	k8s := env.Client

	// The fake vendor, behind a counter of requests in flight.
	fake := atlassiantest.New()
	defer fake.Close()
	acct := atlassiantest.Account{ID: "5b10ac8d82e05b22cc7d4ef5", DisplayName: "Scale Tester",
		Email: "scale@example.com", APIToken: "scale-api-token"}
	fake.AddAccount(acct)
	fake.SetFault(atlassiantest.Fault{Latency: vendorLatency})
	vendor := &inflight{next: fake.Handler()}
	srv := httptest.NewServer(vendor)
	defer srv.Close()

	cnr := &v1alpha1.Connector{
		ObjectMeta: metav1.ObjectMeta{Name: "scale-jira"},
		Spec: v1alpha1.ConnectorSpec{
			Type: v1alpha1.ConnectorTypeJira, BaseURL: v1alpha1.EndpointURL(srv.URL),
			AuthMethods: []v1alpha1.AuthMethod{v1alpha1.AuthMethodAPIToken},
			Defaults:    v1alpha1.ConnectorDefaults{ProbeInterval: &metav1.Duration{Duration: f.probeInterval}},
		},
	}
	if err := k8s.Create(ctx, cnr); err != nil {
		b.Fatal(err)
	}
	for _, ns := range nsNames {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "jira"},
			StringData: map[string]string{"email": acct.Email, "apiToken": acct.APIToken}}
		if err := k8s.Create(ctx, s); err != nil {
			b.Fatal(err)
		}
	}

	// The plain client, on the same API server, before the manager runs.
	start := time.Now()
	if err := parallel(size, func(i int) error {
		c := connection(plainNames[i%namespaces], i, cnr.Name, nil)
		if err := k8s.Create(ctx, c); err != nil {
			return err
		}
		base := c.DeepCopy()
		meta.SetStatusCondition(&c.Status.Conditions, metav1.Condition{Type: v1alpha1.ReadyCondition,
			Status: metav1.ConditionTrue, Reason: v1alpha1.SucceededReason, Message: "Connected as Scale Tester"})
		c.Status.ObservedGeneration = c.Generation
		return k8s.Status().Patch(ctx, c, client.MergeFrom(base))
	}); err != nil {
		b.Fatal(err)
	}
	f.plain = time.Since(start)
	for _, ns := range plainNames {
		if err := k8s.DeleteAllOf(ctx, &v1alpha1.Connection{}, client.InNamespace(ns)); err != nil {
			b.Fatal(err)
		}
	}

	// The manager, as main.go runs it.
	cc := childConfig{
		Host: env.ManagerConfig.Host, CAData: env.ManagerConfig.CAData,
		CertData: env.ManagerConfig.CertData, KeyData: env.ManagerConfig.KeyData,
		Impersonate: env.ManagerConfig.Impersonate,
		QPS:         20, Burst: 30, // ctrl.GetConfigOrDie's
		Options: mainOptions(env.Namespace),
	}
	mgr, err := startChild(b.TempDir(), cc)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { mgr.stop() }()

	watcher, err := newReadyWatch(ctx, env, size)
	if err != nil {
		b.Fatal(err)
	}
	defer watcher.stop()

	f.load = loadAvg()
	vendor.resetPeak()
	start = time.Now()
	if err := parallel(size, func(i int) error {
		return k8s.Create(ctx, connection(nsNames[i%namespaces], i, cnr.Name, map[string]string{scaleLabel: "1"}))
	}); err != nil {
		b.Fatal(err)
	}
	readyAt, err := watcher.wait(start.Add(30 * time.Minute))
	if err != nil {
		b.Fatal(err)
	}
	f.ready = readyAt.Sub(start)
	f.readyPeakVendor = vendor.peak.Load()
	st, err := mgr.stats()
	if err != nil {
		b.Fatal(err)
	}
	f.writesUntilReady = st.Writes

	// The idle minute.
	if wait := time.Until(start.Add(f.probeInterval * 9 / 10)); wait > 0 {
		time.Sleep(wait)
	}
	before, err := mgr.stats()
	if err != nil {
		b.Fatal(err)
	}
	vendorBefore := vendor.total.Load()
	time.Sleep(idleWindow)
	after, err := mgr.stats()
	if err != nil {
		b.Fatal(err)
	}
	f.idleVendor = vendor.total.Load() - vendorBefore
	f.idleWrites = sum(after.Writes) - sum(before.Writes)
	f.idleStatusWrites = after.Writes["connections/status"] - before.Writes["connections/status"]
	f.rssPeak, f.heapPeak = after.RSSPeak, after.HeapPeak
	if len(after.Refused) > 0 {
		b.Fatalf("the API server refused the manager: %v", after.Refused[:min(5, len(after.Refused))])
	}

	// A leader start: a new manager finds every Connection Ready.
	mgr.stop()
	vendor.resetPeak()
	vendorBefore = vendor.total.Load()
	startedAt := time.Now()
	mgr, err = startChild(b.TempDir(), cc)
	if err != nil {
		b.Fatal(err)
	}
	// Every Connection is probed once after a start (the memory is gone).
	for vendor.total.Load()-vendorBefore < int64(size) && time.Since(startedAt) < 10*time.Minute {
		time.Sleep(100 * time.Millisecond)
	}
	f.startDuration = time.Since(startedAt)
	time.Sleep(5 * time.Second) // the writes that follow the last answers
	st, err = mgr.stats()
	if err != nil {
		b.Fatal(err)
	}
	f.startPeakVendor = vendor.peak.Load()
	f.startWrites = st.Writes["connections/status"]
	f.startVendor = vendor.total.Load() - vendorBefore
	return f
}

// mainOptions are the manager's options as main.go's flag defaults set them, with the
// benchmark's environment (no leader election, no API, no metrics, http vendors).
func mainOptions(ns string) manager.Options {
	return manager.Options{
		Namespace:               ns,
		MetricsBindAddress:      "0",
		HealthProbeBindAddress:  "0",
		AllowInsecureVendorURLs: true,
		KubeAPIQPS:              manager.DefaultKubeAPIQPS,
		KubeAPIBurst:            manager.DefaultKubeAPIBurst,
	}
}

func connection(ns string, i int, connector string, labels map[string]string) *v1alpha1.Connection {
	return &v1alpha1.Connection{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("jira-%05d", i), Labels: labels},
		Spec: v1alpha1.ConnectionSpec{
			ConnectorRef: v1alpha1.ConnectorReference{Name: connector},
			Auth:         v1alpha1.AuthSpec{Method: v1alpha1.AuthMethodAPIToken, SecretRef: v1alpha1.SecretReference{Name: "jira"}},
		},
	}
}

// parallel runs fn(0..n-1) on clientWorkers goroutines and returns the first error.
func parallel(n int, fn func(i int) error) error {
	var next atomic.Int64
	var first atomic.Pointer[error]
	var wg sync.WaitGroup
	for range clientWorkers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || first.Load() != nil {
					return
				}
				if err := fn(i); err != nil {
					first.CompareAndSwap(nil, &err)
				}
			}
		})
	}
	wg.Wait()
	if p := first.Load(); p != nil {
		return *p
	}
	return nil
}

// inflight counts the fake vendor's requests: in total, and the most at once.
type inflight struct {
	next      http.Handler
	now, peak atomic.Int64
	total     atomic.Int64
}

func (h *inflight) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := h.now.Add(1)
	h.total.Add(1)
	for {
		p := h.peak.Load()
		if n <= p || h.peak.CompareAndSwap(p, n) {
			break
		}
	}
	defer h.now.Add(-1)
	h.next.ServeHTTP(w, r)
}

func (h *inflight) resetPeak() { h.peak.Store(h.now.Load()) }

// readyWatch watches the benchmark's Connections and says when all are Ready.
type readyWatch struct {
	size   int
	mu     sync.Mutex
	ready  map[string]bool
	doneAt time.Time
	done   chan struct{}
	cancel context.CancelFunc
}

func newReadyWatch(ctx context.Context, env *testenv.Environment, size int) (*readyWatch, error) {
	wc, err := client.NewWithWatch(env.Config, client.Options{Scheme: manager.Scheme})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &readyWatch{size: size, ready: map[string]bool{}, done: make(chan struct{}), cancel: cancel}
	go w.run(ctx, wc)
	return w, nil
}

func (w *readyWatch) run(ctx context.Context, wc client.WithWatch) {
	sel := client.HasLabels{scaleLabel}
	for ctx.Err() == nil {
		// (Re)list, then watch from the list's version.
		var list v1alpha1.ConnectionList
		if err := wc.List(ctx, &list, sel); err != nil {
			time.Sleep(time.Second)
			continue
		}
		for i := range list.Items {
			w.observe(&list.Items[i])
		}
		wi, err := wc.Watch(ctx, &v1alpha1.ConnectionList{}, sel, &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: list.ResourceVersion}})
		if err != nil {
			time.Sleep(time.Second)
			continue
		}
		for ev := range wi.ResultChan() {
			if c, ok := ev.Object.(*v1alpha1.Connection); ok && (ev.Type == watch.Added || ev.Type == watch.Modified) {
				w.observe(c)
			}
		}
		wi.Stop()
	}
}

func (w *readyWatch) observe(c *v1alpha1.Connection) {
	ready := meta.IsStatusConditionTrue(c.Status.Conditions, v1alpha1.ReadyCondition)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ready[c.Namespace+"/"+c.Name] = ready
	if !w.doneAt.IsZero() {
		return
	}
	n := 0
	for _, r := range w.ready {
		if r {
			n++
		}
	}
	if n == w.size {
		w.doneAt = time.Now()
		close(w.done)
	}
}

func (w *readyWatch) wait(deadline time.Time) (time.Time, error) {
	select {
	case <-w.done:
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.doneAt, nil
	case <-time.After(time.Until(deadline)):
		w.mu.Lock()
		defer w.mu.Unlock()
		n := 0
		for _, r := range w.ready {
			if r {
				n++
			}
		}
		return time.Time{}, fmt.Errorf("only %d of %d Connections Ready by the deadline", n, w.size)
	}
}

func (w *readyWatch) stop() { w.cancel() }

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

func printTable(b *testing.B, f figures) {
	var sb strings.Builder
	fmt.Fprintf(&sb, "\nscale benchmark, %d Connections (%d namespaces, vendor latency %s, probe interval %s, load %s)\n",
		f.size, namespaces, vendorLatency, f.probeInterval, f.load)
	row := func(name, value, target string) { fmt.Fprintf(&sb, "  %-46s %-28s %s\n", name, value, target) }
	row("plain client create+status patch", f.plain.Round(10*time.Millisecond).String(), "")
	row("first create → all Ready", fmt.Sprintf("%s (%.2fx plain)", f.ready.Round(10*time.Millisecond), f.ready.Seconds()/f.plain.Seconds()), "≤ 2x at 10,000")
	row("manager peak RSS / heap in use", fmt.Sprintf("%.0f MiB / %.0f MiB", float64(f.rssPeak)/(1<<20), float64(f.heapPeak)/(1<<20)), "< 256 MiB at 10,000")
	if v, ok := results.Load(1000); ok && f.size > 1000 {
		small := v.(figures)
		row("RSS per Connection beyond 1,000", fmt.Sprintf("%.1f KiB", (float64(f.rssPeak)-float64(small.rssPeak))/float64(f.size-1000)/1024), "< 20 KiB")
	}
	keys := make([]string, 0, len(f.writesUntilReady))
	for k := range f.writesUntilReady {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %.2f", k, float64(f.writesUntilReady[k])/float64(f.size)))
	}
	row("writes per Connection until all Ready", strings.Join(parts, ", "), "1 status write")
	row("idle minute: status writes / all writes", fmt.Sprintf("%d / %d", f.idleStatusWrites, f.idleWrites), "0")
	row("idle minute: vendor calls (probes)", fmt.Sprint(f.idleVendor), "")
	row("steady writes per Connection per hour", fmt.Sprintf("%.2f", perHour(f)), "≤ 1")
	row("peak concurrent vendor requests, create wave", fmt.Sprint(f.readyPeakVendor), "")
	row("leader start: peak concurrent vendor requests", fmt.Sprint(f.startPeakVendor), "bounded")
	row("leader start: status writes / vendor calls", fmt.Sprintf("%d / %d in %s", f.startWrites, f.startVendor, f.startDuration.Round(100*time.Millisecond)), "0 writes")
	b.Log(sb.String())
	fmt.Print(sb.String())
}
