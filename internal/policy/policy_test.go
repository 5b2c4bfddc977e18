package policy_test

import (
	"errors"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/internal/policy"
)

func connection(method v1alpha1.AuthMethod) *v1alpha1.Connection {
	return &v1alpha1.Connection{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "jira", Generation: 3},
		Spec: v1alpha1.ConnectionSpec{
			ConnectorRef: v1alpha1.ConnectorReference{Name: "acme"},
			Auth:         v1alpha1.AuthSpec{Method: method},
		},
	}
}

func connector(mutate ...func(*v1alpha1.Connector)) *v1alpha1.Connector {
	c := &v1alpha1.Connector{
		ObjectMeta: metav1.ObjectMeta{Name: "acme", Generation: 2},
		Spec:       v1alpha1.ConnectorSpec{AuthMethods: []v1alpha1.AuthMethod{v1alpha1.AuthMethodAPIToken, v1alpha1.AuthMethodOAuth2}},
		Status: v1alpha1.ConnectorStatus{
			ObservedGeneration: 2,
			Conditions:         []metav1.Condition{{Type: v1alpha1.ReadyCondition, Status: metav1.ConditionTrue, Reason: v1alpha1.SucceededReason}},
		},
	}
	for _, m := range mutate {
		m(c)
	}
	return c
}

func readyAs(status metav1.ConditionStatus, observed int64) func(*v1alpha1.Connector) {
	return func(c *v1alpha1.Connector) {
		c.Status.ObservedGeneration = observed
		c.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ReadyCondition, Status: status, Reason: v1alpha1.EgressDeniedReason, Message: "baseURL refused"}}
	}
}

func allowed(sel *metav1.LabelSelector) func(*v1alpha1.Connector) {
	return func(c *v1alpha1.Connector) { c.Spec.AllowedNamespaces = sel }
}

func TestAdmit(t *testing.T) {
	teamA := map[string]string{"team": "a"}
	cases := []struct {
		name      string
		conn      *v1alpha1.Connection
		connector *v1alpha1.Connector
		labels    map[string]string
		reason    string // "" admits
		settling  bool
		message   string
	}{
		{name: "admitted", conn: connection(v1alpha1.AuthMethodAPIToken), connector: connector()},
		{name: "no connector", conn: connection(v1alpha1.AuthMethodAPIToken), reason: v1alpha1.ConnectorNotFoundReason, message: `Connector "acme" not found`},
		{name: "namespace matches", conn: connection(v1alpha1.AuthMethodOAuth2), labels: teamA,
			connector: connector(allowed(&metav1.LabelSelector{MatchLabels: teamA}))},
		{name: "namespace does not match", conn: connection(v1alpha1.AuthMethodOAuth2), labels: map[string]string{"team": "b"},
			connector: connector(allowed(&metav1.LabelSelector{MatchLabels: teamA})),
			reason:    v1alpha1.NamespaceNotAllowedReason, message: `namespace "team-a"`},
		{name: "unlabelled namespace", conn: connection(v1alpha1.AuthMethodOAuth2),
			connector: connector(allowed(&metav1.LabelSelector{MatchLabels: teamA})), reason: v1alpha1.NamespaceNotAllowedReason},
		{name: "empty selector matches all", conn: connection(v1alpha1.AuthMethodOAuth2), connector: connector(allowed(&metav1.LabelSelector{}))},
		{name: "invalid selector admits nothing", conn: connection(v1alpha1.AuthMethodOAuth2), labels: teamA,
			connector: connector(allowed(&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: "Near"}}})),
			reason:    v1alpha1.NamespaceNotAllowedReason, message: "invalid allowedNamespaces selector"},
		{name: "auth method not allowed", conn: connection(v1alpha1.AuthMethodPAT), connector: connector(),
			reason: v1alpha1.AuthMethodNotAllowedReason, message: `auth method "pat"`},
		{name: "namespace before auth method", conn: connection(v1alpha1.AuthMethodPAT), labels: map[string]string{},
			connector: connector(allowed(&metav1.LabelSelector{MatchLabels: teamA})), reason: v1alpha1.NamespaceNotAllowedReason},
		{name: "connector not ready", conn: connection(v1alpha1.AuthMethodOAuth2), connector: connector(readyAs(metav1.ConditionFalse, 2)),
			reason: v1alpha1.ConnectorNotReadyReason, message: "baseURL refused"},
		{name: "connector not ready for an older spec", conn: connection(v1alpha1.AuthMethodOAuth2), connector: connector(readyAs(metav1.ConditionFalse, 1)),
			reason: v1alpha1.ConnectorNotReadyReason, settling: true},
		{name: "connector unknown", conn: connection(v1alpha1.AuthMethodOAuth2), connector: connector(readyAs(metav1.ConditionUnknown, 2)),
			reason: v1alpha1.ConnectorNotReadyReason, settling: true},
		{name: "connector never reconciled", conn: connection(v1alpha1.AuthMethodOAuth2),
			connector: connector(func(c *v1alpha1.Connector) { c.Status = v1alpha1.ConnectorStatus{} }),
			reason:    v1alpha1.ConnectorNotReadyReason, settling: true},
		{name: "auth method before readiness", conn: connection(v1alpha1.AuthMethodPAT), connector: connector(readyAs(metav1.ConditionFalse, 2)),
			reason: v1alpha1.AuthMethodNotAllowedReason},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := policy.Admit(tc.conn, tc.connector, tc.labels)
			checkRefusal(t, err, tc.reason, tc.settling, tc.message)
		})
	}
}

func TestNeedsNamespaceLabels(t *testing.T) {
	if policy.NeedsNamespaceLabels(nil) || policy.NeedsNamespaceLabels(connector()) {
		t.Error("a missing Connector, or one without allowedNamespaces, needs no labels")
	}
	if !policy.NeedsNamespaceLabels(connector(allowed(&metav1.LabelSelector{}))) {
		t.Error("a Connector with allowedNamespaces needs the labels")
	}
}

func cond(typ string, status metav1.ConditionStatus, reason string, gen int64) metav1.Condition {
	return metav1.Condition{Type: typ, Status: status, Reason: reason, Message: reason + " message", ObservedGeneration: gen}
}

func TestServable(t *testing.T) {
	const (
		T = metav1.ConditionTrue
		F = metav1.ConditionFalse
		U = metav1.ConditionUnknown
	)
	credsOK := cond(v1alpha1.CredentialsValidCondition, T, v1alpha1.SucceededReason, 3)
	cases := []struct {
		name     string
		conds    []metav1.Condition
		reason   string // "" serves
		settling bool
	}{
		{name: "ready", conds: []metav1.Condition{cond(v1alpha1.ReadyCondition, T, v1alpha1.SucceededReason, 3), credsOK}},
		{name: "no status yet", reason: v1alpha1.ProgressingReason, settling: true},
		{name: "first reconcile", conds: []metav1.Condition{cond(v1alpha1.ReadyCondition, U, v1alpha1.ProgressingReason, 3)},
			reason: v1alpha1.ProgressingReason, settling: true},
		{name: "ready for an older generation", conds: []metav1.Condition{
			cond(v1alpha1.ReadyCondition, T, v1alpha1.SucceededReason, 2), cond(v1alpha1.CredentialsValidCondition, T, v1alpha1.SucceededReason, 2)},
			reason: v1alpha1.ProgressingReason, settling: true},
		{name: "sink unavailable", conds: []metav1.Condition{
			cond(v1alpha1.ReadyCondition, F, v1alpha1.SinkUnavailableReason, 3), credsOK, cond(v1alpha1.SyncedCondition, F, v1alpha1.SinkUnavailableReason, 3)}},
		{name: "sink rejected", conds: []metav1.Condition{
			cond(v1alpha1.ReadyCondition, F, v1alpha1.SinkRejectedReason, 3), credsOK, cond(v1alpha1.SyncedCondition, F, v1alpha1.SinkRejectedReason, 3)}},
		{name: "sink's Secret missing", conds: []metav1.Condition{
			cond(v1alpha1.ReadyCondition, F, v1alpha1.SecretNotFoundReason, 3), credsOK, cond(v1alpha1.SyncedCondition, F, v1alpha1.SecretNotFoundReason, 3)}},
		{name: "suspended sync", conds: []metav1.Condition{
			cond(v1alpha1.ReadyCondition, T, v1alpha1.SucceededReason, 3), credsOK, cond(v1alpha1.SyncedCondition, F, v1alpha1.SuspendedReason, 3)}},
		{name: "credentials rejected", conds: []metav1.Condition{
			cond(v1alpha1.ReadyCondition, F, v1alpha1.CredentialsRejectedReason, 3), cond(v1alpha1.CredentialsValidCondition, F, v1alpha1.CredentialsRejectedReason, 3)},
			reason: v1alpha1.CredentialsRejectedReason},
		{name: "sink down and credentials rejected", conds: []metav1.Condition{
			cond(v1alpha1.ReadyCondition, F, v1alpha1.CredentialsRejectedReason, 3), cond(v1alpha1.CredentialsValidCondition, F, v1alpha1.CredentialsRejectedReason, 3),
			cond(v1alpha1.SyncedCondition, F, v1alpha1.SinkUnavailableReason, 3)},
			reason: v1alpha1.CredentialsRejectedReason},
		{name: "namespace refused after a sink failure", conds: []metav1.Condition{
			cond(v1alpha1.ReadyCondition, F, v1alpha1.NamespaceNotAllowedReason, 3), credsOK, cond(v1alpha1.SyncedCondition, F, v1alpha1.SinkUnavailableReason, 3)},
			reason: v1alpha1.NamespaceNotAllowedReason},
		{name: "sync found the credential rejected", conds: []metav1.Condition{
			cond(v1alpha1.ReadyCondition, F, v1alpha1.CredentialsRejectedReason, 3), credsOK, cond(v1alpha1.SyncedCondition, F, v1alpha1.CredentialsRejectedReason, 3)},
			reason: v1alpha1.CredentialsRejectedReason},
		{name: "sync found the refresh token refused", conds: []metav1.Condition{
			cond(v1alpha1.ReadyCondition, F, v1alpha1.RefreshFailedReason, 3), credsOK, cond(v1alpha1.SyncedCondition, F, v1alpha1.RefreshFailedReason, 3)},
			reason: v1alpha1.RefreshFailedReason},
		{name: "sink's egress refused", conds: []metav1.Condition{
			cond(v1alpha1.ReadyCondition, F, v1alpha1.EgressDeniedReason, 3), credsOK, cond(v1alpha1.SyncedCondition, F, v1alpha1.EgressDeniedReason, 3)}},
		{name: "vendor unreachable", conds: []metav1.Condition{
			cond(v1alpha1.ReadyCondition, F, v1alpha1.VendorUnreachableReason, 3), credsOK},
			reason: v1alpha1.VendorUnreachableReason},
		{name: "sink failure with a credential of an older generation", conds: []metav1.Condition{
			cond(v1alpha1.ReadyCondition, F, v1alpha1.SinkUnavailableReason, 3), cond(v1alpha1.CredentialsValidCondition, T, v1alpha1.SucceededReason, 2),
			cond(v1alpha1.SyncedCondition, F, v1alpha1.SinkUnavailableReason, 3)},
			reason: v1alpha1.SinkUnavailableReason},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn := connection(v1alpha1.AuthMethodAPIToken)
			conn.Status.Conditions = tc.conds
			checkRefusal(t, policy.Servable(conn), tc.reason, tc.settling, "")
		})
	}
}

func checkRefusal(t *testing.T, err error, reason string, settling bool, message string) {
	t.Helper()
	if reason == "" {
		if err != nil {
			t.Fatalf("refused: %v", err)
		}
		return
	}
	var r *policy.Refusal
	if !errors.As(err, &r) {
		t.Fatalf("got %v (%T), want a *policy.Refusal with reason %s", err, err, reason)
	}
	if r.Reason != reason || r.Settling != settling {
		t.Errorf("refusal %+v, want reason %s, settling %t", r, reason, settling)
	}
	if r.Message == "" || r.Error() != r.Message || !strings.Contains(r.Message, message) {
		t.Errorf("message %q, want one containing %q", r.Message, message)
	}
}
