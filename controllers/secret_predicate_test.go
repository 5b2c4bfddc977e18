package controllers

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/unified-connectors/connector-operator/internal/oauth"
)

// TestSecretChangedPredicate: the refresh lock's own writes do not wake a Connection (a
// refused refresh would loop otherwise); every other Secret change does.
func TestSecretChangedPredicate(t *testing.T) {
	meta := func(rv string, ann map[string]string) *metav1.PartialObjectMetadata {
		return &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{ResourceVersion: rv, Annotations: ann}}
	}
	lock := map[string]string{oauth.LockAnnotation: "pod-a 2026-01-01T00:00:00Z"}
	p := secretChangedPredicate()
	for _, tc := range []struct {
		name     string
		old, new *metav1.PartialObjectMetadata
		want     bool
	}{
		{"lock taken", meta("1", nil), meta("2", lock), false},
		{"lock released", meta("2", lock), meta("3", nil), false},
		{"data or other change", meta("3", nil), meta("4", map[string]string{"team": "a"}), true},
		{"change while locked", meta("2", lock), meta("3", lock), true},
		{"new authorization clearing a lock", meta("2", lock), meta("3", map[string]string{oauth.AuthorizedAnnotation: "2026-12-02T06:00:00Z"}), true},
	} {
		if got := p.Update(event.UpdateEvent{ObjectOld: tc.old, ObjectNew: tc.new}); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
