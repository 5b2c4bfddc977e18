package atlassiantest

import "net/http"

// oauthRoutes registers the OAuth 2.0 (3LO) endpoints of auth.atlassian.com.
func (s *Server) oauthRoutes(mux *http.ServeMux) {}
