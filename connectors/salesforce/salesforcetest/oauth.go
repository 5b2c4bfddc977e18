package salesforcetest

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The org's OAuth 2.0 endpoints live at its My Domain, as Salesforce's do:
//
//	authorizeURL = URL()+"/services/oauth2/authorize"   web server flow, PKCE S256
//	tokenURL     = URL()+"/services/oauth2/token"       authorization_code, refresh_token,
//	                                                    client_credentials
//	             URL()+"/services/oauth2/userinfo"      OpenID Connect user info
//	             URL()+"/services/oauth2/revoke"        revoke a token
//
// Token answers carry access_token, instance_url, id, issued_at (epoch milliseconds),
// signature (HMAC-SHA256 of id+issued_at keyed with the client secret), token_type and
// scope, and never expires_in: an access token is a session that lives until the org ends
// it. Refresh tokens rotate only when SetRefreshTokenRotation is on; reusing a rotated-out
// refresh token then revokes the whole grant, as Salesforce does. Errors are
// {"error","error_description"} with 400.

// User is a user of the fake org.
type User struct {
	// ID is the 18-character User Id (005…); AddUser assigns one when empty.
	ID string
	// Username is the login name, answered as preferred_username.
	Username string
	// Name is the full name.
	Name string
	// Email is the user's address.
	Email string
	// TimeZone is an IANA zone answered as zoneinfo; empty answers America/Los_Angeles,
	// a new org's default.
	TimeZone string
}

// DefaultUser is the user every fake org starts with, the one /authorize consents as
// unless SetConsentUser says otherwise.
func DefaultUser() User {
	return User{
		ID:       makeID(PrefixUser, 1),
		Username: "admin@fake-org.example",
		Name:     "Avery Admin",
		Email:    "admin@fake-org.example",
		TimeZone: "America/Los_Angeles",
	}
}

// Client is a connected app (or external client app).
type Client struct {
	// ID is the consumer key and Secret the consumer secret.
	ID, Secret string
	// RedirectURIs are the callback URLs /authorize may send codes to (exact match); none
	// accepts any absolute http(s) URL, for tests that learn their callback late.
	RedirectURIs []string
	// RunAs is the user the client credentials flow issues sessions for; "" leaves the
	// flow off for this client, answered invalid_grant as Salesforce does.
	RunAs string
}

// TokenGrant is one call to the token endpoint. It holds no code, token or secret.
type TokenGrant struct {
	Time      time.Time
	GrantType string
	ClientID  string
	OK        bool
	// Error is the OAuth error answered, "" when OK.
	Error string
}

// authCodeTTL is how long an authorization code may be exchanged.
const authCodeTTL = 15 * time.Minute

type oauthState struct {
	clients      map[string]Client
	consent      string // user id /authorize consents as; "" for the first user
	pkceRequired bool
	rotation     bool
	codes        map[digest]authCode
	sessions     map[digest]*session
	refresh      map[digest]*refreshToken
	nextGrant    int
	grants       []TokenGrant
	refreshes    int    // successful refresh_token grants
	instanceURL  string // answered as instance_url; "" for the org root as addressed
}

func newOAuthState() oauthState {
	return oauthState{
		clients:      map[string]Client{},
		pkceRequired: true,
		codes:        map[digest]authCode{},
		sessions:     map[digest]*session{},
		refresh:      map[digest]*refreshToken{},
	}
}

type authCode struct {
	clientID, userID, redirectURI, scope string
	challenge, method                    string // method S256 or plain
	expires                              time.Time
}

// session is what an access token stands for.
type session struct {
	userID, clientID string
	grant            int // the authorization it descends from
	dead             bool
}

// refreshToken is what a refresh token stands for. A spent token (rotated out) is kept to
// recognise its reuse.
type refreshToken struct {
	userID, clientID, scope string
	grant                   int
	spent                   bool
}

type digest [sha256.Size]byte

func digestOf(secret string) digest { return sha256.Sum256([]byte(secret)) }

func newSecret(prefix string) string { return prefix + rand.Text() }

// AddClient registers a connected app; an existing ID is replaced.
func (s *Server) AddClient(c Client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.RedirectURIs = slices.Clone(c.RedirectURIs)
	s.oauth.clients[c.ID] = c
}

// AddUser adds u (assigning an Id when u.ID is empty) and returns it.
func (s *Server) AddUser(u User) User {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.ID == "" {
		u.ID = makeID(PrefixUser, uint64(len(s.users)+1))
	}
	s.users = append(s.users, u)
	return u
}

// SetConsentUser sets the user /authorize consents as; "" is the first user. An unknown
// id makes /authorize redirect with error=access_denied.
func (s *Server) SetConsentUser(userID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.oauth.consent = userID
}

// SetPKCERequired says whether /authorize refuses a request without code_challenge (on by
// default, as connected apps must now require PKCE for the web server flow).
func (s *Server) SetPKCERequired(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.oauth.pkceRequired = on
}

// SetRefreshTokenRotation turns refresh token rotation on or off: on, every refresh
// answers a new refresh_token and spends the one used; reusing a spent one revokes the
// grant (its refresh token and every session from it).
func (s *Server) SetRefreshTokenRotation(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.oauth.rotation = on
}

// SetInstanceURL makes token answers carry u as instance_url (and build the identity URL
// on it) instead of the org root the client addressed, for tests of a client that must
// refuse an instance_url its Connector does not allow. "" restores the default.
func (s *Server) SetInstanceURL(u string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.oauth.instanceURL = strings.TrimRight(u, "/")
}

// IssueTokens issues a session and a refresh token for clientID acting as userID, as if
// the user had consented and the code had been exchanged, to seed a Secret without the
// browser. It records no TokenGrant.
func (s *Server) IssueTokens(clientID, userID string) (access, refresh string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.oauth.nextGrant++
	g := s.oauth.nextGrant
	access = s.newSessionLocked(userID, clientID, g)
	refresh = s.newRefreshLocked(userID, clientID, "api refresh_token", g)
	return access, refresh
}

// NewSession issues an access token for userID with no refresh token, as the client
// credentials flow does.
func (s *Server) NewSession(userID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.oauth.nextGrant++
	return s.newSessionLocked(userID, "", s.oauth.nextGrant)
}

// ExpireSessions ends every session now: the next API call with any access token issued
// so far answers 401 INVALID_SESSION_ID. Refresh tokens live on.
func (s *Server) ExpireSessions() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, se := range s.oauth.sessions {
		se.dead = true
	}
}

// RevokeRefreshToken revokes refresh and every session issued from its grant, as when a
// user or admin revokes the app's access; the next refresh answers invalid_grant. An
// unknown token is ignored.
func (s *Server) RevokeRefreshToken(refresh string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.oauth.refresh[digestOf(refresh)]; ok {
		s.revokeGrantLocked(t.grant)
	}
}

// RefreshTokenLive reports whether refresh would be accepted now.
func (s *Server) RefreshTokenLive(refresh string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.oauth.refresh[digestOf(refresh)]
	return ok && !t.spent
}

// SessionLive reports whether the access token would be accepted now.
func (s *Server) SessionLive(access string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.sessionLocked(access)
	return ok
}

// Refreshes counts the successful refresh_token grants so far.
func (s *Server) Refreshes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.oauth.refreshes
}

// TokenGrants returns every call to the token endpoint so far, in order of arrival.
func (s *Server) TokenGrants() []TokenGrant {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.oauth.grants)
}

func (s *Server) newSessionLocked(userID, clientID string, grant int) string {
	// Salesforce access tokens start with the 15-character org Id and "!".
	token := s.orgID[:15] + "!" + newSecret("AQfake")
	s.oauth.sessions[digestOf(token)] = &session{userID: userID, clientID: clientID, grant: grant}
	return token
}

func (s *Server) newRefreshLocked(userID, clientID, scope string, grant int) string {
	token := newSecret("5Aepfake")
	s.oauth.refresh[digestOf(token)] = &refreshToken{userID: userID, clientID: clientID, scope: scope, grant: grant}
	return token
}

func (s *Server) revokeGrantLocked(grant int) {
	for k, t := range s.oauth.refresh {
		if t.grant == grant {
			delete(s.oauth.refresh, k)
		}
	}
	for _, se := range s.oauth.sessions {
		if se.grant == grant {
			se.dead = true
		}
	}
}

// sessionLocked finds the live session of an access token and its user.
func (s *Server) sessionLocked(access string) (User, bool) {
	se, ok := s.oauth.sessions[digestOf(access)]
	if !ok || se.dead {
		return User{}, false
	}
	return s.userLocked(se.userID)
}

func (s *Server) userLocked(id string) (User, bool) {
	for _, u := range s.users {
		if u.ID == id {
			return u, true
		}
	}
	return User{}, false
}

func (s *Server) consentUserLocked() (User, bool) {
	if s.oauth.consent == "" {
		return s.users[0], true
	}
	return s.userLocked(s.oauth.consent)
}

// signature is what Salesforce signs a token answer with: base64(HMAC-SHA256(secret,
// id+issued_at)).
func signature(secret, id, issuedAt string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(id + issuedAt))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func issuedAt(now time.Time) string { return strconv.FormatInt(now.UnixMilli(), 10) }

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// verifierMatches checks a PKCE code_verifier against a code_challenge made by method.
func verifierMatches(verifier, challenge, method string) bool {
	if verifier == "" {
		return false
	}
	if method == "plain" {
		return equal(verifier, challenge)
	}
	sum := sha256.Sum256([]byte(verifier))
	return equal(base64.RawURLEncoding.EncodeToString(sum[:]), challenge)
}

// wantsRefresh reports whether a scope asks for a refresh token; an empty scope means the
// connected app's default scopes, which the fake takes to include refresh_token.
func wantsRefresh(scope string) bool {
	f := strings.Fields(scope)
	return len(f) == 0 || slices.Contains(f, "refresh_token") || slices.Contains(f, "offline_access") || slices.Contains(f, "full")
}
