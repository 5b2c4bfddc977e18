package api_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
)

// seedNeedles adds the search fixture to a fake: two issues with "needle" in the
// title, one with it only in the description, and one without it.
func seedNeedles(f *atlassiantest.Server) {
	base := time.Date(2025, 2, 1, 12, 0, 0, 0, time.UTC)
	f.AddJiraProject("PRJA", "Project A")
	f.CreateIssue("PRJA", "Needle in the title", "The needle is here.", base)
	f.CreateIssue("PRJA", "Another needle title", "Nothing else.", base.Add(time.Hour))
	f.CreateIssue("PRJA", "Haystack", "Only the description has the needle.", base.Add(2*time.Hour))
	f.CreateIssue("PRJA", "Unrelated", "Nothing to see.", base.Add(3*time.Hour))
}

// TestSearchFanOut searches 20 Connections: 18 healthy, one whose vendor hangs and one
// whose vendor answers 429. The answer comes within the per-source deadline plus a
// margin, holds the 18's results, and reports the two as timeout and error. Before the
// faults, it pages through all results with the composite cursor.
func TestSearchFanOut(t *testing.T) {
	s := testEnv(t)
	healthy := s.newSite(t, v1alpha1.ConnectorTypeJira)
	hung := s.newSite(t, v1alpha1.ConnectorTypeJira)
	limited := s.newSite(t, v1alpha1.ConnectorTypeJira)
	for _, st := range []*site{healthy, hung, limited} {
		seedNeedles(st.fake)
	}
	nsX, nsY := s.newNamespace(t, "search-x"), s.newNamespace(t, "search-y")
	var keys []client.ObjectKey
	for i := range 18 {
		ns := nsX
		if i%2 == 1 {
			ns = nsY
		}
		keys = append(keys, s.newConnection(t, ns, fmt.Sprintf("jira-%02d", i), healthy))
	}
	hungKey := s.newConnection(t, nsX, "jira-hung", hung)
	limitedKey := s.newConnection(t, nsY, "jira-limited", limited)
	keys = append(keys, hungKey, limitedKey)
	s.waitReady(t, keys...)

	u := s.newUser(t, "searcher")
	s.grant(t, u, nsX, rule("connections/data", "get"))
	s.grant(t, u, nsY, rule("connections/data", "get"))
	query := "/api/v1/search?q=needle&namespaces=" + nsX + "," + nsY

	// Paging: 20 sources × 3 matches, 7 a page, each item exactly once.
	seen := map[string]bool{}
	cursor, pages := "", 0
	for {
		p := query + "&limit=7"
		if cursor != "" {
			p += "&cursor=" + url.QueryEscape(cursor)
		}
		a := s.do(t, req{path: p, token: u.token})
		if a.status != http.StatusOK {
			t.Fatalf("page %d: %d %s", pages, a.status, a.body)
		}
		pages++
		for _, it := range a.items() {
			m := it.(map[string]any)
			c := m["connection"].(map[string]any)
			id := fmt.Sprintf("%s/%s/%s", c["namespace"], c["name"], m["key"])
			if seen[id] {
				t.Errorf("page %d repeats %s", pages, id)
			}
			seen[id] = true
		}
		if pages == 1 {
			checkRelevanceOrder(t, a)
		}
		cursor, _ = a.data()["nextCursor"].(string)
		if cursor == "" || pages > 20 {
			break
		}
	}
	if len(seen) != 60 || pages != 9 {
		t.Errorf("paged %d items in %d pages, want 60 in 9", len(seen), pages)
	}

	// Faults: one vendor hangs, one rate limits with a long Retry-After.
	hung.fake.SetFault(atlassiantest.Fault{Hang: true})
	limited.fake.SetFault(atlassiantest.Fault{Status: http.StatusTooManyRequests, RetryAfter: time.Minute})
	start := time.Now()
	a := s.do(t, req{path: query + "&limit=100", token: u.token})
	elapsed := time.Since(start)
	if a.status != http.StatusOK {
		t.Fatalf("search with faults: %d %s", a.status, a.body)
	}
	if elapsed > searchDeadline+time.Second {
		t.Errorf("search with a hung source took %s, want at most the %s deadline plus 1s", elapsed, searchDeadline)
	}
	if n := len(a.items()); n != 18*3 {
		t.Errorf("search with faults: %d items, want %d", n, 18*3)
	}
	sources := map[string]map[string]any{}
	for _, src := range a.data()["sources"].([]any) {
		m := src.(map[string]any)
		sources[fmt.Sprintf("%s/%s", m["namespace"], m["name"])] = m
	}
	if len(sources) != 20 {
		t.Errorf("%d sources reported, want 20", len(sources))
	}
	for _, k := range keys {
		src := sources[k.String()]
		switch k {
		case hungKey:
			if src["status"] != "timeout" || src["code"] != "TIMEOUT" || src["count"].(float64) != 0 {
				t.Errorf("hung source: %v, want timeout", src)
			}
			if l := src["latencyMillis"].(float64); l < float64(searchDeadline.Milliseconds())*0.9 {
				t.Errorf("hung source latency %vms, want about the deadline", l)
			}
		case limitedKey:
			if src["status"] != "error" || src["code"] != "VENDOR_RATE_LIMITED" {
				t.Errorf("rate-limited source: %v, want error VENDOR_RATE_LIMITED", src)
			}
		default:
			if src["status"] != "ok" || src["count"].(float64) != 3 {
				t.Errorf("source %s: %v, want ok with 3", k, src)
			}
		}
	}
	for _, it := range a.items() {
		c := it.(map[string]any)["connection"].(map[string]any)
		if name := c["name"].(string); strings.HasPrefix(name, "jira-hung") || strings.HasPrefix(name, "jira-limited") {
			t.Errorf("an item of a failed source: %v", c)
		}
	}

	// connections= narrows to the Connections named; kind=page asks no Jira Connection.
	a = s.do(t, req{path: query + "&connections=" + nsX + "/jira-00,jira-01", token: u.token})
	if got := len(a.data()["sources"].([]any)); got != 2 || len(a.items()) != 6 {
		t.Errorf("connections=: %d sources, %d items, want 2 and 6: %s", got, len(a.items()), clipBody(a.body))
	}
	a = s.do(t, req{path: query + "&kind=page", token: u.token})
	if len(a.data()["sources"].([]any)) != 0 {
		t.Errorf("kind=page over Jira Connections asked sources: %s", clipBody(a.body))
	}
	// A cursor belongs to its query.
	if a := s.do(t, req{path: "/api/v1/search?q=other&cursor=" + url.QueryEscape(firstCursor(t, s, u, query)), token: u.token}); a.status != http.StatusBadRequest {
		t.Errorf("a cursor of another query: %d, want 400", a.status)
	}
	assertNoLeaks(t)
}

func firstCursor(t *testing.T, s *suite, u user, query string) string {
	a := s.do(t, req{path: query + "&limit=1&connections=jira-00", token: u.token})
	c, _ := a.data()["nextCursor"].(string)
	if c == "" {
		t.Fatalf("no cursor: %s", a.body)
	}
	return c
}

// checkRelevanceOrder checks that items with the term in the title come first.
func checkRelevanceOrder(t *testing.T, a answer) {
	t.Helper()
	titleMatches := true
	for _, it := range a.items() {
		inTitle := strings.Contains(strings.ToLower(it.(map[string]any)["title"].(string)), "needle")
		if inTitle && !titleMatches {
			t.Errorf("a title match after a text-only match: %s", clipBody(a.body))
			return
		}
		titleMatches = inTitle
	}
}
