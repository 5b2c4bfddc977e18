package atlassiantest

import (
	"crypto/rand"
	"crypto/sha256"
	"slices"
	"strings"
	"time"
)

// The fake's OAuth 2.0 (3LO) authorization server plays auth.atlassian.com at the site
// root, so a Connector's spec.oauth2 overrides can point at it:
//
//	authorizeURL = URL()+"/authorize"
//	tokenURL     = URL()+"/oauth/token"
//	apiBaseURL   = URL()  (the gateway: /ex/{jira|confluence}/{CloudID}/...)
//
// It follows Atlassian's contract where Atlassian documents one (shared/vendor-specs):
// authorize needs audience=api.atlassian.com and response_type=code; a refresh token is
// issued only when the scope holds offline_access; access tokens live an hour and work
// only through the gateway; refresh tokens rotate on every use with no reuse grace; and
// invalid_grant is answered with 403. Where Atlassian is silent it follows RFC 6749 and,
// since generic OAuth2 vendors support it, RFC 7636: PKCE (S256 only) is optional, but
// enforced at the token endpoint once a code_challenge was sent. Routes: oauth_routes.go.

// Lifetimes and defaults.
const (
	defaultAccessTokenTTL = time.Hour
	authCodeTTL           = 10 * time.Minute
	// audience is the only audience Atlassian's authorize accepts.
	audience = "api.atlassian.com"
	// offlineAccess is the scope without which Atlassian issues no refresh token.
	offlineAccess = "offline_access"
	// issuedScope is what IssueOAuthTokens grants: enough for every connector call.
	issuedScope = "read:jira-user read:jira-work write:jira-work read:confluence-user " +
		"read:confluence-content.all read:confluence-space.summary search:confluence " +
		"write:confluence-content offline_access"
)

// OAuthGrant is one call to the token endpoint, as OAuthGrants reports it. It holds no
// code, token or secret.
type OAuthGrant struct {
	// Time is when the call arrived.
	Time time.Time
	// GrantType is the grant_type sent: authorization_code, refresh_token, or anything
	// else a client sent.
	GrantType string
	// ClientID is the client id presented (in the body or as HTTP Basic), known or not.
	ClientID string
	// OK is true when tokens were issued.
	OK bool
	// Error is the OAuth error code answered ("invalid_grant", "invalid_client", …), ""
	// when OK.
	Error string
}

// oauthState is the authorization server's memory; it lives under Server.mu. Codes and
// tokens are kept by digest, as a real server would store them, so the maps hold no
// usable secret.
type oauthState struct {
	clients map[string]oauthClient // by client id
	consent string                 // account id /authorize consents as; "" for the first
	ttl     time.Duration          // of access tokens issued from now on
	delay   time.Duration          // before the token endpoint answers (SetTokenDelay)
	codes   map[digest]authCode
	access  map[digest]oauthToken
	refresh map[digest]oauthToken
	grants  []OAuthGrant
}

func newOAuthState() oauthState {
	return oauthState{
		clients: map[string]oauthClient{},
		ttl:     defaultAccessTokenTTL,
		codes:   map[digest]authCode{},
		access:  map[digest]oauthToken{},
		refresh: map[digest]oauthToken{},
	}
}

type oauthClient struct {
	secret       string
	redirectURIs []string // empty: any absolute http(s) URI
}

// allows reports whether uri may receive this client's codes. RFC 6749 §3.1.2 wants an
// exact match with a registered URI.
func (c oauthClient) allows(uri string) bool {
	if len(c.redirectURIs) == 0 {
		return validRedirectURI(uri)
	}
	return slices.Contains(c.redirectURIs, uri)
}

// authCode is an authorization code waiting to be exchanged, once.
type authCode struct {
	clientID, accountID, redirectURI, scope string
	challenge                               string // S256 code_challenge, "" without PKCE
	expires                                 time.Time
}

// oauthToken is what an access or refresh token stands for.
type oauthToken struct {
	clientID, accountID, scope string
	expires                    time.Time // zero for refresh tokens: they expire only by use
}

// digest is the SHA-256 of a code or token: the key it is stored under.
type digest [sha256.Size]byte

func digestOf(secret string) digest { return sha256.Sum256([]byte(secret)) }

// newSecret is an unguessable token with a prefix telling its kind, for humans reading a
// test failure (128 random bits from crypto/rand).
func newSecret(prefix string) string { return prefix + rand.Text() }

// AddOAuthClient registers an OAuth 2.0 client (an Atlassian "OAuth 2.0 integration")
// with its secret and the redirect URIs /authorize may send its codes to (exact match).
// With no redirectURIs any absolute http or https URI is accepted, for tests that learn
// their callback URL late. Adding an existing id replaces it.
func (s *Server) AddOAuthClient(id, secret string, redirectURIs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.oauth.clients[id] = oauthClient{secret: secret, redirectURIs: slices.Clone(redirectURIs)}
}

// SetConsentAccount sets the account /authorize consents as, for every later request.
// The default, "", is the first account added. An id that matches no account makes
// /authorize answer error=access_denied.
func (s *Server) SetConsentAccount(accountID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.oauth.consent = accountID
}

// SetAccessTokenTTL sets how long access tokens issued from now on live (the default is
// Atlassian's hour; d <= 0 restores it). The token endpoint's expires_in is d in whole
// seconds rounded up, since 0 would mean "no expiry" to clients, but the token dies
// after exactly d.
func (s *Server) SetAccessTokenTTL(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d <= 0 {
		d = defaultAccessTokenTTL
	}
	s.oauth.ttl = d
}

// SetTokenDelay makes the token endpoint wait d before answering, from now on (0 answers
// at once). The grant is decided when the request arrives, before the wait: a refresh
// token is spent and its successor issued even if the client gives up meanwhile, as with
// a slow network between a client and Atlassian. That is the case a client must survive
// by finishing the refresh on its own deadline; a client that went away gets no answer.
func (s *Server) SetTokenDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.oauth.delay = max(d, 0)
}

// RefreshTokenLive reports whether refresh would be accepted by the token endpoint now:
// issued by this fake, and neither used nor revoked since. Tests use it to check that a
// client stored the last refresh token it was issued.
func (s *Server) RefreshTokenLive(refresh string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.oauth.refresh[digestOf(refresh)]
	return ok
}

// IssueOAuthTokens issues an access token and a refresh token for clientID acting as
// accountID, as if the user had consented and the code had been exchanged, to seed a
// Connection's Secret without the browser dance. The scope covers every connector call
// and offline_access. Refreshing needs clientID's secret (see AddOAuthClient). It records
// no OAuthGrant: no token-endpoint call happened.
func (s *Server) IssueOAuthTokens(clientID, accountID string) (access, refresh string, expiresIn time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	access, refresh, expiresIn = s.issueLocked(clientID, accountID, issuedScope, time.Now())
	return access, refresh, expiresIn
}

// RevokeRefreshToken invalidates refresh, as when a user revokes the app's access: the
// next refresh with it answers invalid_grant. Access tokens already issued live on until
// they expire, as Atlassian's self-contained ones do. An unknown token is ignored.
func (s *Server) RevokeRefreshToken(refresh string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.oauth.refresh, digestOf(refresh))
}

// OAuthGrants returns every call to the token endpoint so far, in order of arrival, for
// tests that assert, say, exactly one rotation and no invalid_grant. ResetRequests does
// not clear it.
func (s *Server) OAuthGrants() []OAuthGrant {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.oauth.grants)
}

// issueLocked mints an access token and, when scope holds offline_access, a refresh
// token; call it with s.mu held.
func (s *Server) issueLocked(clientID, accountID, scope string, now time.Time) (access, refresh string, ttl time.Duration) {
	ttl = s.oauth.ttl
	t := oauthToken{clientID: clientID, accountID: accountID, scope: scope}
	if slices.Contains(strings.Fields(scope), offlineAccess) {
		refresh = newSecret("fake-rt-")
		s.oauth.refresh[digestOf(refresh)] = t
	}
	access = newSecret("fake-at-")
	t.expires = now.Add(ttl)
	s.oauth.access[digestOf(access)] = t
	s.pruneLocked(now)
	return access, refresh, ttl
}

// pruneLocked forgets expired codes and access tokens, so that a long-running fake (make
// dev) does not grow.
func (s *Server) pruneLocked(now time.Time) {
	for k, c := range s.oauth.codes {
		if now.After(c.expires) {
			delete(s.oauth.codes, k)
		}
	}
	for k, t := range s.oauth.access {
		if !now.Before(t.expires) {
			delete(s.oauth.access, k)
		}
	}
}

// liveAccessToken finds the unexpired access token; call it with s.mu held.
func (o *oauthState) liveAccessToken(token string, now time.Time) (oauthToken, bool) {
	t, ok := o.access[digestOf(token)]
	if !ok || !now.Before(t.expires) {
		return oauthToken{}, false
	}
	return t, true
}

// consentAccountLocked is the account /authorize consents as; call it with s.mu held.
func (s *Server) consentAccountLocked() (Account, bool) {
	if s.oauth.consent == "" {
		if len(s.accounts) == 0 {
			return Account{}, false
		}
		return s.accounts[0], true
	}
	return s.accountLocked(s.oauth.consent)
}
