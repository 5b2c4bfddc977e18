package api_test

import (
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
)

// getAll follows a listing of the API to its end and returns the "key" (or "id") of
// every item, failing on any answer but 200.
func (s *suite) getAll(t *testing.T, token, path, field string) []string {
	t.Helper()
	var out []string
	cursor := ""
	for range 20 {
		p := path
		if cursor != "" {
			p += "&cursor=" + url.QueryEscape(cursor)
		}
		a := s.do(t, req{path: p, token: token})
		if a.status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", p, a.status, clipBody(a.body))
		}
		for _, it := range a.items() {
			v, _ := it.(map[string]any)[field].(string)
			out = append(out, v)
		}
		if cursor, _ = a.data()["nextCursor"].(string); cursor == "" {
			return out
		}
	}
	t.Fatalf("GET %s: no end after 20 pages", path)
	return nil
}

// TestScopeOnEveryReadRoute: a Connection's spec.scope holds on the data routes as it
// does on search and sync. containers lists only spec.scope.containers; items, an item
// and its comments apply spec.scope.filter; an item outside the containers or the
// filter answers 404 NOT_FOUND, exactly as a missing one. Jira and Confluence.
func TestScopeOnEveryReadRoute(t *testing.T) {
	s := testEnv(t)
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

	jira := s.newSite(t, v1alpha1.ConnectorTypeJira)
	for _, p := range []string{"PRJA", "PRJB", "PRJC", "PRJD"} {
		jira.fake.AddJiraProject(p, "Project "+p)
	}
	needle := jira.fake.CreateIssue("PRJA", "Needle in the haystack", "sharp", at)
	needle2 := jira.fake.CreateIssue("PRJA", "Another needle", "sharp", at.Add(time.Minute))
	hay := jira.fake.CreateIssue("PRJA", "Hay", "soft", at.Add(2*time.Minute))
	elsewhere := jira.fake.CreateIssue("PRJB", "Needle out of scope", "sharp", at)

	wiki := s.newSite(t, v1alpha1.ConnectorTypeConfluence)
	wiki.fake.SeedConfluence(atlassiantest.ConfluenceSeed{Spaces: 1, Seed: 1}) // space SPA, empty
	page := wiki.fake.CreatePage("SPA", "Needle page", "sharp", at)
	plain := wiki.fake.CreatePage("SPA", "Plain page", "soft", at.Add(time.Minute))
	wiki.fake.AddFooterComment(page, wiki.account.ID, "a comment", at.Add(time.Hour))

	ns := s.newNamespace(t, "scope")
	scoped := s.newConnection(t, ns, "jira-scoped", jira, func(c *v1alpha1.Connection) {
		c.Spec.Scope = v1alpha1.ScopeSpec{Containers: []string{"PRJA", "PRJD"}, Filter: `summary ~ "needle"`}
	})
	open := s.newConnection(t, ns, "jira-open", jira)
	scopedWiki := s.newConnection(t, ns, "wiki-scoped", wiki, func(c *v1alpha1.Connection) {
		c.Spec.Scope = v1alpha1.ScopeSpec{Filter: `title ~ "needle"`}
	})
	s.waitReady(t, scoped, open, scopedWiki)
	u := s.newUser(t, "scope-reader")
	s.grant(t, u, ns, rule("connections/data", "get"))

	t.Run("containers", func(t *testing.T) {
		// One container a page: the API walks the vendor's pages past those out of scope.
		got := s.getAll(t, u.token, connPath(ns, "jira-scoped", "containers")+"?limit=1", "key")
		if !slices.Equal(got, []string{"PRJA", "PRJD"}) {
			t.Errorf("scoped containers = %v, want [PRJA PRJD]", got)
		}
		if got := s.getAll(t, u.token, connPath(ns, "jira-scoped", "containers")+"?limit=50", "key"); !slices.Equal(got, []string{"PRJA", "PRJD"}) {
			t.Errorf("scoped containers in one page = %v, want [PRJA PRJD]", got)
		}
		if got := s.getAll(t, u.token, connPath(ns, "jira-open", "containers")+"?limit=3", "key"); len(got) != 4 {
			t.Errorf("unscoped containers = %v, want all four", got)
		}
	})

	t.Run("items", func(t *testing.T) {
		got := s.getAll(t, u.token, connPath(ns, "jira-scoped", "items")+"?container=PRJA&limit=1", "key")
		if want := []string{needle2, needle}; !slices.Equal(got, want) {
			t.Errorf("items within the filter = %v, want %v", got, want)
		}
		if got := s.getAll(t, u.token, connPath(ns, "jira-open", "items")+"?container=PRJA&limit=10", "key"); len(got) != 3 {
			t.Errorf("unscoped items = %v, want all three", got)
		}
		if a := s.do(t, req{path: connPath(ns, "jira-scoped", "items") + "?container=PRJB", token: u.token}); a.status != http.StatusNotFound || a.code() != "NOT_FOUND" {
			t.Errorf("items of a container out of scope: %d %s", a.status, a.code())
		}
		got = s.getAll(t, u.token, connPath(ns, "wiki-scoped", "items")+"?container=SPA&limit=5", "id")
		if !slices.Equal(got, []string{page}) {
			t.Errorf("wiki items within the filter = %v, want [%s]", got, page)
		}
	})

	// An item outside the scope answers exactly as a missing one: 404 NOT_FOUND, with the
	// same message but for the id.
	notFound := func(t *testing.T, conn, id string, rest ...string) {
		t.Helper()
		a := s.do(t, req{path: connPath(ns, conn, append([]string{"items", id}, rest...)...), token: u.token})
		if a.status != http.StatusNotFound || a.code() != "NOT_FOUND" {
			t.Errorf("%s %s %v: %d %s, want 404 NOT_FOUND", conn, id, rest, a.status, clipBody(a.body))
			return
		}
		msg, _ := a.env["message"].(string)
		if want := "item \"" + id + "\" not found through connection \"" + conn + "\""; msg != want {
			t.Errorf("%s %s %v: message %q, want %q (the same for missing and out of scope)", conn, id, rest, msg, want)
		}
	}
	ok := func(t *testing.T, conn, id string, rest ...string) map[string]any {
		t.Helper()
		a := s.do(t, req{path: connPath(ns, conn, append([]string{"items", id}, rest...)...), token: u.token})
		if a.status != http.StatusOK {
			t.Errorf("%s %s %v: %d %s, want 200", conn, id, rest, a.status, clipBody(a.body))
		}
		return a.data()
	}

	t.Run("item", func(t *testing.T) {
		if it := ok(t, "jira-scoped", needle); it["key"] != needle {
			t.Errorf("item %s: %v", needle, it)
		}
		notFound(t, "jira-scoped", hay)       // outside the filter
		notFound(t, "jira-scoped", elsewhere) // outside the containers
		notFound(t, "jira-scoped", "PRJA-999")
		ok(t, "jira-open", hay)
		if it := ok(t, "wiki-scoped", page); it["id"] != page {
			t.Errorf("page %s: %v", page, it)
		}
		notFound(t, "wiki-scoped", plain)
		notFound(t, "wiki-scoped", "99999999")
	})

	t.Run("comments", func(t *testing.T) {
		ok(t, "jira-scoped", needle, "comments")
		notFound(t, "jira-scoped", hay, "comments")
		notFound(t, "jira-scoped", elsewhere, "comments")
		ok(t, "jira-open", hay, "comments")
		if d := ok(t, "wiki-scoped", page, "comments"); len(d["items"].([]any)) != 1 {
			t.Errorf("comments of %s: %v, want one", page, d)
		}
		notFound(t, "wiki-scoped", plain, "comments")
	})

	assertNoLeaks(t)
}
