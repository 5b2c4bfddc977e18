package salesforcetest

import (
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
)

func (s *Server) oauthRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /services/oauth2/authorize", s.authorize)
	mux.HandleFunc("POST /services/oauth2/token", s.token)
	mux.HandleFunc("GET /services/oauth2/userinfo", s.userinfo)
	mux.HandleFunc("POST /services/oauth2/userinfo", s.userinfo)
	mux.HandleFunc("POST /services/oauth2/revoke", s.revoke)
	mux.HandleFunc("GET /services/oauth2/revoke", s.revoke)
	mux.HandleFunc("GET /id/{org}/{user}", s.identity)
	for path, allow := range map[string]string{"/services/oauth2/authorize": "GET", "/services/oauth2/token": "POST"} {
		mux.HandleFunc(path, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Allow", allow)
			writeOAuthError(w, http.StatusMethodNotAllowed, "invalid_request", "method not allowed")
		})
	}
}

// authorize answers the web server flow's GET /services/oauth2/authorize: with no login
// page, it consents as the consent user and redirects to redirect_uri with code and state.
// An unknown client or an unregistered redirect_uri answers 400 without redirecting;
// other problems redirect with error and error_description.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	clientID, redirectURI, state := q.Get("client_id"), q.Get("redirect_uri"), q.Get("state")
	challenge, method := q.Get("code_challenge"), q.Get("code_challenge_method")

	s.mu.Lock()
	client, known := s.oauth.clients[clientID]
	pkce := s.oauth.pkceRequired
	s.mu.Unlock()
	if !known {
		writeOAuthError(w, http.StatusBadRequest, "invalid_client_id", "client identifier invalid")
		return
	}
	if !redirectAllowed(client, redirectURI) {
		writeOAuthError(w, http.StatusBadRequest, "redirect_uri_mismatch", "redirect_uri must match configuration")
		return
	}
	fail := func(code, description string) {
		redirectWith(w, r, redirectURI, url.Values{"error": {code}, "error_description": {description}}, state)
	}
	switch {
	case q.Get("response_type") != "code":
		fail("unsupported_response_type", "response type not supported")
		return
	case challenge == "" && pkce:
		fail("invalid_request", "missing required code challenge")
		return
	case method != "" && method != "S256":
		fail("invalid_request", "invalid code challenge method")
		return
	}
	if challenge != "" && method == "" {
		// RFC 7636 §4.3: without a method the challenge is the verifier itself
		// ("plain"), so a client that hashes must say S256.
		method = "plain"
	}
	s.mu.Lock()
	u, ok := s.consentUserLocked()
	code := newSecret("aPrxfake")
	if ok {
		s.oauth.codes[digestOf(code)] = authCode{
			clientID: clientID, userID: u.ID, redirectURI: redirectURI,
			scope: strings.Join(strings.Fields(q.Get("scope")), " "), challenge: challenge, method: method,
			expires: s.clock().Add(authCodeTTL),
		}
	}
	s.mu.Unlock()
	if !ok {
		fail("access_denied", "end-user denied authorization")
		return
	}
	redirectWith(w, r, redirectURI, url.Values{"code": {code}}, state)
}

func redirectAllowed(c Client, uri string) bool {
	if len(c.RedirectURIs) > 0 {
		for _, u := range c.RedirectURIs {
			if u == uri {
				return true
			}
		}
		return false
	}
	u, err := url.Parse(uri)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.Fragment == ""
}

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

// tokenError is a token endpoint refusal; Salesforce answers every one with 400.
type tokenError struct{ code, description string }

// token answers POST /services/oauth2/token.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	parseErr := r.ParseForm()
	p := r.PostForm
	clientID, secret := p.Get("client_id"), p.Get("client_secret")
	if id, sec, ok := r.BasicAuth(); ok {
		clientID, secret = id, sec
	}
	s.mu.Lock()
	now := s.clock()
	var answer map[string]string
	var e *tokenError
	if ct != "application/x-www-form-urlencoded" || parseErr != nil {
		e = &tokenError{"invalid_request", "request must be application/x-www-form-urlencoded"}
	} else {
		answer, e = s.grantLocked(base(r), p, clientID, secret, now)
	}
	g := TokenGrant{Time: now, GrantType: p.Get("grant_type"), ClientID: clientID, OK: e == nil}
	if e != nil {
		g.Error = e.code
	}
	s.oauth.grants = append(s.oauth.grants, g)
	s.mu.Unlock()
	if e != nil {
		writeOAuthError(w, http.StatusBadRequest, e.code, e.description)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, answer)
}

// grantLocked checks a token request and issues tokens; under s.mu, so that a refresh
// token's single use under rotation is atomic.
func (s *Server) grantLocked(root string, p url.Values, clientID, secret string, now time.Time) (map[string]string, *tokenError) {
	c, known := s.oauth.clients[clientID]
	if !known {
		return nil, &tokenError{"invalid_client_id", "client identifier invalid"}
	}
	if !equal(c.Secret, secret) {
		return nil, &tokenError{"invalid_client", "invalid client credentials"}
	}
	var userID, scope, refresh string
	var grant int
	switch p.Get("grant_type") {
	case "authorization_code":
		key := digestOf(p.Get("code"))
		code, ok := s.oauth.codes[key]
		if ok && code.clientID == clientID {
			delete(s.oauth.codes, key) // single use, even when a check below fails
		}
		switch {
		case !ok || code.clientID != clientID || now.After(code.expires):
			return nil, &tokenError{"invalid_grant", "invalid authorization code"}
		case p.Get("redirect_uri") != code.redirectURI:
			return nil, &tokenError{"redirect_uri_mismatch", "redirect_uri must match configuration"}
		case code.challenge != "" && !verifierMatches(p.Get("code_verifier"), code.challenge, code.method):
			return nil, &tokenError{"invalid_grant", "invalid code verifier"}
		}
		userID, scope = code.userID, code.scope
		s.oauth.nextGrant++
		grant = s.oauth.nextGrant
		if wantsRefresh(scope) {
			refresh = s.newRefreshLocked(userID, clientID, scope, grant)
		}
	case "refresh_token":
		key := digestOf(p.Get("refresh_token"))
		t, ok := s.oauth.refresh[key]
		switch {
		case !ok || t.clientID != clientID:
			return nil, &tokenError{"invalid_grant", "expired access/refresh token"}
		case t.spent:
			// Reuse of a rotated-out token: revoke the whole grant.
			s.revokeGrantLocked(t.grant)
			return nil, &tokenError{"invalid_grant", "expired access/refresh token"}
		}
		userID, scope, grant = t.userID, t.scope, t.grant
		if s.oauth.rotation {
			t.spent = true
			refresh = s.newRefreshLocked(userID, clientID, scope, grant)
		}
		s.oauth.refreshes++
	case "client_credentials":
		if c.RunAs == "" {
			return nil, &tokenError{"invalid_grant", "no client credentials user enabled"}
		}
		userID, scope = c.RunAs, "api"
		s.oauth.nextGrant++
		grant = s.oauth.nextGrant
	case "":
		return nil, &tokenError{"invalid_request", "grant type is missing"}
	default:
		return nil, &tokenError{"unsupported_grant_type", "grant type not supported"}
	}
	if _, ok := s.userLocked(userID); !ok {
		return nil, &tokenError{"invalid_grant", "user is inactive"}
	}
	if scope == "" {
		scope = "api refresh_token"
	}
	if s.oauth.instanceURL != "" {
		root = s.oauth.instanceURL
	}
	id := root + "/id/" + s.orgID + "/" + userID
	at := issuedAt(now)
	answer := map[string]string{
		"access_token": s.newSessionLocked(userID, clientID, grant),
		"signature":    signature(c.Secret, id, at),
		"scope":        scope,
		"instance_url": root,
		"id":           id,
		"token_type":   "Bearer",
		"issued_at":    at,
	}
	if refresh != "" {
		answer["refresh_token"] = refresh
	}
	return answer, nil
}

// bearer is the access token of a request: Authorization: Bearer or OAuth.
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	for _, scheme := range []string{"Bearer ", "OAuth "} {
		if len(h) > len(scheme) && strings.EqualFold(h[:len(scheme)], scheme) {
			return strings.TrimSpace(h[len(scheme):])
		}
	}
	return ""
}

// userinfo answers the OpenID Connect UserInfo endpoint. A dead or unknown token answers
// 403 with the plain-text body Bad_OAuth_Token (not the REST API's 401 array).
func (s *Server) userinfo(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	u, ok := s.sessionLocked(bearer(r))
	org := s.orgID
	s.mu.Unlock()
	if !ok {
		w.Header().Set("Content-Type", "text/plain;charset=UTF-8")
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte("Bad_OAuth_Token"))
		return
	}
	root := base(r)
	zone := u.TimeZone
	if zone == "" {
		zone = "America/Los_Angeles"
	}
	given, family, _ := strings.Cut(u.Name, " ")
	offset := 0
	if loc, err := time.LoadLocation(zone); err == nil {
		_, secs := time.Now().In(loc).Zone()
		offset = secs * 1000
	}
	rest := root + "/services/data/v{version}/"
	writeJSON(w, http.StatusOK, map[string]any{
		"sub":                root + "/id/" + org + "/" + u.ID,
		"user_id":            u.ID,
		"organization_id":    org,
		"preferred_username": u.Username,
		"nickname":           strings.Split(u.Username, "@")[0],
		"name":               u.Name,
		"email":              u.Email,
		"email_verified":     true,
		"given_name":         given,
		"family_name":        family,
		"zoneinfo":           zone,
		"locale":             "en_US",
		"language":           "en_US",
		"utcOffset":          offset,
		"active":             true,
		"user_type":          "STANDARD",
		"profile":            root + "/" + u.ID,
		"urls": map[string]string{
			"rest":     rest,
			"sobjects": rest + "sobjects/",
			"search":   rest + "search/",
			"query":    rest + "query/",
		},
		"updated_at": "2026-01-01T00:00:00Z",
	})
}

// identity answers the identity URL (the token answer's id) for the session's own user.
func (s *Server) identity(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	u, ok := s.sessionLocked(bearer(r))
	org := s.orgID
	s.mu.Unlock()
	if !ok {
		w.Header().Set("Content-Type", "text/plain;charset=UTF-8")
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte("Bad_OAuth_Token"))
		return
	}
	if r.PathValue("org") != org || r.PathValue("user") != u.ID {
		w.Header().Set("Content-Type", "text/plain;charset=UTF-8")
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte("Bad_Id"))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"id": base(r) + r.URL.Path, "user_id": u.ID, "organization_id": org,
		"username": u.Username, "display_name": u.Name, "email": u.Email,
		"timezone": u.TimeZone, "active": true, "user_type": "STANDARD",
	})
}

// revoke answers /services/oauth2/revoke: an access token ends its session, a refresh
// token revokes its grant. Unknown tokens answer 400 invalid_token.
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "malformed request")
		return
	}
	token := r.Form.Get("token")
	s.mu.Lock()
	found := false
	if se, ok := s.oauth.sessions[digestOf(token)]; ok && !se.dead {
		se.dead, found = true, true
	}
	if t, ok := s.oauth.refresh[digestOf(token)]; ok && !t.spent {
		s.revokeGrantLocked(t.grant)
		found = true
	}
	s.mu.Unlock()
	if !found {
		writeOAuthError(w, http.StatusBadRequest, "invalid_token", "invalid token")
		return
	}
	w.WriteHeader(http.StatusOK)
}
