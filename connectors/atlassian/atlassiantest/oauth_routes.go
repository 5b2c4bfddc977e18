package atlassiantest

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// oauthRoutes registers the OAuth 2.0 (3LO) endpoints of auth.atlassian.com, and
// accessible-resources of api.atlassian.com (see oauth.go).
func (s *Server) oauthRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /authorize", s.oauthAuthorize)
	mux.HandleFunc("POST /oauth/token", s.oauthToken)
	mux.HandleFunc("GET /oauth/token/accessible-resources", s.accessibleResources)
	// Other methods: 405 rather than the API's catch-all 401.
	for path, allow := range map[string]string{"/authorize": "GET, HEAD", "/oauth/token": "POST"} {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeOAuthError(w, http.StatusMethodNotAllowed, "invalid_request", "Method not allowed.")
		})
	}
}

// oauthAuthorize answers GET /authorize: it checks the request and, with no UI, consents
// as the consent account (SetConsentAccount), redirecting to redirect_uri with a code
// and the state. An unknown client or a redirect_uri the client may not use answers 400
// without redirecting (RFC 6749 §4.1.2.1: never send anything to an unchecked URI);
// other problems redirect with error, error_description and the state.
func (s *Server) oauthAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	clientID, redirectURI, state := q.Get("client_id"), q.Get("redirect_uri"), q.Get("state")
	challenge, method := q.Get("code_challenge"), q.Get("code_challenge_method")

	s.mu.Lock()
	client, known := s.oauth.clients[clientID]
	s.mu.Unlock()
	if !known {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Unknown client_id.")
		return
	}
	if !client.allows(redirectURI) {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "redirect_uri is not registered for this client.")
		return
	}
	fail := func(code, description string) {
		redirectWith(w, r, redirectURI, url.Values{"error": {code}, "error_description": {description}}, state)
	}
	switch {
	case q.Get("response_type") != "code":
		fail("unsupported_response_type", "response_type must be code.")
		return
	case q.Get("audience") != audience:
		fail("invalid_request", "audience must be "+audience+".")
		return
	case len(strings.Fields(q.Get("scope"))) == 0:
		fail("invalid_scope", "scope is required.")
		return
	case (challenge != "" || method != "") && (challenge == "" || method != "S256"):
		// plain is allowed by RFC 7636 but defeats its purpose; S256 is what clients send.
		fail("invalid_request", "PKCE needs code_challenge with code_challenge_method=S256.")
		return
	}

	s.mu.Lock()
	account, ok := s.consentAccountLocked()
	code := newSecret("fake-code-")
	if ok {
		s.oauth.codes[digestOf(code)] = authCode{
			clientID:    clientID,
			accountID:   account.ID,
			redirectURI: redirectURI,
			scope:       strings.Join(strings.Fields(q.Get("scope")), " "),
			challenge:   challenge,
			expires:     time.Now().Add(authCodeTTL),
		}
	}
	s.mu.Unlock()
	if !ok {
		fail("access_denied", "The user did not consent.")
		return
	}
	redirectWith(w, r, redirectURI, url.Values{"code": {code}}, state)
}

// redirectWith answers 302 to redirectURI (already checked) with params and the state
// added to its query.
func redirectWith(w http.ResponseWriter, r *http.Request, redirectURI string, params url.Values, state string) {
	u, _ := url.Parse(redirectURI)
	q := u.Query()
	for k, v := range params {
		q[k] = v
	}
	if state != "" {
		q.Set("state", state)
	}
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// validRedirectURI accepts an absolute http or https URI without a fragment (RFC 6749
// §3.1.2).
func validRedirectURI(uri string) bool {
	u, err := url.Parse(uri)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.Fragment == ""
}

// tokenAnswer is the token endpoint's success body.
type tokenAnswer struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token,omitempty"`
	ExpiresIn    int64  `json:"expires_in"`
	Scope        string `json:"scope"`
	TokenType    string `json:"token_type"`
}

// oauthError is a token endpoint refusal.
type oauthError struct {
	status            int
	code, description string
}

func invalidRequest(description string) *oauthError {
	return &oauthError{http.StatusBadRequest, "invalid_request", description}
}

// invalidGrant is answered with 403, as Atlassian does (RFC 6749 says 400); clients must
// read the error code, not the status.
func invalidGrant(description string) *oauthError {
	return &oauthError{http.StatusForbidden, "invalid_grant", description}
}

// oauthToken answers POST /oauth/token for the authorization_code and refresh_token
// grants, and records every call for OAuthGrants. SetTokenDelay delays the answer, not
// the grant.
func (s *Server) oauthToken(w http.ResponseWriter, r *http.Request) {
	p, parsed := tokenParams(w, r)
	clientID, secret, basic := clientCredentials(r, p)
	now := time.Now()

	s.mu.Lock()
	answer, e := s.grantLocked(parsed, p, clientID, secret, now)
	g := OAuthGrant{Time: now, GrantType: p["grant_type"], ClientID: clientID, OK: e == nil}
	if e != nil {
		g.Error = e.code
	}
	s.oauth.grants = append(s.oauth.grants, g)
	delay := s.oauth.delay
	s.mu.Unlock()

	// The grant above already happened: a client that gives up during the delay has
	// spent its refresh token all the same (SetTokenDelay).
	if !s.hold(r, Fault{Latency: delay}) {
		return
	}
	if e != nil {
		if e.status == http.StatusUnauthorized && basic {
			w.Header().Set("WWW-Authenticate", `Basic realm="fake-atlassian"`)
		}
		writeOAuthError(w, e.status, e.code, e.description)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, answer)
}

// grantLocked checks a token request and issues tokens; call it with s.mu held, which
// also makes a refresh token's single use atomic when two clients race with it.
func (s *Server) grantLocked(parsed bool, p map[string]string, clientID, secret string, now time.Time) (tokenAnswer, *oauthError) {
	if !parsed {
		return tokenAnswer{}, invalidRequest("The body must be application/x-www-form-urlencoded or application/json.")
	}
	if c, ok := s.oauth.clients[clientID]; !ok || !equal(c.secret, secret) {
		return tokenAnswer{}, &oauthError{http.StatusUnauthorized, "invalid_client", "Client authentication failed."}
	}
	var accountID, scope string
	switch p["grant_type"] {
	case "authorization_code":
		if p["code"] == "" {
			return tokenAnswer{}, invalidRequest("code is required.")
		}
		key := digestOf(p["code"])
		code, ok := s.oauth.codes[key]
		if ok && code.clientID == clientID {
			// Single use, even if the checks below fail: a failed attempt must not
			// leave the code open to more guesses at the verifier.
			delete(s.oauth.codes, key)
		}
		switch {
		case !ok || code.clientID != clientID || now.After(code.expires):
			return tokenAnswer{}, invalidGrant("Invalid authorization code.")
		case p["redirect_uri"] != code.redirectURI:
			return tokenAnswer{}, invalidGrant("redirect_uri does not match the authorization request.")
		case code.challenge != "" && !verifierMatches(p["code_verifier"], code.challenge):
			return tokenAnswer{}, invalidGrant("code_verifier does not match the code_challenge.")
		}
		accountID, scope = code.accountID, code.scope
	case "refresh_token":
		if p["refresh_token"] == "" {
			return tokenAnswer{}, invalidRequest("refresh_token is required.")
		}
		key := digestOf(p["refresh_token"])
		t, ok := s.oauth.refresh[key]
		if !ok || t.clientID != clientID {
			return tokenAnswer{}, invalidGrant("Unknown or invalid refresh token.")
		}
		delete(s.oauth.refresh, key) // rotation, with no reuse grace
		accountID, scope = t.accountID, t.scope
	case "":
		return tokenAnswer{}, invalidRequest("grant_type is required.")
	default:
		return tokenAnswer{}, &oauthError{http.StatusBadRequest, "unsupported_grant_type", "Unsupported grant_type."}
	}
	access, refresh, ttl := s.issueLocked(clientID, accountID, scope, now)
	return tokenAnswer{
		AccessToken:  access,
		RefreshToken: refresh,
		ExpiresIn:    int64(ceilSeconds(ttl)),
		Scope:        scope,
		TokenType:    "Bearer",
	}, nil
}

// tokenParams reads the token request's parameters from a form body (what
// golang.org/x/oauth2 sends) or a JSON object of strings (what Atlassian documents); ok
// is false for any other body.
func tokenParams(w http.ResponseWriter, r *http.Request) (p map[string]string, ok bool) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mediaType {
	case "application/json":
		err := json.NewDecoder(r.Body).Decode(&p)
		return p, err == nil
	case "application/x-www-form-urlencoded":
		if r.ParseForm() != nil {
			return nil, false
		}
		p = make(map[string]string, len(r.PostForm))
		for k := range r.PostForm {
			p[k] = r.PostForm.Get(k)
		}
		return p, true
	}
	return nil, false
}

// clientCredentials finds the client's id and secret: HTTP Basic (whose parts are
// form-encoded first, RFC 6749 §2.3.1, as golang.org/x/oauth2 does) or else the body.
func clientCredentials(r *http.Request, p map[string]string) (id, secret string, basic bool) {
	if u, pw, ok := r.BasicAuth(); ok {
		return formUnescape(u), formUnescape(pw), true
	}
	return p["client_id"], p["client_secret"], false
}

func formUnescape(s string) string {
	if u, err := url.QueryUnescape(s); err == nil {
		return u
	}
	return s
}

// verifierMatches checks a PKCE code_verifier against an S256 code_challenge (RFC 7636
// §4.6), refusing verifiers of the wrong length outright.
func verifierMatches(verifier, challenge string) bool {
	if len(verifier) < 43 || len(verifier) > 128 {
		return false
	}
	sum := sha256.Sum256([]byte(verifier))
	return equal(base64.RawURLEncoding.EncodeToString(sum[:]), challenge)
}

// accessibleResource is one site an access token reaches, as
// GET /oauth/token/accessible-resources lists it.
type accessibleResource struct {
	ID        string   `json:"id"`
	URL       string   `json:"url"`
	Name      string   `json:"name"`
	Scopes    []string `json:"scopes"`
	AvatarURL string   `json:"avatarUrl"`
}

// accessibleResources answers GET /oauth/token/accessible-resources: the fake's one site,
// for a live OAuth 2.0 access token only (not a PAT, as on api.atlassian.com).
func (s *Server) accessibleResources(w http.ResponseWriter, r *http.Request) {
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	s.mu.Lock()
	t, ok := s.oauth.liveAccessToken(token, time.Now())
	s.mu.Unlock()
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		writeError(w, r, http.StatusUnauthorized, "Unauthorized")
		return
	}
	base := siteBase(r)
	writeJSON(w, http.StatusOK, []accessibleResource{{
		ID:        CloudID,
		URL:       base,
		Name:      "fake-atlassian",
		Scopes:    strings.Fields(t.scope),
		AvatarURL: base + "/images/site-avatar.png",
	}})
}
