package controllers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/internal/vendorclient"
)

// ConnectorReconciler validates Connectors and counts their Connections.
type ConnectorReconciler struct {
	client.Client
	Recorder events.EventRecorder
	// Namespace is the operator's own namespace, where OAuth2 client Secrets live.
	Namespace string
	// Vendors checks Connectors statically (type, egress rules, OAuth2 client Secret).
	Vendors *vendorclient.Factory
	// CountsEvery is the least time between two reconciles of a settled Connector (Ready,
	// its generation observed); 0 means defaultCountsEvery. Every Connection that becomes
	// (un)ready wakes its Connector: 10,000 of them becoming Ready would otherwise mean
	// 10,000 counts over 10,000 Connections and as many status writes.
	CountsEvery time.Duration

	// now is the clock; nil means time.Now.
	now func() time.Time
	// counted is when each settled Connector was last reconciled, by name.
	counted sync.Map
}

// defaultCountsEvery: status.connections and readyConnections lag by at most this much.
const defaultCountsEvery = 5 * time.Second

func (r *ConnectorReconciler) clock() time.Time {
	if r.now != nil {
		return r.now()
	}
	return time.Now()
}

// throttled tells how long a settled Connector waits before it is counted again; 0
// means now (and records it).
func (r *ConnectorReconciler) throttled(connector *v1alpha1.Connector) time.Duration {
	now := r.clock()
	settled := connector.Status.ObservedGeneration == connector.Generation &&
		meta.IsStatusConditionTrue(connector.Status.Conditions, v1alpha1.ReadyCondition)
	if last, ok := r.counted.Load(connector.Name); ok && settled {
		if wait := cmp.Or(r.CountsEvery, defaultCountsEvery) - now.Sub(last.(time.Time)); wait > 0 {
			return wait
		}
	}
	r.counted.Store(connector.Name, now)
	return 0
}

// +kubebuilder:rbac:groups=connectors.unified.dev,resources=connectors,verbs=get;list;watch
// +kubebuilder:rbac:groups=connectors.unified.dev,resources=connectors/status,verbs=patch

// Reconcile runs the fixed skeleton: fetch → status patcher → deferred status patch →
// deletion → steps in order → summary.
func (r *ConnectorReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	connector := &v1alpha1.Connector{}
	if err := r.Get(ctx, req.NamespacedName, connector); err != nil {
		if apierrors.IsNotFound(err) {
			r.counted.Delete(req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	// No finalizer: a Connector owns nothing outside the API server; its Connections
	// report ConnectorNotFound once it is gone.
	if !connector.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	if wait := r.throttled(connector); wait > 0 {
		// Counted moments ago: count once more when the burst of Connection changes has
		// had time to settle (the queue holds one request per Connector).
		return ctrl.Result{RequeueAfter: wait}, nil
	}

	patcher := newStatusPatcher(r.Client, r.Recorder, connector)
	defer func() {
		if err := patcher.Patch(ctx, connector); err != nil {
			retErr = errors.Join(retErr, err)
		}
	}()

	err := r.reconcileCounts(ctx, connector)
	if err == nil {
		err = r.reconcileValidation(ctx, connector)
	}
	// No requeue on success or stall: the Connector, its client Secret or its
	// Connections changing wake us.
	return summarize(ctx, connector, ctrl.Result{}, err, func() string {
		return fmt.Sprintf("%s connector at %s is ready", connector.Spec.Type, connector.Spec.BaseURL)
	})
}

// reconcileValidation checks what can be checked without calling the vendor.
func (r *ConnectorReconciler) reconcileValidation(ctx context.Context, connector *v1alpha1.Connector) error {
	warnings, err := r.Vendors.CheckConnector(ctx, connector)
	if err != nil {
		// A Problem (internal/outcome) or the API server.
		return err
	}
	if connector.Status.ObservedGeneration != connector.Generation {
		// Once per generation: the Connector is reconciled on every Connection change.
		for _, w := range warnings {
			log.FromContext(ctx).Info("connector warning", "warning", w)
		}
	}
	return nil
}

// reconcileCounts counts the Connections using this Connector and the Ready ones.
func (r *ConnectorReconciler) reconcileCounts(ctx context.Context, connector *v1alpha1.Connector) error {
	var list v1alpha1.ConnectionList
	// Read only: no copy of every Connection out of the cache.
	if err := r.List(ctx, &list, client.MatchingFields{indexConnectorRef: connector.Name}, client.UnsafeDisableDeepCopy); err != nil {
		return err
	}
	var ready int32
	for i := range list.Items {
		if meta.IsStatusConditionTrue(list.Items[i].Status.Conditions, v1alpha1.ReadyCondition) {
			ready++
		}
	}
	connector.Status.Connections = int32(len(list.Items))
	connector.Status.ReadyConnections = ready
	return nil
}

// SetupWithManager registers the controller. It expects the Connection indexes, which
// ConnectionReconciler.SetupWithManager registers; call that first.
func (r *ConnectorReconciler) SetupWithManager(mgr ctrl.Manager, opts ControllerOptions) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.Connector{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		// Only what changes the counts: a Connection created, deleted, moved to another
		// Connector or becoming (un)ready; not every sync progress write.
		Watches(&v1alpha1.Connection{}, handler.EnqueueRequestsFromMapFunc(
			func(_ context.Context, o client.Object) []reconcile.Request {
				return []reconcile.Request{{NamespacedName: client.ObjectKey{Name: o.(*v1alpha1.Connection).Spec.ConnectorRef.Name}}}
			}), builder.WithPredicates(predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
			oldC, okOld := e.ObjectOld.(*v1alpha1.Connection)
			newC, okNew := e.ObjectNew.(*v1alpha1.Connection)
			return !okOld || !okNew || oldC.Spec.ConnectorRef != newC.Spec.ConnectorRef ||
				meta.IsStatusConditionTrue(oldC.Status.Conditions, v1alpha1.ReadyCondition) !=
					meta.IsStatusConditionTrue(newC.Status.Conditions, v1alpha1.ReadyCondition)
		}})).
		WatchesMetadata(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.connectorsOfSecret),
			builder.WithPredicates(predicate.ResourceVersionChangedPredicate{})).
		WithOptions(opts.controllerOptions()).
		Named("connector").
		Complete(r)
}

func (r *ConnectorReconciler) connectorsOfSecret(ctx context.Context, obj client.Object) []reconcile.Request {
	if obj.GetNamespace() != r.Namespace {
		return nil
	}
	var list v1alpha1.ConnectorList
	if err := r.List(ctx, &list); err != nil {
		log.FromContext(ctx).Error(err, "listing Connectors")
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		if o := list.Items[i].Spec.OAuth2; o != nil && o.ClientSecretRef.Name == obj.GetName() {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
	}
	return reqs
}
