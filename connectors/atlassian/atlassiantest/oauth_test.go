package atlassiantest_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
)

const (
	clientID     = "client-1"
	clientSecret = "s3cret/with+odd=chars" // needs escaping in HTTP Basic (RFC 6749 §2.3.1)
	callback     = "https://operator.example/oauth/v1/callback"
)

var bob = atlassiantest.Account{ID: "acc-bob", DisplayName: "Bob", Email: "bob@example.com", APIToken: "bob-token"}

// atlassianParams are the authorize parameters Atlassian wants beyond RFC 6749's.
var atlassianParams = []oauth2.AuthCodeOption{
	oauth2.SetAuthURLParam("audience", "api.atlassian.com"),
	oauth2.SetAuthURLParam("prompt", "consent"),
}

func newOAuthFake(t *testing.T) (*atlassiantest.Server, *oauth2.Config) {
	t.Helper()
	fake := newFake(t)
	fake.AddAccount(bob)
	fake.AddOAuthClient(clientID, clientSecret, callback)
	return fake, &oauth2.Config{
		ClientID:     clientID,
		ClientSecret: clientSecret,
		Endpoint:     oauth2.Endpoint{AuthURL: fake.URL() + "/authorize", TokenURL: fake.URL() + "/oauth/token"},
		RedirectURL:  callback,
		Scopes:       []string{"read:jira-user", "read:jira-work", "offline_access"},
	}
}

var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// authorize GETs authURL without following the redirect, checks that it is a 302 to the
// callback, and returns the redirect's query.
func authorize(t *testing.T, authURL string) url.Values {
	t.Helper()
	resp, err := noRedirects.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil {
		t.Fatalf("authorize: %d Location %q, want 302", resp.StatusCode, resp.Header.Get("Location"))
	}
	if loc.Scheme+"://"+loc.Host+loc.Path != callback {
		t.Fatalf("authorize redirected to %s, want %s", loc, callback)
	}
	return loc.Query()
}

// wantRetrieveError checks that err is what golang.org/x/oauth2 makes of a refusal.
func wantRetrieveError(t *testing.T, err error, code string, status int) {
	t.Helper()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		t.Fatalf("error %v (%T), want *oauth2.RetrieveError", err, err)
	}
	if re.ErrorCode != code || re.Response.StatusCode != status {
		t.Fatalf("RetrieveError %q status %d, want %q %d", re.ErrorCode, re.Response.StatusCode, code, status)
	}
}

// gatewayMyself calls Jira's myself through the gateway with a bearer token.
func gatewayMyself(t *testing.T, fake *atlassiantest.Server, token string) (int, map[string]any) {
	t.Helper()
	status, _, body := get(t, fake.URL()+"/ex/jira/"+fake.CloudID()+"/rest/api/3/myself", "Bearer "+token)
	return status, body
}

// postToken sends a raw token request; basic, when not nil, is sent as HTTP Basic as is.
func postToken(t *testing.T, fake *atlassiantest.Server, contentType, body string, basic *[2]string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, fake.URL()+"/oauth/token", strings.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	if basic != nil {
		req.SetBasicAuth(basic[0], basic[1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("token endpoint answered %d with non-JSON: %v", resp.StatusCode, err)
	}
	return resp.StatusCode, out
}

func refreshForm(refresh string) string {
	return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {clientID}, "client_secret": {clientSecret}}.Encode()
}

func TestOAuthFlowWithPKCE(t *testing.T) {
	fake, conf := newOAuthFake(t)
	verifier := oauth2.GenerateVerifier()
	q := authorize(t, conf.AuthCodeURL("st4te", append(atlassianParams, oauth2.S256ChallengeOption(verifier))...))
	if q.Get("state") != "st4te" || q.Get("code") == "" {
		t.Fatalf("callback query %v, want the state and a code", q)
	}

	tok, err := conf.Exchange(t.Context(), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	if tok.AccessToken == "" || tok.RefreshToken == "" || tok.TokenType != "Bearer" {
		t.Fatalf("token %+v, want access and refresh tokens of type Bearer", tok)
	}
	if left := time.Until(tok.Expiry); left < 59*time.Minute || left > time.Hour {
		t.Errorf("token expires in %s, want an hour", left)
	}
	if scope := tok.Extra("scope"); scope != "read:jira-user read:jira-work offline_access" {
		t.Errorf("scope %v", scope)
	}

	status, body := gatewayMyself(t, fake, tok.AccessToken)
	if status != 200 || body["accountId"] != alice.ID {
		t.Fatalf("myself through the gateway: %d %v", status, body)
	}
	if status, _, _ := get(t, fake.URL()+"/ex/confluence/"+fake.CloudID()+"/wiki/rest/api/user/current", "Bearer "+tok.AccessToken); status != 200 {
		t.Errorf("Confluence through the gateway: %d", status)
	}
	// As on Atlassian Cloud, OAuth2 tokens do not work at the site's own URL.
	if status, _, _ := get(t, fake.URL()+"/rest/api/3/myself", "Bearer "+tok.AccessToken); status != 401 {
		t.Errorf("access token at the site URL: %d, want 401", status)
	}

	// The code is single-use.
	_, err = conf.Exchange(t.Context(), q.Get("code"), oauth2.VerifierOption(verifier))
	wantRetrieveError(t, err, "invalid_grant", 403)

	grants := fake.OAuthGrants()
	if len(grants) == 0 || !grants[0].OK || grants[0].GrantType != "authorization_code" || grants[0].ClientID != clientID || grants[0].Time.IsZero() {
		t.Errorf("first grant %+v, want a successful authorization_code", grants)
	}
	for _, g := range grants[1:] {
		if g.OK || g.Error != "invalid_grant" {
			t.Errorf("reused code: grant %+v, want invalid_grant", g)
		}
	}
}

func TestOAuthFollowingClient(t *testing.T) {
	fake := newFake(t)
	codes := make(chan url.Values, 1)
	cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		codes <- r.URL.Query()
		_, _ = io.WriteString(w, "done")
	}))
	defer cb.Close()
	fake.AddOAuthClient("late", "late-secret") // no URIs registered: any absolute one
	conf := &oauth2.Config{
		ClientID: "late", ClientSecret: "late-secret", RedirectURL: cb.URL + "/callback",
		Endpoint: oauth2.Endpoint{AuthURL: fake.URL() + "/authorize", TokenURL: fake.URL() + "/oauth/token"},
		Scopes:   []string{"read:jira-user"},
	}
	resp, err := http.Get(conf.AuthCodeURL("s", atlassianParams...))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	q := <-codes
	tok, err := conf.Exchange(t.Context(), q.Get("code"))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	// Without offline_access Atlassian issues no refresh token.
	if tok.RefreshToken != "" {
		t.Errorf("refresh token issued without offline_access")
	}
	if status, _ := gatewayMyself(t, fake, tok.AccessToken); status != 200 {
		t.Errorf("myself: %d", status)
	}
}

func TestOAuthRefreshRotates(t *testing.T) {
	fake, conf := newOAuthFake(t)
	_, refresh, _ := fake.IssueOAuthTokens(clientID, alice.ID)
	stale := &oauth2.Token{RefreshToken: refresh, Expiry: time.Now().Add(-time.Minute)}

	tok, err := conf.TokenSource(t.Context(), stale).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if tok.RefreshToken == "" || tok.RefreshToken == refresh {
		t.Fatalf("refresh answered refresh token %q, want a new one", tok.RefreshToken)
	}
	if status, _ := gatewayMyself(t, fake, tok.AccessToken); status != 200 {
		t.Errorf("refreshed access token: %d", status)
	}
	if ok := countGrants(fake.OAuthGrants(), true); ok != 1 {
		t.Errorf("%d successful grants, want exactly one rotation", ok)
	}

	// The old refresh token is dead at once, and the refusal does not echo it.
	_, err = conf.TokenSource(t.Context(), stale).Token()
	wantRetrieveError(t, err, "invalid_grant", 403)
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && (re.ErrorDescription != "Unknown or invalid refresh token." || strings.Contains(string(re.Body), refresh)) {
		t.Errorf("refusal body %s", re.Body)
	}
	// The new one works, once.
	next := &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Minute)}
	if _, err := conf.TokenSource(t.Context(), next).Token(); err != nil {
		t.Errorf("refresh with the rotated token: %v", err)
	}
	if ok := countGrants(fake.OAuthGrants(), true); ok != 2 {
		t.Errorf("%d successful grants, want 2", ok)
	}
}

func countGrants(grants []atlassiantest.OAuthGrant, ok bool) int {
	n := 0
	for _, g := range grants {
		if g.OK == ok {
			n++
		}
	}
	return n
}

func TestOAuthConcurrentRefresh(t *testing.T) {
	fake, _ := newOAuthFake(t)
	for range 20 {
		_, refresh, _ := fake.IssueOAuthTokens(clientID, alice.ID)
		var wg sync.WaitGroup
		statuses := make([]int, 2)
		start := make(chan struct{})
		for i := range statuses {
			wg.Go(func() {
				<-start
				statuses[i], _ = postToken(t, fake, "application/x-www-form-urlencoded", refreshForm(refresh), nil)
			})
		}
		close(start)
		wg.Wait()
		if ok := statuses[0] == 200 && statuses[1] == 403 || statuses[0] == 403 && statuses[1] == 200; !ok {
			t.Fatalf("two refreshes with one token answered %v, want exactly one 200 and one 403", statuses)
		}
	}
}

func TestOAuthAccessTokenExpires(t *testing.T) {
	fake, conf := newOAuthFake(t)
	fake.SetAccessTokenTTL(300 * time.Millisecond)
	access, refresh, expiresIn := fake.IssueOAuthTokens(clientID, alice.ID)
	if expiresIn != 300*time.Millisecond {
		t.Errorf("expiresIn %s", expiresIn)
	}
	if status, _ := gatewayMyself(t, fake, access); status != 200 {
		t.Fatalf("fresh access token: %d", status)
	}
	// expires_in is rounded up to a whole second: 0 would mean "never" to clients.
	status, body := postToken(t, fake, "application/x-www-form-urlencoded", refreshForm(refresh), nil)
	if status != 200 || body["expires_in"] != float64(1) {
		t.Errorf("refresh: %d %v, want expires_in 1", status, body)
	}
	time.Sleep(400 * time.Millisecond)
	if status, _ := gatewayMyself(t, fake, access); status != 401 {
		t.Errorf("expired access token: %d, want 401", status)
	}

	fake.SetAccessTokenTTL(0) // back to the hour
	_, refresh, _ = fake.IssueOAuthTokens(clientID, alice.ID)
	tok, err := conf.TokenSource(t.Context(), &oauth2.Token{RefreshToken: refresh}).Token()
	if err != nil || time.Until(tok.Expiry) < 59*time.Minute {
		t.Errorf("after SetAccessTokenTTL(0): %v, expiry %s", err, tok.Expiry)
	}
}

func TestOAuthRevokedRefreshToken(t *testing.T) {
	fake, conf := newOAuthFake(t)
	access, refresh, _ := fake.IssueOAuthTokens(clientID, alice.ID)
	fake.RevokeRefreshToken(refresh)
	_, err := conf.TokenSource(t.Context(), &oauth2.Token{RefreshToken: refresh}).Token()
	wantRetrieveError(t, err, "invalid_grant", 403)
	if status, _ := gatewayMyself(t, fake, access); status != 200 {
		t.Errorf("access token after revoking the refresh token: %d, want 200 until it expires", status)
	}
	for _, g := range fake.OAuthGrants() {
		if g.OK || g.GrantType != "refresh_token" || g.Error != "invalid_grant" {
			t.Errorf("grant %+v, want a refused refresh_token", g)
		}
	}
}

// TestOAuthTokenDelay: a client that gives up while the answer is delayed has spent its
// refresh token all the same; the token issued in its place is live, and RefreshTokenLive
// tells the two apart.
func TestOAuthTokenDelay(t *testing.T) {
	fake, conf := newOAuthFake(t)
	_, refresh, _ := fake.IssueOAuthTokens(clientID, alice.ID)
	if !fake.RefreshTokenLive(refresh) {
		t.Fatal("an issued refresh token is not live")
	}
	fake.SetTokenDelay(300 * time.Millisecond)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: refresh}).Token()
	if err == nil || time.Since(start) > 250*time.Millisecond {
		t.Fatalf("refresh with a 100ms deadline against a 300ms delay: %v after %s, want a timeout", err, time.Since(start))
	}
	if fake.RefreshTokenLive(refresh) {
		t.Error("the refresh token survived a grant whose answer the client never read")
	}
	grants := fake.OAuthGrants()
	if len(grants) != 1 || !grants[0].OK {
		t.Fatalf("grants %+v, want one successful rotation", grants)
	}

	// A patient client gets the answer after the delay, and its new token is live.
	_, refresh, _ = fake.IssueOAuthTokens(clientID, alice.ID)
	start = time.Now()
	tok, err := conf.TokenSource(t.Context(), &oauth2.Token{RefreshToken: refresh}).Token()
	if err != nil || time.Since(start) < 300*time.Millisecond {
		t.Fatalf("refresh: %v after %s, want success after the 300ms delay", err, time.Since(start))
	}
	if fake.RefreshTokenLive(refresh) || !fake.RefreshTokenLive(tok.RefreshToken) {
		t.Error("after a rotation the old refresh token must be dead and the new one live")
	}
	fake.RevokeRefreshToken(tok.RefreshToken)
	if fake.RefreshTokenLive(tok.RefreshToken) || fake.RefreshTokenLive("made-up") {
		t.Error("a revoked or unknown refresh token is reported live")
	}
	fake.SetTokenDelay(0)
	_, refresh, _ = fake.IssueOAuthTokens(clientID, alice.ID)
	start = time.Now()
	if _, err := conf.TokenSource(t.Context(), &oauth2.Token{RefreshToken: refresh}).Token(); err != nil || time.Since(start) > 200*time.Millisecond {
		t.Errorf("after SetTokenDelay(0): %v after %s", err, time.Since(start))
	}
}

func TestOAuthPKCE(t *testing.T) {
	_, conf := newOAuthFake(t)
	for _, tc := range []struct {
		name string
		opts []oauth2.AuthCodeOption
	}{
		{"wrong verifier", []oauth2.AuthCodeOption{oauth2.VerifierOption(oauth2.GenerateVerifier())}},
		{"no verifier", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			verifier := oauth2.GenerateVerifier()
			q := authorize(t, conf.AuthCodeURL("s", append(atlassianParams, oauth2.S256ChallengeOption(verifier))...))
			_, err := conf.Exchange(t.Context(), q.Get("code"), tc.opts...)
			wantRetrieveError(t, err, "invalid_grant", 403)
			// A failed attempt burns the code: the right verifier comes too late.
			_, err = conf.Exchange(t.Context(), q.Get("code"), oauth2.VerifierOption(verifier))
			wantRetrieveError(t, err, "invalid_grant", 403)
		})
	}
	t.Run("plain method refused", func(t *testing.T) {
		q := authorize(t, conf.AuthCodeURL("s", append(atlassianParams,
			oauth2.SetAuthURLParam("code_challenge", "abc"), oauth2.SetAuthURLParam("code_challenge_method", "plain"))...))
		if q.Get("error") != "invalid_request" || q.Get("code") != "" {
			t.Errorf("callback query %v, want error=invalid_request", q)
		}
	})
}

func TestOAuthAuthorizeErrors(t *testing.T) {
	fake, conf := newOAuthFake(t)
	valid := func() url.Values {
		u, _ := url.Parse(conf.AuthCodeURL("st", atlassianParams...))
		return u.Query()
	}
	for _, tc := range []struct {
		name      string
		change    func(url.Values)
		wantError string // "" for 400 without a redirect
	}{
		{"unknown client", func(q url.Values) { q.Set("client_id", "nobody") }, ""},
		{"unregistered redirect_uri", func(q url.Values) { q.Set("redirect_uri", "https://evil.example/cb") }, ""},
		{"no redirect_uri", func(q url.Values) { q.Del("redirect_uri") }, ""},
		{"response_type token", func(q url.Values) { q.Set("response_type", "token") }, "unsupported_response_type"},
		{"no audience", func(q url.Values) { q.Del("audience") }, "invalid_request"},
		{"no scope", func(q url.Values) { q.Del("scope") }, "invalid_scope"},
		{"challenge without method", func(q url.Values) { q.Set("code_challenge", "abc") }, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := valid()
			tc.change(q)
			resp, err := noRedirects.Get(fake.URL() + "/authorize?" + q.Encode())
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			if tc.wantError == "" {
				if resp.StatusCode != 400 || resp.Header.Get("Location") != "" {
					t.Fatalf("%d Location %q, want 400 without a redirect", resp.StatusCode, resp.Header.Get("Location"))
				}
				return
			}
			loc, _ := url.Parse(resp.Header.Get("Location"))
			if resp.StatusCode != 302 || loc.Query().Get("error") != tc.wantError || loc.Query().Get("state") != "st" || loc.Query().Get("code") != "" {
				t.Fatalf("%d Location %q, want a redirect with error=%s and the state", resp.StatusCode, loc, tc.wantError)
			}
		})
	}

	t.Run("consent account", func(t *testing.T) {
		fake.SetConsentAccount(bob.ID)
		defer fake.SetConsentAccount("")
		tok, err := conf.Exchange(t.Context(), authorize(t, conf.AuthCodeURL("s", atlassianParams...)).Get("code"))
		if err != nil {
			t.Fatal(err)
		}
		if _, body := gatewayMyself(t, fake, tok.AccessToken); body["accountId"] != bob.ID {
			t.Errorf("myself %v, want Bob", body)
		}
		fake.SetConsentAccount("no-such-account")
		if q := authorize(t, conf.AuthCodeURL("s", atlassianParams...)); q.Get("error") != "access_denied" {
			t.Errorf("unknown consent account: %v, want error=access_denied", q)
		}
	})

	t.Run("redirect_uri must match at the token endpoint", func(t *testing.T) {
		code := authorize(t, conf.AuthCodeURL("s", atlassianParams...)).Get("code")
		other := *conf
		other.RedirectURL = "https://operator.example/other"
		_, err := other.Exchange(t.Context(), code)
		wantRetrieveError(t, err, "invalid_grant", 403)
	})
}

func TestOAuthTokenEndpointEncodings(t *testing.T) {
	fake, _ := newOAuthFake(t)
	const form = "application/x-www-form-urlencoded"
	refresh := func() string { _, r, _ := fake.IssueOAuthTokens(clientID, alice.ID); return r }
	jsonBody := func(m map[string]string) string { b, _ := json.Marshal(m); return string(b) }

	for _, tc := range []struct {
		name        string
		contentType string
		body        func() string
		basic       *[2]string
		status      int
		error       string
	}{
		{"JSON with credentials in the body (Atlassian's documented form)", "application/json", func() string {
			return jsonBody(map[string]string{"grant_type": "refresh_token", "client_id": clientID, "client_secret": clientSecret, "refresh_token": refresh()})
		}, nil, 200, ""},
		{"form with credentials in the body", form, func() string { return refreshForm(refresh()) }, nil, 200, ""},
		{"form with form-encoded HTTP Basic", form, func() string {
			return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh()}}.Encode()
		}, &[2]string{url.QueryEscape(clientID), url.QueryEscape(clientSecret)}, 200, ""},
		{"wrong secret", form, func() string {
			return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh()}, "client_id": {clientID}, "client_secret": {"nope"}}.Encode()
		}, nil, 401, "invalid_client"},
		{"unknown client as Basic", form, func() string { return "grant_type=refresh_token&refresh_token=" + refresh() }, &[2]string{"nobody", "x"}, 401, "invalid_client"},
		{"refresh token of another client", form, func() string {
			_, r, _ := fake.IssueOAuthTokens("other-client", alice.ID)
			return refreshForm(r)
		}, nil, 403, "invalid_grant"},
		{"unknown refresh token", form, func() string { return refreshForm("fake-rt-guess") }, nil, 403, "invalid_grant"},
		{"missing refresh token", form, func() string { return refreshForm("") }, nil, 400, "invalid_request"},
		{"unsupported grant", form, func() string {
			return url.Values{"grant_type": {"password"}, "client_id": {clientID}, "client_secret": {clientSecret}}.Encode()
		}, nil, 400, "unsupported_grant_type"},
		{"text body", "text/plain", func() string { return refreshForm(refresh()) }, nil, 400, "invalid_request"},
		{"JSON with a number", "application/json", func() string { return `{"grant_type": 1}` }, nil, 400, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := postToken(t, fake, tc.contentType, tc.body(), tc.basic)
			if status != tc.status || (tc.error != "" && body["error"] != tc.error) {
				t.Fatalf("%d %v, want %d %q", status, body, tc.status, tc.error)
			}
			if tc.error != "" {
				return
			}
			for _, k := range []string{"access_token", "refresh_token", "scope"} {
				if s, _ := body[k].(string); s == "" {
					t.Errorf("answer lacks %s: %v", k, body)
				}
			}
			if body["token_type"] != "Bearer" || body["expires_in"] != float64(3600) {
				t.Errorf("answer %v, want token_type Bearer and expires_in 3600", body)
			}
		})
	}
	if g := fake.OAuthGrants(); len(g) != 11 || g[0].GrantType != "refresh_token" || g[3].Error != "invalid_client" {
		t.Errorf("OAuthGrants() = %+v, want one per call", g)
	}

	req, _ := http.NewRequest(http.MethodGet, fake.URL()+"/oauth/token", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 405 {
		t.Errorf("GET /oauth/token: %v %v, want 405", resp.StatusCode, err)
	} else {
		_ = resp.Body.Close()
	}
}

func TestOAuthAccessibleResources(t *testing.T) {
	fake, _ := newOAuthFake(t)
	access, _, _ := fake.IssueOAuthTokens(clientID, alice.ID)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, fake.URL()+"/oauth/token/accessible-resources", nil)
	req.Header.Set("Authorization", "Bearer "+access)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var sites []struct {
		ID, URL, Name, AvatarURL string
		Scopes                   []string
	}
	if err := json.NewDecoder(resp.Body).Decode(&sites); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %v", resp.StatusCode, err)
	}
	if len(sites) != 1 || sites[0].ID != fake.CloudID() || sites[0].URL != fake.URL() || sites[0].Name == "" ||
		sites[0].AvatarURL == "" || len(sites[0].Scopes) == 0 {
		t.Errorf("accessible resources %+v", sites)
	}
	// Only OAuth2 access tokens: not a PAT, not nothing.
	for _, auth := range []string{"Bearer alice-pat", "", basic(alice.Email, alice.APIToken)} {
		if status, _, body := get(t, fake.URL()+"/oauth/token/accessible-resources", auth); status != 401 || body["code"] != float64(401) {
			t.Errorf("accessible-resources with %q: %d %v, want 401", auth, status, body)
		}
	}
}
