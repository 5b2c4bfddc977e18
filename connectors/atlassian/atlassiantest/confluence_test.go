package atlassiantest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
	"github.com/unified-connectors/connector-operator/internal/vendorspec"
)

// cfStart is when seeded Confluence content starts being modified.
var cfStart = time.Date(2024, 1, 31, 10, 0, 0, 0, time.UTC)

// cfFake is a fake with alice (in Tokyo) and three seeded spaces.
func cfFake(t *testing.T) *atlassiantest.Server {
	t.Helper()
	fake := newFake(t)
	fake.SeedConfluence(atlassiantest.ConfluenceSeed{Spaces: 3, PagesPerSpace: 12, CommentsPerPage: 2, Seed: 9, Start: cfStart})
	return fake
}

// cfClient sends requests as alice through the Confluence contract checker, which
// fails the test at cleanup on any violation: v2 answers against Atlassian's document,
// v1 and Data Center answers against the hand-kept rules.
type cfClient struct {
	t       *testing.T
	fake    *atlassiantest.Server
	checker *vendorspec.ConfluenceDoer
}

func newCFClient(t *testing.T, fake *atlassiantest.Server) *cfClient {
	t.Helper()
	checker, err := vendorspec.NewConfluenceDoer(http.DefaultClient)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, err := range checker.Errors() {
			t.Errorf("contract violation: %v", err)
		}
	})
	return &cfClient{t: t, fake: fake, checker: checker}
}

// do sends method path (with query) and body, and decodes the JSON answer.
func (c *cfClient) do(method, path, body string) (int, http.Header, map[string]any) {
	c.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(c.t.Context(), method, c.fake.URL()+path, r)
	if err != nil {
		c.t.Fatal(err)
	}
	req.SetBasicAuth(alice.Email, alice.APIToken)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.checker.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &out); err != nil {
		c.t.Fatalf("%s %s: %d, not JSON: %q", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode, resp.Header, out
}

func (c *cfClient) get(path string) (int, http.Header, map[string]any) {
	c.t.Helper()
	return c.do(http.MethodGet, path, "")
}

// getInvalid sends a GET that breaks the contract on purpose, around the checker, to
// see the fake refuse it.
func (c *cfClient) getInvalid(path string) (int, map[string]any) {
	c.t.Helper()
	req, _ := http.NewRequestWithContext(c.t.Context(), http.MethodGet, c.fake.URL()+path, nil)
	req.SetBasicAuth(alice.Email, alice.APIToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		c.t.Fatalf("GET %s: %d, not JSON", path, resp.StatusCode)
	}
	return resp.StatusCode, out
}

func results(body map[string]any) []map[string]any {
	var out []map[string]any
	list, _ := body["results"].([]any)
	for _, r := range list {
		out = append(out, r.(map[string]any))
	}
	return out
}

func field(m map[string]any, path ...string) any {
	var v any = m
	for _, p := range path {
		mm, _ := v.(map[string]any)
		v = mm[p]
	}
	return v
}

func nextLink(body map[string]any) string {
	s, _ := field(body, "_links", "next").(string)
	return s
}

// TestConfluenceV2Answers calls every v2 route, errors included, with the contract
// checker on, and checks what the document cannot: paging, Link headers, filters.
func TestConfluenceV2Answers(t *testing.T) {
	fake := cfFake(t)
	c := newCFClient(t, fake)
	spaceB := fake.ConfluenceSpaceID("SPB")
	pageB := fake.ConfluencePageIDs("SPB")[3]

	// Spaces, two at a time, with the next link in the body and the Link header.
	var keys []string
	next := "/wiki/api/v2/spaces?limit=2"
	for next != "" {
		status, header, body := c.get(next)
		if status != 200 {
			t.Fatalf("GET %s: %d %v", next, status, body)
		}
		for _, sp := range results(body) {
			keys = append(keys, sp["key"].(string))
		}
		next = nextLink(body)
		if link := header.Get("Link"); (next == "") != (link == "") || (next != "" && !strings.Contains(link, "<"+next+`>; rel="next"`)) {
			t.Errorf("Link header %q does not match _links.next %q", link, next)
		}
	}
	if !slices.Equal(keys, []string{"SPA", "SPB", "SPC"}) {
		t.Errorf("spaces %v", keys)
	}
	if _, _, body := c.get("/wiki/api/v2/spaces?keys=SPB,SPC&sort=-key"); len(results(body)) != 2 || results(body)[0]["key"] != "SPC" {
		t.Errorf("keys filter, sorted by -key: %v", body)
	}
	if _, _, body := c.get("/wiki/api/v2/spaces/" + spaceB); body["key"] != "SPB" {
		t.Errorf("space by id: %v", body)
	}

	// A space's pages, by -modified-date: newest first, stable paging.
	var times []string
	next = "/wiki/api/v2/spaces/" + spaceB + "/pages?sort=-modified-date&limit=5&body-format=storage"
	for next != "" {
		_, _, body := c.get(next)
		for _, p := range results(body) {
			times = append(times, field(p, "version", "createdAt").(string))
			if v, _ := field(p, "body", "storage", "value").(string); !strings.Contains(v, "<h2>") {
				t.Errorf("page %v: no storage body", p["id"])
			}
		}
		next = nextLink(body)
	}
	if len(times) != 12 || !slices.IsSortedFunc(times, func(a, b string) int { return strings.Compare(b, a) }) {
		t.Errorf("pages by -modified-date: %v", times)
	}
	if _, _, body := c.get("/wiki/api/v2/spaces/" + spaceB + "/pages?limit=1"); field(results(body)[0], "body", "storage") != nil {
		t.Errorf("a body without body-format: %v", results(body)[0])
	}

	// Pages by id, repeated or comma-separated, with bodies.
	ids := fake.ConfluencePageIDs("SPA")
	_, _, body := c.get("/wiki/api/v2/pages?id=" + ids[0] + "&id=" + ids[1] + "&body-format=storage&limit=2")
	if len(results(body)) != 2 {
		t.Errorf("pages by id: %v", body)
	}
	if status, _, _ := c.get("/wiki/api/v2/pages/" + pageB + "?body-format=storage"); status != 200 {
		t.Errorf("page by id: %d", status)
	}
	_, _, body = c.get("/wiki/api/v2/pages/" + pageB + "/footer-comments?body-format=storage&limit=1")
	if len(results(body)) != 1 || nextLink(body) == "" || field(results(body)[0], "pageId") != pageB {
		t.Errorf("footer comments: %v", body)
	}

	// Create answers 200, and refuses a duplicate title.
	create := `{"spaceId":"` + spaceB + `","status":"current","title":"New page","body":{"representation":"storage","value":"<p>Hi</p>"}}`
	if status, _, body := c.do(http.MethodPost, "/wiki/api/v2/pages", create); status != 200 || body["authorId"] != alice.ID || field(body, "_links", "base") == nil {
		t.Errorf("create: %d %v", status, body)
	}
	if status, _, _ := c.do(http.MethodPost, "/wiki/api/v2/pages", create); status != 400 {
		t.Errorf("duplicate title: %d, want 400", status)
	}

	// Errors, with v2's error body.
	for path, want := range map[string]int{
		"/wiki/api/v2/spaces?cursor=%21%21":        400,
		"/wiki/api/v2/spaces/99999/pages":          404,
		"/wiki/api/v2/pages/99999":                 404,
		"/wiki/api/v2/pages/99999/footer-comments": 404,
	} {
		status, _, body := c.get(path)
		errs, _ := body["errors"].([]any)
		if status != want || len(errs) != 1 {
			t.Errorf("GET %s: %d %v, want %d with an errors list", path, status, body, want)
		}
	}
	for path, want := range map[string]int{
		"/wiki/api/v2/spaces?limit=251":                      400,
		"/wiki/api/v2/spaces/" + spaceB + "/pages?sort=size": 400,
		"/wiki/api/v2/pages/abc":                             400,
	} {
		status, body := c.getInvalid(path)
		errs, _ := body["errors"].([]any)
		if status != want || len(errs) != 1 {
			t.Errorf("GET %s: %d %v, want %d with an errors list", path, status, body, want)
		}
	}
	if c.checker.Checked() < 16 {
		t.Errorf("only %d exchanges checked", c.checker.Checked())
	}
}

// TestConfluenceV2CursorIsStable: a page modified while a listing is read moves, but
// nothing else is skipped or repeated.
func TestConfluenceV2CursorIsStable(t *testing.T) {
	fake := cfFake(t)
	c := newCFClient(t, fake)
	spaceA := fake.ConfluenceSpaceID("SPA")
	seen := map[string]int{}
	next := "/wiki/api/v2/spaces/" + spaceA + "/pages?sort=modified-date&limit=4"
	for i := 0; next != ""; i++ {
		_, _, body := c.get(next)
		for _, p := range results(body) {
			seen[p["id"].(string)]++
		}
		if i == 0 {
			// A page already listed is modified: it comes again at the end.
			fake.UpdatePage(results(body)[0]["id"].(string), cfStart.Add(time.Hour))
		}
		next = nextLink(body)
	}
	if len(seen) != 12 {
		t.Errorf("saw %d pages, want 12", len(seen))
	}
}

func TestConfluenceSearch(t *testing.T) {
	fake := cfFake(t)
	c := newCFClient(t, fake)
	cql := url.QueryEscape(`space in (SPA, "SPB") AND type = page ORDER BY lastmodified DESC`)
	var got []string
	next := "/wiki/rest/api/search?limit=5&expand=content.version,content.space&cql=" + cql
	for next != "" {
		status, _, body := c.get(next)
		if status != 200 {
			t.Fatalf("search: %d %v", status, body)
		}
		if body["totalSize"] != float64(24) {
			t.Errorf("totalSize %v, want 24", body["totalSize"])
		}
		for _, r := range results(body) {
			got = append(got, r["lastModified"].(string))
			if sp := field(r, "content", "space", "key"); sp != "SPA" && sp != "SPB" {
				t.Errorf("result in space %v", sp)
			}
		}
		// The next link is relative to /wiki, and followed as such.
		if next = nextLink(body); next != "" {
			if !strings.HasPrefix(next, "/rest/api/search?") {
				t.Fatalf("next link %q", next)
			}
			next = "/wiki" + next
		}
	}
	if len(got) != 24 || !slices.IsSortedFunc(got, func(a, b string) int { return strings.Compare(b, a) }) {
		t.Errorf("%d results, by lastmodified DESC: %v", len(got), got)
	}

	for cql, want := range map[string]int{
		`type = page`:                                36,
		`type = blogpost`:                            0,
		`space = SPA AND NOT (space = SPA)`:          0,
		`space = SPA OR space = SPB AND type = page`: 24,
		`space not in (SPA) and TYPE = page`:         24,
		`created <= "2099-01-01"`:                    36,
	} {
		_, _, body := c.get("/wiki/rest/api/search?limit=100&cql=" + url.QueryEscape(cql))
		if n := len(results(body)); n != want {
			t.Errorf("%s: %d results, want %d", cql, n, want)
		}
	}

	for _, cql := range []string{
		`space = `, `space = SPA AND`, `(space = SPA`, `nosuchfield = x`, `lastmodified >= "yesterday"`,
		`lastmodified >= now("-1d")`, `text = "x"`, `space = SPA ORDER BY size`, `title ~ "unterminated`,
	} {
		status, _, body := c.get("/wiki/rest/api/search?cql=" + url.QueryEscape(cql))
		if status != 400 || body["statusCode"] != float64(400) || !strings.HasPrefix(body["message"].(string), "Could not parse cql : ") {
			t.Errorf("%q: %d %v, want 400 with Confluence's body", cql, status, body)
		}
	}
	if status, _ := c.getInvalid("/wiki/rest/api/search?limit=5"); status != 400 {
		t.Errorf("search without cql: %d, want 400", status)
	}
}

// TestConfluenceCQLDates: dates are read in the account's zone, as periods of a minute or
// a day.
func TestConfluenceCQLDates(t *testing.T) {
	fake := newFake(t)
	fake.SeedConfluence(atlassiantest.ConfluenceSeed{Spaces: 1, Seed: 1})
	at := time.Date(2024, 1, 31, 10, 0, 30, 0, time.UTC) // 19:00:30 in Tokyo
	a := fake.CreatePage("SPA", "A", "a", at)
	b := fake.CreatePage("SPA", "B", "b", at.Add(time.Minute))
	c := newCFClient(t, fake)
	for cql, want := range map[string][]string{
		`lastmodified >= "2024-01-31 19:00"`: {a, b},
		`lastmodified > "2024-01-31 19:00"`:  {b},
		`lastmodified = "2024-01-31 19:00"`:  {a},
		`lastmodified <= "2024-01-31 19:00"`: {a},
		`lastmodified < "2024-01-31 19:01"`:  {a},
		`lastmodified >= "2024/01/31 19:01"`: {b},
		`lastmodified >= "2024-01-31 10:00"`: {a, b}, // the UTC time, read in Tokyo: 9 hours early
		`lastmodified >= "2024-01-31 19:02"`: nil,
		`lastmodified = "2024-01-31"`:        {a, b},
		`lastmodified > "2024-01-31"`:        nil,
		`created < "2024-02-01"`:             {a, b},
	} {
		_, _, body := c.get("/wiki/rest/api/search?cql=" + url.QueryEscape(`space = SPA AND `+cql+` ORDER BY lastmodified`))
		var got []string
		for _, r := range results(body) {
			got = append(got, field(r, "content", "id").(string))
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", cql, got, want)
		}
	}
}

func TestConfluenceTextSearch(t *testing.T) {
	fake := newFake(t)
	fake.SeedConfluence(atlassiantest.ConfluenceSeed{Spaces: 1, Seed: 1})
	zebra := fake.CreatePage("SPA", "Zebra crossing", "stripes", cfStart)
	quoted := fake.CreatePage("SPA", "Quotes", `she said "zebra"`, cfStart)
	c := newCFClient(t, fake)
	for cql, want := range map[string][]string{
		`text ~ "ZEBRA"`:                            {zebra, quoted}, // title matches count more
		`text ~ "zebra stripes"`:                    {zebra},
		`text ~ "said \"zebra\""`:                   {quoted},
		`title ~ "zebra"`:                           {zebra},
		`text !~ "zebra" AND id = 1`:                nil,
		`text ~ "zebra" AND id in (` + quoted + `)`: {quoted},
	} {
		_, _, body := c.get("/wiki/rest/api/search?cql=" + url.QueryEscape(cql))
		var got []string
		for _, r := range results(body) {
			got = append(got, field(r, "content", "id").(string))
			if ex, _ := r["excerpt"].(string); !strings.Contains(strings.ToLower(ex), "@@@hl@@@") && cql == `text ~ "ZEBRA"` && field(r, "content", "id") == quoted {
				t.Errorf("excerpt %q does not mark the match", ex)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", cql, got, want)
		}
	}
}

func TestConfluenceDataCenterAnswers(t *testing.T) {
	fake := cfFake(t)
	c := newCFClient(t, fake)
	pageA := fake.ConfluencePageIDs("SPA")[0]
	_, _, body := c.get("/rest/api/space?limit=2")
	if len(results(body)) != 2 || !strings.HasPrefix(nextLink(body), "/rest/api/space?") {
		t.Errorf("spaces: %v", body)
	}
	_, _, body = c.get("/rest/api/content?spaceKey=SPA&type=page&expand=body.storage,version,history,space&limit=5")
	if len(results(body)) != 5 || nextLink(body) == "" {
		t.Errorf("content: %v", body)
	}
	// Data Center renders times in the account's zone (alice is in Tokyo).
	if when, _ := field(results(body)[0], "version", "when").(string); !strings.HasSuffix(when, "+09:00") {
		t.Errorf("version.when %q is not in Tokyo time", when)
	}
	if _, _, body := c.get("/rest/api/content/" + pageA + "?expand=body.storage,version,history,space"); field(body, "space", "key") != "SPA" {
		t.Errorf("content by id: %v", body)
	}
	if _, _, body := c.get("/rest/api/content/" + pageA + "/child/comment?expand=body.storage,version,history&location=footer"); len(results(body)) != 2 {
		t.Errorf("comments: %v", body)
	}
	if _, _, body := c.get("/rest/api/content/search?cql=" + url.QueryEscape("id in ("+pageA+")") + "&expand=version"); len(results(body)) != 1 {
		t.Errorf("search: %v", body)
	}
	status, _, body := c.do(http.MethodPost, "/rest/api/content", `{"type":"page","title":"DC page","space":{"key":"SPC"},"body":{"storage":{"value":"<p>x</p>","representation":"storage"}}}`)
	if status != 200 || field(body, "space", "key") != "SPC" {
		t.Errorf("create: %d %v", status, body)
	}
	for path, want := range map[string]int{
		"/rest/api/content/99999":           404,
		"/rest/api/content?spaceKey=NOPE":   404,
		"/rest/api/content/search?cql=%28x": 400,
	} {
		status, _, body := c.get(path)
		if status != want || body["statusCode"] != float64(want) {
			t.Errorf("GET %s: %d %v, want %d with Confluence's v1 body", path, status, body, want)
		}
	}
}

func TestSeedConfluenceIsDeterministic(t *testing.T) {
	seed := atlassiantest.ConfluenceSeed{Spaces: 2, PagesPerSpace: 40, CommentsPerPage: 1, Seed: 5, Start: cfStart}
	snapshot := func(s atlassiantest.ConfluenceSeed) []string {
		fake := newFake(t)
		fake.SeedConfluence(s)
		_, _, body := newCFClient(t, fake).get("/wiki/rest/api/search?limit=250&expand=content.version&cql=" + url.QueryEscape("type = page ORDER BY id"))
		var out []string
		for _, r := range results(body) {
			out = append(out, r["title"].(string)+"@"+r["lastModified"].(string))
		}
		return out
	}
	one, two := snapshot(seed), snapshot(seed)
	if len(one) != 80 || !slices.Equal(one, two) {
		t.Fatalf("two seeds of the same ConfluenceSeed differ (%d pages)", len(one))
	}
	seed.Seed = 6
	if slices.Equal(one, snapshot(seed)) {
		t.Error("another seed gave the same content")
	}

	// Several pages share a minute, some an instant, and time order is not id order.
	minutes, instants := map[string]int{}, map[string]int{}
	var times []string
	for _, s := range one {
		at := s[strings.Index(s, "@")+1:]
		minutes[at[:16]]++
		instants[at]++
		times = append(times, at)
	}
	if len(minutes) >= len(one)/2 || len(instants) == len(one) || slices.IsSorted(times) {
		t.Errorf("%d pages in %d minutes and %d instants, sorted by id: %v", len(one), len(minutes), len(instants), slices.IsSorted(times))
	}
	for _, at := range times {
		if at < "2024-01-31T10:00" {
			t.Errorf("page modified at %s, before Start", at)
		}
	}
}

func TestConfluenceHelpers(t *testing.T) {
	fake := cfFake(t)
	before := fake.ConfluencePageIDs("SPA")
	id := fake.CreatePage("SPA", "Helper page", "line one\nline <two>", cfStart.Add(time.Hour))
	if after := fake.ConfluencePageIDs("SPA"); len(after) != len(before)+1 || after[len(after)-1] != id {
		t.Errorf("CreatePage: ids %v → %v", before, after)
	}
	fake.UpdatePage(id, cfStart.Add(2*time.Hour))
	c := newCFClient(t, fake)
	_, _, body := c.get("/wiki/api/v2/pages/" + id + "?body-format=storage")
	if field(body, "version", "number") != float64(2) || field(body, "version", "createdAt") != "2024-01-31T12:00:00.000Z" ||
		!strings.Contains(field(body, "body", "storage", "value").(string), "<p>line &lt;two&gt;</p>") {
		t.Errorf("after UpdatePage: %v", body)
	}
	fake.DeletePage(id)
	fake.DeletePage(id) // twice is fine
	if status, _, _ := c.get("/wiki/api/v2/pages/" + id); status != 404 {
		t.Errorf("deleted page: %d", status)
	}
	if ids := fake.ConfluencePageIDs("NOPE"); ids != nil || fake.ConfluenceSpaceID("NOPE") != "" {
		t.Errorf("unknown space: %v", ids)
	}
	defer func() {
		if recover() == nil {
			t.Error("CreatePage in an unknown space did not panic")
		}
	}()
	fake.CreatePage("NOPE", "x", "y", cfStart)
}
