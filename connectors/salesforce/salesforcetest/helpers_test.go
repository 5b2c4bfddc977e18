package salesforcetest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/unified-connectors/connector-operator/connectors/salesforce/salesforcetest"
)

const (
	testClientID = "3MVG9test.client"
	testSecret   = "test-consumer-secret"
	v            = salesforcetest.LatestAPIVersion
)

// org is a started fake with a connected app and a session for the default user.
type org struct {
	*salesforcetest.Server
	t       *testing.T
	access  string
	refresh string
}

func newOrg(t *testing.T) *org {
	t.Helper()
	s := salesforcetest.NewServer()
	t.Cleanup(s.Close)
	s.AddClient(salesforcetest.Client{ID: testClientID, Secret: testSecret})
	access, refresh := s.IssueTokens(testClientID, salesforcetest.DefaultUser().ID)
	return &org{Server: s, t: t, access: access, refresh: refresh}
}

// answer is an HTTP answer read whole.
type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(a.body, v); err != nil {
		t.Fatalf("decoding %s: %v", a.body, err)
	}
}

// errors decodes the REST API's error array.
func (a answer) errors(t *testing.T) []map[string]any {
	t.Helper()
	var e []map[string]any
	a.json(t, &e)
	if len(e) == 0 {
		t.Fatalf("empty error array: %s", a.body)
	}
	return e
}

// wantError checks status and the first error's code.
func (a answer) wantError(t *testing.T, status int, code string) string {
	t.Helper()
	if a.status != status {
		t.Fatalf("status = %d, want %d: %s", a.status, status, a.body)
	}
	e := a.errors(t)
	if e[0]["errorCode"] != code {
		t.Fatalf("errorCode = %v, want %s: %s", e[0]["errorCode"], code, a.body)
	}
	msg, _ := e[0]["message"].(string)
	return msg
}

func decodeJSON(resp *http.Response, v any) error {
	defer func() { _ = resp.Body.Close() }()
	return json.NewDecoder(resp.Body).Decode(v)
}

func do(t *testing.T, req *http.Request) answer {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, b}
}

// call sends method path (relative to the org root) with the org's session.
func (o *org) call(method, path string, body string) answer {
	o.t.Helper()
	return o.callAs(o.access, method, path, body)
}

func (o *org) callAs(token, method, path, body string) answer {
	o.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, o.URL()+path, rd)
	if err != nil {
		o.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return do(o.t, req)
}

func (o *org) get(path string) answer { return o.call(http.MethodGet, path, "") }

func data(path string) string { return salesforcetest.APIPath(v) + path }

// soql runs a query (resource "query" or "queryAll").
func (o *org) soql(resource, q string) answer {
	o.t.Helper()
	return o.get(data("/" + resource + "?q=" + url.QueryEscape(q)))
}

// queryResult is the body of /query.
type queryResult struct {
	TotalSize      int              `json:"totalSize"`
	Done           bool             `json:"done"`
	NextRecordsURL string           `json:"nextRecordsUrl"`
	Records        []map[string]any `json:"records"`
}

// mustQuery runs q and returns its first batch.
func (o *org) mustQuery(resource, q string) queryResult {
	o.t.Helper()
	a := o.soql(resource, q)
	if a.status != http.StatusOK {
		o.t.Fatalf("%s %q: %d %s", resource, q, a.status, a.body)
	}
	var r queryResult
	a.json(o.t, &r)
	return r
}

// queryAllPages follows nextRecordsUrl to the end and returns every record.
func (o *org) queryAllPages(resource, q string) []map[string]any {
	o.t.Helper()
	r := o.mustQuery(resource, q)
	out := r.Records
	for !r.Done {
		a := o.get(r.NextRecordsURL)
		if a.status != http.StatusOK {
			o.t.Fatalf("GET %s: %d %s", r.NextRecordsURL, a.status, a.body)
		}
		r = queryResult{}
		a.json(o.t, &r)
		out = append(out, r.Records...)
	}
	return out
}

func ids(records []map[string]any) []string {
	out := make([]string, len(records))
	for i, r := range records {
		out[i], _ = r["Id"].(string)
	}
	return out
}

// form posts an application/x-www-form-urlencoded body to path without a session.
func (o *org) form(path string, vals url.Values) answer {
	o.t.Helper()
	req, err := http.NewRequest(http.MethodPost, o.URL()+path, strings.NewReader(vals.Encode()))
	if err != nil {
		o.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return do(o.t, req)
}

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
