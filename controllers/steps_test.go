package controllers

// Step-level tests (STYLE 15, first level): each step of the Connection reconciler, the
// shared summary and probeMemory, on controller-runtime's fake client with the fake
// Atlassian site over real HTTP on loopback. No control plane: these run in
// milliseconds and show the probe-skipping, Retry-After and sync-engine rules directly.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
	_ "github.com/unified-connectors/connector-operator/connectors/jira"
	"github.com/unified-connectors/connector-operator/internal/egress"
	"github.com/unified-connectors/connector-operator/internal/outcome"
	"github.com/unified-connectors/connector-operator/internal/syncer"
	"github.com/unified-connectors/connector-operator/internal/vendorclient"
	"github.com/unified-connectors/connector-operator/internal/vendorhttp"
)

const (
	testNamespace = "team-a"
	testToken     = "api-token-for-step-tests" // not a real secret; the fake's own
)

var testScheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}()

// fakeEngine records what the reconciler asks of the sync engine.
type fakeEngine struct {
	mu       sync.Mutex
	calls    []string
	ensured  *v1alpha1.Connection
	state    syncer.State
	hasState bool
}

func (e *fakeEngine) record(call string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls = append(e.calls, call)
}

func (e *fakeEngine) Ensure(conn *v1alpha1.Connection, _ *v1alpha1.Connector, _ string) {
	e.record("Ensure")
	e.mu.Lock()
	e.ensured = conn.DeepCopy()
	e.hasState = true
	e.mu.Unlock()
}
func (e *fakeEngine) Remove(client.ObjectKey) {
	e.record("Remove")
	e.mu.Lock()
	e.hasState = false
	e.mu.Unlock()
}
func (e *fakeEngine) Trigger(client.ObjectKey, ...string) { e.record("Trigger") }
func (e *fakeEngine) TriggerWebhook(_ client.ObjectKey, containers ...string) {
	e.record("TriggerWebhook" + func() string {
		if len(containers) == 0 {
			return ""
		}
		return ":" + containers[0]
	}())
}
func (e *fakeEngine) State(client.ObjectKey) (syncer.State, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.state, e.hasState
}

func (e *fakeEngine) take() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.calls
	e.calls = nil
	return c
}

// fixture is one fake site, one Connector admitting team-a, and a reconciler over a fake
// client holding them.
type fixture struct {
	t         *testing.T
	site      *atlassiantest.Server
	client    client.Client
	r         *ConnectionReconciler
	engine    *fakeEngine
	connector *v1alpha1.Connector
	conn      *v1alpha1.Connection
	now       time.Time
}

func newFixture(t *testing.T, objs ...client.Object) *fixture {
	t.Helper()
	site := atlassiantest.NewServer()
	t.Cleanup(site.Close)
	site.AddAccount(atlassiantest.Account{ID: "acc-1", DisplayName: "Mia Krystof", Email: "mia@example.com", APIToken: testToken})

	connector := &v1alpha1.Connector{
		ObjectMeta: metav1.ObjectMeta{Name: "jira", Generation: 1},
		Spec: v1alpha1.ConnectorSpec{
			Type: v1alpha1.ConnectorTypeJira, BaseURL: v1alpha1.EndpointURL(site.URL()),
			AuthMethods:       []v1alpha1.AuthMethod{v1alpha1.AuthMethodAPIToken},
			AllowedNamespaces: &metav1.LabelSelector{MatchLabels: map[string]string{"tenant": "yes"}},
			RateLimit:         v1alpha1.RateLimitSpec{RequestsPerSecond: 100, Burst: 100},
		},
		Status: v1alpha1.ConnectorStatus{ObservedGeneration: 1, Conditions: []metav1.Condition{{
			Type: v1alpha1.ReadyCondition, Status: metav1.ConditionTrue, Reason: v1alpha1.SucceededReason, LastTransitionTime: metav1.Now(),
		}}},
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: testNamespace, Labels: map[string]string{"tenant": "yes"}}}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "jira"},
		Data:       map[string][]byte{"email": []byte("mia@example.com"), "apiToken": []byte(testToken)},
	}
	conn := &v1alpha1.Connection{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "jira", UID: "uid-1", Generation: 1},
		Spec: v1alpha1.ConnectionSpec{
			ConnectorRef: v1alpha1.ConnectorReference{Name: "jira"},
			Auth:         v1alpha1.AuthSpec{Method: v1alpha1.AuthMethodAPIToken, SecretRef: v1alpha1.SecretReference{Name: "jira"}},
			Sync:         &v1alpha1.SyncSpec{Sink: &v1alpha1.SinkSpec{URL: "http://127.0.0.1:1/sink"}},
		},
	}
	c := fake.NewClientBuilder().WithScheme(testScheme).
		WithObjects(append([]client.Object{connector, ns, secret, conn}, objs...)...).
		WithStatusSubresource(&v1alpha1.Connection{}, &v1alpha1.Connector{}).
		Build()
	engine := &fakeEngine{}
	f := &fixture{t: t, site: site, client: c, engine: engine, now: time.Now()}
	f.r = &ConnectionReconciler{
		Client:   c,
		Recorder: events.NewFakeRecorder(100),
		Vendors: &vendorclient.Factory{
			Reader:  c,
			Vendors: &vendorhttp.Pool{Egress: egress.Vendor.WithAllowInsecure(true)},
		},
		Sync: engine,
	}
	f.r.memory.now = func() time.Time { return f.now }
	f.connector, f.conn = getAs(f, connector), getAs(f, conn)
	return f
}

// getAs reads obj back from the fake client.
func getAs[T client.Object](f *fixture, obj T) T {
	f.t.Helper()
	out := obj.DeepCopyObject().(T)
	if err := f.client.Get(context.Background(), client.ObjectKeyFromObject(obj), out); err != nil {
		f.t.Fatal(err)
	}
	return out
}

func (f *fixture) update(obj client.Object) {
	f.t.Helper()
	if err := f.client.Update(context.Background(), obj); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) scope() *connectionScope {
	return &connectionScope{conn: f.conn, connector: f.connector}
}

func (f *fixture) probes() int { return f.site.CountRequests("/rest/api/3/myself") }

// wantOutcome fails t unless err stands for reason with that verdict, and returns it (a
// copy: it is not an error to check).
func wantOutcome(t *testing.T, err error, reason string, stalled bool) outcome.Error {
	t.Helper()
	o := outcome.Classify(err)
	if o == nil {
		t.Fatalf("error %v is not an outcome; want %s", err, reason)
	}
	if o.Reason != reason || o.Stalled() != stalled {
		t.Fatalf("outcome %s (stalled %v): %s; want %s (stalled %v)", o.Reason, o.Stalled(), o.Message, reason, stalled)
	}
	return *o
}

func TestReconcileConnector(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(f *fixture)
		reason  string // "" means admitted
		stalled bool
		requeue time.Duration
	}{
		{name: "admitted", mutate: func(*fixture) {}},
		{name: "missing Connector", reason: v1alpha1.ConnectorNotFoundReason, stalled: true, mutate: func(f *fixture) {
			f.conn.Spec.ConnectorRef.Name = "nope"
		}},
		{name: "namespace not allowed", reason: v1alpha1.NamespaceNotAllowedReason, stalled: true, mutate: func(f *fixture) {
			ns := &corev1.Namespace{}
			_ = f.client.Get(context.Background(), client.ObjectKey{Name: testNamespace}, ns)
			ns.Labels = nil
			f.update(ns)
		}},
		{name: "auth method not allowed", reason: v1alpha1.AuthMethodNotAllowedReason, stalled: true, mutate: func(f *fixture) {
			f.conn.Spec.Auth.Method = v1alpha1.AuthMethodPAT
		}},
		{name: "Connector not reconciled yet", reason: v1alpha1.ConnectorNotReadyReason, requeue: time.Minute, mutate: func(f *fixture) {
			f.connector.Status.Conditions[0].Status = metav1.ConditionUnknown
			if err := f.client.Status().Update(context.Background(), f.connector); err != nil {
				f.t.Fatal(err)
			}
		}},
		{name: "Connector not ready", reason: v1alpha1.ConnectorNotReadyReason, stalled: true, mutate: func(f *fixture) {
			meta.SetStatusCondition(&f.connector.Status.Conditions, metav1.Condition{Type: v1alpha1.ReadyCondition, Status: metav1.ConditionFalse, Reason: v1alpha1.SecretNotFoundReason, Message: "no client Secret"})
			if err := f.client.Status().Update(context.Background(), f.connector); err != nil {
				f.t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			tt.mutate(f)
			s := &connectionScope{conn: f.conn}
			_, err := f.r.reconcileConnector(context.Background(), s)
			if tt.reason == "" {
				if err != nil || s.connector == nil || f.conn.Status.Type != v1alpha1.ConnectorTypeJira {
					t.Fatalf("not admitted: %v", err)
				}
				return
			}
			o := wantOutcome(t, err, tt.reason, tt.stalled)
			if o.RequeueAfter != tt.requeue {
				t.Errorf("requeue after %s, want %s", o.RequeueAfter, tt.requeue)
			}
			if s.connector != nil {
				t.Error("a refused Connection's scope holds the Connector")
			}
			if f.probes() != 0 {
				t.Error("the Connector step called the vendor")
			}
		})
	}
}

func TestReconcileCredentialsProbesThenSkips(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()

	res, err := f.r.reconcileCredentials(ctx, f.scope())
	if err != nil {
		t.Fatal(err)
	}
	if c := conditionOf(f.conn, v1alpha1.CredentialsValidCondition); c == nil || c.Status != metav1.ConditionTrue {
		t.Fatalf("CredentialsValid = %+v", c)
	}
	if f.conn.Status.Identity == nil || f.conn.Status.Identity.AccountID != "acc-1" || f.conn.Status.Probe == nil {
		t.Fatalf("identity/probe not recorded: %+v", f.conn.Status)
	}
	if lo, hi := defaultProbeInterval*9/10, defaultProbeInterval*11/10; res.RequeueAfter < lo || res.RequeueAfter > hi {
		t.Errorf("next probe in %s, want the jittered interval [%s, %s]", res.RequeueAfter, lo, hi)
	}
	if f.probes() != 1 {
		t.Fatalf("%d probes, want 1", f.probes())
	}

	// Sync progress, Secret metadata echoes...: same inputs, recent probe.
	f.now = f.now.Add(3 * time.Minute)
	if _, err := f.r.reconcileCredentials(ctx, f.scope()); err != nil || f.probes() != 1 {
		t.Fatalf("a reconcile with nothing changed probed again (err %v, %d probes)", err, f.probes())
	}

	// The scheduled requeue (90-110% of the interval) must probe: 80% is the margin.
	f.now = f.now.Add(time.Minute + time.Second)
	if _, err := f.r.reconcileCredentials(ctx, f.scope()); err != nil || f.probes() != 2 {
		t.Fatalf("the periodic probe was skipped (err %v, %d probes)", err, f.probes())
	}

	// requested-at asks for a probe at once.
	f.conn.Annotations = map[string]string{v1alpha1.RequestedAtAnnotation: "now"}
	if _, err := f.r.reconcileCredentials(ctx, f.scope()); err != nil || f.probes() != 3 {
		t.Fatalf("requested-at did not probe (err %v, %d probes)", err, f.probes())
	}
}

func TestReconcileCredentialsRejectedIsNotAskedAgain(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	secret := &corev1.Secret{}
	if err := f.client.Get(ctx, client.ObjectKey{Namespace: testNamespace, Name: "jira"}, secret); err != nil {
		t.Fatal(err)
	}
	secret.Data["apiToken"] = []byte("wrong")
	f.update(secret)

	_, err := f.r.reconcileCredentials(ctx, f.scope())
	wantOutcome(t, err, v1alpha1.CredentialsRejectedReason, true)
	if c := conditionOf(f.conn, v1alpha1.CredentialsValidCondition); c == nil || c.Status != metav1.ConditionFalse || c.Reason != v1alpha1.CredentialsRejectedReason {
		t.Fatalf("CredentialsValid = %+v", c)
	}

	f.now = f.now.Add(time.Hour) // even long after: only a change asks again
	_, err = f.r.reconcileCredentials(ctx, f.scope())
	wantOutcome(t, err, v1alpha1.CredentialsRejectedReason, true)
	if f.probes() != 1 {
		t.Fatalf("%d probes, want 1: the same rejected inputs were sent again", f.probes())
	}

	secret.Data["apiToken"] = []byte(testToken)
	f.update(secret)
	if _, err := f.r.reconcileCredentials(ctx, f.scope()); err != nil || f.probes() != 2 {
		t.Fatalf("a fixed Secret was not probed (err %v, %d probes)", err, f.probes())
	}
}

func TestReconcileCredentialsHonoursRetryAfter(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	// Longer than the probe's deadline, so the vendor client answers at once.
	f.site.FailNext(1, atlassiantest.Fault{Status: 429, RetryAfter: 30 * time.Second})

	_, err := f.r.reconcileCredentials(ctx, f.scope())
	o := wantOutcome(t, err, v1alpha1.RateLimitedReason, false)
	if !o.VendorAsked || o.RequeueAfter != 30*time.Second {
		t.Fatalf("requeue %s vendorAsked %v, want the vendor's 30s", o.RequeueAfter, o.VendorAsked)
	}
	if c := conditionOf(f.conn, v1alpha1.CredentialsValidCondition); c == nil || c.Status != metav1.ConditionUnknown {
		t.Fatalf("a 429 judged the credential: %+v", c)
	}

	// Inside the window nothing calls the vendor, even when something changed.
	f.now = f.now.Add(10 * time.Second)
	f.conn.Annotations = map[string]string{v1alpha1.RequestedAtAnnotation: "now"}
	_, err = f.r.reconcileCredentials(ctx, f.scope())
	o = wantOutcome(t, err, v1alpha1.RateLimitedReason, false)
	if o.RequeueAfter != 20*time.Second {
		t.Errorf("requeue after %s, want the 20s left", o.RequeueAfter)
	}
	if f.probes() != 1 {
		t.Fatalf("%d probes inside the Retry-After window, want 1", f.probes())
	}

	// Once it ends, the vendor is asked again (the vendor client's own hold, in real
	// time, is dropped so the call is not held by it).
	f.now = f.now.Add(21 * time.Second)
	f.r.Vendors.Forget(client.ObjectKeyFromObject(f.conn))
	if _, err := f.r.reconcileCredentials(ctx, f.scope()); err != nil || f.probes() != 2 {
		t.Fatalf("no probe after the window (err %v, %d probes)", err, f.probes())
	}
}

func TestReconcileCredentialsSecretProblems(t *testing.T) {
	f := newFixture(t)
	f.conn.Spec.Auth.SecretRef.Name = "absent"
	_, err := f.r.reconcileCredentials(context.Background(), f.scope())
	wantOutcome(t, err, v1alpha1.SecretNotFoundReason, true)
	if c := conditionOf(f.conn, v1alpha1.CredentialsValidCondition); c == nil || c.Status != metav1.ConditionFalse || c.Reason != v1alpha1.SecretNotFoundReason {
		t.Fatalf("CredentialsValid = %+v", c)
	}
	if f.probes() != 0 {
		t.Error("probed without a credential")
	}
}

func TestReconcileSyncFollowsTheOutcome(t *testing.T) {
	stalling := outcome.Stalling(v1alpha1.NamespaceNotAllowedReason, "refused")
	tests := []struct {
		name      string
		connector bool  // the Connector step admitted the Connection
		failed    error // the earlier steps' outcome
		noSink    bool
		want      []string
	}{
		{name: "success", connector: true, want: []string{"Ensure"}},
		{name: "no sink", connector: true, noSink: true, want: []string{"Remove"}},
		{name: "Connector step stalled", failed: stalling, want: []string{"Remove"}},
		{name: "Connector step waiting", failed: outcome.Waiting(v1alpha1.ConnectorNotReadyReason, time.Minute, "settling"), want: []string{"Remove"}},
		{name: "Connector step API error", failed: errors.New("etcd"), want: []string{"Remove"}},
		{name: "credentials stalled", connector: true, failed: outcome.Stalling(v1alpha1.SecretNotFoundReason, "gone"), want: []string{"Remove"}},
		{name: "credentials egress denied", connector: true, failed: outcome.Stalling(v1alpha1.EgressDeniedReason, "no"), want: []string{"Remove"}},
		{name: "credentials transient", connector: true, failed: outcome.Waiting(v1alpha1.VendorUnreachableReason, 0, "503"), want: []string{"Ensure"}},
		{name: "credentials rate limited", connector: true, failed: outcome.Waiting(v1alpha1.RateLimitedReason, 30*time.Second, "429"), want: []string{"Ensure"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			// A pending requested-at and webhook: only a success hands them over.
			f.conn.Annotations = map[string]string{
				v1alpha1.RequestedAtAnnotation:         "now",
				syncer.WebhookAnnotationPrefix + "PRJ": "1",
			}
			f.conn.Spec.Sync = func() *v1alpha1.SyncSpec {
				if tt.noSink {
					return nil
				}
				return &v1alpha1.SyncSpec{Suspend: true, Sink: &v1alpha1.SinkSpec{URL: "http://127.0.0.1:1/sink"}}
			}()
			setCondition(f.conn, v1alpha1.SyncedCondition, metav1.ConditionTrue, v1alpha1.SucceededReason, "3 items delivered")
			s := &connectionScope{conn: f.conn, failed: tt.failed}
			if tt.connector {
				s.connector = f.connector
			}
			if _, err := f.r.reconcileSync(context.Background(), s); err != nil && tt.failed == nil {
				t.Fatal(err)
			}
			want := tt.want
			if tt.failed == nil && !tt.noSink {
				want = []string{"Ensure", "Trigger", "TriggerWebhook:PRJ"}
			}
			if got := f.engine.take(); !slices.Equal(got, want) {
				t.Fatalf("engine calls %v, want %v", got, want)
			}
			synced := conditionOf(f.conn, v1alpha1.SyncedCondition)
			switch want[0] {
			case "Remove":
				if synced != nil {
					t.Errorf("Synced left as %+v on a Connection the engine no longer syncs", synced)
				}
			case "Ensure":
				if f.engine.ensured == nil || !f.engine.ensured.Spec.Sync.Suspend {
					t.Error("the engine was not given the current spec (suspend)")
				}
			}
		})
	}
}

func TestReconcileSyncReportsTheEngine(t *testing.T) {
	tests := []struct {
		state   syncer.State
		status  metav1.ConditionStatus
		reason  string // of the step's error, "" for none
		stalled bool
	}{
		{syncer.State{Reason: v1alpha1.SucceededReason, Synced: true, Message: "3 items"}, metav1.ConditionTrue, "", false},
		{syncer.State{Reason: v1alpha1.SuspendedReason}, metav1.ConditionFalse, "", false},
		{syncer.State{Reason: v1alpha1.SinkRejectedReason, Stalled: true}, metav1.ConditionFalse, v1alpha1.SinkRejectedReason, true},
		{syncer.State{Reason: v1alpha1.SinkUnavailableReason}, metav1.ConditionFalse, v1alpha1.SinkUnavailableReason, false},
		{syncer.State{Reason: v1alpha1.VendorUnreachableReason}, metav1.ConditionFalse, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.state.Reason, func(t *testing.T) {
			f := newFixture(t)
			f.engine.state = tt.state
			_, err := f.r.reconcileSync(context.Background(), f.scope())
			if c := conditionOf(f.conn, v1alpha1.SyncedCondition); c == nil || c.Status != tt.status || c.Reason != tt.state.Reason {
				t.Errorf("Synced = %+v", c)
			}
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("err %v, want none", err)
				}
				return
			}
			o := wantOutcome(t, err, tt.reason, tt.stalled)
			if !tt.stalled && o.RequeueAfter != syncRetry {
				t.Errorf("requeue after %s, want %s", o.RequeueAfter, syncRetry)
			}
		})
	}
}

// reconcile runs the whole reconciler on the fixture's Connection.
func (f *fixture) reconcile() (ctrl.Result, error) {
	f.t.Helper()
	return f.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(f.conn)})
}

func TestReconcileRefusedConnectionStopsSyncing(t *testing.T) {
	f := newFixture(t)
	if _, err := f.reconcile(); err != nil {
		t.Fatal(err)
	}
	if got := f.engine.take(); !slices.Equal(got, []string{"Ensure"}) {
		t.Fatalf("engine calls %v, want [Ensure]", got)
	}
	conn := getAs(f, f.conn)
	if !meta.IsStatusConditionTrue(conn.Status.Conditions, v1alpha1.ReadyCondition) {
		t.Fatalf("not Ready: %+v", conn.Status.Conditions)
	}

	ns := &corev1.Namespace{}
	_ = f.client.Get(context.Background(), client.ObjectKey{Name: testNamespace}, ns)
	ns.Labels = nil
	f.update(ns)
	res, err := f.reconcile()
	if err != nil || !res.IsZero() {
		t.Fatalf("result %+v, err %v: want no requeue", res, err)
	}
	if got := f.engine.take(); !slices.Equal(got, []string{"Remove"}) {
		t.Fatalf("engine calls %v, want [Remove]", got)
	}
	conn = getAs(f, f.conn)
	if c := conditionOf(conn, v1alpha1.StalledCondition); c == nil || c.Reason != v1alpha1.NamespaceNotAllowedReason {
		t.Fatalf("Stalled = %+v", c)
	}
	if c := conditionOf(conn, v1alpha1.SyncedCondition); c != nil {
		t.Fatalf("Synced = %+v, want none", c)
	}
	if f.probes() != 1 {
		t.Errorf("%d probes, want 1: a refused Connection is not probed", f.probes())
	}
}

func TestReconcileRecreatedConnectionStartsFromNothing(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	key := client.ObjectKeyFromObject(f.conn)
	// recreate deletes the Connection and creates it again under the same name, the two
	// events coalesced: the reconciler only ever sees the new object, with its own UID.
	recreate := func(uid types.UID) {
		t.Helper()
		old := getAs(f, f.conn)
		if err := f.client.Delete(ctx, old); err != nil {
			t.Fatal(err)
		}
		f.conn = &v1alpha1.Connection{
			ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name, UID: uid, Annotations: old.Annotations},
			Spec:       old.Spec,
		}
		if err := f.client.Create(ctx, f.conn); err != nil {
			t.Fatal(err)
		}
	}

	// A webhook mark seen on the old object is news on the new one.
	f.conn.Annotations = map[string]string{syncer.WebhookAnnotationPrefix + "PRJ": "1"}
	f.update(f.conn)
	if _, err := f.reconcile(); err != nil {
		t.Fatal(err)
	}
	if got := f.engine.take(); !slices.Contains(got, "TriggerWebhook:PRJ") {
		t.Fatalf("engine calls %v: the webhook was not handed over", got)
	}
	recreate("uid-2")
	if _, err := f.reconcile(); err != nil {
		t.Fatal(err)
	}
	if got := f.engine.take(); !slices.Contains(got, "TriggerWebhook:PRJ") {
		t.Fatalf("engine calls %v: the new Connection's webhook was taken for the old one's", got)
	}

	// A vendor pause of the old object does not hold the new one.
	f.site.FailNext(1, atlassiantest.Fault{Status: 429, RetryAfter: 30 * time.Second})
	f.conn.Annotations = map[string]string{v1alpha1.RequestedAtAnnotation: "probe"}
	conn := getAs(f, f.conn)
	conn.Annotations = f.conn.Annotations
	f.update(conn)
	probes := f.probes()
	if _, err := f.reconcile(); err != nil {
		t.Fatal(err)
	}
	if f.probes() != probes+1 || !meta.IsStatusConditionTrue(getAs(f, f.conn).Status.Conditions, v1alpha1.ReconcilingCondition) {
		t.Fatalf("the 429 did not arrive (%d probes)", f.probes()-probes)
	}
	recreate("uid-3")
	// Without forgetting, the old pause (30 s) would skip the probe, and the old vendor
	// client's own hold would keep the call waiting past its deadline.
	start := time.Now()
	if _, err := f.reconcile(); err != nil {
		t.Fatal(err)
	}
	if f.probes() != probes+2 || time.Since(start) > 5*time.Second {
		t.Fatalf("the new Connection was held by its predecessor's Retry-After (%d probes, %s)", f.probes()-probes, time.Since(start))
	}
	if !meta.IsStatusConditionTrue(getAs(f, f.conn).Status.Conditions, v1alpha1.ReadyCondition) {
		t.Fatalf("the new Connection is not Ready: %+v", getAs(f, f.conn).Status.Conditions)
	}
}

func TestSummarize(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		err      error
		result   ctrl.Result
		retErr   bool
		ready    metav1.ConditionStatus
		reason   string
		stalled  bool
		observed bool
	}{
		{name: "success", result: ctrl.Result{RequeueAfter: time.Hour}, ready: metav1.ConditionTrue, reason: v1alpha1.SucceededReason, observed: true},
		{name: "stalling", err: outcome.Stalling(v1alpha1.SecretNotFoundReason, "gone"), ready: metav1.ConditionFalse, reason: v1alpha1.SecretNotFoundReason, stalled: true, observed: true},
		{name: "waiting with a hint", err: outcome.Waiting(v1alpha1.RateLimitedReason, 7*time.Second, "429"), result: ctrl.Result{RequeueAfter: 7 * time.Second}, ready: metav1.ConditionFalse, reason: v1alpha1.RateLimitedReason},
		{name: "waiting for backoff", err: outcome.Waiting(v1alpha1.VendorUnreachableReason, 0, "503"), retErr: true, ready: metav1.ConditionFalse, reason: v1alpha1.VendorUnreachableReason},
		{name: "API server", err: errors.New("etcd"), retErr: true, ready: metav1.ConditionFalse, reason: v1alpha1.ProgressingReason},
	}
	for _, tt := range tests {
		for _, obj := range []statusObject{
			&v1alpha1.Connection{ObjectMeta: metav1.ObjectMeta{Generation: 3}},
			&v1alpha1.Connector{ObjectMeta: metav1.ObjectMeta{Generation: 3}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				res, err := summarize(ctx, obj, ctrl.Result{RequeueAfter: time.Hour}, tt.err, func() string { return "ok" })
				if res != tt.result || (err != nil) != tt.retErr {
					t.Fatalf("got %+v, %v; want %+v, error %v", res, err, tt.result, tt.retErr)
				}
				ready := conditionOf(obj, v1alpha1.ReadyCondition)
				if ready == nil || ready.Status != tt.ready || ready.Reason != tt.reason || ready.ObservedGeneration != 3 {
					t.Errorf("Ready = %+v", ready)
				}
				stalled, reconciling := conditionOf(obj, v1alpha1.StalledCondition), conditionOf(obj, v1alpha1.ReconcilingCondition)
				if (stalled != nil) != tt.stalled || (reconciling != nil) != (tt.ready == metav1.ConditionFalse && !tt.stalled) {
					t.Errorf("Stalled %+v Reconciling %+v", stalled, reconciling)
				}
				var observed int64
				switch o := obj.(type) {
				case *v1alpha1.Connection:
					observed = o.Status.ObservedGeneration
				case *v1alpha1.Connector:
					observed = o.Status.ObservedGeneration
				}
				if (observed == 3) != tt.observed {
					t.Errorf("observedGeneration %d", observed)
				}
			})
		}
	}
}

func TestProbeMemory(t *testing.T) {
	now := time.Now()
	m := &probeMemory{now: func() time.Time { return now }}
	key := types.NamespacedName{Namespace: "ns", Name: "c"}
	in := probeInputs{connection: 1, connector: 1, secretVersion: "7"}

	if m.Observe(key, "a") {
		t.Error("a first sighting forgot something")
	}
	m.SetHold(key, "a", 10*time.Second, v1alpha1.RateLimitedReason, "429")
	m.SetRejected(key, "a", in)
	m.SetProbed(key, "a", in)
	if got := m.NewWebhooks(key, "a", map[string]string{syncer.WebhookAnnotationPrefix + "P": "1", "other": "x"}); !slices.Equal(got, []string{"P"}) {
		t.Errorf("NewWebhooks = %v", got)
	}
	if got := m.NewWebhooks(key, "a", map[string]string{syncer.WebhookAnnotationPrefix + "P": "1"}); len(got) != 0 {
		t.Errorf("a seen webhook came back: %v", got)
	}

	if h, left, ok := m.Hold(key, "a"); !ok || left != 10*time.Second || h.reason != v1alpha1.RateLimitedReason {
		t.Errorf("Hold = %+v %s %v", h, left, ok)
	}
	if !m.Rejected(key, "a", in) || m.Rejected(key, "a", probeInputs{connection: 2}) {
		t.Error("Rejected does not compare the inputs")
	}
	if !m.ProbedWithin(key, "a", in, time.Minute) {
		t.Error("ProbedWithin forgot a fresh probe")
	}
	now = now.Add(11 * time.Second)
	if _, _, ok := m.Hold(key, "a"); ok {
		t.Error("an expired hold still holds")
	}
	if m.ProbedWithin(key, "a", in, 10*time.Second) {
		t.Error("ProbedWithin ignores the clock")
	}

	// Same name, another object.
	m.SetHold(key, "a", time.Minute, v1alpha1.RateLimitedReason, "429")
	if !m.Observe(key, "b") {
		t.Error("a new UID did not report the forgotten memory")
	}
	if _, _, ok := m.Hold(key, "b"); ok || m.Rejected(key, "b", in) || m.ProbedWithin(key, "b", in, time.Hour) {
		t.Error("the new object inherited the old one's memory")
	}
	if got := m.NewWebhooks(key, "b", map[string]string{syncer.WebhookAnnotationPrefix + "P": "1"}); !slices.Equal(got, []string{"P"}) {
		t.Errorf("the new object's webhook marks were inherited: %v", got)
	}
	m.SetRejected(key, "b", in)
	m.Forget(key)
	if m.Rejected(key, "b", in) || m.Observe(key, "b") {
		t.Error("Forget kept something")
	}
}

// statusWrites counts the status patches f's reconciler sends.
func statusWrites(f *fixture) *int {
	n := new(int)
	f.r.Client = interceptor.NewClient(f.client.(client.WithWatch), interceptor.Funcs{
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
			*n++
			return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
		},
	})
	return n
}

func TestProbeWithNothingNewWritesNoStatus(t *testing.T) {
	f := newFixture(t)
	f.conn.Spec.Sync = nil // probe only
	f.update(f.conn)
	// What the CRD defaults a new Connection's status to.
	f.conn = getAs(f, f.conn)
	f.conn.Status.ObservedGeneration = -1
	if err := f.client.Status().Update(context.Background(), f.conn); err != nil {
		t.Fatal(err)
	}
	writes := statusWrites(f)
	if _, err := f.reconcile(); err != nil {
		t.Fatal(err)
	}
	first := getAs(f, f.conn)
	if !meta.IsStatusConditionTrue(first.Status.Conditions, v1alpha1.ReadyCondition) || first.Status.Probe == nil {
		t.Fatalf("not Ready with a probe record: %+v", first.Status)
	}
	if *writes != 1 {
		t.Fatalf("%d status writes for a Connection Ready at its first reconcile, want 1", *writes)
	}

	// The periodic probe: same identity, same verdict, latency in the same class.
	f.site.SetFault(atlassiantest.Fault{Latency: 300 * time.Millisecond})
	f.now = f.now.Add(defaultProbeInterval)
	if _, err := f.reconcile(); err != nil {
		t.Fatal(err)
	}
	if f.probes() != 2 {
		t.Fatalf("%d probes, want 2: the periodic probe did not run", f.probes())
	}
	if *writes != 1 {
		t.Errorf("the periodic probe with nothing new wrote status (%d writes): %+v", *writes, getAs(f, f.conn).Status.Probe)
	}

	// A slower vendor (another latency class) is news.
	f.site.SetFault(atlassiantest.Fault{Latency: 1100 * time.Millisecond})
	f.now = f.now.Add(defaultProbeInterval)
	if _, err := f.reconcile(); err != nil {
		t.Fatal(err)
	}
	if p := getAs(f, f.conn).Status.Probe; *writes != 2 || p.LatencyMillis < 1100 {
		t.Errorf("a probe in a slower latency class was not recorded (%d writes, %+v)", *writes, p)
	}
}

func TestNextProbeStatus(t *testing.T) {
	at := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	prev := nextProbeStatus(nil, at, 40*time.Millisecond, true)
	if prev.LastTime == nil || !prev.LastTime.Time.Equal(at) || prev.LatencyMillis != 40 {
		t.Fatalf("first record %+v", prev)
	}
	tests := []struct {
		name    string
		after   time.Duration
		latency time.Duration
		changed bool
		renewed bool
	}{
		{"same class, minutes later", 5 * time.Minute, 90 * time.Millisecond, false, false},
		{"an hour later", time.Hour, 40 * time.Millisecond, false, true},
		{"slower class", time.Minute, 1500 * time.Millisecond, false, true},
		{"identity or verdict changed", time.Minute, 40 * time.Millisecond, true, true},
	}
	for _, tt := range tests {
		got := nextProbeStatus(prev, at.Add(tt.after), tt.latency, tt.changed)
		if renewed := got != prev; renewed != tt.renewed {
			t.Errorf("%s: renewed %v, want %v (%+v)", tt.name, renewed, tt.renewed, got)
		}
	}
}

func TestConnectorCountsAreThrottled(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	connector, conn := f.connector.DeepCopy(), f.conn.DeepCopy()
	connector.ResourceVersion, conn.ResourceVersion = "", ""
	f.client = fake.NewClientBuilder().WithScheme(testScheme).
		WithObjects(connector, conn).
		WithStatusSubresource(&v1alpha1.Connection{}, &v1alpha1.Connector{}).
		WithIndex(&v1alpha1.Connection{}, indexConnectorRef, func(o client.Object) []string {
			return []string{o.(*v1alpha1.Connection).Spec.ConnectorRef.Name}
		}).
		Build()
	now := time.Now()
	r := &ConnectorReconciler{Recorder: events.NewFakeRecorder(100), Vendors: f.r.Vendors,
		now: func() time.Time { return now }}
	writes := 0
	r.Client = interceptor.NewClient(f.client.(client.WithWatch), interceptor.Funcs{
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
			writes++
			return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
		},
	})
	req := ctrl.Request{NamespacedName: client.ObjectKeyFromObject(f.connector)}
	counts := func() int32 { return getAs(f, f.connector).Status.Connections }
	if _, err := r.Reconcile(ctx, req); err != nil || counts() != 1 || writes != 1 {
		t.Fatalf("first count: err %v, %d Connections, %d writes", err, counts(), writes)
	}
	// A burst of new Connections, each waking the Connector.
	for i := range 20 {
		c := f.conn.DeepCopy()
		c.ResourceVersion, c.UID, c.Name = "", "", fmt.Sprintf("jira-%d", i)
		if err := f.client.Create(ctx, c); err != nil {
			t.Fatal(err)
		}
		res, err := r.Reconcile(ctx, req)
		if err != nil || res.RequeueAfter <= 0 || res.RequeueAfter > defaultCountsEvery {
			t.Fatalf("reconcile %d in the burst: err %v, requeue after %s, want within %s", i, err, res.RequeueAfter, defaultCountsEvery)
		}
	}
	if writes != 1 {
		t.Errorf("%d status writes during the burst, want 1", writes)
	}
	// The requeue counts them all at once.
	now = now.Add(defaultCountsEvery)
	if _, err := r.Reconcile(ctx, req); err != nil || counts() != 21 || writes != 2 {
		t.Fatalf("after the burst: err %v, %d Connections, %d writes; want 21 and 2", err, counts(), writes)
	}
}

// series counts the series of a metric family in the controller-runtime registry that
// carry the labels namespace and name.
func series(t *testing.T, family, namespace, name string) int {
	t.Helper()
	mfs, err := crmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, mf := range mfs {
		if mf.GetName() != family {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["namespace"] == namespace && labels["name"] == name {
				n++
			}
		}
	}
	return n
}

func TestDeletedConnectionLeavesNoMetricSeries(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	key := client.ObjectKeyFromObject(f.conn)
	if _, err := f.reconcile(); err != nil {
		t.Fatal(err)
	}
	// The sync engine's per-Connection counter, as a delivered batch leaves it.
	delivered := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "connector_sync_items_delivered_total",
		Help: "Items the sink acknowledged, per Connection."}, []string{"namespace", "name"})
	var exists prometheus.AlreadyRegisteredError
	if err := crmetrics.Registry.Register(delivered); !errors.As(err, &exists) {
		t.Fatalf("the sync engine's counter is not registered: %v", err)
	}
	exists.ExistingCollector.(*prometheus.CounterVec).WithLabelValues(key.Namespace, key.Name).Add(3)
	for _, fam := range []string{"connector_connection_ready", "connector_sync_items_delivered_total"} {
		if series(t, fam, key.Namespace, key.Name) != 1 {
			t.Fatalf("no %s series for the Connection", fam)
		}
	}

	if err := f.client.Delete(ctx, getAs(f, f.conn)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.reconcile(); err != nil {
		t.Fatal(err)
	}
	for _, fam := range []string{"connector_connection_ready", "connector_sync_items_delivered_total"} {
		if n := series(t, fam, key.Namespace, key.Name); n != 0 {
			t.Errorf("%d %s series left for the deleted Connection", n, fam)
		}
	}
}
