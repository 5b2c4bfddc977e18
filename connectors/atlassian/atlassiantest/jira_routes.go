package atlassiantest

import "net/http"

// jiraRoutes registers Jira's content routes: projects, issues, comments and search, for
// Cloud (/rest/api/3) and Data Center (/rest/api/2). Handlers live in jira_handlers.go,
// the data in jira_site.go, the JQL subset in jira_jql.go.
func (s *Server) jiraRoutes(mux *http.ServeMux) {
	// Cloud.
	mux.Handle("GET /rest/api/3/project/search", s.authenticated(s.jiraProjectSearch))
	mux.Handle("GET /rest/api/3/search/jql", s.authenticated(s.jiraSearchJQL))
	mux.Handle("POST /rest/api/3/search/jql", s.authenticated(s.jiraSearchJQL))
	mux.Handle("POST /rest/api/3/search/approximate-count", s.authenticated(s.jiraApproximateCount))
	// Removed in 2025: Cloud answers 410 Gone.
	mux.Handle("GET /rest/api/3/search", s.authenticated(s.jiraSearchGone))
	mux.Handle("POST /rest/api/3/search", s.authenticated(s.jiraSearchGone))
	// Data Center.
	mux.Handle("GET /rest/api/2/project", s.authenticated(s.jiraProjectList))
	mux.Handle("GET /rest/api/2/search", s.authenticated(s.jiraSearchDC))
	mux.Handle("POST /rest/api/2/search", s.authenticated(s.jiraSearchDC))
	// Both: the handlers render Data Center's shapes under /rest/api/2.
	for _, api := range []string{"/rest/api/3", "/rest/api/2"} {
		mux.Handle("GET "+api+"/issue/{issueIdOrKey}", s.authenticated(s.jiraGetIssue))
		mux.Handle("GET "+api+"/issue/{issueIdOrKey}/comment", s.authenticated(s.jiraGetComments))
		mux.Handle("POST "+api+"/issue", s.authenticated(s.jiraCreateIssue))
	}
}
