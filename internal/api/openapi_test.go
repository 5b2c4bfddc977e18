package api_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
	"github.com/unified-connectors/connector-operator/internal/api"
)

// TestOpenAPIDocument checks that openapi.json is a valid OpenAPI 3 document describing
// exactly the routes the server has, and that the response check used by every test
// does catch an answer that does not match it.
func TestOpenAPIDocument(t *testing.T) {
	doc, _, err := loadSpec()
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for p, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented = append(documented, method+" "+p)
		}
	}
	sort.Strings(documented)
	routes := api.Routes()
	sort.Strings(routes)
	if !slices.Equal(documented, routes) {
		t.Errorf("openapi.json documents\n  %v\nthe server routes\n  %v", documented, routes)
	}

	// The check fails answers that break the document.
	bad := []struct {
		name   string
		path   string
		status int
		header http.Header
		body   string
	}{
		{"undeclared status", "/api/v1/connectors", http.StatusTeapot, nil, `{"status":"error","code":"INTERNAL","message":"x","requestId":"r"}`},
		{"missing data", "/api/v1/connectors", http.StatusOK, nil, `{"status":"ok"}`},
		{"unknown field", "/api/v1/connectors", http.StatusOK, nil, `{"status":"ok","data":{"items":[]},"extra":1}`},
		{"wrong error code for status", "/api/v1/connectors", http.StatusForbidden, nil, `{"status":"error","code":"NOT_FOUND","message":"x","requestId":"r"}`},
		{"429 without Retry-After", "/api/v1/namespaces/a/connections/b/items?container=A", http.StatusTooManyRequests, nil, `{"status":"error","code":"VENDOR_RATE_LIMITED","message":"x","requestId":"r"}`},
		{"item missing fields", "/api/v1/namespaces/a/connections/b/items/X-1", http.StatusOK, nil, `{"status":"ok","data":{"id":"1"}}`},
		{"unrouted success", "/nowhere", http.StatusOK, nil, `{"status":"ok","data":{}}`},
	}
	for _, b := range bad {
		hr := httptest.NewRequest(http.MethodGet, "http://127.0.0.1"+b.path, nil)
		h := b.header
		if h == nil {
			h = http.Header{}
		}
		h.Set("Content-Type", "application/json")
		h.Set("X-Request-Id", "r")
		resp := &http.Response{StatusCode: b.status, Header: h, Body: io.NopCloser(strings.NewReader(b.body))}
		if err := checkAgainstSpec(hr, resp, []byte(b.body)); err == nil {
			t.Errorf("%s: the OpenAPI check accepted it", b.name)
		}
	}
}

// TestEveryRouteAnswersAsDocumented calls every route for a success and typical errors;
// do() checks each answer against openapi.json.
func TestEveryRouteAnswersAsDocumented(t *testing.T) {
	s := testEnv(t)
	st := s.newSite(t, v1alpha1.ConnectorTypeJira)
	issue := st.fake.CreateIssue("PRJA", "Documented route", "Body text.", time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC))
	ns := s.newNamespace(t, "openapi")
	s.waitReady(t, s.newConnection(t, ns, "jira", st))
	u := s.newUser(t, "openapi")
	s.grantCluster(t, u, rule("connectors", "list"), rule("connections", "get", "list"),
		rule("connections/data", "get", "create"), rule("connections/credentials", "update"))

	calls := []struct {
		r      req
		status int
	}{
		{req{path: "/api/v1/connectors"}, 200},
		{req{path: "/api/v1/namespaces/" + ns + "/connections"}, 200},
		{req{path: connPath(ns, "jira")}, 200},
		{req{path: connPath(ns, "missing")}, 404},
		{req{path: connPath(ns, "jira", "containers") + "?limit=1"}, 200},
		{req{path: connPath(ns, "jira", "items") + "?container=PRJA&limit=5&updatedSince=2020-01-01T00:00:00Z"}, 200},
		{req{path: connPath(ns, "jira", "items", issue)}, 200},
		{req{path: connPath(ns, "jira", "items", "PRJA-404")}, 404},
		{req{path: connPath(ns, "jira", "items", issue, "comments")}, 200},
		{req{method: "POST", path: connPath(ns, "jira", "items"), body: []byte(`{"container":"PRJA","title":"From the API","text":"Line one.\n\nLine two."}`)}, 201},
		{req{path: "/api/v1/search?q=documented&kind=issue&limit=5&timeout=1s"}, 200},
		{req{path: "/oauth/v1/namespaces/" + ns + "/connections/jira/authorize"}, 409},
		{req{path: "/oauth/v1/callback?state=v1.a.b&code=c"}, 400},
		{req{path: "/openapi.json"}, 200},
		{req{path: "/docs"}, 200},
	}
	for _, c := range calls {
		r := c.r
		r.token = u.token
		if a := s.do(t, r); a.status != c.status {
			t.Errorf("%s %s: %d %s, want %d", r.method, r.path, a.status, clipBody(a.body), c.status)
		}
	}
	// Vendor failures map to their codes, as documented.
	for status, code := range map[int]string{http.StatusInternalServerError: "VENDOR_UNAVAILABLE", http.StatusUnauthorized: "VENDOR_AUTH_FAILED"} {
		st.fake.FailNext(1, atlassiantest.Fault{Status: status})
		if a := s.do(t, req{path: connPath(ns, "jira", "items", issue), token: u.token}); a.status != http.StatusBadGateway || a.code() != code {
			t.Errorf("vendor %d: %d %s, want 502 %s", status, a.status, a.body, code)
		}
	}
	// Last: the vendor's Retry-After holds this Connection's calls for 30 s.
	st.fake.FailNext(1, atlassiantest.Fault{Status: http.StatusTooManyRequests, RetryAfter: 30 * time.Second})
	a := s.do(t, req{path: connPath(ns, "jira", "items", issue), token: u.token})
	if a.status != http.StatusTooManyRequests || a.code() != "VENDOR_RATE_LIMITED" || a.header.Get("Retry-After") != "30" {
		t.Errorf("vendor 429: %d %s Retry-After %q, want 429 VENDOR_RATE_LIMITED with Retry-After 30", a.status, a.body, a.header.Get("Retry-After"))
	}

	docs := s.do(t, req{path: "/docs"})
	if !bytes.Contains(docs.body, []byte("openapi.json")) || !strings.HasPrefix(docs.header.Get("Content-Type"), "text/html") {
		t.Errorf("/docs does not render openapi.json: %s", clipBody(docs.body))
	}
	if spec := s.do(t, req{path: "/openapi.json"}); !bytes.Equal(spec.body, api.OpenAPI()) {
		t.Error("/openapi.json is not the embedded document")
	}
}
