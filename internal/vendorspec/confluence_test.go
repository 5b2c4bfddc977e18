package vendorspec_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/unified-connectors/connector-operator/internal/vendorspec"
)

const pageBody = `{"spaceId":"1","status":"current","title":"T","body":%s}`

// The published createPage body refuses every value (oneOf of two schemas that match
// anything); the contract copy fixes that and leaves ConfluenceV2 as published.
func TestConfluenceV2ContractErratum(t *testing.T) {
	published, err := vendorspec.ConfluenceV2()
	if err != nil {
		t.Fatal(err)
	}
	fixed, err := vendorspec.ConfluenceV2Contract()
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{
		`{"representation":"storage","value":"<p>x</p>"}`,
		`{"storage":{"representation":"storage","value":"<p>x</p>"}}`,
	} {
		req := func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:1/wiki/api/v2/pages", strings.NewReader(strings.Replace(pageBody, "%s", body, 1)))
			r.Header.Set("Content-Type", "application/json")
			return r
		}
		if _, err := published.ValidateRequest(t.Context(), req()); err == nil || !strings.Contains(err.Error(), "oneOf") {
			t.Errorf("published document: %v, want the oneOf refusal the erratum is for", err)
		}
		if _, err := fixed.ValidateRequest(t.Context(), req()); err != nil {
			t.Errorf("contract: body %s refused: %v", body, err)
		}
	}
	bad := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:1/wiki/api/v2/pages", strings.NewReader(`{"title":"no space"}`))
	bad.Header.Set("Content-Type", "application/json")
	if _, err := fixed.ValidateRequest(t.Context(), bad); err == nil {
		t.Error("contract accepted a page without spaceId")
	}
}

// TestConfluenceDoerRoutes sends requests for every kind of path through the checker and
// checks which it calls violations.
func TestConfluenceDoerRoutes(t *testing.T) {
	answers := map[string]string{
		"/wiki/api/v2/spaces":         `{"results":[{"id":"1","key":"A","name":"A","type":"global","status":"current"}],"_links":{}}`,
		"/wiki/rest/api/search":       `{"results":[{"content":{"id":"1","type":"page","title":"T"},"excerpt":"e","url":"/spaces/A/pages/1","lastModified":"2024-01-31T10:00:00.000Z"}],"start":0,"limit":25,"size":1,"_links":{"next":"/rest/api/search?cursor=x"}}`,
		"/rest/api/space":             `{"results":[{"id":1,"key":"A","name":"A","type":"global"}],"start":0,"limit":25,"size":1,"_links":{}}`,
		"/wiki/rest/api/user/current": `{"type":"known","accountId":"a","displayName":"A"}`,
		"/rest/api/content/12":        `{"id":"12","type":"page","title":"T","version":{"when":"2024-01-31T21:00:00.000+11:00","number":2}}`,
		"/rest/api/content/search":    `{"results":[{"id":"12","type":"page","title":"T","version":{"when":"yesterday","number":2}}],"start":0,"limit":25,"size":1,"_links":{}}`,
		"/rest/api/content/scan":      `{"results":[{"id":"12","type":"page","title":"T"}],"cursor":"content:false:null","nextCursor":"content:false:12","limit":1,"size":1,"_links":{"next":"/rest/api/content/scan?cursor=content%3Afalse%3A12&limit=1"}}`,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := strings.TrimPrefix(r.URL.Path, "/ex/confluence/cloud-1")
		body, ok := answers[path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	}))
	defer srv.Close()

	for _, tc := range []struct {
		method, path string
		wantErr      string // "" for none
	}{
		{"GET", "/wiki/api/v2/spaces?keys=A&limit=250", ""},
		{"GET", "/ex/confluence/cloud-1/wiki/api/v2/spaces?keys=A", ""},
		{"GET", "/wiki/api/v2/spaces?limit=251", "limit"},
		{"GET", "/wiki/api/v2/spaces?key=A", "undeclared query parameter(s) key"},
		{"GET", "/wiki/rest/api/search?cql=type%3Dpage&limit=10&cursor=x&expand=content.version", ""},
		{"GET", "/wiki/rest/api/search?cql=type%3Dpage&next=true", "undeclared query parameter next"},
		{"GET", "/wiki/rest/api/search?limit=10", "missing required parameter cql"},
		{"GET", "/wiki/rest/api/user/current", ""},
		{"GET", "/rest/api/space?start=0&limit=25", ""},
		{"GET", "/rest/api/content/12?expand=version", ""},
		{"GET", "/rest/api/content/search?cql=x", "results[0]: content.version.when = \"yesterday\" is not an RFC 3339 time"},
		{"GET", "/rest/api/content/scan?spaceKey=A&type=page&limit=1&cursor=content%3Afalse%3A11", ""},
		{"GET", "/rest/api/content/scan?spaceKey=A&start=200", "undeclared query parameter start"},
		{"GET", "/wiki/rest/api/space", "no Confluence operation"},
		{"DELETE", "/rest/api/content/12", "no Confluence operation"},
		{"GET", "/wiki/api/v2/no-such-thing", "no matching operation"},
	} {
		d, err := vendorspec.NewConfluenceDoer(http.DefaultClient)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequestWithContext(t.Context(), tc.method, srv.URL+tc.path, nil)
		resp, err := d.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		_ = resp.Body.Close()
		errs := d.Errors()
		switch {
		case d.Checked() != 1:
			t.Errorf("%s %s: checked %d exchanges, want 1", tc.method, tc.path, d.Checked())
		case tc.wantErr == "" && len(errs) > 0:
			t.Errorf("%s %s: unexpected violation %v", tc.method, tc.path, errs)
		case tc.wantErr != "" && (len(errs) != 1 || !strings.Contains(errs[0].Error(), tc.wantErr)):
			t.Errorf("%s %s: violations %v, want one mentioning %q", tc.method, tc.path, errs, tc.wantErr)
		}
	}
}

func TestConfluenceDoerChecksSearchShape(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		// No excerpt, a content without a title, and a next link that leaves /wiki.
		_, _ = w.Write([]byte(`{"results":[{"content":{"id":"1","type":"page"},"url":"/x","lastModified":"2024-01-31T10:00:00Z"}],"start":0,"limit":1,"size":1,"_links":{"next":"https://evil.example/rest/api/search"}}`))
	}))
	defer srv.Close()
	d, err := vendorspec.NewConfluenceDoer(nil)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/wiki/rest/api/search?cql=x", nil)
	resp, err := d.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	errs := d.Errors()
	if len(errs) != 1 {
		t.Fatalf("violations %v, want one", errs)
	}
	for _, want := range []string{"content.title is not a string", "excerpt is not a string", "not relative to /wiki"} {
		if !strings.Contains(errs[0].Error(), want) {
			t.Errorf("violation %q does not mention %q", errs[0], want)
		}
	}
}
