package atlassiantest

import "net/http"

// jiraRoutes registers Jira's content routes (projects, issues, comments, search).
func (s *Server) jiraRoutes(mux *http.ServeMux) {}
