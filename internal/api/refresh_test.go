package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
)

// TestRefreshSurvivesASearchDeadline: a search with a 200 ms per-source deadline is what
// starts an OAuth2 refresh, and the token endpoint answers only after 300 ms. The search
// answers on time, and the refresh still completes: the Secret holds the refresh token
// the vendor issued in place of the spent one, and the next refresh works.
func TestRefreshSurvivesASearchDeadline(t *testing.T) {
	s := testEnv(t)
	st := s.oauthSite(t)
	ctx := context.Background()
	access, refresh, _ := st.fake.IssueOAuthTokens(st.connector.Spec.OAuth2.ClientSecretRef.Name, st.account.ID)
	secrets.Remember(access, refresh)
	ns := s.newNamespace(t, "refresh")
	secretKey := client.ObjectKey{Namespace: ns, Name: "jira-oauth"}
	must(t, s.k8s.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: secretKey.Name},
		StringData: map[string]string{
			"accessToken": access, "refreshToken": refresh,
			"expiry": time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
		},
	}))
	key := s.newConnection(t, ns, "jira", st, func(c *v1alpha1.Connection) {
		c.Spec.Auth = v1alpha1.AuthSpec{Method: v1alpha1.AuthMethodOAuth2, SecretRef: v1alpha1.SecretReference{Name: secretKey.Name}}
	})
	s.waitReady(t, key)
	u := s.newUser(t, "refresh-searcher")
	s.grant(t, u, ns, rule("connections/data", "get"))
	// Warm the review caches, so the short deadline below is spent on the source alone.
	if a := s.do(t, req{path: "/api/v1/search?q=x&namespaces=" + ns, token: u.token}); a.status != http.StatusOK {
		t.Fatalf("search: %d %s", a.status, a.body)
	}

	// Keep the reconciler busy in a slow probe, so that the search, not the reconciler,
	// is what starts the refresh: it reconciles the changed Secret only after that probe.
	st.fake.SetFault(atlassiantest.Fault{Latency: 4 * time.Second})
	mark := time.Now()
	conn := &v1alpha1.Connection{}
	must(t, s.k8s.Get(ctx, key, conn))
	base := conn.DeepCopy()
	conn.Annotations = map[string]string{v1alpha1.RequestedAtAnnotation: mark.Format(time.RFC3339Nano)}
	must(t, s.k8s.Patch(ctx, conn, client.MergeFrom(base)))
	waitProbing(t, st.fake, mark)

	// The access token enters the refresh window, and the vendor turns slow.
	st.fake.SetTokenDelay(300 * time.Millisecond)
	setExpiry(t, s, secretKey, time.Now().Add(2*time.Minute))
	search := "/api/v1/search?q=x&timeout=200ms&namespaces=" + ns
	for deadline := time.Now().Add(5 * time.Second); len(refreshGrants(st.fake)) == 0; time.Sleep(20 * time.Millisecond) {
		start := time.Now()
		a := s.do(t, req{path: search, token: u.token})
		if a.status != http.StatusOK {
			t.Fatalf("search with a 200ms deadline: %d %s", a.status, a.body)
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("a search with a 200ms deadline took %s", took)
		}
		if time.Now().After(deadline) {
			t.Fatal("no search started a token refresh")
		}
	}

	// The refresh the search started outlives it and stores the rotated tokens.
	stored := waitLiveRefreshToken(t, s, st.fake, secretKey, refresh)
	if st.fake.RefreshTokenLive(refresh) {
		t.Fatal("the old refresh token is still live: nothing rotated")
	}

	// The next refresh, whoever starts it, succeeds with the stored token.
	st.fake.ClearFault()
	setExpiry(t, s, secretKey, time.Now().Add(2*time.Minute))
	waitLiveRefreshToken(t, s, st.fake, secretKey, stored)
	for _, g := range refreshGrants(st.fake) {
		if !g.OK {
			t.Errorf("a refresh was refused (%s): a spent refresh token was used", g.Error)
		}
	}
	var a answer
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		a = s.do(t, req{path: "/api/v1/search?q=x&namespaces=" + ns, token: u.token})
		if sourceStatus(a) == "ok" || time.Now().After(deadline) {
			break
		}
	}
	if a.status != http.StatusOK || sourceStatus(a) != "ok" {
		t.Errorf("search after the refreshes: %d %s, want the source ok", a.status, a.body)
	}
	assertNoLeaks(t)
}

// waitProbing waits until the fake is answering an identity call that arrived after
// mark: the reconciler is in its probe.
func waitProbing(t *testing.T, fake *atlassiantest.Server, mark time.Time) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		for _, r := range fake.Requests() {
			if strings.HasSuffix(r.Path, "/myself") && r.Time.After(mark) && r.Status == 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the reconciler did not probe after requested-at")
		}
	}
}

// setExpiry rewrites the Secret's expiry, keeping its tokens.
func setExpiry(t *testing.T, s *suite, key client.ObjectKey, at time.Time) {
	t.Helper()
	var sec corev1.Secret
	must(t, s.k8s.Get(context.Background(), key, &sec))
	sec.Data["expiry"] = []byte(at.UTC().Format(time.RFC3339))
	must(t, s.k8s.Update(context.Background(), &sec))
}

// waitLiveRefreshToken waits until the Secret holds a refresh token other than old that
// the vendor would accept, and returns it.
func waitLiveRefreshToken(t *testing.T, s *suite, fake *atlassiantest.Server, key client.ObjectKey, old string) string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var sec corev1.Secret
		must(t, s.k8s.Get(context.Background(), key, &sec))
		rt := string(sec.Data["refreshToken"])
		secrets.Remember(string(sec.Data["accessToken"]), rt)
		if rt != old && fake.RefreshTokenLive(rt) {
			return rt
		}
		if time.Now().After(deadline) {
			refused := 0
			for _, g := range refreshGrants(fake) {
				if !g.OK {
					refused++
				}
			}
			t.Fatalf("the Secret does not hold the refresh token the vendor issued (still the old one: %t; live: %t); %d refreshes, %d refused",
				rt == old, fake.RefreshTokenLive(rt), len(refreshGrants(fake)), refused)
		}
	}
}

func refreshGrants(fake *atlassiantest.Server) []atlassiantest.OAuthGrant {
	var out []atlassiantest.OAuthGrant
	for _, g := range fake.OAuthGrants() {
		if g.GrantType == "refresh_token" {
			out = append(out, g)
		}
	}
	return out
}

// sourceStatus is the status of a search answer's only source.
func sourceStatus(a answer) string {
	srcs, _ := a.data()["sources"].([]any)
	if len(srcs) != 1 {
		return ""
	}
	st, _ := srcs[0].(map[string]any)["status"].(string)
	return st
}
