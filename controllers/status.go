package controllers

import (
	"context"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/internal/outcome"
)

// statusObject is a kind this package reconciles: a Connector or a Connection.
type statusObject interface {
	client.Object
	conditionsObject
}

// statusPatcher is the one path by which the reconcilers write status (STYLE 8): a merge
// patch of status against what was last written, sent only when status changed, and an
// Event for each Ready or Synced transition.
type statusPatcher struct {
	client   client.Client
	recorder events.EventRecorder
	base     statusObject
}

// newStatusPatcher starts tracking obj as fetched.
func newStatusPatcher(c client.Client, rec events.EventRecorder, obj statusObject) *statusPatcher {
	return &statusPatcher{client: c, recorder: rec, base: obj.DeepCopyObject().(statusObject)}
}

// Patch writes obj's status if it changed since the last Patch (or the fetch). An
// object deleted meanwhile is not an error: there is nothing left to report on.
func (p *statusPatcher) Patch(ctx context.Context, obj statusObject) error {
	if equality.Semantic.DeepEqual(statusOf(p.base), statusOf(obj)) {
		return nil
	}
	if err := p.client.Status().Patch(ctx, obj, client.MergeFrom(p.base)); err != nil {
		return client.IgnoreNotFound(err)
	}
	recordTransitions(p.recorder, obj, p.base.GetConditions())
	p.base = obj.DeepCopyObject().(statusObject)
	return nil
}

func statusOf(obj statusObject) any {
	switch o := obj.(type) {
	case *v1alpha1.Connection:
		return &o.Status
	case *v1alpha1.Connector:
		return &o.Status
	default:
		panic("statusOf: not a kind of this package")
	}
}

func setObservedGeneration(obj statusObject) {
	switch o := obj.(type) {
	case *v1alpha1.Connection:
		o.Status.ObservedGeneration = o.Generation
	case *v1alpha1.Connector:
		o.Status.ObservedGeneration = o.Generation
	}
}

// summarize records how a reconcile ended in obj's Ready and kstatus conditions and
// returns what controller-runtime should do next. It is the one place that reads the
// outcome vocabulary (internal/outcome) for both kinds (STYLE 7):
//
//   - success: Ready=True with readyMsg, observedGeneration, and res (the next poll);
//   - stalling: Ready=False and Stalled=True, observedGeneration (the verdict is about
//     this generation), no requeue: a watch wakes us when a human changes something;
//   - waiting: Ready=False and Reconciling=True, requeued after its hint, or with the
//     controller's exponential backoff when it has none;
//   - anything else (the API server): Reconciling=True Progressing, and backoff.
func summarize(ctx context.Context, obj statusObject, res ctrl.Result, err error, readyMsg func() string) (ctrl.Result, error) {
	if err == nil {
		markReady(obj, readyMsg())
		setObservedGeneration(obj)
		return res, nil
	}
	o := outcome.Classify(err)
	switch {
	case o == nil:
		markRetrying(obj, v1alpha1.ProgressingReason, err.Error())
		// Backoff: the controller's exponential rate limiter spaces the retries.
		return ctrl.Result{}, err
	case o.Stalled():
		markStalled(obj, o.Reason, o.Message)
		setObservedGeneration(obj)
		log.FromContext(ctx).Info("stalled until a human changes something", "reason", o.Reason, "message", o.Message)
		// No requeue: see the step that returned the stalling error.
		return ctrl.Result{}, nil
	default:
		markRetrying(obj, o.Reason, o.Message)
		if o.RequeueAfter > 0 {
			return ctrl.Result{RequeueAfter: o.RequeueAfter}, nil
		}
		// Backoff: the controller's exponential rate limiter spaces the retries.
		return ctrl.Result{}, err
	}
}

// earliest combines the results of two steps: the sooner requeue wins.
func earliest(a, b ctrl.Result) ctrl.Result {
	switch {
	case a.RequeueAfter == 0:
		return b
	case b.RequeueAfter == 0:
		return a
	default:
		return ctrl.Result{RequeueAfter: min(a.RequeueAfter, b.RequeueAfter)}
	}
}
