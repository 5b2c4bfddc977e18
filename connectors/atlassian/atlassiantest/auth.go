package atlassiantest

import (
	"crypto/subtle"
	"net/http"
	"strings"
	"time"
)

// authedHandler is a handler that runs as an authenticated account.
type authedHandler func(w http.ResponseWriter, r *http.Request, a Account)

// authenticated runs h as the account the request's credential belongs to, and answers
// 401 (with the API family's error body) when there is no credential or it matches no
// account: Basic email:apiToken against Email and APIToken, Bearer against PAT or a live
// OAuth 2.0 access token. Access tokens work only through the gateway
// (/ex/{product}/{CloudID}/...), as on Atlassian Cloud, where they are refused at the
// site's own URL; an expired one is refused like an unknown one.
//
// Real Confluence answers an anonymous request to /wiki/rest/api/user/current with an
// anonymous user rather than 401; the fake refuses it like every other path, because the
// connectors never call without a credential.
func (s *Server) authenticated(h authedHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := s.authenticate(r)
		if !ok {
			writeError(w, r, http.StatusUnauthorized, "Client must be authenticated to access this resource.")
			return
		}
		h(w, r, a)
	})
}

// authenticate finds the account r's Authorization header belongs to.
func (s *Server) authenticate(r *http.Request) (Account, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if email, token, ok := r.BasicAuth(); ok {
		for _, a := range s.accounts {
			if a.APIToken != "" && strings.EqualFold(a.Email, email) && equal(a.APIToken, token) {
				return a, true
			}
		}
		return Account{}, false
	}
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if strings.EqualFold(scheme, "Bearer") && token != "" {
		for _, a := range s.accounts {
			if a.PAT != "" && equal(a.PAT, token) {
				return a, true
			}
		}
		if _, viaGateway := r.Context().Value(gatewayKey{}).(string); viaGateway {
			if t, ok := s.oauth.liveAccessToken(token, time.Now()); ok {
				return s.accountLocked(t.accountID)
			}
		}
	}
	return Account{}, false
}

// accountLocked finds the account with id; call it with s.mu held.
func (s *Server) accountLocked(id string) (Account, bool) {
	for _, a := range s.accounts {
		if a.ID == id {
			return a, true
		}
	}
	return Account{}, false
}

// equal compares secrets in constant time, as a real site would.
func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
