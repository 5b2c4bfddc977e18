// Package policy holds the rules that decide whether a Connection may be used, so that
// the Connection reconciler, the OAuth2 authorize/callback routes and the data routes of
// the HTTP API cannot disagree. Its functions are pure: callers read what they need
// (the Connector, the namespace's labels) and pass it in.
//
//	Admit     the Connector admits the Connection: it exists, its allowedNamespaces
//	          match the namespace, it allows spec.auth.method, and it is Ready.
//	          Reconciler (every reconcile) and OAuth2 authorize and callback.
//	Servable  the API may read through the Connection: its credential is valid for the
//	          current generation, and Ready is True or False only because of its sink.
//	          Data routes and search.
package policy

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
)

// Refusal is why a Connection may not be used: a condition reason of api/v1alpha1 and
// a message for humans, which names no credential.
type Refusal struct {
	// Reason is a condition reason: ConnectorNotFound, NamespaceNotAllowed,
	// AuthMethodNotAllowed or ConnectorNotReady from Admit; the Connection's own Ready
	// (or Progressing) reason from Servable.
	Reason string
	// Message says what is wrong, for a condition or an API answer.
	Message string
	// Settling is true when the refusal may lift without anyone acting: the Connector is
	// still being reconciled (no Ready condition yet, Ready=Unknown, or a status older
	// than its spec), or the Connection's new generation is being checked. The
	// reconciler waits (requeue) on these rather than stalling.
	Settling bool
}

func (r *Refusal) Error() string { return r.Message }

// NeedsNamespaceLabels reports whether Admit looks at the namespace's labels for
// connector (it has allowedNamespaces), so that callers read the namespace only then.
func NeedsNamespaceLabels(connector *v1alpha1.Connector) bool {
	return connector != nil && connector.Spec.AllowedNamespaces != nil
}

// Admit decides whether connector admits conn; nsLabels are the labels of conn's
// namespace (read only when NeedsNamespaceLabels). A nil connector is one that does not
// exist. It returns nil or a *Refusal, checking in this order: ConnectorNotFound,
// NamespaceNotAllowed (an invalid selector admits nothing), AuthMethodNotAllowed,
// ConnectorNotReady unless the Connector is Ready=True (Settling while it has no Ready
// verdict, or one older than its spec).
func Admit(conn *v1alpha1.Connection, connector *v1alpha1.Connector, nsLabels map[string]string) error {
	if connector == nil {
		return &Refusal{Reason: v1alpha1.ConnectorNotFoundReason,
			Message: fmt.Sprintf("Connector %q not found", conn.Spec.ConnectorRef.Name)}
	}
	if connector.Spec.AllowedNamespaces != nil {
		sel, err := metav1.LabelSelectorAsSelector(connector.Spec.AllowedNamespaces)
		if err != nil {
			return &Refusal{Reason: v1alpha1.NamespaceNotAllowedReason,
				Message: fmt.Sprintf("Connector %q has an invalid allowedNamespaces selector: %v", connector.Name, err)}
		}
		if !sel.Matches(labels.Set(nsLabels)) {
			return &Refusal{Reason: v1alpha1.NamespaceNotAllowedReason,
				Message: fmt.Sprintf("Connector %q does not allow Connections in namespace %q", connector.Name, conn.Namespace)}
		}
	}
	if !connector.AllowsAuthMethod(conn.Spec.Auth.Method) {
		return &Refusal{Reason: v1alpha1.AuthMethodNotAllowedReason,
			Message: fmt.Sprintf("Connector %q does not allow auth method %q (allowed: %v)", connector.Name, conn.Spec.Auth.Method, connector.Spec.AuthMethods)}
	}
	ready := meta.FindStatusCondition(connector.Status.Conditions, v1alpha1.ReadyCondition)
	switch {
	case ready != nil && ready.Status == metav1.ConditionTrue:
		return nil
	case ready == nil || ready.Status == metav1.ConditionUnknown || connector.Status.ObservedGeneration != connector.Generation:
		return &Refusal{Reason: v1alpha1.ConnectorNotReadyReason, Settling: true,
			Message: fmt.Sprintf("Connector %q is not ready yet", connector.Name)}
	default:
		return &Refusal{Reason: v1alpha1.ConnectorNotReadyReason,
			Message: fmt.Sprintf("Connector %q is not ready: %s", connector.Name, ready.Message)}
	}
}

// Servable decides whether the API may read and search through conn, from its status
// alone. Reads need a valid credential of an admitted Connection, not a healthy sink:
// CredentialsValid must be True for the current generation, and Ready True, or False
// with the reason the Synced condition is False for (the only step after the credential
// is the sync, so Ready then speaks for the sync: SinkUnavailable, SinkRejected, the
// sink's EgressDenied or a missing sink Secret), unless that reason is a verdict on the
// credential or the admission, which a sync can reach too (a vendor 401 or 4xx during
// the sync is CredentialsRejected). Ready still summarises both. A refusal carries
// Ready's reason and message (Progressing while a new generation is checked).
func Servable(conn *v1alpha1.Connection) error {
	ready := meta.FindStatusCondition(conn.Status.Conditions, v1alpha1.ReadyCondition)
	creds := meta.FindStatusCondition(conn.Status.Conditions, v1alpha1.CredentialsValidCondition)
	credsValid := creds != nil && creds.Status == metav1.ConditionTrue && creds.ObservedGeneration == conn.Generation
	switch {
	case ready == nil:
		return &Refusal{Reason: v1alpha1.ProgressingReason, Settling: true,
			Message: fmt.Sprintf("connection %q is not ready yet", conn.Name)}
	case ready.Status == metav1.ConditionTrue && credsValid:
		return nil
	case ready.Status == metav1.ConditionTrue || ready.Status == metav1.ConditionUnknown:
		// The spec changed since the credential was last checked (or never was).
		return &Refusal{Reason: v1alpha1.ProgressingReason, Settling: true,
			Message: fmt.Sprintf("connection %q is not ready yet: generation %d is being checked", conn.Name, conn.Generation)}
	case credsValid && syncOnly(conn, ready):
		return nil
	default:
		return &Refusal{Reason: ready.Reason,
			Message: fmt.Sprintf("connection %q is not ready (%s): %s", conn.Name, ready.Reason, ready.Message)}
	}
}

// syncOnly reports whether a False Ready is the Synced condition's failure, and not one
// that says the credential or the admission is wrong.
func syncOnly(conn *v1alpha1.Connection, ready *metav1.Condition) bool {
	synced := meta.FindStatusCondition(conn.Status.Conditions, v1alpha1.SyncedCondition)
	return synced != nil && synced.Status == metav1.ConditionFalse && synced.Reason == ready.Reason &&
		!notServedReasons[ready.Reason]
}

// notServedReasons are verdicts on the credential or the admission: never served, even
// when the sync is what reported them.
var notServedReasons = map[string]bool{
	v1alpha1.CredentialsRejectedReason:  true,
	v1alpha1.RefreshFailedReason:        true,
	v1alpha1.ConnectorNotFoundReason:    true,
	v1alpha1.ConnectorNotReadyReason:    true,
	v1alpha1.NamespaceNotAllowedReason:  true,
	v1alpha1.AuthMethodNotAllowedReason: true,
}
