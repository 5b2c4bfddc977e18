package atlassiantest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
	"github.com/unified-connectors/connector-operator/internal/vendorspec"
)

var alice = atlassiantest.Account{
	ID: "acc-alice", DisplayName: "Alice", Email: "alice@example.com", TimeZone: "Asia/Tokyo",
	APIToken: "alice-token", PAT: "alice-pat",
}

func newFake(t *testing.T) *atlassiantest.Server {
	t.Helper()
	fake := atlassiantest.NewServer()
	t.Cleanup(fake.Close)
	fake.AddAccount(alice)
	return fake
}

// get sends a GET with the given Authorization header ("" for none) and returns the
// status, headers and JSON body.
func get(t *testing.T, url, authorization string) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, _ := io.ReadAll(resp.Body)
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("GET %s answered %d with non-JSON %q", url, resp.StatusCode, raw)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q", ct)
	}
	return resp.StatusCode, resp.Header, body
}

func basic(email, token string) string {
	r := &http.Request{Header: http.Header{}}
	r.SetBasicAuth(email, token)
	return r.Header.Get("Authorization")
}

var identityPaths = []string{
	"/rest/api/3/myself", "/rest/api/2/myself", "/wiki/rest/api/user/current", "/rest/api/user/current",
}

func TestAuthentication(t *testing.T) {
	fake := newFake(t)
	for _, path := range identityPaths {
		for _, tc := range []struct {
			name, authorization string
			want                int
		}{
			{"basic email:apiToken", basic("alice@example.com", "alice-token"), 200},
			{"basic email in other case", basic("Alice@Example.com", "alice-token"), 200},
			{"bearer PAT", "Bearer alice-pat", 200},
			{"no credentials", "", 401},
			{"wrong api token", basic("alice@example.com", "alice-pat"), 401},
			{"api token of another email", basic("bob@example.com", "alice-token"), 401},
			{"wrong PAT", "Bearer alice-token", 401},
			{"empty bearer", "Bearer ", 401},
		} {
			t.Run(path+"/"+tc.name, func(t *testing.T) {
				status, _, body := get(t, fake.URL()+path, tc.authorization)
				if status != tc.want {
					t.Fatalf("status %d, want %d (%v)", status, tc.want, body)
				}
			})
		}
	}
}

// TestIdentityShapes checks the answers the Jira OpenAPI document does not cover against
// shared/vendor-specs/README.md: Confluence Cloud's user/current carries accountId,
// displayName, email and accountType; Confluence Data Center's carries userKey, username
// and displayName. Jira's answers are checked against the OpenAPI document in
// connectors/jira's contract tests.
func TestIdentityShapes(t *testing.T) {
	fake := newFake(t)
	pat := "Bearer alice-pat"

	_, _, cloud := get(t, fake.URL()+"/wiki/rest/api/user/current", pat)
	for k, want := range map[string]any{"type": "known", "accountId": alice.ID, "displayName": "Alice", "email": alice.Email, "accountType": "atlassian", "timeZone": "Asia/Tokyo"} {
		if cloud[k] != want {
			t.Errorf("Confluence Cloud user/current %s = %v, want %v", k, cloud[k], want)
		}
	}
	if links, _ := cloud["_links"].(map[string]any); links["base"] != fake.URL()+"/wiki" {
		t.Errorf("Confluence Cloud _links.base = %v, want the site's /wiki", links["base"])
	}

	_, _, dc := get(t, fake.URL()+"/rest/api/user/current", pat)
	for k, want := range map[string]any{"type": "known", "userKey": alice.ID, "username": "alice", "displayName": "Alice"} {
		if dc[k] != want {
			t.Errorf("Confluence Data Center user/current %s = %v, want %v", k, dc[k], want)
		}
	}
	if _, ok := dc["accountId"]; ok {
		t.Error("Confluence Data Center answered an accountId")
	}

	_, _, jiraDC := get(t, fake.URL()+"/rest/api/2/myself", pat)
	if jiraDC["key"] != alice.ID || jiraDC["name"] != "alice" || jiraDC["accountId"] != nil {
		t.Errorf("Jira Data Center myself = %v, want key and name and no accountId", jiraDC)
	}
}

func TestErrorBodies(t *testing.T) {
	fake := newFake(t)
	spec, err := vendorspec.Jira()
	if err != nil {
		t.Fatalf("load the Jira OpenAPI document: %v", err)
	}
	errorCollection := spec.Doc.Components.Schemas["ErrorCollection"].Value

	status, _, jira := get(t, fake.URL()+"/rest/api/3/myself", "")
	if status != 401 {
		t.Fatalf("status %d", status)
	}
	if err := errorCollection.VisitJSON(jira); err != nil || len(jira["errorMessages"].([]any)) == 0 {
		t.Errorf("Jira 401 body %v is not an ErrorCollection with a message: %v", jira, err)
	}

	_, _, wiki := get(t, fake.URL()+"/wiki/rest/api/user/current", "")
	if wiki["statusCode"] != float64(401) || wiki["message"] == "" {
		t.Errorf("Confluence v1 401 body = %v, want statusCode and message", wiki)
	}

	_, _, v2 := get(t, fake.URL()+"/wiki/api/v2/spaces", "")
	errs, _ := v2["errors"].([]any)
	if len(errs) != 1 || errs[0].(map[string]any)["status"] != float64(401) || errs[0].(map[string]any)["code"] != "UNAUTHORIZED" {
		t.Errorf("Confluence v2 401 body = %v, want errors[0] with status and code", v2)
	}

	status, _, notFound := get(t, fake.URL()+"/rest/api/3/no-such-thing", "Bearer alice-pat")
	if status != 404 || errorCollection.VisitJSON(notFound) != nil {
		t.Errorf("unknown Jira path: %d %v, want 404 with an ErrorCollection", status, notFound)
	}
}

func TestFaults(t *testing.T) {
	fake := newFake(t)
	url := fake.URL() + "/rest/api/3/myself"
	for _, tc := range []struct {
		fault      atlassiantest.Fault
		retryAfter string
	}{
		{atlassiantest.Fault{Status: 429, RetryAfter: 1500 * time.Millisecond}, "2"}, // rounded up
		{atlassiantest.Fault{Status: 429, RetryAfter: 3 * time.Second}, "3"},
		{atlassiantest.Fault{Status: 429}, ""},
		{atlassiantest.Fault{Status: 503, RetryAfter: time.Millisecond}, "1"},
		{atlassiantest.Fault{Status: 500, RetryAfter: 5 * time.Second}, ""}, // only 429 and 503 carry it
	} {
		fake.SetFault(tc.fault)
		// The fault comes before authentication: even a good credential gets it.
		status, header, _ := get(t, url, "Bearer alice-pat")
		if status != tc.fault.Status || header.Get("Retry-After") != tc.retryAfter {
			t.Errorf("fault %+v: status %d Retry-After %q, want %d %q", tc.fault, status, header.Get("Retry-After"), tc.fault.Status, tc.retryAfter)
		}
	}

	fake.SetFault(atlassiantest.Fault{Latency: 150 * time.Millisecond})
	start := time.Now()
	if status, _, _ := get(t, url, "Bearer alice-pat"); status != 200 {
		t.Errorf("latency fault: status %d, want 200", status)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("latency fault: answered after %s, want at least 150ms", d)
	}

	fake.ClearFault()
	if status, _, _ := get(t, url, "Bearer alice-pat"); status != 200 {
		t.Errorf("after ClearFault: status %d, want 200", status)
	}
}

func TestGateway(t *testing.T) {
	fake := newFake(t)
	gw := fake.URL() + "/ex/jira/" + fake.CloudID()
	status, _, body := get(t, gw+"/rest/api/3/myself", "Bearer alice-pat")
	if status != 200 || body["accountId"] != alice.ID {
		t.Fatalf("gateway myself: %d %v", status, body)
	}
	if self, _ := body["self"].(string); !strings.HasPrefix(self, gw+"/rest/api/3/user") {
		t.Errorf("self = %q, want a link through the gateway", self)
	}
	if status, _, _ := get(t, fake.URL()+"/ex/jira/another-cloud/rest/api/3/myself", "Bearer alice-pat"); status != 404 {
		t.Errorf("unknown cloud id: status %d, want 404", status)
	}
	if status, _, _ := get(t, fake.URL()+"/ex/confluence/"+fake.CloudID()+"/wiki/rest/api/user/current", "Bearer alice-pat"); status != 200 {
		t.Errorf("confluence through the gateway: status %d, want 200", status)
	}
}

func TestRequestLog(t *testing.T) {
	fake := newFake(t)
	get(t, fake.URL()+"/rest/api/3/myself?expand=groups", "Bearer alice-pat")
	get(t, fake.URL()+"/wiki/rest/api/user/current", "")
	get(t, fake.URL()+"/rest/api/3/myself", "Bearer alice-pat")

	reqs := fake.Requests()
	want := []atlassiantest.Request{
		{Method: "GET", Path: "/rest/api/3/myself", Status: 200},
		{Method: "GET", Path: "/wiki/rest/api/user/current", Status: 401},
		{Method: "GET", Path: "/rest/api/3/myself", Status: 200},
	}
	if len(reqs) != len(want) {
		t.Fatalf("Requests() = %+v, want %d entries", reqs, len(want))
	}
	for i := range want {
		if reqs[i].Method != want[i].Method || reqs[i].Path != want[i].Path || reqs[i].Status != want[i].Status || reqs[i].Time.IsZero() {
			t.Errorf("request %d = %+v, want %+v", i, reqs[i], want[i])
		}
	}
	if n := fake.CountRequests("/rest/api/3/myself"); n != 2 {
		t.Errorf("CountRequests = %d, want 2", n)
	}
	reqs[0].Path = "changed"
	if fake.Requests()[0].Path == "changed" {
		t.Error("Requests() returned the fake's own slice")
	}
	fake.ResetRequests()
	if n := len(fake.Requests()); n != 0 {
		t.Errorf("after ResetRequests: %d requests", n)
	}
}

func TestAddAccountReplacesByID(t *testing.T) {
	fake := newFake(t)
	rotated := alice
	rotated.PAT = "alice-pat-2"
	rotated.DisplayName = "Alice R."
	fake.AddAccount(rotated)

	if status, _, _ := get(t, fake.URL()+"/rest/api/3/myself", "Bearer alice-pat"); status != 401 {
		t.Errorf("old PAT: status %d, want 401 after rotation", status)
	}
	if _, _, body := get(t, fake.URL()+"/rest/api/3/myself", "Bearer alice-pat-2"); body["displayName"] != "Alice R." {
		t.Errorf("new PAT: %v", body)
	}
}

func TestHandlerServedElsewhere(t *testing.T) {
	fake := atlassiantest.New()
	fake.AddAccount(alice)
	srv := httptest.NewServer(fake.Handler())
	defer srv.Close()
	if fake.URL() != "" {
		t.Errorf("URL() of an unstarted fake = %q, want empty", fake.URL())
	}
	if _, _, body := get(t, srv.URL+"/rest/api/3/myself", "Bearer alice-pat"); body["self"] != srv.URL+"/rest/api/3/user?accountId=acc-alice" {
		t.Errorf("self = %v, want a link to where it is served", body["self"])
	}
	fake.Close() // a no-op, must not panic
}

func TestConcurrentUse(t *testing.T) {
	fake := newFake(t)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%5 == 0 {
				fake.SetFault(atlassiantest.Fault{})
				fake.AddAccount(alice)
			}
			req, _ := http.NewRequest(http.MethodGet, fake.URL()+"/rest/api/3/myself", nil)
			req.Header.Set("Authorization", "Bearer alice-pat")
			if resp, err := http.DefaultClient.Do(req); err == nil {
				_ = resp.Body.Close()
			}
			_ = fake.Requests()
		}()
	}
	wg.Wait()
	if n := fake.CountRequests("/rest/api/3/myself"); n != 20 {
		t.Errorf("CountRequests = %d, want 20", n)
	}
}
