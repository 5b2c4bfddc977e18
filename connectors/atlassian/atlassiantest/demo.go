package atlassiantest

import "time"

// DemoAccounts returns the fixed, public accounts of the demo site (make dev and
// hack/fake-atlassian); they are good for this fake only. Alice's zone is not UTC on
// purpose: a connector that sends UTC dates in JQL/CQL misses changes for her.
func DemoAccounts() []Account {
	return []Account{
		{
			ID:          "5b10a2844c20165700ede21a",
			DisplayName: "Alice Example",
			Email:       "alice@example.com",
			TimeZone:    "Australia/Sydney",
			APIToken:    "demo-jira-token",
			PAT:         "demo-pat",
		},
		{
			ID:          "5b10a2844c20165700ede21b",
			DisplayName: "Bob Example",
			Email:       "bob@example.com",
			TimeZone:    "UTC",
			APIToken:    "demo-bob-token",
			PAT:         "demo-bob-pat",
		},
	}
}

// SeedDemo fills the site with the demo content of make dev: two Jira projects (PRJA,
// PRJB) and two Confluence spaces (SPA, SPB), with comments, updated over the last weeks.
func (s *Server) SeedDemo() {
	start := time.Now().Add(-30 * 24 * time.Hour)
	s.SeedJira(JiraSeed{Projects: 2, IssuesPerProject: 60, CommentsPerIssue: 2, Seed: 1, Start: start})
	s.SeedConfluence(ConfluenceSeed{Spaces: 2, PagesPerSpace: 25, CommentsPerPage: 2, Seed: 1, Start: start})
}
