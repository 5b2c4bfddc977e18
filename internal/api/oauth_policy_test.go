package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
)

// The OAuth2 routes admit a Connection exactly as the reconciler does (internal/policy):
// a namespace outside the Connector's allowedNamespaces, an auth method it does not
// allow, or a Connector that is not Ready is 409 CONFLICT, at authorize and again at the
// callback, before any token is asked for or written.

// TestOAuthRefusesANamespaceNotAllowed: authorize refuses a Connection in a namespace
// the Connector does not admit; a state minted while the namespace was admitted is
// refused at the callback once the namespace is relabelled out.
func TestOAuthRefusesANamespaceNotAllowed(t *testing.T) {
	s := testEnv(t)
	ctx := context.Background()
	st := s.oauthSite(t)
	team := "team-" + rand.String(5)
	patchConnector(t, s, st, func(c *v1alpha1.Connector) {
		c.Spec.AllowedNamespaces = &metav1.LabelSelector{MatchLabels: map[string]string{"team": team}}
	})
	in := s.labelledNamespace(t, "oauth-in", map[string]string{"team": team})
	out := s.labelledNamespace(t, "oauth-out", nil)
	u := s.newUser(t, "oauth-policy")
	for _, ns := range []string{in, out} {
		s.grant(t, u, ns, rule("connections/credentials", "update"))
	}
	oauth2 := func(c *v1alpha1.Connection) {
		c.Spec.Auth = v1alpha1.AuthSpec{Method: v1alpha1.AuthMethodOAuth2, SecretRef: v1alpha1.SecretReference{Name: "jira-oauth"}}
	}
	outKey := s.newConnection(t, out, "jira", st, oauth2)
	inKey := s.newConnection(t, in, "jira", st, oauth2)
	// The reconciler's verdicts: it judges from the cache the API reads, so once it has,
	// the API sees what it saw.
	waitCondition(t, s, outKey, reasonIs(v1alpha1.NamespaceNotAllowedReason))
	waitCondition(t, s, inKey, reasonIs(v1alpha1.SecretNotFoundReason)) // admitted; waits for tokens

	a := s.do(t, req{path: authorizePath(out, "jira"), token: u.token})
	wantRefused(t, "authorize in a namespace not allowed", a, v1alpha1.NamespaceNotAllowedReason)

	a = s.do(t, req{path: authorizePath(in, "jira"), token: u.token})
	if a.status != http.StatusFound {
		t.Fatalf("authorize in an allowed namespace: %d %s", a.status, a.body)
	}
	back := consent(t, a.header.Get("Location"))

	// The namespace leaves the Connector's selector before the browser comes back.
	var ns corev1.Namespace
	must(t, s.k8s.Get(ctx, client.ObjectKey{Name: in}, &ns))
	base := ns.DeepCopy()
	ns.Labels["team"] = "someone-else"
	must(t, s.k8s.Patch(ctx, &ns, client.MergeFrom(base)))
	waitCondition(t, s, inKey, reasonIs(v1alpha1.NamespaceNotAllowedReason))

	a = s.do(t, req{path: back.Path + "?" + back.RawQuery})
	wantRefused(t, "callback after the namespace was relabelled", a, v1alpha1.NamespaceNotAllowedReason)
	for _, g := range st.fake.OAuthGrants() {
		if g.GrantType == "authorization_code" {
			t.Errorf("the code of a refused callback was exchanged: %+v", g)
		}
	}
	err := s.k8s.Get(ctx, client.ObjectKey{Namespace: in, Name: "jira-oauth"}, &corev1.Secret{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("a refused callback wrote the token Secret (get: %v)", err)
	}
	assertNoLeaks(t)
}

// TestOAuthRefusesWhatTheConnectorDoesNotAllow: an oauth2 Connection of a Connector that
// allows only apiToken, and one of a Connector that is not Ready, are refused.
func TestOAuthRefusesWhatTheConnectorDoesNotAllow(t *testing.T) {
	s := testEnv(t)
	ctx := context.Background()
	ns := s.newNamespace(t, "oauth-connector")
	u := s.newUser(t, "oauth-connector")
	s.grant(t, u, ns, rule("connections/credentials", "update"))
	oauth2 := func(c *v1alpha1.Connection) {
		c.Spec.Auth = v1alpha1.AuthSpec{Method: v1alpha1.AuthMethodOAuth2, SecretRef: v1alpha1.SecretReference{Name: "oauth-tokens"}}
	}

	tokensOnly := s.newSite(t, v1alpha1.ConnectorTypeJira) // authMethods [apiToken]
	key := s.newConnection(t, ns, "tokens-only", tokensOnly, oauth2)
	waitCondition(t, s, key, reasonIs(v1alpha1.AuthMethodNotAllowedReason))
	a := s.do(t, req{path: authorizePath(ns, "tokens-only"), token: u.token})
	wantRefused(t, "authorize through a Connector without oauth2", a, v1alpha1.AuthMethodNotAllowedReason)

	// A Connector whose vendor address the egress guard refuses is not Ready, though
	// its OAuth2 client and token URL are fine.
	broken := s.oauthSite(t)
	patchConnector(t, s, broken, func(c *v1alpha1.Connector) { c.Spec.BaseURL = "https://169.254.169.254" })
	for deadline := time.Now().Add(readyTimeout); ; time.Sleep(50 * time.Millisecond) {
		var c v1alpha1.Connector
		must(t, s.k8s.Get(ctx, client.ObjectKeyFromObject(broken.connector), &c))
		if c.Status.ObservedGeneration == c.Generation && meta.IsStatusConditionFalse(c.Status.Conditions, v1alpha1.ReadyCondition) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Connector did not become not Ready: %+v", c.Status.Conditions)
		}
	}
	key = s.newConnection(t, ns, "not-ready", broken, oauth2)
	waitCondition(t, s, key, reasonIs(v1alpha1.ConnectorNotReadyReason))
	a = s.do(t, req{path: authorizePath(ns, "not-ready"), token: u.token})
	wantRefused(t, "authorize through a Connector that is not Ready", a, v1alpha1.ConnectorNotReadyReason)
	if n := len(broken.fake.OAuthGrants()); n != 0 {
		t.Errorf("%d token endpoint calls for refused Connections", n)
	}
}

func authorizePath(ns, name string) string {
	return "/oauth/v1/namespaces/" + ns + "/connections/" + name + "/authorize"
}

func reasonIs(reason string) func(*metav1.Condition) bool {
	return func(c *metav1.Condition) bool { return c != nil && c.Reason == reason }
}

// wantRefused checks for 409 CONFLICT naming the condition reason the reconciler reports.
func wantRefused(t *testing.T, what string, a answer, reason string) {
	t.Helper()
	msg, _ := a.env["message"].(string)
	if a.status != http.StatusConflict || a.code() != "CONFLICT" || !strings.Contains(msg, reason) {
		t.Errorf("%s: %d %s, want 409 CONFLICT naming %s", what, a.status, a.body, reason)
	}
}

// labelledNamespace creates a namespace with labels.
func (s *suite) labelledNamespace(t *testing.T, prefix string, labels map[string]string) string {
	t.Helper()
	if labels == nil {
		labels = map[string]string{}
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: prefix + "-" + rand.String(6), Labels: labels}}
	must(t, s.k8s.Create(context.Background(), ns))
	return ns.Name
}

// patchConnector changes a site's Connector.
func patchConnector(t *testing.T, s *suite, st *site, change func(*v1alpha1.Connector)) {
	t.Helper()
	var c v1alpha1.Connector
	must(t, s.k8s.Get(context.Background(), client.ObjectKeyFromObject(st.connector), &c))
	base := c.DeepCopy()
	change(&c)
	must(t, s.k8s.Patch(context.Background(), &c, client.MergeFrom(base)))
}
