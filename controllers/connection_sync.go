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
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/internal/syncer"
)

// syncRetry is when a Connection whose sink is unavailable is looked at again if the
// engine has not reported first.
const syncRetry = time.Minute

// reconcileSync hands the Connection to the sync engine (or takes it away) and owns the
// Synced condition.
func (r *ConnectionReconciler) reconcileSync(ctx context.Context, conn *v1alpha1.Connection, connector *v1alpha1.Connector) error {
	key := client.ObjectKeyFromObject(conn)
	if r.Sync == nil {
		return nil
	}
	if conn.Spec.Sync == nil || conn.Spec.Sync.Sink == nil {
		// No sink, no sync: probe only.
		r.Sync.Remove(key)
		removeCondition(conn, v1alpha1.SyncedCondition)
		return nil
	}
	r.Sync.Ensure(conn, connector, r.syncInputs(ctx, conn, connector))
	if v := conn.Annotations[v1alpha1.RequestedAtAnnotation]; v != "" && v != conn.Status.LastHandledReconcileAt {
		r.Sync.Trigger(key)
	}
	// The webhook receiver may run on any replica; its annotation carries the request
	// here, to the leader, through the API server.
	if containers := r.newWebhookRequests(conn); slices.Contains(containers, syncer.AllContainers) {
		r.Sync.TriggerWebhook(key)
	} else if len(containers) > 0 {
		r.Sync.TriggerWebhook(key, containers...)
	}

	st, ok := r.Sync.State(key)
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
		return stalled(st.Reason, "sync: %s", st.Message)
	case st.Reason == v1alpha1.SinkUnavailableReason:
		setCondition(conn, v1alpha1.SyncedCondition, metav1.ConditionFalse, st.Reason, st.Message)
		// The engine retries by itself and reports recovery; the timer is a safety net.
		return waiting(st.Reason, syncRetry, "sync: %s", st.Message)
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

// newWebhookRequests returns the containers whose webhook annotation changed since this
// replica last saw it. A new leader sees every annotation once: one extra incremental
// sync, which is harmless.
func (r *ConnectionReconciler) newWebhookRequests(conn *v1alpha1.Connection) []string {
	key := client.ObjectKeyFromObject(conn)
	seenAny, _ := r.webhooks.LoadOrStore(key, map[string]string{})
	seen := seenAny.(map[string]string)
	next := make(map[string]string, len(seen))
	var containers []string
	for k, v := range conn.Annotations {
		container, ok := strings.CutPrefix(k, syncer.WebhookAnnotationPrefix)
		if !ok {
			continue
		}
		next[container] = v
		if seen[container] != v {
			containers = append(containers, container)
		}
	}
	r.webhooks.Store(key, next)
	return containers
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
