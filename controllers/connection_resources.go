package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/internal/outcome"
)

// finalizerPrefix marks the finalizers this operator sets (connectors.unified.dev/…): a
// provider names its own (connectors.ExternalResources.Finalizer), and any of them on a
// Connection means it may still hold something at the vendor.
var finalizerPrefix = v1alpha1.GroupVersion.Group + "/"

// releaseTimeout bounds one release of a Connection's vendor resources.
const releaseTimeout = 30 * time.Second

// reconcileResources keeps the finalizer of a Connection whose client creates resources
// at the vendor (a replication slot): set before the engine may create any, and, when the
// spec no longer needs them (a mode change), the resources released and the finalizer
// removed. It lets the provider fill its status block.
func (r *ConnectionReconciler) reconcileResources(ctx context.Context, s *connectionScope) (ctrl.Result, error) {
	er, ok := s.client.(connectors.ExternalResources)
	if !ok {
		return ctrl.Result{}, nil
	}
	conn := s.conn
	want := er.Finalizer()
	held := ourFinalizers(conn)
	switch {
	case want != "" && !controllerutil.ContainsFinalizer(conn, want):
		// Before the engine runs (the next step): it may create the resource.
		if err := r.setFinalizers(ctx, conn, append(otherFinalizers(conn), append(held, want)...)); err != nil {
			return ctrl.Result{}, err
		}
	case want == "" && len(held) > 0:
		// The engine may still be using them: stop it first (the sync step starts it
		// again with the current spec).
		if r.Sync != nil {
			r.Sync.Remove(s.key())
		}
		if err := r.release(ctx, conn, er); err != nil {
			return ctrl.Result{}, err
		}
		if err := r.setFinalizers(ctx, conn, otherFinalizers(conn)); err != nil {
			return ctrl.Result{}, err
		}
	}
	// Every reconcile that gets here (a probe, a spec change, the engine reporting a new
	// state) refreshes the provider's block: one cheap vendor query, and reconciles of a
	// Connection in steady state come only with its probes.
	callCtx, cancel := context.WithTimeout(ctx, vendorCallTimeout)
	defer cancel()
	if err := er.Report(callCtx, &conn.Status); err != nil {
		// Status only: the probe succeeded and the engine reports sync problems itself.
		log.FromContext(ctx).Info("reading the Connection's vendor resources failed", "error", err.Error())
	}
	return ctrl.Result{}, nil
}

// finalize releases what a deleted Connection holds at the vendor, then removes our
// finalizers. When the vendor cannot be reached (or the Connector, the Secret is gone),
// the finalizer stays and the release is retried with backoff: a replication slot left
// behind would make the database keep WAL forever. Removing the finalizer by hand
// abandons the resource (docs/vendors/postgresql.md says how to drop it then).
func (r *ConnectionReconciler) finalize(ctx context.Context, conn *v1alpha1.Connection) error {
	if len(ourFinalizers(conn)) == 0 {
		return nil
	}
	connector := &v1alpha1.Connector{}
	if err := r.Get(ctx, types.NamespacedName{Name: conn.Spec.ConnectorRef.Name}, connector); err != nil {
		if apierrors.IsNotFound(err) {
			err = fmt.Errorf("connector %q not found: cannot release what the Connection holds at the vendor", conn.Spec.ConnectorRef.Name)
		}
		r.Recorder.Eventf(conn, nil, corev1.EventTypeWarning, "ReleaseFailed", "Release", "%s", err.Error())
		return err
	}
	res, err := r.Vendors.ClientFor(ctx, conn, connector)
	if err != nil {
		r.Recorder.Eventf(conn, nil, corev1.EventTypeWarning, "ReleaseFailed", "Release", "%s", outcome.Vendor(err).Message)
		return err
	}
	if er, ok := res.Client.(connectors.ExternalResources); ok {
		if err := r.release(ctx, conn, er); err != nil {
			return err
		}
	}
	r.forget(client.ObjectKeyFromObject(conn))
	return r.setFinalizers(ctx, conn, otherFinalizers(conn))
}

func (r *ConnectionReconciler) release(ctx context.Context, conn *v1alpha1.Connection, er connectors.ExternalResources) error {
	callCtx, cancel := context.WithTimeout(ctx, releaseTimeout)
	defer cancel()
	if err := er.Release(callCtx); err != nil {
		msg := outcome.Vendor(err).Message
		r.Recorder.Eventf(conn, nil, corev1.EventTypeWarning, "ReleaseFailed", "Release", "%s", msg)
		return fmt.Errorf("releasing the Connection's vendor resources: %s", msg)
	}
	r.Recorder.Eventf(conn, nil, corev1.EventTypeNormal, "Released", "Release", "released what the Connection held at the vendor")
	return nil
}

// setFinalizers patches metadata.finalizers to want, failing on a concurrent change (the
// optimistic lock), which the requeue retries.
//
// It patches a copy: the answer would replace conn's status, which this reconcile has
// changed in memory (identity, conditions) and writes at its end. Only the finalizers
// are copied back (a status patch ignores metadata).
func (r *ConnectionReconciler) setFinalizers(ctx context.Context, conn *v1alpha1.Connection, want []string) error {
	obj := conn.DeepCopy()
	base := obj.DeepCopy()
	obj.SetFinalizers(want)
	if err := r.Patch(ctx, obj, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
		return client.IgnoreNotFound(err)
	}
	conn.SetFinalizers(want)
	return nil
}

func ourFinalizers(conn *v1alpha1.Connection) []string {
	var out []string
	for _, f := range conn.Finalizers {
		if strings.HasPrefix(f, finalizerPrefix) {
			out = append(out, f)
		}
	}
	return out
}

func otherFinalizers(conn *v1alpha1.Connection) []string {
	out := []string{}
	for _, f := range conn.Finalizers {
		if !strings.HasPrefix(f, finalizerPrefix) {
			out = append(out, f)
		}
	}
	return out
}
