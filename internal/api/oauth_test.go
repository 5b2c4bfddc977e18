package api_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
	"github.com/unified-connectors/connector-operator/internal/api"
)

// oauthSite is a fake site whose Connector offers oauth2 through the fake's own
// authorization server and gateway, with its client Secret in place.
func (s *suite) oauthSite(t *testing.T) *site {
	t.Helper()
	clientID, clientSecret := "client-"+rand.String(6), secrets.Token("client-secret")
	st := s.newSite(t, v1alpha1.ConnectorTypeJira, func(c *v1alpha1.Connector) {
		fakeURL := string(c.Spec.BaseURL)
		c.Spec.AuthMethods = []v1alpha1.AuthMethod{v1alpha1.AuthMethodOAuth2}
		c.Spec.CloudID = atlassiantest.CloudID
		c.Spec.OAuth2 = &v1alpha1.OAuth2Spec{
			ClientSecretRef: v1alpha1.SecretReference{Name: clientID},
			Scopes:          []string{"read:jira-work", "read:jira-user", "offline_access"},
			AuthorizeURL:    v1alpha1.URL(fakeURL + "/authorize"),
			TokenURL:        v1alpha1.URL(fakeURL + "/oauth/token"),
			APIBaseURL:      v1alpha1.URL(fakeURL),
		}
	})
	st.fake.AddOAuthClient(clientID, clientSecret, s.baseURL+"/oauth/v1/callback")
	must(t, s.k8s.Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: operatorNamespace, Name: clientID},
		StringData: map[string]string{"clientID": clientID, "clientSecret": clientSecret},
	}))
	return st
}

// consent follows the authorize redirect to the fake vendor, which consents at once and
// sends the browser back to the callback: it returns that callback URL.
func consent(t *testing.T, location string) *url.URL {
	t.Helper()
	resp, err := httpClient.Get(location)
	must(t, err)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("the vendor's authorize answered %d", resp.StatusCode)
	}
	back, err := url.Parse(resp.Header.Get("Location"))
	must(t, err)
	secrets.Remember(back.Query().Get("code"))
	return back
}

// TestOAuthFlow runs authorize → vendor consent → callback → Secret written →
// Connection Ready, then refuses the replayed, forged, expired and refused states.
func TestOAuthFlow(t *testing.T) {
	s := testEnv(t)
	st := s.oauthSite(t)
	ns := s.newNamespace(t, "oauth")
	key := s.newConnection(t, ns, "jira", st, func(c *v1alpha1.Connection) {
		c.Spec.Auth = v1alpha1.AuthSpec{Method: v1alpha1.AuthMethodOAuth2, SecretRef: v1alpha1.SecretReference{Name: "jira-oauth"}}
	})
	// The Secret the test made for apiToken is not the one the Connection reads.
	owner := s.newUser(t, "oauth-owner")
	s.grant(t, owner, ns, rule("connections/credentials", "update"), rule("connections", "get"), rule("connections/data", "get"))

	// Until authorized, the Connection waits for its Secret.
	waitCondition(t, s, key, func(c *metav1.Condition) bool { return c != nil && c.Reason == v1alpha1.SecretNotFoundReason })

	authorize := "/oauth/v1/namespaces/" + ns + "/connections/jira/authorize"
	a := s.do(t, req{path: authorize, token: owner.token})
	if a.status != http.StatusFound {
		t.Fatalf("authorize: %d %s", a.status, a.body)
	}
	loc, err := url.Parse(a.header.Get("Location"))
	must(t, err)
	q := loc.Query()
	want := map[string]string{
		"audience": "api.atlassian.com", "client_id": st.connector.Spec.OAuth2.ClientSecretRef.Name,
		"scope": "read:jira-work read:jira-user offline_access", "redirect_uri": s.baseURL + "/oauth/v1/callback",
		"response_type": "code", "prompt": "consent", "code_challenge_method": "S256",
	}
	for k, v := range want {
		if q.Get(k) != v {
			t.Errorf("authorize URL %s = %q, want %q", k, q.Get(k), v)
		}
	}
	if q.Get("state") == "" || q.Get("code_challenge") == "" || !strings.HasPrefix(loc.String(), string(st.connector.Spec.OAuth2.AuthorizeURL)+"?") {
		t.Errorf("authorize URL lacks state or PKCE, or goes elsewhere: %s", loc)
	}
	if strings.Contains(loc.String(), "verifier") || len(q.Get("code_challenge")) != 43 {
		t.Errorf("PKCE challenge malformed: %s", q.Get("code_challenge"))
	}

	back := consent(t, loc.String())
	if back.Query().Get("state") != q.Get("state") {
		t.Fatal("the vendor did not return the state")
	}
	callback := back.Path + "?" + back.RawQuery
	a = s.do(t, req{path: callback})
	if a.status != http.StatusOK {
		t.Fatalf("callback: %d %s", a.status, a.body)
	}
	if d := a.data(); d["namespace"] != ns || d["name"] != "jira" || d["secret"] != "jira-oauth" {
		t.Errorf("callback answered %v", d)
	}

	var stored corev1.Secret
	must(t, s.k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "jira-oauth"}, &stored))
	secrets.Remember(string(stored.Data["accessToken"]), string(stored.Data["refreshToken"]))
	if len(stored.Data["accessToken"]) == 0 || len(stored.Data["refreshToken"]) == 0 {
		t.Fatalf("tokens not stored: keys %v", keysOf(stored.Data))
	}
	if exp, err := time.Parse(time.RFC3339, string(stored.Data["expiry"])); err != nil || exp.Before(time.Now().Add(50*time.Minute)) {
		t.Errorf("expiry %q, want an RFC 3339 time about an hour ahead", stored.Data["expiry"])
	}
	if len(stored.OwnerReferences) != 1 || stored.OwnerReferences[0].Name != "jira" {
		t.Errorf("the created Secret is not owned by the Connection: %v", stored.OwnerReferences)
	}
	grants := st.fake.OAuthGrants()
	if len(grants) != 1 || grants[0].GrantType != "authorization_code" || !grants[0].OK {
		t.Errorf("token endpoint calls: %+v, want one successful authorization_code grant", grants)
	}

	// The reconciler's Secret watch makes the Connection Ready, and the API serves it.
	s.waitReady(t, key)
	if a := s.do(t, req{path: connPath(ns, "jira", "containers"), token: owner.token}); a.status != http.StatusOK {
		t.Errorf("containers through the new tokens: %d %s", a.status, a.body)
	}

	// Replayed: the same callback again is refused before any call to the vendor.
	a = s.do(t, req{path: callback})
	if a.status != http.StatusConflict || a.code() != "CONFLICT" {
		t.Errorf("replayed callback: %d %s, want 409 CONFLICT", a.status, a.body)
	}
	if n := len(st.fake.OAuthGrants()); n != 1 {
		t.Errorf("a replay reached the token endpoint (%d grants)", n)
	}

	// Forged: a state with a changed character anywhere, or made up.
	state := q.Get("state")
	for _, i := range []int{5, len(state) / 2, len(state) - 3} {
		forged := state[:i] + flip(state[i]) + state[i+1:]
		a := s.do(t, req{path: "/oauth/v1/callback?code=x&state=" + url.QueryEscape(forged)})
		if a.status != http.StatusBadRequest || a.code() != "VALIDATION" {
			t.Errorf("forged state (char %d): %d %s, want 400 VALIDATION", i, a.status, a.body)
		}
	}

	// Expired: a state signed with the operator's key ten minutes ago.
	conn := &v1alpha1.Connection{}
	must(t, s.k8s.Get(context.Background(), key, conn))
	expired, err := api.SealState(context.Background(), s.k8s, operatorNamespace, ns, "jira", string(conn.UID), s.baseURL+"/oauth/v1/callback", time.Now().Add(-time.Second))
	must(t, err)
	a = s.do(t, req{path: "/oauth/v1/callback?code=x&state=" + url.QueryEscape(expired)})
	if a.status != http.StatusBadRequest || !strings.Contains(a.env["message"].(string), "expired") {
		t.Errorf("expired state: %d %s, want 400 saying expired", a.status, a.body)
	}
	// A live state for a Connection that was since replaced (another UID).
	stale, err := api.SealState(context.Background(), s.k8s, operatorNamespace, ns, "jira", "00000000-0000-0000-0000-000000000000", s.baseURL+"/oauth/v1/callback", time.Now().Add(time.Minute))
	must(t, err)
	if a := s.do(t, req{path: "/oauth/v1/callback?code=x&state=" + url.QueryEscape(stale)}); a.status != http.StatusNotFound {
		t.Errorf("state for a replaced Connection: %d %s, want 404", a.status, a.body)
	}

	// The user refuses consent: the vendor redirects with error=access_denied.
	st.fake.SetConsentAccount("nobody")
	a = s.do(t, req{path: authorize, token: owner.token})
	back = consent(t, a.header.Get("Location"))
	if back.Query().Get("error") != "access_denied" {
		t.Fatalf("the fake did not refuse: %s", back)
	}
	a = s.do(t, req{path: back.Path + "?" + back.RawQuery})
	if a.status != http.StatusBadRequest || !strings.Contains(a.env["message"].(string), "access_denied") {
		t.Errorf("refused consent: %d %s, want 400 naming access_denied", a.status, a.body)
	}
	// That state is spent too.
	if a := s.do(t, req{path: back.Path + "?" + back.RawQuery}); a.status != http.StatusConflict {
		t.Errorf("replayed refusal: %d, want 409", a.status)
	}

	// A second authorization updates the existing Secret (rotating the tokens).
	st.fake.SetConsentAccount("")
	a = s.do(t, req{path: authorize, token: owner.token})
	back = consent(t, a.header.Get("Location"))
	if a := s.do(t, req{path: back.Path + "?" + back.RawQuery}); a.status != http.StatusOK {
		t.Fatalf("second callback: %d %s", a.status, a.body)
	}
	var again corev1.Secret
	must(t, s.k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "jira-oauth"}, &again))
	secrets.Remember(string(again.Data["accessToken"]), string(again.Data["refreshToken"]))
	if string(again.Data["refreshToken"]) == string(stored.Data["refreshToken"]) {
		t.Error("the second authorization did not store new tokens")
	}

	// A Connection pointed at an unrelated Secret cannot be used to overwrite it.
	must(t, s.k8s.Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "unrelated"},
		StringData: map[string]string{"password": secrets.Token("unrelated")},
	}))
	s.newConnection(t, ns, "jira-other", st, func(c *v1alpha1.Connection) {
		c.Spec.Auth = v1alpha1.AuthSpec{Method: v1alpha1.AuthMethodOAuth2, SecretRef: v1alpha1.SecretReference{Name: "unrelated"}}
	})
	var a2 answer
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		a2 = s.do(t, req{path: "/oauth/v1/namespaces/" + ns + "/connections/jira-other/authorize", token: owner.token})
		if a2.status != http.StatusNotFound || time.Now().After(deadline) {
			break // the cache has it
		}
	}
	back = consent(t, a2.header.Get("Location"))
	if a := s.do(t, req{path: back.Path + "?" + back.RawQuery}); a.status != http.StatusConflict {
		t.Errorf("callback into an unrelated Secret: %d %s, want 409", a.status, a.body)
	}
	var untouched corev1.Secret
	must(t, s.k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "unrelated"}, &untouched))
	if _, ok := untouched.Data["accessToken"]; ok {
		t.Error("tokens were written into an unrelated Secret")
	}
	assertNoLeaks(t)
}

// TestOAuthAuthorizeRefusals: apiToken Connections and Connectors without oauth2 are
// CONFLICT; Atlassian's own authorization server gets no PKCE.
func TestOAuthAuthorizeRefusals(t *testing.T) {
	s := testEnv(t)
	st := s.newSite(t, v1alpha1.ConnectorTypeJira)
	atl := s.oauthSite(t)
	// Point this Connector at Atlassian's real authorize URL (never called: we only
	// look at the redirect).
	cnr := &v1alpha1.Connector{}
	must(t, s.k8s.Get(context.Background(), client.ObjectKeyFromObject(atl.connector), cnr))
	base := cnr.DeepCopy()
	cnr.Spec.OAuth2.AuthorizeURL = ""
	must(t, s.k8s.Patch(context.Background(), cnr, client.MergeFrom(base)))
	ns := s.newNamespace(t, "oauth-refusals")
	s.newConnection(t, ns, "tokens", st)
	s.newConnection(t, ns, "atlassian", atl, func(c *v1alpha1.Connection) {
		c.Spec.Auth = v1alpha1.AuthSpec{Method: v1alpha1.AuthMethodOAuth2, SecretRef: v1alpha1.SecretReference{Name: "atl"}}
	})
	u := s.newUser(t, "oauth-refusals")
	s.grant(t, u, ns, rule("connections/credentials", "update"))

	// Wait for the cache to see the Connection and the changed Connector.
	var a answer
	var loc *url.URL
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		a = s.do(t, req{path: "/oauth/v1/namespaces/" + ns + "/connections/atlassian/authorize", token: u.token})
		loc, _ = url.Parse(a.header.Get("Location"))
		if (a.status == http.StatusFound && loc.Host == "auth.atlassian.com") || time.Now().After(deadline) {
			break
		}
	}
	if a.status != http.StatusFound {
		t.Fatalf("authorize through Atlassian: %d %s", a.status, a.body)
	}
	if loc.Host != "auth.atlassian.com" || loc.Query().Get("code_challenge") != "" || loc.Query().Get("audience") != "api.atlassian.com" {
		t.Errorf("authorize through Atlassian: %s, want auth.atlassian.com without PKCE", loc)
	}
	a = s.do(t, req{path: "/oauth/v1/namespaces/" + ns + "/connections/tokens/authorize", token: u.token})
	if a.status != http.StatusConflict || a.code() != "CONFLICT" {
		t.Errorf("authorize an apiToken Connection: %d %s, want 409 CONFLICT", a.status, a.body)
	}
	a = s.do(t, req{path: "/oauth/v1/namespaces/" + ns + "/connections/missing/authorize", token: u.token})
	if a.status != http.StatusNotFound {
		t.Errorf("authorize a missing Connection: %d, want 404", a.status)
	}
}

func waitCondition(t *testing.T, s *suite, key client.ObjectKey, ok func(*metav1.Condition) bool) {
	t.Helper()
	deadline := time.Now().Add(readyTimeout)
	for {
		var conn v1alpha1.Connection
		if err := s.k8s.Get(context.Background(), key, &conn); err == nil && ok(meta.FindStatusCondition(conn.Status.Conditions, v1alpha1.ReadyCondition)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("connection %s did not reach the wanted condition", key)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

func keysOf(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
