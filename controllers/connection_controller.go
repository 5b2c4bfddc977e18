package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/internal/oauth"
	"github.com/unified-connectors/connector-operator/internal/outcome"
	"github.com/unified-connectors/connector-operator/internal/policy"
	"github.com/unified-connectors/connector-operator/internal/syncer"
	"github.com/unified-connectors/connector-operator/internal/vendorclient"
	"github.com/unified-connectors/connector-operator/internal/wait"
)

// Defaults used when neither the Connection nor its Connector sets an interval (the CRD
// defaults the Connector's, so these only matter for objects written before defaulting).
const (
	defaultProbeInterval = 5 * time.Minute
	// vendorCallTimeout bounds every probe (STYLE 10).
	vendorCallTimeout = 10 * time.Second
)

// ConnectionReconciler validates a Connection's references and credential, probes the
// vendor's identity endpoint on the probe interval, and keeps the sync engine in step.
type ConnectionReconciler struct {
	client.Client
	Recorder events.EventRecorder
	// Vendors builds each Connection's vendor client (credentials, OAuth2 refresh, rate
	// limit, Retry-After, retries, egress guard), shared with the sync engine and the API.
	Vendors *vendorclient.Factory
	// Sync is the sync engine (leader only); nil disables sync.
	Sync SyncEngine
	// Shard selects the Connections this instance reconciles and syncs by their labels
	// (--watch-label-selector); nil means all. The others are left to their own shard:
	// no status write, no vendor call, no sync.
	Shard labels.Selector

	// memory is what reconciles remember of each Connection (vendor pauses, verdicts,
	// webhook marks), owned by its UID.
	memory probeMemory
	// syncEvents carries the engine's "look again" into the controller's queue.
	syncEvents chan event.GenericEvent
}

// connectionScope is one reconcile of one Connection: the object and what the steps
// learn on the way.
type connectionScope struct {
	conn *v1alpha1.Connection
	// connector is set by reconcileConnector once the Connector admits conn.
	connector *v1alpha1.Connector
	// failed is the error of the step that ended the list early, nil while every step
	// succeeded. reconcileSync, which always runs, reads it.
	failed error
	// client is the vendor client the credentials step built.
	client connectors.Client
}

func (s *connectionScope) key() client.ObjectKey { return client.ObjectKeyFromObject(s.conn) }

// connectionStep is one step of the Connection reconciler (STYLE 6). It owns some
// conditions and status fields and returns the result it needs (the sooner requeue of
// all steps wins) or an error in the vocabulary of internal/outcome.
type connectionStep struct {
	name string
	run  func(ctx context.Context, s *connectionScope) (ctrl.Result, error)
	// always runs the step after an earlier one failed.
	always bool
}

// steps are the Connection reconciler's steps, in order. The first error ends the list,
// except for reconcileSync: every outcome must leave the sync engine in the matching
// state, so a refused Connection stops syncing at once.
func (r *ConnectionReconciler) steps() []connectionStep {
	return []connectionStep{
		{name: "connector", run: r.reconcileConnector},
		{name: "credentials", run: r.reconcileCredentials},
		{name: "resources", run: r.reconcileResources},
		{name: "sync", run: r.reconcileSync, always: true},
	}
}

// +kubebuilder:rbac:groups=connectors.unified.dev,resources=connections,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=connectors.unified.dev,resources=connections/status,verbs=patch
// +kubebuilder:rbac:groups=connectors.unified.dev,resources=connectors,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile runs the fixed skeleton: fetch → status patcher → deferred status patch →
// deletion → steps in order → summary.
func (r *ConnectionReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	conn := &v1alpha1.Connection{}
	if err := r.Get(ctx, req.NamespacedName, conn); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !r.inShard(conn) {
		// Another shard's, or relabelled away: stop syncing it and forget what reconciles
		// kept; its own shard writes its status. The vendor client stays: this
		// instance's HTTP API may still serve the Connection.
		r.memory.Forget(req.NamespacedName)
		connectionReady.DeletePartialMatch(map[string]string{"namespace": req.Namespace, "name": req.Name})
		if r.Sync != nil {
			r.Sync.Remove(req.NamespacedName)
		}
		return ctrl.Result{}, nil
	}
	// A Connection that is going stops syncing now, then releases what it holds at the
	// vendor (a replication slot) before its finalizer goes.
	if !conn.DeletionTimestamp.IsZero() {
		if r.Sync != nil {
			r.Sync.Remove(req.NamespacedName)
		}
		return ctrl.Result{}, r.finalize(ctx, conn)
	}
	// A Connection's identity is its UID: a delete and re-create under the same name,
	// coalesced in the workqueue, starts from nothing.
	if r.memory.Observe(req.NamespacedName, conn.UID) {
		r.Vendors.Forget(req.NamespacedName)
	}

	patcher := newStatusPatcher(r.Client, r.Recorder, conn)
	if conn.Status.ObservedGeneration == 0 {
		// Say so before the slow work, so that kstatus (Flux, Argo CD) reads InProgress
		// rather than Current. Only when status has no observedGeneration: with one (the
		// CRD's default -1 on a new object, or an older generation's) kstatus already
		// reads InProgress until the final patch, and a Connection that succeeds at once
		// costs one status write, not two.
		markProgressing(conn, fmt.Sprintf("reconciling generation %d", conn.Generation))
		if err := patcher.Patch(ctx, conn); err != nil {
			return ctrl.Result{}, err
		}
	}
	defer func() {
		if err := patcher.Patch(ctx, conn); err != nil {
			retErr = errors.Join(retErr, err)
		}
		ready := 0.0
		if meta.IsStatusConditionTrue(conn.Status.Conditions, v1alpha1.ReadyCondition) {
			ready = 1
		}
		connectionReady.WithLabelValues(conn.Namespace, conn.Name, string(conn.Status.Type)).Set(ready)
	}()

	s := &connectionScope{conn: conn}
	res, err := r.runSteps(ctx, s)
	if err == nil || outcome.IsStalled(err) {
		// Handled: it succeeded, or it stalled and only a human can move it on.
		r.acknowledgeRequest(conn)
	}
	return summarize(ctx, conn, res, err, func() string {
		msg := fmt.Sprintf("Connected as %s", conn.Status.Identity.DisplayName)
		if p := conn.Status.Probe; p != nil && p.VendorUsage != "" {
			msg += "; " + p.VendorUsage
		}
		if c := conditionOf(conn, v1alpha1.SyncedCondition); c != nil && c.Message != "" {
			msg += "; sync: " + c.Message
		}
		return msg
	})
}

// runSteps runs the steps in order and returns the combined result and the first error.
func (r *ConnectionReconciler) runSteps(ctx context.Context, s *connectionScope) (ctrl.Result, error) {
	var result ctrl.Result
	for _, step := range r.steps() {
		if s.failed != nil && !step.always {
			continue
		}
		res, err := step.run(ctx, s)
		result = earliest(result, res)
		if err != nil && s.failed == nil {
			log.FromContext(ctx).V(1).Info("step failed", "step", step.name, "error", err.Error())
			s.failed = err
		}
	}
	return result, s.failed
}

// inShard tells whether this instance's shard owns conn.
func (r *ConnectionReconciler) inShard(conn client.Object) bool {
	return r.Shard == nil || r.Shard.Matches(labels.Set(conn.GetLabels()))
}

// forget drops everything kept for a Connection that is gone.
func (r *ConnectionReconciler) forget(key client.ObjectKey) {
	r.memory.Forget(key)
	r.Vendors.Forget(key)
	connectionReady.DeletePartialMatch(map[string]string{"namespace": key.Namespace, "name": key.Name})
	syncer.ForgetMetrics(key.Namespace, key.Name)
	if r.Sync != nil {
		r.Sync.Remove(key)
	}
}

// reconcileConnector resolves the Connector and checks that it admits this Connection,
// by the rule the OAuth2 routes apply too (policy.Admit).
func (r *ConnectionReconciler) reconcileConnector(ctx context.Context, s *connectionScope) (ctrl.Result, error) {
	conn := s.conn
	connector := &v1alpha1.Connector{}
	if err := r.Get(ctx, types.NamespacedName{Name: conn.Spec.ConnectorRef.Name}, connector); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
		connector = nil
	} else {
		conn.Status.Type = connector.Spec.Type
	}
	var nsLabels map[string]string
	if policy.NeedsNamespaceLabels(connector) {
		// Namespace metadata is all we need; the metadata cache serves it.
		ns := &metav1.PartialObjectMetadata{}
		ns.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
		if err := r.Get(ctx, types.NamespacedName{Name: conn.Namespace}, ns); err != nil {
			return ctrl.Result{}, err
		}
		nsLabels = ns.Labels
	}
	err := policy.Admit(conn, connector, nsLabels)
	var refusal *policy.Refusal
	switch {
	case err == nil:
		s.connector = connector
		return ctrl.Result{}, nil
	case !errors.As(err, &refusal):
		return ctrl.Result{}, err
	case refusal.Settling:
		// The Connector is still being reconciled: not a human's problem yet. The
		// Connector watch wakes us when it settles; the timer is only a safety net.
		return ctrl.Result{}, outcome.Waiting(refusal.Reason, time.Minute, "%s", refusal.Message)
	default:
		// No requeue: a change to the Connector (its creation, spec or Ready condition),
		// this Connection or its namespace's labels wakes us.
		return ctrl.Result{}, outcome.Stalling(refusal.Reason, "%s", refusal.Message)
	}
}

// reconcileCredentials reads the Secret, probes the vendor's identity endpoint, and owns
// CredentialsValid, identity, probe and credentials. On success it asks to come back at
// the next (jittered) probe, or in time to refresh an OAuth2 access token.
func (r *ConnectionReconciler) reconcileCredentials(ctx context.Context, s *connectionScope) (ctrl.Result, error) {
	conn := s.conn
	err := r.probe(ctx, s)
	o := outcome.Classify(err)
	switch {
	case err == nil:
		setCondition(conn, v1alpha1.CredentialsValidCondition, metav1.ConditionTrue, v1alpha1.SucceededReason,
			fmt.Sprintf("authenticated as %s", conn.Status.Identity.DisplayName))
		next := wait.Jitter(r.probeInterval(conn, s.connector))
		if c := conn.Status.Credentials; c != nil && c.ExpiresAt != nil {
			// Come back in time to refresh the access token before it expires.
			next = min(next, max(time.Second, time.Until(c.ExpiresAt.Add(-oauth.RefreshBefore))))
		}
		return ctrl.Result{RequeueAfter: next}, nil
	case o == nil || o.Transient:
		// The credential was not judged: keep the last verdict rather than flapping it.
		if conditionOf(conn, v1alpha1.CredentialsValidCondition) == nil {
			setCondition(conn, v1alpha1.CredentialsValidCondition, metav1.ConditionUnknown, outcome.ReasonOf(err, v1alpha1.ProgressingReason), err.Error())
		}
	default:
		setCondition(conn, v1alpha1.CredentialsValidCondition, metav1.ConditionFalse, o.Reason, o.Message)
	}
	return ctrl.Result{}, err
}

// probe calls the vendor's identity endpoint unless the memory says the answer is known:
// the vendor asked us to wait, it rejected these very inputs, or it accepted them
// recently.
func (r *ConnectionReconciler) probe(ctx context.Context, s *connectionScope) error {
	conn, connector := s.conn, s.connector
	key, uid := s.key(), conn.UID
	// Honour a vendor's Retry-After before anything that could call it (an OAuth2
	// refresh included).
	if h, remaining, ok := r.memory.Hold(key, uid); ok {
		log.FromContext(ctx).V(1).Info("vendor asked us to wait", "remaining", remaining.Round(time.Millisecond))
		return outcome.Waiting(h.reason, remaining, "%s", h.message)
	}

	res, err := r.Vendors.ClientFor(ctx, conn, connector)
	s.client = res.Client
	if err != nil {
		if o := outcome.Classify(err); o != nil && o.Reason == v1alpha1.RefreshFailedReason {
			r.Recorder.Eventf(conn, nil, corev1.EventTypeWarning, v1alpha1.RefreshFailedReason, "RefreshToken", "%s", o.Message)
		}
		// A Problem is already an outcome; anything else is the API server: backoff.
		return err
	}
	if tok := res.OAuth; tok != nil {
		if conn.Status.Credentials == nil {
			conn.Status.Credentials = &v1alpha1.CredentialsStatus{}
		}
		// A vendor whose tokens carry no expiry has none to show (and a zero time would
		// never compare equal to what status reads back: a write every reconcile).
		conn.Status.Credentials.ExpiresAt = nil
		if !tok.Expiry.IsZero() {
			expires := metav1.NewTime(tok.Expiry.Truncate(time.Second))
			conn.Status.Credentials.ExpiresAt = &expires
		}
		if tok.Refreshed {
			now := metav1.NewTime(time.Now().Truncate(time.Second))
			conn.Status.Credentials.LastRefreshTime = &now
		}
	}

	inputs := probeInputs{conn.Generation, connector.Generation, res.SecretVersion, conn.Annotations[v1alpha1.RequestedAtAnnotation]}
	if r.memory.Rejected(key, uid, inputs) {
		// No vendor call: nothing changed since the vendor rejected this credential.
		if c := conditionOf(conn, v1alpha1.CredentialsValidCondition); c != nil && c.Reason == v1alpha1.CredentialsRejectedReason {
			return outcome.Stalling(v1alpha1.CredentialsRejectedReason, "%s", c.Message)
		}
	}
	r.memory.ClearRejected(key, uid)
	// 80%: the scheduled requeue comes after 90-110% of the interval and must probe.
	if conn.Status.Identity != nil && r.memory.ProbedWithin(key, uid, inputs, r.probeInterval(conn, connector)*8/10) {
		// Nothing changed and the last probe is recent: this reconcile is about sync.
		return nil
	}

	callCtx, cancel := context.WithTimeout(ctx, vendorCallTimeout)
	defer cancel()
	start := time.Now()
	id, err := res.Client.Identity(callCtx)
	latency := time.Since(start)
	if err != nil {
		o := outcome.Vendor(err)
		switch {
		case o.Reason == v1alpha1.CredentialsRejectedReason:
			r.memory.SetRejected(key, uid, inputs)
		case o.VendorAsked:
			r.memory.SetHold(key, uid, o.RequeueAfter, o.Reason, o.Message)
			log.FromContext(ctx).Info("vendor asked us to wait", "reason", o.Reason, "retryAfter", o.RequeueAfter)
		}
		return o
	}
	r.memory.SetProbed(key, uid, inputs)
	probeLatency.WithLabelValues(string(connector.Spec.Type)).Observe(latency.Seconds())
	identity := &v1alpha1.IdentityStatus{AccountID: id.AccountID, DisplayName: id.DisplayName,
		Organization: clip(id.Organization, 64), TimeZone: clip(id.TimeZone, 64), ServerVersion: clip(id.ServerVersion, 64)}
	// A probe a human asked for (requested-at) records its own time.
	requested := inputs.requestedAt != "" && inputs.requestedAt != conn.Status.LastHandledReconcileAt
	changed := requested || conn.Status.Identity == nil || *conn.Status.Identity != *identity ||
		!meta.IsStatusConditionTrue(conn.Status.Conditions, v1alpha1.CredentialsValidCondition)
	usage := usageNote(res.Client)
	if conn.Status.Probe != nil && conn.Status.Probe.VendorUsage != usage {
		changed = true
	}
	conn.Status.Identity = identity
	conn.Status.Probe = nextProbeStatus(conn.Status.Probe, start.Add(latency), latency, changed)
	conn.Status.Probe.VendorUsage = usage
	return nil
}

// usageSteps are the shares of a metered allowance status reports: coarse, so that the
// status changes a few times a day at most.
var usageSteps = []int64{100, 98, 95, 90}

// usageNote is status.probe.vendorUsage for c: empty below 90% of its allowance.
func usageNote(c connectors.Client) string {
	ur, ok := c.(connectors.UsageReporter)
	if !ok {
		return ""
	}
	u, ok := ur.Usage()
	if !ok || u.Limit <= 0 {
		return ""
	}
	for _, step := range usageSteps {
		if u.Used*100 >= step*u.Limit {
			note := fmt.Sprintf("vendor API usage at %d%% or more of its allowance", step)
			if u.Slowed {
				note += "; calls are slowed"
			}
			return note
		}
	}
	return ""
}

// probeRecordEvery is how stale status.probe may grow while nothing else changes.
const probeRecordEvery = time.Hour

// latencyClasses are the upper bounds of the probe latency classes status.probe
// reports: answering, slow, nearly timing out (vendorCallTimeout is 10 s). They are
// wide: a bound at 250 ms flapped on a loaded machine (35 writes in the scale
// benchmark's idle minute). The exact figure of each probe is in
// connector_probe_duration_seconds.
var latencyClasses = []time.Duration{time.Second, 5 * time.Second}

func latencyClass(d time.Duration) int {
	for i, bound := range latencyClasses {
		if d < bound {
			return i
		}
	}
	return len(latencyClasses)
}

// nextProbeStatus is status.probe after a successful probe that answered at `at` after
// latency. It is a new record only when the verdict or identity changed, the latency
// moved to another class, or the record is an hour old; otherwise the old one stays, so
// that a periodic probe with nothing new to say writes no status (10,000 Connections
// probed every 5 minutes would otherwise cost 33 writes a second), and a Connection costs
// at most one probe write an hour in the steady state.
func nextProbeStatus(prev *v1alpha1.ProbeStatus, at time.Time, latency time.Duration, changed bool) *v1alpha1.ProbeStatus {
	if prev != nil && prev.LastTime != nil && !changed &&
		latencyClass(time.Duration(prev.LatencyMillis)*time.Millisecond) == latencyClass(latency) &&
		at.Sub(prev.LastTime.Time) < probeRecordEvery {
		return prev
	}
	now := metav1.NewTime(at.Truncate(time.Second))
	return &v1alpha1.ProbeStatus{LastTime: &now, LatencyMillis: latency.Milliseconds()}
}

func (r *ConnectionReconciler) acknowledgeRequest(conn *v1alpha1.Connection) {
	if v, ok := conn.Annotations[v1alpha1.RequestedAtAnnotation]; ok {
		conn.Status.LastHandledReconcileAt = v
	}
}

func (r *ConnectionReconciler) probeInterval(conn *v1alpha1.Connection, connector *v1alpha1.Connector) time.Duration {
	switch {
	case conn.Spec.Probe.Interval != nil:
		return conn.Spec.Probe.Interval.Duration
	case connector != nil && connector.Spec.Defaults.ProbeInterval != nil:
		return connector.Spec.Defaults.ProbeInterval.Duration
	default:
		return defaultProbeInterval
	}
}

// SetupWithManager registers the controller, its indexes and its watches.
func (r *ConnectionReconciler) SetupWithManager(mgr ctrl.Manager, opts ControllerOptions) error {
	if err := indexConnections(context.Background(), mgr.GetFieldIndexer()); err != nil {
		return err
	}
	r.syncEvents = make(chan event.GenericEvent, 1024)
	return ctrl.NewControllerManagedBy(mgr).
		// A label change may move the Connection between shards: the old one lets go, the
		// new one takes it.
		For(&v1alpha1.Connection{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{},
			predicate.LabelChangedPredicate{}))).
		Watches(&v1alpha1.Connector{},
			handler.EnqueueRequestsFromMapFunc(r.connectionsOfConnector),
			builder.WithPredicates(connectorChangedPredicate())).
		// Metadata only: Secret data is read live, never cached cluster-wide.
		WatchesMetadata(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.connectionsOfSecret),
			builder.WithPredicates(predicate.ResourceVersionChangedPredicate{}, secretChangedPredicate())).
		// A namespace relabelled in or out of a Connector's allowedNamespaces.
		WatchesMetadata(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.connectionsInNamespace),
			builder.WithPredicates(predicate.LabelChangedPredicate{})).
		// The sync engine's reports (state changes) come back through this channel.
		WatchesRawSource(source.Channel(r.syncEvents, &handler.EnqueueRequestForObject{})).
		WithOptions(opts.controllerOptions()).
		Named("connection").
		Complete(r)
}

func (r *ConnectionReconciler) connectionsOfConnector(ctx context.Context, obj client.Object) []reconcile.Request {
	var list v1alpha1.ConnectionList
	if err := r.List(ctx, &list, client.MatchingFields{indexConnectorRef: obj.GetName()}); err != nil {
		log.FromContext(ctx).Error(err, "listing Connections of Connector", "connector", obj.GetName())
		return nil
	}
	return requestsFor(list.Items)
}

func (r *ConnectionReconciler) connectionsOfSecret(ctx context.Context, obj client.Object) []reconcile.Request {
	var list v1alpha1.ConnectionList
	if err := r.List(ctx, &list, client.InNamespace(obj.GetNamespace()),
		client.MatchingFields{indexSecretRefs: obj.GetName()}); err != nil {
		log.FromContext(ctx).Error(err, "listing Connections of Secret", "secret", obj.GetName())
		return nil
	}
	return requestsFor(list.Items)
}

func (r *ConnectionReconciler) connectionsInNamespace(ctx context.Context, obj client.Object) []reconcile.Request {
	var list v1alpha1.ConnectionList
	if err := r.List(ctx, &list, client.InNamespace(obj.GetName())); err != nil {
		log.FromContext(ctx).Error(err, "listing Connections in namespace", "namespace", obj.GetName())
		return nil
	}
	return requestsFor(list.Items)
}

func requestsFor(conns []v1alpha1.Connection) []reconcile.Request {
	reqs := make([]reconcile.Request, 0, len(conns))
	for i := range conns {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&conns[i])})
	}
	return reqs
}

// connectorChangedPredicate passes Connector events that can change a Connection's
// outcome: creation, deletion, a new generation, or a new Ready verdict (its status,
// reason or observed generation: a Connector's first verdict, even a False one, must
// reach the Connections that wait on it at once, not at their next timer). Status-only
// updates (connection counts) are dropped, so they never cause a vendor call.
func connectorChangedPredicate() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			oldC, okOld := e.ObjectOld.(*v1alpha1.Connector)
			newC, okNew := e.ObjectNew.(*v1alpha1.Connector)
			if !okOld || !okNew {
				return true
			}
			if oldC.Generation != newC.Generation {
				return true
			}
			return readyVerdict(oldC) != readyVerdict(newC)
		},
	}
}

// verdict is what a Connection reads of its Connector's Ready condition.
type verdict struct {
	status     metav1.ConditionStatus
	reason     string
	generation int64
}

// readyVerdict is c's Ready verdict; the zero verdict before it has one.
func readyVerdict(c *v1alpha1.Connector) verdict {
	cond := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ReadyCondition)
	if cond == nil {
		return verdict{}
	}
	return verdict{cond.Status, cond.Reason, cond.ObservedGeneration}
}

// clip cuts s to at most n bytes on a rune boundary (status fields are bounded).
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
