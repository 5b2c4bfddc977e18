package controllers

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
)

// TestConnectorVerdictReachesConnections: a Connector's first verdict wakes its
// Connections even when it is not Ready (before, a Connection that met the Connector
// before its first verdict waited for its one-minute timer, and Flux or Argo CD read it
// InProgress meanwhile); a change of the counts alone does not.
func TestConnectorVerdictReachesConnections(t *testing.T) {
	p := connectorChangedPredicate()
	fresh := &v1alpha1.Connector{ObjectMeta: metav1.ObjectMeta{Name: "c", Generation: 1}}
	stalled := fresh.DeepCopy()
	stalled.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ReadyCondition, Status: metav1.ConditionFalse,
		Reason: v1alpha1.SecretNotFoundReason, ObservedGeneration: 1}}
	counted := stalled.DeepCopy()
	counted.Status.Connections = 3
	for _, tc := range []struct {
		name     string
		old, new *v1alpha1.Connector
		want     bool
	}{
		{"first verdict, not Ready", fresh, stalled, true},
		{"counts only", stalled, counted, false},
	} {
		if got := p.Update(event.UpdateEvent{ObjectOld: tc.old, ObjectNew: tc.new}); got != tc.want {
			t.Errorf("%s: passes %v, want %v", tc.name, got, tc.want)
		}
	}
}
