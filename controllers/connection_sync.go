package controllers

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/internal/outcome"
	"github.com/unified-connectors/connector-operator/internal/syncer"
)

// syncRetry is when a Connection whose sink is unavailable is looked at again if the
// engine has not reported first.
const syncRetry = time.Minute

// reconcileSync keeps the sync engine in the state the reconcile's outcome calls for,
// and owns the Synced condition. It runs whatever the earlier steps returned:
//
//   - no engine, or no sink: nothing to sync (Remove);
//   - the Connector step failed, whatever the reason (not found, not ready, namespace or
//     auth method refused), or the credential step stalled (rejected, refresh failed,
//     Secret missing or invalid, egress denied): the Connection must not be served, so
//     the engine stops at once (Remove), OAuth2 refreshes with the platform's client
//     included;
//   - the credential step failed transiently (vendor unreachable, rate limited): the
//     credential is not in doubt, so the engine goes on, with the current spec so that
//     suspend and sink changes apply (Ensure), but is not triggered;
//   - every step succeeded: Ensure, hand over requested-at and webhook triggers, and
//     report the engine's state.
func (r *ConnectionReconciler) reconcileSync(ctx context.Context, s *connectionScope) (ctrl.Result, error) {
	conn, key := s.conn, s.key()
	if r.Sync == nil {
		return ctrl.Result{}, nil
	}
	if conn.Spec.Sync == nil || conn.Spec.Sync.Sink == nil {
		// No sink, no sync: probe only.
		r.Sync.Remove(key)
		removeCondition(conn, v1alpha1.SyncedCondition)
		return ctrl.Result{}, nil
	}
	if s.failed != nil {
		if s.connector == nil || outcome.IsStalled(s.failed) {
			r.Sync.Remove(key)
			// Sync is off, as without a sink; Ready says why. A False Synced would read
			// as a sink-only problem, which the API still serves (policy.Servable).
			removeCondition(conn, v1alpha1.SyncedCondition)
			return ctrl.Result{}, nil
		}
		// The credential was not judged (the vendor or the API server had trouble).
		r.Sync.Ensure(conn, s.connector, r.syncInputs(ctx, conn, s.connector))
		// The credential step's error is the outcome; the engine's only shows in Synced.
		_ = r.setSynced(conn)
		return ctrl.Result{}, nil
	}

	r.Sync.Ensure(conn, s.connector, r.syncInputs(ctx, conn, s.connector))
	if v := conn.Annotations[v1alpha1.RequestedAtAnnotation]; v != "" && v != conn.Status.LastHandledReconcileAt {
		r.Sync.Trigger(key)
	}
	// The webhook receiver may run on any replica; its annotation carries the request
	// here, to the leader, through the API server.
	if containers := r.memory.NewWebhooks(key, conn.UID, conn.Annotations); slices.Contains(containers, syncer.AllContainers) {
		r.Sync.TriggerWebhook(key)
	} else if len(containers) > 0 {
		r.Sync.TriggerWebhook(key, containers...)
	}
	return ctrl.Result{}, r.setSynced(conn)
}

// setSynced reports the engine's state in Synced and returns what it means for the
// whole Connection.
func (r *ConnectionReconciler) setSynced(conn *v1alpha1.Connection) error {
	st, ok := r.Sync.State(client.ObjectKeyFromObject(conn))
	switch {
	case !ok || st.Reason == v1alpha1.ProgressingReason:
		if c := conditionOf(conn, v1alpha1.SyncedCondition); c == nil || c.Status != metav1.ConditionTrue {
			setCondition(conn, v1alpha1.SyncedCondition, metav1.ConditionUnknown, v1alpha1.ProgressingReason, cmp.Or(st.Message, "sync scheduled"))
		}
	case st.Synced:
		setCondition(conn, v1alpha1.SyncedCondition, metav1.ConditionTrue, v1alpha1.SucceededReason, st.Message)
	case st.Reason == v1alpha1.SuspendedReason:
		setCondition(conn, v1alpha1.SyncedCondition, metav1.ConditionFalse, v1alpha1.SuspendedReason, st.Message)
	case st.Stalled:
		setCondition(conn, v1alpha1.SyncedCondition, metav1.ConditionFalse, st.Reason, st.Message)
		// No requeue: the engine resumes when the Connection, its Secrets or its
		// Connector change (or on requested-at), and tells us.
		return outcome.Stalling(st.Reason, "sync: %s", st.Message)
	case st.Reason == v1alpha1.SinkUnavailableReason:
		setCondition(conn, v1alpha1.SyncedCondition, metav1.ConditionFalse, st.Reason, st.Message)
		// The engine retries by itself and reports recovery; the timer is a safety net.
		return outcome.Waiting(st.Reason, syncRetry, "sync: %s", st.Message)
	default:
		// A vendor hiccup during sync: the credential is fine (the probe just said so),
		// the next run will catch up.
		setCondition(conn, v1alpha1.SyncedCondition, metav1.ConditionFalse, st.Reason, st.Message)
	}
	return nil
}

// syncInputs fingerprints what a stalled sync waits for a human to change: the
// Connection, the Connector and the Secrets it reads (their versions come from the
// metadata cache; their data is never cached).
func (r *ConnectionReconciler) syncInputs(ctx context.Context, conn *v1alpha1.Connection, connector *v1alpha1.Connector) string {
	versions := make([]string, 0, 3)
	for _, name := range secretNames(conn) {
		m := &metav1.PartialObjectMetadata{}
		m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
		if err := r.Get(ctx, client.ObjectKey{Namespace: conn.Namespace, Name: name}, m); err == nil {
			versions = append(versions, m.ResourceVersion)
		}
	}
	return fmt.Sprintf("%d/%d/%s", conn.Generation, connector.Generation, strings.Join(versions, ","))
}

// NotifySync is the engine's Notify: it enqueues the Connection through the controller's
// channel source. The send runs in its own goroutine so the engine never blocks on the
// controller's queue.
func (r *ConnectionReconciler) NotifySync(key client.ObjectKey) {
	obj := &v1alpha1.Connection{}
	obj.Namespace, obj.Name = key.Namespace, key.Name
	go func() { r.syncEvents <- event.GenericEvent{Object: obj} }()
}

// SyncEngine is the subset of *syncer.Engine the reconciler uses.
type SyncEngine interface {
	Ensure(conn *v1alpha1.Connection, connector *v1alpha1.Connector, inputs string)
	Remove(key client.ObjectKey)
	Trigger(key client.ObjectKey, containers ...string)
	TriggerWebhook(key client.ObjectKey, containers ...string)
	State(key client.ObjectKey) (syncer.State, bool)
}
