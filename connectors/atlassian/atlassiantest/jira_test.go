package atlassiantest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
	"github.com/unified-connectors/connector-operator/internal/vendorspec"
)

func init() {
	// Jira writes date-times with a colon-less offset ("2021-01-18T23:45:00.000+0000"),
	// as the examples in its own OpenAPI document do, while kin-openapi checks the
	// "date-time" format as strict RFC 3339. Accept both spellings, and nothing else.
	openapi3.DefineStringFormatValidator("date-time", openapi3.NewRegexpFormatValidator(
		`^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|[+-][0-9]{2}:?[0-9]{2})$`))
}

var jiraStart = time.Date(2024, 10, 5, 14, 0, 0, 0, time.UTC)

// jiraCall sends a request as alice (Asia/Tokyo) through the Jira contract checker and
// returns the status and the decoded JSON body. The test fails on any contract
// violation of the request or the answer.
func jiraCall(t *testing.T, fake *atlassiantest.Server, method, path, body string) (int, map[string]any) {
	t.Helper()
	spec, err := vendorspec.Jira()
	if err != nil {
		t.Fatal(err)
	}
	checker := &vendorspec.Doer{Spec: spec}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequestWithContext(t.Context(), method, fake.URL()+path, rd)
	req.Header.Set("Authorization", "Bearer alice-pat")
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := checker.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(raw) > 0 && raw[0] == '{' {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
	if !strings.HasPrefix(path, "/rest/api/2/") { // Data Center paths are not in the document
		for _, err := range checker.Errors() {
			t.Errorf("contract violation: %v", err)
		}
	}
	return resp.StatusCode, out
}

func newJiraFake(t *testing.T) *atlassiantest.Server {
	t.Helper()
	fake := newFake(t)
	fake.SeedJira(atlassiantest.JiraSeed{Projects: 3, IssuesPerProject: 40, CommentsPerIssue: 3, Seed: 9, Start: jiraStart})
	return fake
}

func errorMessages(body map[string]any) string {
	msgs, _ := body["errorMessages"].([]any)
	var s []string
	for _, m := range msgs {
		s = append(s, m.(string))
	}
	return strings.Join(s, " ")
}

func TestJiraRemovedSearchIsGone(t *testing.T) {
	fake := newJiraFake(t)
	for _, method := range []string{"GET", "POST"} {
		path, body := "/rest/api/3/search?jql=project%20%3D%20PRJA", ""
		if method == "POST" {
			path, body = "/rest/api/3/search", `{"jql":"project = PRJA"}`
		}
		status, out := jiraCall(t, fake, method, path, body)
		if status != http.StatusGone || !strings.Contains(errorMessages(out), "/rest/api/3/search/jql") {
			t.Errorf("%s /rest/api/3/search: %d %v, want 410 pointing to search/jql", method, status, out)
		}
	}
}

func TestJiraSearchJQL(t *testing.T) {
	fake := newJiraFake(t)

	// Bounded queries only.
	for _, jql := range []string{"", "ORDER BY updated DESC"} {
		body, _ := json.Marshal(map[string]any{"jql": jql})
		status, out := jiraCall(t, fake, "POST", "/rest/api/3/search/jql", string(body))
		if status != http.StatusBadRequest || !strings.Contains(errorMessages(out), "Unbounded JQL") {
			t.Errorf("jql %q: %d %v, want 400 unbounded", jql, status, out)
		}
	}
	if status, out := jiraCall(t, fake, "POST", "/rest/api/3/search/jql", `{"jql":"project = PRJA AND","maxResults":5}`); status != 400 || errorMessages(out) == "" {
		t.Errorf("a syntax error answered %d %v", status, out)
	}

	// Ids only by default, no total or startAt, and a token until the last page.
	status, out := jiraCall(t, fake, "GET", "/rest/api/3/search/jql?jql=project%20%3D%20PRJA&maxResults=15", "")
	issues, _ := out["issues"].([]any)
	if status != 200 || len(issues) != 15 || out["isLast"] != false || out["nextPageToken"] == nil {
		t.Fatalf("first page: %d %v", status, out)
	}
	if !reflect.DeepEqual(keys(issues[0].(map[string]any)), []string{"id"}) {
		t.Errorf("without fields an issue is %v, want its id only", issues[0])
	}
	for _, absent := range []string{"total", "startAt", "maxResults"} {
		if _, ok := out[absent]; ok {
			t.Errorf("search/jql answered %s", absent)
		}
	}
	seen, token := 15, out["nextPageToken"].(string)
	for token != "" {
		_, out = jiraCall(t, fake, "GET", "/rest/api/3/search/jql?jql=project%20%3D%20PRJA&maxResults=15&nextPageToken="+token, "")
		issues, _ = out["issues"].([]any)
		seen += len(issues)
		token, _ = out["nextPageToken"].(string)
		if token == "" && out["isLast"] != true {
			t.Errorf("last page without isLast: %v", out)
		}
	}
	if seen != 40 {
		t.Errorf("paged through %d issues, PRJA has 40", seen)
	}
	// A token belongs to its query.
	_, out = jiraCall(t, fake, "POST", "/rest/api/3/search/jql", `{"jql":"project = PRJA","maxResults":5}`)
	body, _ := json.Marshal(map[string]any{"jql": "project = PRJB", "nextPageToken": out["nextPageToken"]})
	if status, _ := jiraCall(t, fake, "POST", "/rest/api/3/search/jql", string(body)); status != 400 {
		t.Errorf("a token of another query answered %d", status)
	}

	// Page sizes: at most 100 with fields, more for ids only.
	_, out = jiraCall(t, fake, "POST", "/rest/api/3/search/jql", `{"jql":"project in (PRJA, PRJB, PRJC)","maxResults":500,"fields":["summary"]}`)
	if n := len(out["issues"].([]any)); n != 100 {
		t.Errorf("fields and maxResults 500 gave %d issues, want 100", n)
	}
	_, out = jiraCall(t, fake, "POST", "/rest/api/3/search/jql", `{"jql":"project in (PRJA, PRJB, PRJC)","maxResults":500}`)
	if n := len(out["issues"].([]any)); n != 120 {
		t.Errorf("ids only and maxResults 500 gave %d issues, want 120", n)
	}

	// Fields: comma lists or repeats, and ADF descriptions on v3.
	_, out = jiraCall(t, fake, "GET", "/rest/api/3/search/jql?jql=key%20%3D%20PRJA-2&fields=summary,updated&fields=description", "")
	fields := out["issues"].([]any)[0].(map[string]any)["fields"].(map[string]any)
	if !reflect.DeepEqual(keys(fields), []string{"description", "summary", "updated"}) && !reflect.DeepEqual(keys(fields), []string{"summary", "updated"}) {
		t.Errorf("fields = %v", keys(fields))
	}
	if d, ok := fields["description"].(map[string]any); ok && d["type"] != "doc" {
		t.Errorf("description is not ADF: %v", d)
	}
	// Times are in the caller's zone (alice: Asia/Tokyo).
	if u, _ := fields["updated"].(string); !strings.HasSuffix(u, "+0900") {
		t.Errorf("updated = %q, want Tokyo's +0900", u)
	}

	status, out = jiraCall(t, fake, "POST", "/rest/api/3/search/approximate-count", `{"jql":"project = PRJB"}`)
	if status != 200 || out["count"] != float64(40) {
		t.Errorf("approximate-count: %d %v", status, out)
	}
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestJiraProjectsIssuesComments(t *testing.T) {
	fake := newJiraFake(t)
	status, out := jiraCall(t, fake, "GET", "/rest/api/3/project/search?startAt=1&maxResults=1", "")
	values, _ := out["values"].([]any)
	if status != 200 || len(values) != 1 || out["total"] != float64(3) || out["isLast"] != false || out["nextPage"] == nil {
		t.Errorf("project/search: %d %v", status, out)
	}
	if p := values[0].(map[string]any); p["key"] != "PRJB" || p["id"] != "10001" || p["name"] != "Project B" {
		t.Errorf("second project = %v", p)
	}

	status, out = jiraCall(t, fake, "GET", "/rest/api/3/issue/prja-3?fields=summary,reporter,project", "")
	if status != 200 || out["key"] != "PRJA-3" || out["fields"].(map[string]any)["reporter"] == nil {
		t.Errorf("issue: %d %v", status, out)
	}
	if status, out := jiraCall(t, fake, "GET", "/rest/api/3/issue/PRJA-404", ""); status != 404 || errorMessages(out) == "" {
		t.Errorf("missing issue: %d %v", status, out)
	}

	status, out = jiraCall(t, fake, "GET", "/rest/api/3/issue/PRJA-3/comment?startAt=1&maxResults=5&orderBy=-created", "")
	comments, _ := out["comments"].([]any)
	if status != 200 || len(comments) != 2 || out["total"] != float64(3) || out["startAt"] != float64(1) {
		t.Errorf("comments: %d %v", status, out)
	}
	if body := comments[0].(map[string]any)["body"].(map[string]any); body["type"] != "doc" {
		t.Errorf("comment body is not ADF: %v", body)
	}

	// Data Center: plain arrays, startAt/total, strings for ADF.
	_, dc := jiraCall(t, fake, "POST", "/rest/api/2/search", `{"jql":"project = PRJA","startAt":38,"maxResults":5,"fields":["description","summary"]}`)
	if dc["total"] != float64(40) || dc["startAt"] != float64(38) || len(dc["issues"].([]any)) != 2 {
		t.Errorf("Data Center search: %v", dc)
	}
	if _, dc := jiraCall(t, fake, "POST", "/rest/api/2/search", `{"jql":"ORDER BY key"}`); dc["total"] != float64(120) {
		t.Errorf("Data Center runs unbounded queries; got %v", dc)
	}
	_, dc = jiraCall(t, fake, "GET", "/rest/api/2/issue/PRJA-3/comment", "")
	if _, ok := dc["comments"].([]any)[0].(map[string]any)["body"].(string); !ok {
		t.Errorf("Data Center comment body is not a string: %v", dc)
	}
}

func TestJiraCreateIssue(t *testing.T) {
	fake := newJiraFake(t)
	adf := `{"type":"doc","version":1,"content":[{"type":"paragraph","content":[{"type":"text","text":"hello"}]}]}`
	for body, wantField := range map[string]string{
		`{"fields":{"project":{"key":"PRJA"},"issuetype":{"name":"Task"}}}`:                                     "summary",
		`{"fields":{"project":{"key":"PRJA"},"issuetype":{"name":"Task"},"summary":"a\nb"}}`:                    "summary",
		`{"fields":{"project":{"key":"NOPE"},"issuetype":{"name":"Task"},"summary":"x"}}`:                       "project",
		`{"fields":{"project":{"key":"PRJA"},"issuetype":{"name":"Epic"},"summary":"x"}}`:                       "issuetype",
		`{"fields":{"project":{"key":"PRJA"},"issuetype":{"name":"Task"},"summary":"x","description":"plain"}}`: "description",
		`{"fields":{"project":{"key":"PRJA"},"issuetype":{"name":"Task"},"summary":"x","labels":["a"]}}`:        "labels",
		`{"fields":{"project":{"key":"PRJA"},"issuetype":{"name":"Task"},"summary":"x","description":{"a":1}}}`: "description",
	} {
		status, out := jiraCall(t, fake, "POST", "/rest/api/3/issue", body)
		errs, _ := out["errors"].(map[string]any)
		if status != 400 || errs[wantField] == nil {
			t.Errorf("%s: %d %v, want 400 about %s", body, status, out, wantField)
		}
	}
	status, out := jiraCall(t, fake, "POST", "/rest/api/3/issue", `{"fields":{"project":{"key":"PRJA"},"issuetype":{"name":"Task"},"summary":"Made","description":`+adf+`}}`)
	if status != 201 || out["key"] != "PRJA-41" || out["id"] == nil {
		t.Fatalf("create: %d %v", status, out)
	}
	info, ok := fake.JiraIssue("PRJA-41")
	if !ok || time.Since(info.Updated) > time.Minute {
		t.Errorf("created issue: %+v", info)
	}
	if status, _ := jiraCall(t, fake, "POST", "/rest/api/2/issue", `{"fields":{"project":{"key":"PRJA"},"issuetype":{"name":"Bug"},"summary":"DC","description":"wiki *text*"}}`); status != 201 {
		t.Errorf("Data Center create: %d", status)
	}
}

func TestJiraThroughTheGateway(t *testing.T) {
	fake := newJiraFake(t)
	status, out := jiraCall(t, fake, "GET", "/ex/jira/"+fake.CloudID()+"/rest/api/3/issue/PRJA-1?fields=project", "")
	if status != 200 || !strings.HasPrefix(out["self"].(string), fake.URL()+"/ex/jira/"+fake.CloudID()+"/rest/api/3/issue/") {
		t.Errorf("gateway issue: %d %v", status, out)
	}
}

func TestSeedJira(t *testing.T) {
	seed := atlassiantest.JiraSeed{Projects: 2, IssuesPerProject: 50, CommentsPerIssue: 2, Seed: 3, Start: jiraStart}
	describe := func() []atlassiantest.JiraIssueInfo {
		fake := atlassiantest.NewServer()
		defer fake.Close()
		fake.SeedJira(seed)
		var out []atlassiantest.JiraIssueInfo
		for _, p := range []string{"PRJA", "PRJB"} {
			for _, k := range fake.JiraIssueKeys(p) {
				info, _ := fake.JiraIssue(k)
				out = append(out, info)
			}
		}
		return out
	}
	first, second := describe(), describe()
	if !reflect.DeepEqual(first, second) || len(first) != 100 {
		t.Fatalf("the same seed gave different sites (%d, %d issues)", len(first), len(second))
	}
	sameMilli, sameMinute := map[string]int{}, map[string]map[int64]bool{}
	ordered := true
	for i, info := range first {
		if info.Updated.Before(jiraStart) || !info.Created.Before(jiraStart) {
			t.Errorf("%s: created %v, updated %v; want created before and updated after %v", info.Key, info.Created, info.Updated, jiraStart)
		}
		if info.Updated.Truncate(time.Millisecond) != info.Updated {
			t.Errorf("%s: updated %v has more than millisecond precision", info.Key, info.Updated)
		}
		ms := info.Project + info.Updated.Format(time.RFC3339Nano)
		sameMilli[ms]++
		minute := info.Project + info.Updated.Truncate(time.Minute).Format(time.RFC3339)
		if sameMinute[minute] == nil {
			sameMinute[minute] = map[int64]bool{}
		}
		sameMinute[minute][info.Updated.UnixMilli()] = true
		if i > 0 && first[i-1].Project == info.Project && info.Updated.Before(first[i-1].Updated) {
			ordered = false
		}
	}
	triple, minutePair := false, false
	for _, n := range sameMilli {
		triple = triple || n >= 3
	}
	for _, ms := range sameMinute {
		minutePair = minutePair || len(ms) >= 2
	}
	if !triple || !minutePair || ordered {
		t.Errorf("seeded updates: three in one millisecond %v, two in one minute %v, in id order %v", triple, minutePair, ordered)
	}
}

func TestJiraHelpers(t *testing.T) {
	fake := atlassiantest.NewServer()
	defer fake.Close()
	at := time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)
	k := fake.CreateIssue("NEW", "Summary", "Text", at)
	if k != "NEW-1" || !reflect.DeepEqual(fake.JiraIssueKeys("new"), []string{"NEW-1"}) {
		t.Fatalf("CreateIssue = %q, keys %v", k, fake.JiraIssueKeys("NEW"))
	}
	info, _ := fake.JiraIssue(k)
	if !info.Updated.Equal(at.Truncate(time.Millisecond)) || info.ID != "10000" {
		t.Errorf("JiraIssue = %+v", info)
	}
	fake.UpdateIssue(k, at.Add(time.Hour))
	if info, _ := fake.JiraIssue(info.ID); !info.Updated.Equal(at.Add(time.Hour).Truncate(time.Millisecond)) {
		t.Errorf("after UpdateIssue: %+v", info)
	}
	fake.DeleteIssue(k)
	fake.DeleteIssue(k)
	if _, ok := fake.JiraIssue(k); ok || len(fake.JiraIssueKeys("NEW")) != 0 {
		t.Error("DeleteIssue left the issue")
	}
	if id := fake.AddJiraProject("NEW", "ignored"); id != "10000" {
		t.Errorf("AddJiraProject of an existing key = %s", id)
	}
	defer func() {
		if recover() == nil {
			t.Error("UpdateIssue of a missing issue did not panic")
		}
	}()
	fake.UpdateIssue("NEW-9", at)
}
