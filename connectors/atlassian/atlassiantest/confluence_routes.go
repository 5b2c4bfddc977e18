package atlassiantest

import "net/http"

// confluenceRoutes registers Confluence's content routes (spaces, pages, comments, search).
func (s *Server) confluenceRoutes(mux *http.ServeMux) {}
