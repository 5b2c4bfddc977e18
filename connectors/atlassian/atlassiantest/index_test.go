package atlassiantest_test

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
)

// jiraSearchUpdated runs jql on the Cloud search (or Data Center's) and returns each
// issue found with the update time search answered for it.
func jiraSearchUpdated(t *testing.T, fake *atlassiantest.Server, dc bool, jql string) map[string]string {
	t.Helper()
	path, body := "/rest/api/3/search/jql", `{"jql":`+strconv.Quote(jql)+`,"fields":["updated"],"maxResults":100}`
	if dc {
		path = "/rest/api/2/search"
	}
	status, out := jiraCall(t, fake, http.MethodPost, path, body)
	if status != http.StatusOK {
		t.Fatalf("search %q: %d %v", jql, status, out)
	}
	got := map[string]string{}
	for _, is := range out["issues"].([]any) {
		m := is.(map[string]any)
		got[m["key"].(string)], _ = field(m, "fields", "updated").(string)
	}
	return got
}

// jiraGetUpdated reads an issue by key and returns its update time, or "" when it is
// gone (404).
func jiraGetUpdated(t *testing.T, fake *atlassiantest.Server, api, key string) string {
	t.Helper()
	status, out := jiraCall(t, fake, http.MethodGet, api+"/issue/"+key+"?fields=updated", "")
	if status == http.StatusNotFound {
		return ""
	}
	if status != http.StatusOK {
		t.Fatalf("GET %s: %d %v", key, status, out)
	}
	s, _ := field(out, "fields", "updated").(string)
	return s
}

// TestJiraSearchIndexLag: an update that has not reached the index leaves search with
// the issue's previous version, so an update made earlier becomes searchable after one
// made later; a new issue is not found and a deleted one still is, until the index
// catches up. Reads by key see every write at once. Cloud and Data Center search alike.
func TestJiraSearchIndexLag(t *testing.T) {
	for _, dc := range []bool{false, true} {
		api := "/rest/api/3"
		if dc {
			api = "/rest/api/2"
		}
		t.Run(api, func(t *testing.T) {
			fake := newFake(t)
			t0 := jiraStart
			a := fake.CreateIssue("PRJA", "Early", "", t0)
			b := fake.CreateIssue("PRJA", "Late", "", t0.Add(time.Minute))
			gone := fake.CreateIssue("PRJA", "Deleted", "", t0.Add(time.Minute))
			oldA := jiraGetUpdated(t, fake, api, a)

			// a is updated first but reaches the index last.
			fake.HoldIssueIndex(a, gone)
			fake.UpdateIssue(a, t0.Add(2*time.Minute))
			fake.UpdateIssue(b, t0.Add(3*time.Minute))
			fake.DeleteIssue(gone)
			since := strconv.FormatInt(t0.Add(2*time.Minute).UnixMilli(), 10)
			bounded := "project = PRJA AND updated >= " + since + " ORDER BY updated ASC"
			if got := jiraSearchUpdated(t, fake, dc, bounded); len(got) != 1 || got[b] == "" {
				t.Errorf("search past a's update before it is indexed = %v, want only %s", got, b)
			}
			all := jiraSearchUpdated(t, fake, dc, "project = PRJA")
			if all[a] != oldA || all[gone] == "" {
				t.Errorf("search = %v; want %s at its indexed version %s, and the deleted %s still", all, a, oldA, gone)
			}
			if live := jiraGetUpdated(t, fake, api, a); live == oldA || live == "" {
				t.Errorf("GET %s = %q: a read by key must see the update at once", a, live)
			}
			if jiraGetUpdated(t, fake, api, gone) != "" {
				t.Errorf("GET %s found the deleted issue", gone)
			}

			// Under a lag, a new issue is not searchable yet, though it can be read.
			fake.SetIndexLag(time.Hour)
			fresh := fake.CreateIssue("PRJA", "Fresh", "", t0.Add(4*time.Minute))
			if _, found := jiraSearchUpdated(t, fake, dc, "project = PRJA")[fresh]; found {
				t.Errorf("%s found by search before it is indexed", fresh)
			}
			if jiraGetUpdated(t, fake, api, fresh) == "" {
				t.Errorf("GET %s: not found", fresh)
			}

			fake.FlushIndex()
			got := jiraSearchUpdated(t, fake, dc, bounded)
			if _, ok := got[a]; !ok || len(got) != 3 {
				t.Errorf("after FlushIndex: %v, want %s, %s and %s", got, a, b, fresh)
			}
			if _, ok := jiraSearchUpdated(t, fake, dc, "project = PRJA")[gone]; ok {
				t.Errorf("after FlushIndex the deleted %s is still found", gone)
			}
		})
	}
}

// cqlSearch runs cql on Cloud's search or Data Center's and returns each page found with
// the version number and time search answered for it.
func cqlSearch(t *testing.T, c *cfClient, dc bool, cql string) map[string][2]any {
	t.Helper()
	path := "/wiki/rest/api/search?expand=content.version&limit=100&cql=" + url.QueryEscape(cql)
	if dc {
		path = "/rest/api/content/search?expand=version&limit=100&cql=" + url.QueryEscape(cql)
	}
	status, _, body := c.get(path)
	if status != http.StatusOK {
		t.Fatalf("search %q: %d %v", cql, status, body)
	}
	got := map[string][2]any{}
	for _, r := range results(body) {
		ct := r
		if !dc {
			ct = r["content"].(map[string]any)
		}
		got[ct["id"].(string)] = [2]any{field(ct, "version", "number"), field(ct, "version", "when")}
	}
	return got
}

// TestConfluenceSearchIndexLag: CQL search (Cloud and Data Center) answers a page held
// out of the index at its indexed version, while v2 reads, Data Center's content read and
// its scan see the new one.
func TestConfluenceSearchIndexLag(t *testing.T) {
	fake := newFake(t)
	fake.SeedConfluence(atlassiantest.ConfluenceSeed{Spaces: 1, Seed: 2})
	c := newCFClient(t, fake)
	t0 := cfStart
	p := fake.CreatePage("SPA", "Early", "one", t0)
	q := fake.CreatePage("SPA", "Late", "two", t0.Add(time.Minute))

	fake.HoldPageIndex(p)
	fake.UpdatePage(p, t0.Add(2*time.Minute))
	fake.UpdatePage(q, t0.Add(3*time.Minute))
	// 10:02 UTC is 19:02 in alice's Tokyo.
	bounded := `space = SPA AND lastmodified >= "2024-01-31 19:02" ORDER BY lastmodified ASC`
	for _, dc := range []bool{false, true} {
		if got := cqlSearch(t, c, dc, bounded); len(got) != 1 || got[q][0] != float64(2) {
			t.Errorf("dc=%v: search past p's new version before it is indexed = %v, want only %s at version 2", dc, got, q)
		}
		if got := cqlSearch(t, c, dc, "space = SPA AND type = page")[p]; got[0] != float64(1) {
			t.Errorf("dc=%v: search answers %s at %v, want its indexed version 1", dc, p, got)
		}
	}
	// Reads by id see version 2 at once.
	if _, _, body := c.get("/wiki/api/v2/pages/" + p); body["version"].(map[string]any)["number"] != float64(2) {
		t.Errorf("v2 GET page %s: version %v, want 2", p, body["version"])
	}
	_, _, list := c.get("/wiki/api/v2/pages?id=" + p)
	if rs := results(list); len(rs) != 1 || field(rs[0], "version", "number") != float64(2) {
		t.Errorf("v2 pages?id=%s: %v, want version 2", p, rs)
	}
	if _, _, body := c.get("/rest/api/content/" + p + "?expand=version"); field(body, "version", "number") != float64(2) {
		t.Errorf("Data Center GET content %s: version %v, want 2", p, body["version"])
	}

	fake.ReleasePageIndex(p)
	for _, dc := range []bool{false, true} {
		if got := cqlSearch(t, c, dc, bounded); len(got) != 2 || got[p][0] != float64(2) {
			t.Errorf("dc=%v: after release: %v, want %s (version 2) and %s", dc, got, p, q)
		}
	}

	// A page created under a lag is not searchable; deleting a held page leaves it
	// searchable until the index is flushed.
	fake.SetIndexLag(time.Hour)
	fresh := fake.CreatePage("SPA", "Fresh", "three", t0.Add(4*time.Minute))
	fake.SetIndexLag(0)
	fake.HoldPageIndex(q)
	fake.DeletePage(q)
	got := cqlSearch(t, c, false, "space = SPA AND type = page")
	if _, found := got[fresh]; found {
		t.Errorf("page %s found before it is indexed", fresh)
	}
	if _, found := got[q]; !found {
		t.Errorf("deleted page %s left search before its deletion was indexed", q)
	}
	fake.FlushIndex()
	got = cqlSearch(t, c, true, "space = SPA AND type = page")
	if _, found := got[fresh]; !found {
		t.Errorf("page %s not found after FlushIndex", fresh)
	}
	if _, found := got[q]; found {
		t.Errorf("deleted page %s still found after FlushIndex", q)
	}
	if ids := fake.ConfluencePageIDs("SPA"); slices.Contains(ids, q) || !slices.Contains(ids, fresh) {
		t.Errorf("ConfluencePageIDs = %v", ids)
	}
}
