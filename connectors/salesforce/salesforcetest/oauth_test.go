package salesforcetest_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/unified-connectors/connector-operator/connectors/salesforce/salesforcetest"
)

const redirectURI = "https://operator.example/oauth/v1/callback"

func challengeOf(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// authorize runs /authorize without following the redirect and returns its Location.
func (o *org) authorize(params url.Values) *url.URL {
	o.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, o.URL()+"/services/oauth2/authorize?"+params.Encode(), nil)
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		o.t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		o.t.Fatalf("authorize: status %d, want 302", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		o.t.Fatal(err)
	}
	return loc
}

func authParams(challenge string) url.Values {
	p := url.Values{"response_type": {"code"}, "client_id": {testClientID}, "redirect_uri": {redirectURI}, "state": {"st-1"}, "scope": {"api refresh_token"}}
	if challenge != "" {
		p.Set("code_challenge", challenge)
		p.Set("code_challenge_method", "S256")
	}
	return p
}

func exchange(o *org, code, verifier string) answer {
	return o.form("/services/oauth2/token", url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "client_id": {testClientID},
		"client_secret": {testSecret}, "redirect_uri": {redirectURI}, "code_verifier": {verifier},
	})
}

func TestWebServerFlowWithPKCE(t *testing.T) {
	o := newOrg(t)
	verifier := "a-verifier-of-enough-length-0123456789-abcdefghijkl"
	loc := o.authorize(authParams(challengeOf(verifier)))
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != redirectURI {
		t.Fatalf("redirected to %s", got)
	}
	code := loc.Query().Get("code")
	if code == "" || loc.Query().Get("state") != "st-1" {
		t.Fatalf("redirect query %v", loc.Query())
	}
	a := exchange(o, code, verifier)
	if a.status != http.StatusOK {
		t.Fatalf("token: %d %s", a.status, a.body)
	}
	var tok map[string]any
	a.json(t, &tok)
	for _, k := range []string{"access_token", "refresh_token", "instance_url", "id", "issued_at", "signature", "token_type", "scope"} {
		if s, _ := tok[k].(string); s == "" {
			t.Errorf("token answer lacks %s: %s", k, a.body)
		}
	}
	if _, has := tok["expires_in"]; has {
		t.Errorf("token answer has expires_in; Salesforce's has none: %s", a.body)
	}
	if tok["instance_url"] != o.URL() {
		t.Errorf("instance_url = %v, want %s", tok["instance_url"], o.URL())
	}
	wantID := o.URL() + "/id/" + o.OrgID() + "/" + salesforcetest.DefaultUser().ID
	if tok["id"] != wantID {
		t.Errorf("id = %v, want %s", tok["id"], wantID)
	}
	m := hmac.New(sha256.New, []byte(testSecret))
	m.Write([]byte(tok["id"].(string) + tok["issued_at"].(string)))
	if sig := base64.StdEncoding.EncodeToString(m.Sum(nil)); tok["signature"] != sig {
		t.Errorf("signature does not verify")
	}
	if a := o.callAs(tok["access_token"].(string), http.MethodGet, data("/limits"), ""); a.status != http.StatusOK {
		t.Errorf("new access token refused: %d %s", a.status, a.body)
	}
	// The code is single use.
	if a := exchange(o, code, verifier); a.status != http.StatusBadRequest || !strings.Contains(string(a.body), `"invalid_grant"`) {
		t.Errorf("second exchange: %d %s", a.status, a.body)
	}
}

func TestAuthorizeRefusals(t *testing.T) {
	o := newOrg(t)
	// PKCE is required by default: the refusal comes back to the redirect URI.
	loc := o.authorize(authParams(""))
	if loc.Query().Get("error") != "invalid_request" || loc.Query().Get("state") != "st-1" {
		t.Errorf("no challenge: redirect %v", loc.Query())
	}
	p := authParams(challengeOf("v"))
	p.Set("code_challenge_method", "plain")
	if loc := o.authorize(p); loc.Query().Get("error") != "invalid_request" {
		t.Errorf("plain method: %v", loc.Query())
	}
	// An unknown client or redirect URI is never redirected to.
	for name, mod := range map[string]func(url.Values){
		"client":   func(p url.Values) { p.Set("client_id", "nope") },
		"redirect": func(p url.Values) { p.Set("redirect_uri", "not a url") },
	} {
		p := authParams(challengeOf("v"))
		mod(p)
		a := do(t, mustReq(t, o.URL()+"/services/oauth2/authorize?"+p.Encode()))
		if a.status != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", name, a.status)
		}
	}
	// Without code_challenge_method the challenge is taken as plain (RFC 7636): a client
	// that hashed the verifier and did not say S256 fails at the exchange.
	verifier := "verifier-0123456789-0123456789-0123456789-0123"
	p = authParams(challengeOf(verifier))
	p.Del("code_challenge_method")
	if a := exchange(o, o.authorize(p).Query().Get("code"), verifier); a.status != http.StatusBadRequest || !strings.Contains(string(a.body), "invalid code verifier") {
		t.Errorf("hashed challenge without S256: %d %s", a.status, a.body)
	}
	// With PKCE off a code comes without a challenge, and then needs no verifier.
	o.SetPKCERequired(false)
	code := o.authorize(authParams("")).Query().Get("code")
	if a := exchange(o, code, ""); a.status != http.StatusOK {
		t.Errorf("exchange without PKCE: %d %s", a.status, a.body)
	}
}

func mustReq(t *testing.T, u string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestTokenRefusals(t *testing.T) {
	o := newOrg(t)
	verifier := "right-verifier-0123456789-0123456789-0123456789"
	code := o.authorize(authParams(challengeOf(verifier))).Query().Get("code")
	a := exchange(o, code, "wrong-verifier-0123456789-0123456789-012345678")
	if a.status != http.StatusBadRequest || !strings.Contains(string(a.body), `"error":"invalid_grant"`) {
		t.Errorf("wrong verifier: %d %s", a.status, a.body)
	}
	// A failed attempt spends the code.
	if a := exchange(o, code, verifier); a.status != http.StatusBadRequest {
		t.Errorf("code reused after a failed attempt: %d %s", a.status, a.body)
	}
	cases := map[string]url.Values{
		"bad secret":    {"grant_type": {"refresh_token"}, "refresh_token": {o.refresh}, "client_id": {testClientID}, "client_secret": {"x"}},
		"unknown grant": {"grant_type": {"password"}, "client_id": {testClientID}, "client_secret": {testSecret}},
		"unknown token": {"grant_type": {"refresh_token"}, "refresh_token": {"nope"}, "client_id": {testClientID}, "client_secret": {testSecret}},
		"no cc user":    {"grant_type": {"client_credentials"}, "client_id": {testClientID}, "client_secret": {testSecret}},
	}
	want := map[string]string{"bad secret": "invalid_client", "unknown grant": "unsupported_grant_type", "unknown token": "invalid_grant", "no cc user": "invalid_grant"}
	for name, form := range cases {
		a := o.form("/services/oauth2/token", form)
		var e map[string]string
		a.json(t, &e)
		if a.status != http.StatusBadRequest || e["error"] != want[name] || e["error_description"] == "" {
			t.Errorf("%s: %d %s, want 400 %s", name, a.status, a.body, want[name])
		}
	}
	if g := o.TokenGrants(); len(g) != 6 || g[0].OK || g[0].GrantType != "authorization_code" {
		t.Errorf("TokenGrants = %+v", g)
	}
}

func refreshForm(token string) url.Values {
	return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {token}, "client_id": {testClientID}, "client_secret": {testSecret}}
}

func TestRefreshWithoutRotation(t *testing.T) {
	o := newOrg(t)
	for i := range 2 {
		a := o.form("/services/oauth2/token", refreshForm(o.refresh))
		var tok map[string]any
		a.json(t, &tok)
		if a.status != http.StatusOK || tok["access_token"] == nil {
			t.Fatalf("refresh %d: %d %s", i, a.status, a.body)
		}
		if _, has := tok["refresh_token"]; has {
			t.Errorf("refresh answered a refresh_token with rotation off")
		}
		if _, has := tok["expires_in"]; has {
			t.Errorf("refresh answered expires_in")
		}
	}
	if o.Refreshes() != 2 {
		t.Errorf("Refreshes = %d, want 2", o.Refreshes())
	}
}

func TestRefreshRotation(t *testing.T) {
	o := newOrg(t)
	o.SetRefreshTokenRotation(true)
	a := o.form("/services/oauth2/token", refreshForm(o.refresh))
	var tok map[string]string
	a.json(t, &tok)
	next := tok["refresh_token"]
	if a.status != http.StatusOK || next == "" || next == o.refresh {
		t.Fatalf("rotating refresh: %d %s", a.status, a.body)
	}
	if o.RefreshTokenLive(o.refresh) || !o.RefreshTokenLive(next) {
		t.Fatalf("after rotation: old live=%v new live=%v", o.RefreshTokenLive(o.refresh), o.RefreshTokenLive(next))
	}
	// Reusing the rotated-out token fails and revokes the grant: the new refresh token
	// and the session it gave die too.
	if a := o.form("/services/oauth2/token", refreshForm(o.refresh)); a.status != http.StatusBadRequest {
		t.Fatalf("reuse: %d %s", a.status, a.body)
	}
	if o.RefreshTokenLive(next) || o.SessionLive(tok["access_token"]) {
		t.Errorf("reuse of a spent token left the grant alive")
	}
	if a := o.form("/services/oauth2/token", refreshForm(next)); a.status != http.StatusBadRequest {
		t.Errorf("refresh after revocation: %d %s", a.status, a.body)
	}
}

func TestClientCredentials(t *testing.T) {
	o := newOrg(t)
	run := o.AddUser(salesforcetest.User{Username: "int@x.example", Name: "Int User"})
	o.AddClient(salesforcetest.Client{ID: "cc", Secret: "cc-secret", RunAs: run.ID})
	req, _ := http.NewRequest(http.MethodPost, o.URL()+"/services/oauth2/token", strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("cc", "cc-secret")
	a := do(t, req)
	var tok map[string]any
	a.json(t, &tok)
	if a.status != http.StatusOK || tok["refresh_token"] != nil || !strings.HasSuffix(tok["id"].(string), run.ID) {
		t.Fatalf("client credentials: %d %s", a.status, a.body)
	}
	ui := o.callAs(tok["access_token"].(string), http.MethodGet, "/services/oauth2/userinfo", "")
	var info map[string]any
	ui.json(t, &info)
	if info["user_id"] != run.ID {
		t.Errorf("userinfo user_id = %v, want the run-as user %s", info["user_id"], run.ID)
	}
}

func TestUserInfoAndSessions(t *testing.T) {
	o := newOrg(t)
	a := o.get("/services/oauth2/userinfo")
	var info map[string]any
	a.json(t, &info)
	u := salesforcetest.DefaultUser()
	want := map[string]any{"user_id": u.ID, "organization_id": o.OrgID(), "name": u.Name, "preferred_username": u.Username, "zoneinfo": u.TimeZone, "email": u.Email}
	for k, w := range want {
		if info[k] != w {
			t.Errorf("userinfo %s = %v, want %v", k, info[k], w)
		}
	}
	// Every session dies at once; the REST API answers 401 with the array body.
	o.ExpireSessions()
	b := o.get(data("/sobjects"))
	if msg := b.wantError(t, http.StatusUnauthorized, "INVALID_SESSION_ID"); msg != "Session expired or invalid" {
		t.Errorf("message = %q", msg)
	}
	if got := string(b.body); got != `[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]`+"\n" {
		t.Errorf("body = %s", got)
	}
	if b.header.Get("Sforce-Limit-Info") != "" {
		t.Errorf("a refused session was counted")
	}
	if ui := o.get("/services/oauth2/userinfo"); ui.status != http.StatusForbidden {
		t.Errorf("userinfo with a dead session: %d", ui.status)
	}
	// The refresh token still gives a new session.
	r := o.form("/services/oauth2/token", refreshForm(o.refresh))
	var tok map[string]string
	r.json(t, &tok)
	if a := o.callAs(tok["access_token"], http.MethodGet, data("/sobjects"), ""); a.status != http.StatusOK {
		t.Errorf("refreshed session refused: %d", a.status)
	}
	if o.callAs("", http.MethodGet, data("/sobjects"), "").status != http.StatusUnauthorized {
		t.Errorf("no token accepted")
	}
}

func TestRevoke(t *testing.T) {
	o := newOrg(t)
	if a := o.form("/services/oauth2/revoke", url.Values{"token": {"nope"}}); a.status != http.StatusBadRequest || !strings.Contains(string(a.body), "invalid_token") {
		t.Errorf("unknown token: %d %s", a.status, a.body)
	}
	if a := o.form("/services/oauth2/revoke", url.Values{"token": {o.refresh}}); a.status != http.StatusOK {
		t.Fatalf("revoke: %d %s", a.status, a.body)
	}
	if o.SessionLive(o.access) || o.RefreshTokenLive(o.refresh) {
		t.Errorf("revoking the refresh token left its session or itself alive")
	}
	o2 := newOrg(t)
	o2.RevokeRefreshToken(o2.refresh)
	if a := o2.form("/services/oauth2/token", refreshForm(o2.refresh)); a.status != http.StatusBadRequest || !strings.Contains(string(a.body), "invalid_grant") {
		t.Errorf("refresh after RevokeRefreshToken: %d %s", a.status, a.body)
	}
}

func TestRequestLogHoldsNoSecrets(t *testing.T) {
	o := newOrg(t)
	o.form("/services/oauth2/revoke?token="+url.QueryEscape(o.access), nil)
	o.form("/services/oauth2/token", refreshForm(o.refresh))
	o.soql("query", "SELECT Id FROM Account")
	for _, r := range o.Requests() {
		for _, secret := range []string{o.access, o.refresh, testSecret} {
			if strings.Contains(r.Path+r.Query, secret) {
				t.Errorf("request log holds a secret: %+v", r)
			}
		}
	}
	reqs := o.Requests()
	// The access token was revoked first, so the query is refused, and logged.
	if last := reqs[len(reqs)-1]; last.Query != "SELECT Id FROM Account" || last.Status != http.StatusUnauthorized {
		t.Errorf("query not logged: %+v", last)
	}
}

func TestSetInstanceURL(t *testing.T) {
	o := newOrg(t)
	o.SetInstanceURL("https://evil.example/")
	var tok map[string]string
	o.form("/services/oauth2/token", refreshForm(o.refresh)).json(t, &tok)
	if tok["instance_url"] != "https://evil.example" || !strings.HasPrefix(tok["id"], "https://evil.example/id/") {
		t.Errorf("token answer %v", tok)
	}
}
