package controllers

import (
	"context"
	"errors"
	"fmt"
	"github.com/unified-connectors/connector-operator/internal/wait"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
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
	"github.com/unified-connectors/connector-operator/internal/vendorclient"
)

// Defaults used when neither the Connection nor its Connector sets an interval (the CRD
// defaults the Connector's, so these only matter for objects written before defaulting).
const (
	defaultProbeInterval = 5 * time.Minute
	// vendorCallTimeout bounds every probe (STYLE 10).
	vendorCallTimeout = 10 * time.Second
)

// ConnectionReconciler validates a Connection's references and credential and probes the
// vendor's identity endpoint on the probe interval.
type ConnectionReconciler struct {
	client.Client
	Recorder events.EventRecorder
	// Vendors builds each Connection's vendor client (credentials, OAuth2 refresh, rate
	// limit, Retry-After, retries, egress guard), shared with the sync engine and the API.
	Vendors *vendorclient.Factory
	// Sync is the sync engine (leader only); nil disables sync.
	Sync SyncEngine

	// holds keeps each Connection's vendor-requested pause (Retry-After) so that no
	// trigger, however it arrives, calls the vendor inside the window.
	holds sync.Map // types.NamespacedName → time.Time
	// rejected remembers, per Connection, the inputs under which the vendor last rejected
	// the credential, so that duplicate or periodic triggers do not ask again until the
	// Connection, its Connector, its Secret or the requested-at annotation changes.
	rejected sync.Map // types.NamespacedName → probeInputs
	// probed remembers the inputs and time of each Connection's last successful probe,
	// so reconciles caused by sync progress do not call the vendor again before the
	// probe interval.
	probed sync.Map // types.NamespacedName → probeRecord
	// webhooks remembers the webhook annotations already handed to the engine.
	webhooks sync.Map // types.NamespacedName → map[container]value
	// syncEvents carries the engine's "look again" into the controller's queue.
	syncEvents chan event.GenericEvent
}

// probeRecord is a successful probe.
type probeRecord struct {
	inputs probeInputs
	at     time.Time
}

// probeInputs identifies everything a probe's verdict depends on.
type probeInputs struct {
	connection, connector int64
	secretVersion         string
	requestedAt           string
}

// +kubebuilder:rbac:groups=connectors.unified.dev,resources=connections,verbs=get;list;watch
// +kubebuilder:rbac:groups=connectors.unified.dev,resources=connections/status,verbs=patch
// +kubebuilder:rbac:groups=connectors.unified.dev,resources=connectors,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile runs the fixed skeleton: fetch → deferred status patch → steps in order.
func (r *ConnectionReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	logger := log.FromContext(ctx)

	conn := &v1alpha1.Connection{}
	if err := r.Get(ctx, req.NamespacedName, conn); err != nil {
		if apierrors.IsNotFound(err) {
			r.holds.Delete(req.NamespacedName)
			r.rejected.Delete(req.NamespacedName)
			r.Vendors.Forget(req.NamespacedName)
			r.probed.Delete(req.NamespacedName)
			r.webhooks.Delete(req.NamespacedName)
			connectionReady.DeletePartialMatch(map[string]string{"namespace": req.Namespace, "name": req.Name})
			if r.Sync != nil {
				r.Sync.Remove(req.NamespacedName)
			}
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	// No finalizer: a Connection owns nothing outside the API server.
	if !conn.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}

	base := conn.DeepCopy()
	if conn.Status.ObservedGeneration != conn.Generation {
		// Say so before the slow work, so that kstatus (Flux, Argo CD) reads InProgress
		// rather than the stale verdict of an older generation.
		markProgressing(conn, fmt.Sprintf("reconciling generation %d", conn.Generation))
		if err := r.patchStatus(ctx, base, conn); err != nil {
			return ctrl.Result{}, err
		}
		base = conn.DeepCopy()
	}
	defer func() {
		if err := r.patchStatus(ctx, base, conn); err != nil {
			retErr = errors.Join(retErr, err)
		}
	}()

	// Honour a vendor's Retry-After before anything that could call it.
	if until, ok := r.holds.Load(req.NamespacedName); ok {
		if wait := time.Until(until.(time.Time)); wait > 0 {
			logger.V(1).Info("vendor asked us to wait", "remaining", wait.Round(time.Millisecond))
			return ctrl.Result{RequeueAfter: wait}, nil
		}
		r.holds.Delete(req.NamespacedName)
	}

	connector, err := r.reconcileConnector(ctx, conn)
	if err == nil {
		err = r.reconcileCredentials(ctx, conn, connector)
	}
	if err == nil {
		err = r.reconcileSync(ctx, conn, connector)
	}
	return r.finish(ctx, conn, connector, err)
}

// reconcileConnector resolves the Connector and checks that it admits this Connection.
func (r *ConnectionReconciler) reconcileConnector(ctx context.Context, conn *v1alpha1.Connection) (*v1alpha1.Connector, error) {
	connector := &v1alpha1.Connector{}
	if err := r.Get(ctx, types.NamespacedName{Name: conn.Spec.ConnectorRef.Name}, connector); err != nil {
		if apierrors.IsNotFound(err) {
			// No requeue: the Connector watch wakes us when it is created.
			return nil, stalled(v1alpha1.ConnectorNotFoundReason, "Connector %q not found", conn.Spec.ConnectorRef.Name)
		}
		return nil, err
	}
	conn.Status.Type = connector.Spec.Type

	if connector.Spec.AllowedNamespaces != nil {
		sel, err := metav1.LabelSelectorAsSelector(connector.Spec.AllowedNamespaces)
		if err != nil {
			return nil, stalled(v1alpha1.NamespaceNotAllowedReason, "Connector %q has an invalid allowedNamespaces selector: %v", connector.Name, err)
		}
		// Namespace metadata is all we need; the metadata cache serves it.
		ns := &metav1.PartialObjectMetadata{}
		ns.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
		if err := r.Get(ctx, types.NamespacedName{Name: conn.Namespace}, ns); err != nil {
			return nil, err
		}
		if !sel.Matches(labels.Set(ns.Labels)) {
			// No requeue: a change to the Connector (or this Connection) wakes us.
			return nil, stalled(v1alpha1.NamespaceNotAllowedReason, "Connector %q does not allow Connections in namespace %q", connector.Name, conn.Namespace)
		}
	}
	if !connector.AllowsAuthMethod(conn.Spec.Auth.Method) {
		return nil, stalled(v1alpha1.AuthMethodNotAllowedReason, "Connector %q does not allow auth method %q (allowed: %v)", connector.Name, conn.Spec.Auth.Method, connector.Spec.AuthMethods)
	}
	ready := meta.FindStatusCondition(connector.Status.Conditions, v1alpha1.ReadyCondition)
	switch {
	case ready != nil && ready.Status == metav1.ConditionTrue:
		return connector, nil
	case ready == nil || ready.Status == metav1.ConditionUnknown || connector.Status.ObservedGeneration != connector.Generation:
		// The Connector is still being reconciled: not a human's problem yet. The Connector
		// watch wakes us when it settles; the timer is only a safety net.
		return nil, waiting(v1alpha1.ConnectorNotReadyReason, time.Minute, "Connector %q is not ready yet", connector.Name)
	default:
		// No requeue: the Connector watch wakes us when its Ready condition changes.
		return nil, stalled(v1alpha1.ConnectorNotReadyReason, "Connector %q is not ready: %s", connector.Name, ready.Message)
	}
}

// reconcileCredentials reads the Secret, probes the vendor's identity endpoint, and owns
// CredentialsValid, identity and probe.
func (r *ConnectionReconciler) reconcileCredentials(ctx context.Context, conn *v1alpha1.Connection, connector *v1alpha1.Connector) error {
	err := r.probe(ctx, conn, connector)
	switch {
	case err == nil:
		setCondition(conn, v1alpha1.CredentialsValidCondition, metav1.ConditionTrue, v1alpha1.SucceededReason,
			fmt.Sprintf("authenticated as %s", conn.Status.Identity.DisplayName))
	case isTransient(err):
		// The credential was not judged: keep the last verdict rather than flapping it.
		if meta.FindStatusCondition(conn.Status.Conditions, v1alpha1.CredentialsValidCondition) == nil {
			setCondition(conn, v1alpha1.CredentialsValidCondition, metav1.ConditionUnknown, reasonOf(err, v1alpha1.VendorUnreachableReason), err.Error())
		}
	default:
		setCondition(conn, v1alpha1.CredentialsValidCondition, metav1.ConditionFalse, reasonOf(err, v1alpha1.VendorUnreachableReason), err.Error())
	}
	return err
}

func (r *ConnectionReconciler) probe(ctx context.Context, conn *v1alpha1.Connection, connector *v1alpha1.Connector) error {
	res, err := r.Vendors.ClientFor(ctx, conn, connector)
	if err != nil {
		var p *vendorclient.Problem
		if errors.As(err, &p) && p.Reason == v1alpha1.RefreshFailedReason {
			r.Recorder.Eventf(conn, nil, corev1.EventTypeWarning, v1alpha1.RefreshFailedReason, "RefreshToken", "%s", p.Message)
		}
		return fromProblem(err)
	}
	if tok := res.OAuth; tok != nil {
		if conn.Status.Credentials == nil {
			conn.Status.Credentials = &v1alpha1.CredentialsStatus{}
		}
		expires := metav1.NewTime(tok.Expiry.Truncate(time.Second))
		conn.Status.Credentials.ExpiresAt = &expires
		if tok.Refreshed {
			now := metav1.NewTime(time.Now().Truncate(time.Second))
			conn.Status.Credentials.LastRefreshTime = &now
		}
	}

	key := client.ObjectKeyFromObject(conn)
	inputs := probeInputs{conn.Generation, connector.Generation, res.SecretVersion, conn.Annotations[v1alpha1.RequestedAtAnnotation]}
	if last, ok := r.rejected.Load(key); ok && last.(probeInputs) == inputs {
		// No vendor call: nothing changed since the vendor rejected this credential.
		c := meta.FindStatusCondition(conn.Status.Conditions, v1alpha1.CredentialsValidCondition)
		if c != nil && c.Reason == v1alpha1.CredentialsRejectedReason {
			return stalled(v1alpha1.CredentialsRejectedReason, "%s", c.Message)
		}
	}
	r.rejected.Delete(key)
	if last, ok := r.probed.Load(key); ok {
		rec := last.(probeRecord)
		// 80%: the scheduled requeue comes after 90-110% of the interval and must probe.
		if rec.inputs == inputs && time.Since(rec.at) < r.probeInterval(conn, connector)*8/10 && conn.Status.Identity != nil {
			// Nothing changed and the last probe is recent: this reconcile is about sync.
			return nil
		}
	}

	callCtx, cancel := context.WithTimeout(ctx, vendorCallTimeout)
	defer cancel()
	start := time.Now()
	id, err := res.Client.Identity(callCtx)
	latency := time.Since(start)
	if err != nil {
		err = classifyVendorError(err)
		if reasonOf(err, "") == v1alpha1.CredentialsRejectedReason {
			r.rejected.Store(key, inputs)
		}
		return err
	}
	r.probed.Store(key, probeRecord{inputs: inputs, at: time.Now()})
	probeLatency.WithLabelValues(string(connector.Spec.Type)).Observe(latency.Seconds())
	now := metav1.NewTime(start.Add(latency).Truncate(time.Second))
	conn.Status.Identity = &v1alpha1.IdentityStatus{AccountID: id.AccountID, DisplayName: id.DisplayName}
	conn.Status.Probe = &v1alpha1.ProbeStatus{LastTime: &now, LatencyMillis: latency.Milliseconds()}
	return nil
}

// classifyVendorError turns a vendor failure into a stalling or waiting error.
func classifyVendorError(err error) error {
	switch connectors.KindOf(err) {
	case connectors.KindAuth:
		// No requeue: the vendor refused the credential; the Secret watch wakes us.
		return stalled(v1alpha1.CredentialsRejectedReason, "%v", err)
	case connectors.KindRateLimited:
		return vendorWaiting(v1alpha1.RateLimitedReason, connectors.RetryAfterOf(err), err)
	case connectors.KindEgressDenied:
		return stalled(v1alpha1.EgressDeniedReason, "%v", err)
	case connectors.KindInvalid, connectors.KindNotFound:
		// A 403/404 on the identity endpoint means the credential cannot act here.
		return stalled(v1alpha1.CredentialsRejectedReason, "%v", err)
	default:
		return vendorWaiting(v1alpha1.VendorUnreachableReason, connectors.RetryAfterOf(err), err)
	}
}

func isTransient(err error) bool {
	var w *waitingError
	return errors.As(err, &w)
}

// finish turns the outcome of the steps into conditions and a result.
func (r *ConnectionReconciler) finish(ctx context.Context, conn *v1alpha1.Connection, connector *v1alpha1.Connector, err error) (ctrl.Result, error) {
	key := client.ObjectKeyFromObject(conn)
	var stall *stallingError
	var waitErr *waitingError
	switch {
	case err == nil:
		msg := fmt.Sprintf("Connected as %s", conn.Status.Identity.DisplayName)
		if c := conditionOf(conn, v1alpha1.SyncedCondition); c != nil && c.Message != "" {
			msg += "; sync: " + c.Message
		}
		markReady(conn, msg)
		conn.Status.ObservedGeneration = conn.Generation
		r.acknowledgeRequest(conn)
		next := wait.Jitter(r.probeInterval(conn, connector))
		if c := conn.Status.Credentials; c != nil && c.ExpiresAt != nil {
			// Come back in time to refresh the access token before it expires.
			next = min(next, max(time.Second, time.Until(c.ExpiresAt.Add(-oauth.RefreshBefore))))
		}
		return ctrl.Result{RequeueAfter: next}, nil
	case errors.As(err, &stall):
		markStalled(conn, stall.reason, stall.msg)
		conn.Status.ObservedGeneration = conn.Generation
		r.acknowledgeRequest(conn)
		log.FromContext(ctx).Info("stalled until a human changes something", "reason", stall.reason, "message", stall.msg)
		// No requeue: see the step that returned the stalling error.
		return ctrl.Result{}, nil
	case errors.As(err, &waitErr):
		markRetrying(conn, waitErr.reason, waitErr.msg)
		if waitErr.vendorAsked {
			r.holds.Store(key, time.Now().Add(waitErr.after))
			log.FromContext(ctx).Info("vendor asked us to wait", "reason", waitErr.reason, "retryAfter", waitErr.after)
		}
		if waitErr.after > 0 {
			return ctrl.Result{RequeueAfter: waitErr.after}, nil
		}
		// Backoff: the controller's exponential rate limiter spaces the retries.
		return ctrl.Result{}, err
	default:
		markRetrying(conn, v1alpha1.ProgressingReason, err.Error())
		return ctrl.Result{}, err
	}
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

// patchStatus writes status only when it changed, and emits an Event when Ready moved.
func (r *ConnectionReconciler) patchStatus(ctx context.Context, base, conn *v1alpha1.Connection) error {
	if equality.Semantic.DeepEqual(base.Status, conn.Status) {
		return nil
	}
	ready := 0.0
	if meta.IsStatusConditionTrue(conn.Status.Conditions, v1alpha1.ReadyCondition) {
		ready = 1
	}
	connectionReady.WithLabelValues(conn.Namespace, conn.Name, string(conn.Status.Type)).Set(ready)
	if err := r.Status().Patch(ctx, conn, client.MergeFrom(base)); err != nil {
		return client.IgnoreNotFound(err)
	}
	recordTransitions(r.Recorder, conn, base.Status.Conditions)
	return nil
}

// SetupWithManager registers the controller, its indexes and its watches.
func (r *ConnectionReconciler) SetupWithManager(mgr ctrl.Manager, opts ControllerOptions) error {
	if err := indexConnections(context.Background(), mgr.GetFieldIndexer()); err != nil {
		return err
	}
	r.syncEvents = make(chan event.GenericEvent, 1024)
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.Connection{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Watches(&v1alpha1.Connector{},
			handler.EnqueueRequestsFromMapFunc(r.connectionsOfConnector),
			builder.WithPredicates(connectorChangedPredicate())).
		// Metadata only: Secret data is read live, never cached cluster-wide.
		WatchesMetadata(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.connectionsOfSecret),
			builder.WithPredicates(predicate.ResourceVersionChangedPredicate{})).
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
// outcome: creation, deletion, a new generation, or a Ready transition. Status-only
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
			return meta.IsStatusConditionTrue(oldC.Status.Conditions, v1alpha1.ReadyCondition) !=
				meta.IsStatusConditionTrue(newC.Status.Conditions, v1alpha1.ReadyCondition)
		},
	}
}
