package atlassiantest_test

import (
	"net/http"
	"net/url"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
)

// TestConfluenceDataCenterScan: GET /rest/api/content/scan lists a space's pages by
// ascending id with a cursor naming the last id, so a page deleted between two requests
// shifts nothing (unlike /rest/api/content's start offsets); a full page has a next
// cursor, the last may be empty; the cursor is checked.
func TestConfluenceDataCenterScan(t *testing.T) {
	fake := newFake(t)
	fake.SeedConfluence(atlassiantest.ConfluenceSeed{Spaces: 2, PagesPerSpace: 10, Seed: 4, Start: cfStart})
	c := newCFClient(t, fake)
	want := fake.ConfluencePageIDs("SPA")
	var got []string
	next, pages := "/rest/api/content/scan?spaceKey=SPA&type=page&limit=4&expand=version", 0
	for next != "" && pages < 10 {
		status, _, body := c.get(next)
		if status != http.StatusOK {
			t.Fatalf("scan: %d %v", status, body)
		}
		for _, r := range results(body) {
			got = append(got, r["id"].(string))
			if field(r, "version", "number") == nil {
				t.Errorf("expand=version not honoured: %v", r)
			}
		}
		if pages == 0 {
			fake.DeletePage(want[0]) // listed already: later pages must not shift
		}
		pages++
		next = nextLink(body)
		if next != "" && body["nextCursor"] == nil {
			t.Errorf("a next link without nextCursor: %v", body)
		}
	}
	if !slices.Equal(got, want) || pages != 3 {
		t.Errorf("scan listed %v in %d pages, want %v in 3 (4, 4 and 2)", got, pages, want)
	}

	// The cursor names a position: content:false:<id> goes on after id.
	_, _, body := c.get("/rest/api/content/scan?spaceKey=SPA&limit=2&cursor=" + url.QueryEscape("content:false:"+want[5]))
	if ids := idsOf(results(body)); !slices.Equal(ids, want[6:8]) || body["prevCursor"] != "content:true:"+want[6] {
		t.Errorf("after %s: %v (prev %v), want %v", want[5], ids, body["prevCursor"], want[6:8])
	}
	_, _, body = c.get("/rest/api/content/scan?spaceKey=SPA&limit=2&cursor=" + url.QueryEscape("content:true:"+want[6]))
	if ids := idsOf(results(body)); !slices.Equal(ids, want[4:6]) {
		t.Errorf("before %s: %v, want %v", want[6], ids, want[4:6])
	}
	// A full last page has a next link to an empty page.
	_, _, body = c.get("/rest/api/content/scan?spaceKey=SPB&limit=10")
	if len(results(body)) != 10 || nextLink(body) == "" {
		t.Errorf("a full page: %d results, next %q", len(results(body)), nextLink(body))
	} else if _, _, body = c.get(nextLink(body)); len(results(body)) != 0 || nextLink(body) != "" {
		t.Errorf("after the last page: %v", body)
	}
	for path, want := range map[string]int{
		"/rest/api/content/scan?spaceKey=NOPE":              http.StatusNotFound,
		"/rest/api/content/scan?cursor=offset%3A5":          http.StatusBadRequest,
		"/rest/api/content/scan?cursor=content%3Afalse%3Ax": http.StatusBadRequest,
		"/rest/api/content/scan?type=blogpost":              http.StatusBadRequest,
	} {
		if status, _, body := c.get(path); status != want || body["statusCode"] != float64(want) {
			t.Errorf("GET %s: %d %v, want %d", path, status, body, want)
		}
	}
}

func idsOf(rs []map[string]any) []string {
	var ids []string
	for _, r := range rs {
		ids = append(ids, r["id"].(string))
	}
	return ids
}

// TestAfterRequest: the hook runs once, after the n-th answer to its path and before
// the client has it, whatever the gateway prefix; other paths do not count.
func TestAfterRequest(t *testing.T) {
	fake := newFake(t)
	var ran atomic.Int32 // written by the server's goroutine
	fake.AfterRequest("/rest/api/3/myself", 2, func() { ran.Add(1) })
	call := func(path string) {
		status, _, _ := get(t, fake.URL()+path, "Bearer "+alice.PAT)
		if status != http.StatusOK {
			t.Fatalf("GET %s: %d", path, status)
		}
	}
	call("/rest/api/3/myself")
	call("/rest/api/2/myself")
	if ran.Load() != 0 {
		t.Fatalf("hook ran after the first request to its path")
	}
	call("/ex/jira/" + fake.CloudID() + "/rest/api/3/myself")
	if n := ran.Load(); n != 1 {
		t.Fatalf("hook ran %d times by the time the second answer arrived, want 1", n)
	}
	call("/rest/api/3/myself")
	if n := ran.Load(); n != 1 {
		t.Errorf("hook ran %d times, want once", n)
	}
}
