package controllers

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
)

// conditionsObject is a status holder with metav1 conditions.
type conditionsObject interface {
	metav1.Object
	GetConditions() []metav1.Condition
	SetConditions([]metav1.Condition)
}

func setCondition(obj conditionsObject, typ string, status metav1.ConditionStatus, reason, msg string) {
	conds := obj.GetConditions()
	meta.SetStatusCondition(&conds, metav1.Condition{
		Type:               typ,
		Status:             status,
		Reason:             reason,
		Message:            msg,
		ObservedGeneration: obj.GetGeneration(),
	})
	obj.SetConditions(conds)
}

func removeCondition(obj conditionsObject, typ string) {
	conds := obj.GetConditions()
	meta.RemoveStatusCondition(&conds, typ)
	obj.SetConditions(conds)
}

// markReady records success: Ready=True and the kstatus pair removed.
func markReady(obj conditionsObject, msg string) {
	setCondition(obj, v1alpha1.ReadyCondition, metav1.ConditionTrue, v1alpha1.SucceededReason, msg)
	removeCondition(obj, v1alpha1.ReconcilingCondition)
	removeCondition(obj, v1alpha1.StalledCondition)
}

// markStalled records a problem only a human can fix: kstatus reads Failed.
func markStalled(obj conditionsObject, reason, msg string) {
	setCondition(obj, v1alpha1.ReadyCondition, metav1.ConditionFalse, reason, msg)
	setCondition(obj, v1alpha1.StalledCondition, metav1.ConditionTrue, reason, msg)
	removeCondition(obj, v1alpha1.ReconcilingCondition)
}

// markRetrying records a transient problem: kstatus reads InProgress.
func markRetrying(obj conditionsObject, reason, msg string) {
	setCondition(obj, v1alpha1.ReadyCondition, metav1.ConditionFalse, reason, msg)
	setCondition(obj, v1alpha1.ReconcilingCondition, metav1.ConditionTrue, reason, msg)
	removeCondition(obj, v1alpha1.StalledCondition)
}

// markProgressing records that work on a new generation has started.
func markProgressing(obj conditionsObject, msg string) {
	setCondition(obj, v1alpha1.ReconcilingCondition, metav1.ConditionTrue, v1alpha1.ProgressingReason, msg)
	if meta.FindStatusCondition(obj.GetConditions(), v1alpha1.ReadyCondition) == nil {
		setCondition(obj, v1alpha1.ReadyCondition, metav1.ConditionUnknown, v1alpha1.ProgressingReason, msg)
	}
}

func conditionOf(obj conditionsObject, typ string) *metav1.Condition {
	return meta.FindStatusCondition(obj.GetConditions(), typ)
}

// recordTransitions emits an Event when Ready or Synced changed status or reason since
// before: Events mark transitions (failure, recovery), not reconciles.
func recordTransitions(rec events.EventRecorder, obj conditionsObject, before []metav1.Condition) {
	for _, typ := range []string{v1alpha1.ReadyCondition, v1alpha1.SyncedCondition} {
		recordTransition(rec, obj, before, typ)
	}
}

func recordTransition(rec events.EventRecorder, obj conditionsObject, before []metav1.Condition, typ string) {
	a := meta.FindStatusCondition(obj.GetConditions(), typ)
	if a == nil || a.Status == metav1.ConditionUnknown {
		return
	}
	if b := meta.FindStatusCondition(before, typ); b != nil && b.Status == a.Status && b.Reason == a.Reason {
		return
	}
	kind := corev1.EventTypeWarning
	if a.Status == metav1.ConditionTrue {
		kind = corev1.EventTypeNormal
	}
	rec.Eventf(obj.(runtime.Object), nil, kind, a.Reason, typ, "%s", a.Message)
}
