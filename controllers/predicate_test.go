package controllers

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors"
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

type meteredClient struct {
	connectors.Client
	u connectors.Usage
}

func (m meteredClient) Usage() (connectors.Usage, bool) { return m.u, true }

// TestUsageNoteIsCoarse: status says nothing below 90% of a metered allowance and then
// only steps (90, 95, 98, 100%), so usage creeping up writes status a few times a day.
func TestUsageNoteIsCoarse(t *testing.T) {
	for _, tc := range []struct {
		used   int64
		slowed bool
		want   string
	}{
		{10, false, ""},
		{899, false, ""},
		{900, true, "vendor API usage at 90% or more of its allowance; calls are slowed"},
		{949, true, "vendor API usage at 90% or more of its allowance; calls are slowed"},
		{1000, false, "vendor API usage at 100% or more of its allowance"},
	} {
		got := usageNote(meteredClient{u: connectors.Usage{Used: tc.used, Limit: 1000, Slowed: tc.slowed}})
		if got != tc.want {
			t.Errorf("used %d: %q, want %q", tc.used, got, tc.want)
		}
	}
	if got := usageNote(nil); got != "" {
		t.Errorf("an unmetered client: %q", got)
	}
}
