package jira_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/connectors/atlassian"
	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
	"github.com/unified-connectors/connector-operator/internal/vendorspec"
)

const (
	email    = "alice@example.com"
	apiToken = "s3cret-jira-token-71d0"
	pat      = "s3cret-jira-pat-c3e9"

	laEmail    = "larry@example.com"
	laAPIToken = "s3cret-jira-token-la-5e21"
)

// alice works in Sydney (UTC+10/+11), larry in Los Angeles (UTC-8/-7): Jira reads date
// strings in their zones, so a connector sending UTC dates misses or repeats issues.
var (
	alice = atlassiantest.Account{
		ID: "5b10a2844c20165700ede21g", DisplayName: "Alice Example", Email: email,
		TimeZone: "Australia/Sydney", APIToken: apiToken, PAT: pat,
	}
	larry = atlassiantest.Account{
		ID: "5b10a2844c20165700ede21h", DisplayName: "Larry Example", Email: laEmail,
		TimeZone: "America/Los_Angeles", APIToken: laAPIToken,
	}
)

// secrets are every credential a test uses; no error text may hold one.
var secrets = []string{apiToken, pat, laAPIToken}

// seedStart is where seeded update times begin: 14:00 UTC on 5 October 2024. Sydney's
// clocks went forward two hours later (16:00 UTC), inside the seeded range, so the
// offsets Jira renders for alice change in the middle of a listing.
var seedStart = time.Date(2024, 10, 5, 14, 0, 0, 0, time.UTC)

func init() {
	// Jira writes date-times with a colon-less offset ("2021-01-18T23:45:00.000+0000"),
	// as the examples in its own OpenAPI document do, while kin-openapi checks the
	// document's "date-time" format as strict RFC 3339. Accept both spellings, and
	// nothing else, so that the real wire format validates.
	openapi3.DefineStringFormatValidator("date-time", openapi3.NewRegexpFormatValidator(
		`^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|[+-][0-9]{2}:?[0-9]{2})$`))
}

func newFake(t *testing.T) *atlassiantest.Server {
	t.Helper()
	fake := atlassiantest.NewServer()
	t.Cleanup(fake.Close)
	fake.AddAccount(alice)
	fake.AddAccount(larry)
	return fake
}

// newSeededFake is newFake with projects PRJA… of issues (see atlassiantest.JiraSeed).
func newSeededFake(t *testing.T, projects, issues, comments int) *atlassiantest.Server {
	t.Helper()
	fake := newFake(t)
	fake.SeedJira(atlassiantest.JiraSeed{Projects: projects, IssuesPerProject: issues, CommentsPerIssue: comments, Seed: 42, Start: seedStart})
	return fake
}

func apiTokenCreds(token string) connectors.Credentials {
	return atlassian.APITokenCredentials(email, token)
}

// cloudConfig is alice (or larry) on the fake through an API token.
func cloudConfig(fake *atlassiantest.Server, a atlassiantest.Account) connectors.Config {
	return connectors.Config{BaseURL: fake.URL(), Credentials: atlassian.APITokenCredentials(a.Email, a.APIToken)}
}

// dcConfig is alice on the fake as Jira Data Center, with her PAT as Bearer.
func dcConfig(fake *atlassiantest.Server) connectors.Config {
	return connectors.Config{BaseURL: fake.URL(), Connector: atlassian.ConnectorSpec(atlassian.DeploymentDataCenter, "", ""),
		Credentials: atlassian.PATCredentials(pat)}
}

// gatewayConfig is alice on Cloud through the fake's OAuth2 gateway, with her PAT
// standing in for an access token.
func gatewayConfig(fake *atlassiantest.Server) connectors.Config {
	return connectors.Config{BaseURL: "https://acme.atlassian.net", Connector: atlassian.ConnectorSpec("", fake.CloudID(), fake.URL()),
		Credentials: oauth2Creds(pat)}
}

// oauth2Creds are oauth2 Credentials as the operator hands them over: the access token.
func oauth2Creds(token string) connectors.Credentials {
	return connectors.Credentials{Method: connectors.AuthOAuth2, Token: token}
}

// isDataCenter reports whether cfg's Connector says datacenter.
func isDataCenter(cfg connectors.Config) bool {
	return cfg.Connector != nil && cfg.Connector.Deployment == atlassian.DeploymentDataCenter
}

// newClient builds a Jira client for cfg through the registry. Unless cfg.HTTP is set,
// every exchange goes through a contract checker for the deployment (see
// newContractChecker), and the test fails at its end on any violation.
func newClient(t *testing.T, cfg connectors.Config) connectors.Client {
	t.Helper()
	p, ok := connectors.Get("jira")
	if !ok {
		t.Fatal(`provider "jira" is not registered`)
	}
	if _, err := p.Validate(cfg); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if cfg.HTTP == nil {
		cfg.HTTP = newContractChecker(t, isDataCenter(cfg), http.DefaultClient)
	}
	c, err := p.NewClient(cfg)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return c
}

// checker is a Doer that checks every exchange against the vendor's contract.
type checker interface {
	connectors.Doer
	// Checked counts the exchanges checked; Errors lists the violations.
	Checked() int
	Errors() []error
}

// newContractChecker returns a checker for Jira Cloud (the v3 OpenAPI document) or
// Data Center (dcChecker) that sends through next, and fails t at its end on any
// violation: an unknown path, method or query parameter, a request or answer that
// breaks its schema, or a call to the removed /rest/api/3/search.
func newContractChecker(t testing.TB, dataCenter bool, next connectors.Doer) checker {
	t.Helper()
	c := contractChecker(t, dataCenter, next)
	t.Cleanup(func() {
		for _, err := range c.Errors() {
			t.Errorf("contract violation: %v", err)
		}
	})
	return c
}

// contractChecker is newContractChecker without failing t: the caller reads Errors.
func contractChecker(t testing.TB, dataCenter bool, next connectors.Doer) checker {
	t.Helper()
	spec, err := vendorspec.Jira()
	if err != nil {
		t.Fatalf("load the Jira OpenAPI document: %v", err)
	}
	if dataCenter {
		return &dcChecker{spec: spec, next: next}
	}
	return &cloudChecker{Doer: vendorspec.Doer{Spec: spec, Next: next}}
}

// gatewayPrefix is the OAuth2 gateway's path prefix.
var gatewayPrefix = regexp.MustCompile(`^/ex/jira/[^/]+`)

// cloudChecker is vendorspec.Doer, which also refuses the removed issue search: the
// document still describes it (deprecated), but Jira Cloud answers 410 Gone.
type cloudChecker struct {
	vendorspec.Doer
	mu      sync.Mutex
	removed []error
}

func (c *cloudChecker) Do(req *http.Request) (*http.Response, error) {
	if p := gatewayPrefix.ReplaceAllString(req.URL.Path, ""); p == "/rest/api/3/search" || p == "/rest/api/2/search" {
		c.mu.Lock()
		c.removed = append(c.removed, fmt.Errorf("%s %s: removed from Jira Cloud; use /rest/api/3/search/jql", req.Method, p))
		c.mu.Unlock()
	}
	return c.Doer.Do(req)
}

func (c *cloudChecker) Errors() []error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append(c.Doer.Errors(), c.removed...)
}

// dcRoutes are the Data Center calls the connector may make, with the Cloud v3 path
// whose operation has the same contract: Data Center's REST v2 is the ancestor of
// Cloud's v2/v3, and the old v3 search operation (removed on Cloud) still documents
// Data Center's startAt/total search.
var dcRoutes = []struct {
	method string
	path   *regexp.Regexp
}{
	{http.MethodGet, regexp.MustCompile(`^/rest/api/2/myself$`)},
	{http.MethodGet, regexp.MustCompile(`^/rest/api/2/project$`)},
	{http.MethodPost, regexp.MustCompile(`^/rest/api/2/search$`)},
	{http.MethodGet, regexp.MustCompile(`^/rest/api/2/issue/[^/]+$`)},
	{http.MethodGet, regexp.MustCompile(`^/rest/api/2/issue/[^/]+/comment$`)},
	{http.MethodPost, regexp.MustCompile(`^/rest/api/2/issue$`)},
}

// dcChecker checks Jira Data Center exchanges, which the Cloud document does not
// describe, by hand: the call must be one of dcRoutes; request and answer must fit the
// Cloud operation at the same path under /rest/api/3 (unknown query parameters
// included); and what differs on Data Center is checked explicitly: search pages by
// startAt and total (no nextPageToken), descriptions and comment bodies are strings.
type dcChecker struct {
	spec *vendorspec.Spec
	next connectors.Doer

	mu      sync.Mutex
	checked int
	errs    []error
}

func (d *dcChecker) Do(req *http.Request) (*http.Response, error) {
	errs := d.checkRequest(req)
	body, _ := readAll(&req.Body)
	mirror := req.Clone(req.Context())
	mirror.URL.Path = strings.Replace(req.URL.Path, "/rest/api/2/", "/rest/api/3/", 1)
	mirror.URL.RawPath = ""
	mirror.Body = io.NopCloser(bytes.NewReader(body))
	input, err := d.spec.ValidateRequest(req.Context(), mirror)
	errs = append(errs, err)

	resp, err := d.next.Do(req)
	if err != nil {
		d.record(errs...)
		return resp, err
	}
	answer, err := readAll(&resp.Body)
	errs = append(errs, err)
	if input != nil {
		errs = append(errs, d.spec.ValidateResponse(req.Context(), input, resp.StatusCode, resp.Header, answer))
	}
	if resp.StatusCode == http.StatusOK {
		errs = append(errs, checkDCAnswer(req, answer))
	}
	d.record(errs...)
	return resp, nil
}

// checkRequest fails a call outside dcRoutes, and a search that pages like Cloud.
func (d *dcChecker) checkRequest(req *http.Request) []error {
	known := false
	for _, r := range dcRoutes {
		known = known || (r.method == req.Method && r.path.MatchString(req.URL.Path))
	}
	if !known {
		return []error{fmt.Errorf("%s %s is not a Jira Data Center call the connector may make", req.Method, req.URL.Path)}
	}
	if req.URL.Path == "/rest/api/2/search" {
		body, _ := readAll(&req.Body)
		var b map[string]any
		if err := json.Unmarshal(body, &b); err != nil {
			return []error{fmt.Errorf("search body: %v", err)}
		}
		if _, ok := b["nextPageToken"]; ok {
			return []error{errors.New("Data Center search sent a nextPageToken; it pages by startAt")}
		}
	}
	return nil
}

// checkDCAnswer checks what Data Center answers differently from Cloud.
func checkDCAnswer(req *http.Request, answer []byte) error {
	var v struct {
		StartAt       *int    `json:"startAt"`
		Total         *int    `json:"total"`
		NextPageToken *string `json:"nextPageToken"`
		Issues        []struct {
			Fields map[string]json.RawMessage `json:"fields"`
		} `json:"issues"`
		Fields   map[string]json.RawMessage `json:"fields"`
		Comments []struct {
			Body json.RawMessage `json:"body"`
		} `json:"comments"`
	}
	if !strings.HasSuffix(req.URL.Path, "/project") {
		if err := json.Unmarshal(answer, &v); err != nil {
			return fmt.Errorf("%s: %v", req.URL.Path, err)
		}
	}
	stringOrNull := func(what string, raw json.RawMessage) error {
		if len(raw) > 0 && raw[0] != '"' && string(raw) != "null" {
			return fmt.Errorf("%s: %s is not a string on Data Center: %.40s", req.URL.Path, what, raw)
		}
		return nil
	}
	switch {
	case req.URL.Path == "/rest/api/2/search":
		if v.StartAt == nil || v.Total == nil || v.NextPageToken != nil {
			return fmt.Errorf("%s: Data Center search answers startAt and total, never a nextPageToken", req.URL.Path)
		}
		for _, is := range v.Issues {
			if err := stringOrNull("description", is.Fields["description"]); err != nil {
				return err
			}
		}
	case strings.HasSuffix(req.URL.Path, "/comment"):
		for _, c := range v.Comments {
			if err := stringOrNull("comment body", c.Body); err != nil {
				return err
			}
		}
	case strings.HasPrefix(req.URL.Path, "/rest/api/2/issue/"):
		return stringOrNull("description", v.Fields["description"])
	}
	return nil
}

func (d *dcChecker) record(errs ...error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.checked++
	if err := errors.Join(errs...); err != nil {
		d.errs = append(d.errs, err)
	}
}

func (d *dcChecker) Checked() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.checked
}

func (d *dcChecker) Errors() []error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]error(nil), d.errs...)
}

// readAll reads *body and puts back a reader over the same bytes.
func readAll(body *io.ReadCloser) ([]byte, error) {
	if *body == nil || *body == http.NoBody {
		return nil, nil
	}
	b, err := io.ReadAll(*body)
	_ = (*body).Close()
	*body = io.NopCloser(bytes.NewReader(b))
	return b, err
}

// assertNoSecrets fails when the error text holds a credential or any of extra (query
// text that must stay out of errors).
func assertNoSecrets(t *testing.T, err error, extra ...string) {
	t.Helper()
	for _, text := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
		for _, s := range append(append([]string(nil), secrets...), extra...) {
			if strings.Contains(text, s) {
				t.Errorf("error text %q contains %q", text, s)
			}
		}
	}
}

// wantKind fails unless err is a *connectors.Error of kind.
func wantKind(t *testing.T, err error, kind connectors.ErrorKind) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %s", kind)
	}
	if k := connectors.KindOf(err); k != kind {
		t.Fatalf("error %v has kind %q, want %q", err, k, kind)
	}
	assertNoSecrets(t, err)
}

// collect follows a listing to its end, failing after max pages.
func collect[T any](t *testing.T, max int, page func(cursor string) (connectors.Page[T], error)) []T {
	t.Helper()
	var all []T
	cursor := ""
	for range max {
		p, err := page(cursor)
		if err != nil {
			t.Fatalf("page after cursor %q: %v", cursor, err)
		}
		all = append(all, p.Items...)
		if p.NextCursor == "" {
			return all
		}
		if p.NextCursor == cursor {
			t.Fatalf("cursor did not move: %q", cursor)
		}
		cursor = p.NextCursor
	}
	t.Fatalf("listing did not end after %d pages", max)
	return nil
}
