package api_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
)

// TestBadInput sends malformed bodies, unknown fields, oversize bodies, bad cursors,
// bad limits, unknown routes and methods as a user allowed everything: each must be a
// 4xx envelope with a stable code, never a 5xx.
func TestBadInput(t *testing.T) {
	s := testEnv(t)
	st := s.newSite(t, v1alpha1.ConnectorTypeJira)
	st.fake.CreateIssue("PRJA", "Input validation", "text", time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	ns := s.newNamespace(t, "input")
	s.waitReady(t, s.newConnection(t, ns, "jira", st))
	u := s.newUser(t, "input")
	s.grantCluster(t, u, rule("connectors", "list"), rule("connections", "get", "list"),
		rule("connections/data", "get", "create"), rule("connections/credentials", "update"))

	// A valid containers cursor, to be refused by another listing.
	first := s.do(t, req{path: connPath(ns, "jira", "containers"), token: u.token})
	if first.status != http.StatusOK {
		t.Fatalf("containers: %d %s", first.status, first.body)
	}

	items := connPath(ns, "jira", "items")
	huge := bytes.Repeat([]byte("a"), 2<<20)
	cases := []struct {
		name   string
		r      req
		status int
		code   string
	}{
		{"malformed JSON", req{method: "POST", path: items, body: []byte(`{"container":`)}, 400, "VALIDATION"},
		{"not an object", req{method: "POST", path: items, body: []byte(`["PRJA"]`)}, 400, "VALIDATION"},
		{"unknown field", req{method: "POST", path: items, body: []byte(`{"container":"PRJA","title":"t","priority":"high"}`)}, 400, "VALIDATION"},
		{"wrong type", req{method: "POST", path: items, body: []byte(`{"container":7,"title":"t"}`)}, 400, "VALIDATION"},
		{"two objects", req{method: "POST", path: items, body: []byte(`{"container":"PRJA","title":"t"}{"container":"PRJA","title":"t"}`)}, 400, "VALIDATION"},
		{"empty body", req{method: "POST", path: items, body: []byte{}}, 400, "VALIDATION"},
		{"oversize body", req{method: "POST", path: items, body: append(append([]byte(`{"container":"PRJA","title":"t","text":"`), huge...), '"', '}')}, 400, "VALIDATION"},
		{"missing title", req{method: "POST", path: items, body: []byte(`{"container":"PRJA"}`)}, 400, "VALIDATION"},
		{"missing container", req{method: "POST", path: items, body: []byte(`{"title":"t"}`)}, 400, "VALIDATION"},
		{"multi-line title", req{method: "POST", path: items, body: []byte(`{"container":"PRJA","title":"a\nb"}`)}, 400, "VALIDATION"},
		{"long title", req{method: "POST", path: items, body: []byte(`{"container":"PRJA","title":"` + strings.Repeat("t", 256) + `"}`)}, 400, "VALIDATION"},
		{"wrong content type", req{method: "POST", path: items, body: []byte(`{"container":"PRJA","title":"t"}`), header: map[string]string{"Content-Type": "text/plain"}}, 400, "VALIDATION"},
		{"garbage cursor", req{path: items + "?container=PRJA&cursor=garbage"}, 400, "VALIDATION"},
		{"bad base64 cursor", req{path: items + "?container=PRJA&cursor=c1.%21%21%21"}, 400, "VALIDATION"},
		{"cursor of another listing", req{path: items + "?container=PRJA&cursor=c1.eyJzIjoiMDAwMDAwMDAwMDAwMDAwMCIsImMiOiJ4In0"}, 400, "VALIDATION"},
		{"comments cursor garbage", req{path: connPath(ns, "jira", "items", "PRJA-1", "comments") + "?cursor=zzz"}, 400, "VALIDATION"},
		{"search cursor garbage", req{path: "/api/v1/search?q=x&cursor=s1.AAAA"}, 400, "VALIDATION"},
		{"search cursor not base64", req{path: "/api/v1/search?q=x&cursor=s1.%25%25"}, 400, "VALIDATION"},
		{"negative limit", req{path: items + "?container=PRJA&limit=-1"}, 400, "VALIDATION"},
		{"zero limit", req{path: items + "?container=PRJA&limit=0"}, 400, "VALIDATION"},
		{"huge limit", req{path: items + "?container=PRJA&limit=99999999999999999999999"}, 400, "VALIDATION"},
		{"limit over max", req{path: connPath(ns, "jira", "containers") + "?limit=101"}, 400, "VALIDATION"},
		{"limit not a number", req{path: "/api/v1/search?q=x&limit=ten"}, 400, "VALIDATION"},
		{"search limit negative", req{path: "/api/v1/search?q=x&limit=-5"}, 400, "VALIDATION"},
		{"repeated limit", req{path: items + "?container=PRJA&limit=1&limit=2"}, 400, "VALIDATION"},
		{"unknown parameter", req{path: items + "?container=PRJA&limt=5"}, 400, "VALIDATION"},
		{"bad updatedSince", req{path: items + "?container=PRJA&updatedSince=yesterday"}, 400, "VALIDATION"},
		{"missing container", req{path: items}, 400, "VALIDATION"},
		{"control character in container", req{path: items + "?container=PR%01JA"}, 400, "VALIDATION"},
		{"bad query string", req{path: items + "?container=%zz"}, 400, "VALIDATION"},
		{"bad namespace name", req{path: connPath("Not_A_Namespace", "jira")}, 400, "VALIDATION"},
		{"bad connection name", req{path: connPath(ns, "Not_A_Name")}, 400, "VALIDATION"},
		{"control character in item id", req{path: connPath(ns, "jira", "items", "PRJA\x01")}, 400, "VALIDATION"},
		{"search without q", req{path: "/api/v1/search"}, 400, "VALIDATION"},
		{"search with blank q", req{path: "/api/v1/search?q=%20%20"}, 400, "VALIDATION"},
		{"search q too long", req{path: "/api/v1/search?q=" + strings.Repeat("q", 1001)}, 400, "VALIDATION"},
		{"search bad kind", req{path: "/api/v1/search?q=x&kind=epic"}, 400, "VALIDATION"},
		{"search bad namespace", req{path: "/api/v1/search?q=x&namespaces=a,B_B"}, 400, "VALIDATION"},
		{"search bad connection", req{path: "/api/v1/search?q=x&connections=a/b/c"}, 400, "VALIDATION"},
		{"search bad timeout", req{path: "/api/v1/search?q=x&timeout=forever"}, 400, "VALIDATION"},
		{"search timeout too long", req{path: "/api/v1/search?q=x&timeout=2h"}, 400, "VALIDATION"},
		{"bad X-Tenant-Id", req{path: "/api/v1/search?q=x", header: map[string]string{"X-Tenant-Id": "../etc"}}, 400, "VALIDATION"},
		{"parameter on a route without any", req{path: "/api/v1/connectors?all=true"}, 400, "VALIDATION"},
		{"callback without state", req{path: "/oauth/v1/callback?code=abc"}, 400, "VALIDATION"},
		{"callback with garbage state", req{path: "/oauth/v1/callback?code=abc&state=v1.abc.def"}, 400, "VALIDATION"},
		{"callback with huge state", req{path: "/oauth/v1/callback?code=abc&state=" + strings.Repeat("v", 5000)}, 400, "VALIDATION"},
		{"unknown route", req{path: "/api/v2/connectors"}, 404, "NOT_FOUND"},
		{"unknown subresource", req{path: connPath(ns, "jira", "secrets")}, 404, "NOT_FOUND"},
		{"root", req{path: "/"}, 404, "NOT_FOUND"},
		{"trailing slash", req{path: "/api/v1/connectors/"}, 404, "NOT_FOUND"},
		{"double slash", req{path: "/api/v1//connectors"}, 404, "NOT_FOUND"},
		{"dot segments", req{path: "/api/v1/namespaces/../connectors"}, 404, "NOT_FOUND"},
		{"DELETE", req{method: "DELETE", path: "/api/v1/connectors"}, 404, "NOT_FOUND"},
		{"PUT item", req{method: "PUT", path: connPath(ns, "jira", "items", "PRJA-1")}, 404, "NOT_FOUND"},
		{"PATCH connection", req{method: "PATCH", path: connPath(ns, "jira")}, 404, "NOT_FOUND"},
		{"POST search", req{method: "POST", path: "/api/v1/search?q=x", body: []byte(`{}`)}, 404, "NOT_FOUND"},
		{"made-up method", req{method: "BREW", path: "/api/v1/connectors"}, 404, "NOT_FOUND"},
	}
	for _, c := range cases {
		r := c.r
		r.token = u.token
		a := s.do(t, r)
		if a.status != c.status || a.code() != c.code {
			t.Errorf("%s: %d %s, want %d %s", c.name, a.status, clipBody(a.body), c.status, c.code)
		}
		if a.env["status"] != "error" || a.env["message"] == "" || a.env["requestId"] != a.header.Get("X-Request-Id") {
			t.Errorf("%s: not a complete error envelope: %s", c.name, clipBody(a.body))
		}
	}
	// A method the path has elsewhere is named in Allow.
	if a := s.do(t, req{method: "DELETE", path: items, token: u.token}); a.header.Get("Allow") != "GET, POST" {
		t.Errorf("DELETE items: Allow %q, want GET, POST", a.header.Get("Allow"))
	}

	// X-Request-Id is honoured when sane and replaced when not.
	a := s.do(t, req{path: "/api/v1/search?q=", token: u.token, header: map[string]string{"X-Request-Id": "trace-42.a:b_c"}})
	if a.header.Get("X-Request-Id") != "trace-42.a:b_c" || a.env["requestId"] != "trace-42.a:b_c" {
		t.Errorf("X-Request-Id not honoured: header %q, envelope %v", a.header.Get("X-Request-Id"), a.env["requestId"])
	}
	if !strings.Contains(logs.String(), `"requestId":"trace-42.a:b_c"`) {
		t.Error("the request id is not in the access log")
	}
	a = s.do(t, req{path: "/api/v1/search?q=", token: u.token, header: map[string]string{"X-Request-Id": "has spaces <and> tags"}})
	if id := a.header.Get("X-Request-Id"); id == "" || strings.ContainsAny(id, " <>") {
		t.Errorf("a bad X-Request-Id was echoed: %q", id)
	}
	assertNoLeaks(t)
}

func clipBody(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}
