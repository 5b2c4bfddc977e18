// Package vendorspec loads the vendors' own OpenAPI documents from shared/vendor-specs
// and checks HTTP exchanges against them, so that the connectors and the fake vendor are
// held to the vendor's contract rather than to our memory of it. It is meant for tests.
//
// The documents live outside the module, in shared/vendor-specs beside the repository
// (../shared/vendor-specs from the module root); VENDOR_SPECS_DIR overrides the location.
package vendorspec

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// Document file names in the vendor-specs directory.
const (
	JiraCloudV3File       = "jira-cloud-platform-v3.openapi.json"
	ConfluenceCloudV2File = "confluence-cloud-v2.openapi.json"
)

// EnvDir names the environment variable that overrides where the documents are.
const EnvDir = "VENDOR_SPECS_DIR"

// Dir returns the vendor-specs directory: $VENDOR_SPECS_DIR, or shared/vendor-specs
// beside the module root found by walking up from the working directory to go.mod.
func Dir() (string, error) {
	if d := os.Getenv(EnvDir); d != "" {
		return d, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			specs := filepath.Join(filepath.Dir(d), "shared", "vendor-specs")
			if _, err := os.Stat(specs); err != nil {
				return "", fmt.Errorf("vendor specs not found at %s (set %s): %w", specs, EnvDir, err)
			}
			return specs, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod above %s (set %s)", wd, EnvDir)
		}
	}
}

// Spec is one loaded vendor document and a router over its operations.
type Spec struct {
	// Doc is the document as loaded.
	Doc *openapi3.T

	router routers.Router
	server *url.URL // the document's first server, variables set to their defaults
}

var (
	cacheMu sync.Mutex
	cache   = map[string]*Spec{}
)

// Jira returns the Jira Cloud platform REST API v3 document, loaded once per process
// (it is 2.4 MB and takes about a second to load).
func Jira() (*Spec, error) { return Load(JiraCloudV3File) }

// ConfluenceV2 returns the Confluence Cloud REST API v2 document, loaded once per process.
func ConfluenceV2() (*Spec, error) { return Load(ConfluenceCloudV2File) }

// Load returns the document file from Dir, loaded once per process.
func Load(file string) (*Spec, error) {
	cacheMu.Lock()
	defer cacheMu.Unlock()
	if s, ok := cache[file]; ok {
		return s, nil
	}
	dir, err := Dir()
	if err != nil {
		return nil, err
	}
	doc, err := openapi3.NewLoader().LoadFromFile(filepath.Join(dir, file))
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", file, err)
	}
	// Not doc.Validate: Atlassian's documents break a few rules (conflicting path
	// templates, defaults outside their enums) in operations we never call. The
	// gorilla/mux router does not insist on them.
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("route %s: %w", file, err)
	}
	if len(doc.Servers) == 0 {
		return nil, fmt.Errorf("%s declares no server", file)
	}
	srv := doc.Servers[0]
	raw := srv.URL
	for name, v := range srv.Variables {
		raw = strings.ReplaceAll(raw, "{"+name+"}", v.Default)
	}
	server, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s server URL: %w", file, err)
	}
	s := &Spec{Doc: doc, router: router, server: server}
	cache[file] = s
	return s, nil
}

// gatewayPrefix is the OAuth2 gateway's path prefix, which the documents do not know.
var gatewayPrefix = regexp.MustCompile(`^/ex/(jira|confluence)/[^/]+`)

// options ignore the documents' security requirements: they name Atlassian's schemes,
// which the connectors meet, but kin-openapi cannot check Basic or Bearer by itself.
var options = func() *openapi3filter.Options {
	o := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}
	o.WithCustomSchemaErrorFunc(shortSchemaError)
	return o
}()

// shortSchemaError says where and why a value broke its schema, without kin-openapi's
// default dump of the whole schema and value (Jira's User schema alone is 4 kB).
func shortSchemaError(err *openapi3.SchemaError) string {
	if err.Reason == "" {
		return "" // fall back to the default message
	}
	return fmt.Sprintf("at /%s: %s", strings.Join(err.JSONPointer(), "/"), err.Reason)
}

// ValidateRequest finds the operation req addresses (as if it were sent to the
// document's server, and without an OAuth2 gateway prefix) and validates req against it.
// req's body is read and restored. The returned input is for ValidateResponse.
func (s *Spec) ValidateRequest(ctx context.Context, req *http.Request) (*openapi3filter.RequestValidationInput, error) {
	body, err := readAndRestore(&req.Body)
	if err != nil {
		return nil, err
	}
	routed := req.Clone(ctx)
	routed.URL.Scheme, routed.URL.Host, routed.Host = s.server.Scheme, s.server.Host, s.server.Host
	routed.URL.Path = gatewayPrefix.ReplaceAllString(req.URL.Path, "")
	routed.URL.RawPath = ""
	routed.Body = io.NopCloser(bytes.NewReader(body))
	route, params, err := s.router.FindRoute(routed)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
	}
	in := &openapi3filter.RequestValidationInput{Request: routed, PathParams: params, Route: route, Options: options}
	if err := unknownQueryParameters(route.PathItem, route.Operation, routed.URL.Query()); err != nil {
		return in, fmt.Errorf("request %s (%s): %w", route.Operation.OperationID, req.URL.Path, err)
	}
	if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
		return in, fmt.Errorf("request %s (%s): %w", route.Operation.OperationID, req.URL.Path, err)
	}
	return in, nil
}

// unknownQueryParameters fails on a query parameter the operation does not declare:
// kin-openapi ignores those, but a vendor may reject them or, worse, silently ignore a
// misspelt filter.
func unknownQueryParameters(item *openapi3.PathItem, op *openapi3.Operation, query url.Values) error {
	declared := map[string]bool{}
	for _, params := range []openapi3.Parameters{item.Parameters, op.Parameters} {
		for _, p := range params {
			if p.Value != nil && p.Value.In == openapi3.ParameterInQuery {
				declared[p.Value.Name] = true
			}
		}
	}
	var unknown []string
	for name := range query {
		if !declared[name] {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("undeclared query parameter(s) %s", strings.Join(unknown, ", "))
	}
	return nil
}

// ValidateResponse validates an answer to the request of in. Statuses the operation
// does not document are accepted, as openapi3filter does by default.
func (s *Spec) ValidateResponse(ctx context.Context, in *openapi3filter.RequestValidationInput, status int, header http.Header, body []byte) error {
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: status, Header: header, Options: options,
	}
	out.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		return fmt.Errorf("response %d of %s: %w", status, in.Route.Operation.OperationID, err)
	}
	return nil
}

// ValidateBody validates a JSON body against the schema of operationID's answer with
// status (application/json), for answers to paths the document does not have, such as
// Jira Data Center's /rest/api/2/myself against Cloud's getCurrentUser.
func (s *Spec) ValidateBody(operationID string, status int, body []byte) error {
	op := s.Operation(operationID)
	if op == nil {
		return fmt.Errorf("no operation %q", operationID)
	}
	resp := op.Responses.Status(status)
	if resp == nil || resp.Value == nil {
		return fmt.Errorf("%s documents no %d answer", operationID, status)
	}
	mt := resp.Value.Content.Get("application/json")
	if mt == nil || mt.Schema == nil || mt.Schema.Value == nil {
		return fmt.Errorf("%s documents no JSON body for %d", operationID, status)
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return err
	}
	return mt.Schema.Value.VisitJSON(v, openapi3.SetSchemaErrorMessageCustomizer(shortSchemaError))
}

// Operation returns the operation with the id, or nil.
func (s *Spec) Operation(operationID string) *openapi3.Operation {
	for _, item := range s.Doc.Paths.Map() {
		for _, op := range item.Operations() {
			if op.OperationID == operationID {
				return op
			}
		}
	}
	return nil
}

// Doer sends requests through Next and checks every exchange against Spec: the request
// before it is sent, the answer after it arrives. Violations are collected, not
// returned, so that the code under test sees the real answer. It is safe for
// concurrent use.
type Doer struct {
	Spec *Spec
	// Next sends the requests; nil means http.DefaultClient.
	Next interface {
		Do(*http.Request) (*http.Response, error)
	}

	tally
}

// Do validates req, sends it, and validates the answer.
func (d *Doer) Do(req *http.Request) (*http.Response, error) {
	in, reqErr := d.Spec.ValidateRequest(req.Context(), req)
	next := d.Next
	if next == nil {
		next = http.DefaultClient
	}
	resp, err := next.Do(req)
	if err != nil {
		d.record(reqErr)
		return resp, err
	}
	var respErr error
	if in != nil {
		body, rerr := readAndRestore(&resp.Body)
		if rerr != nil {
			respErr = rerr
		} else {
			respErr = d.Spec.ValidateResponse(req.Context(), in, resp.StatusCode, resp.Header, body)
		}
	}
	d.record(errors.Join(reqErr, respErr))
	return resp, nil
}

// tally counts checked exchanges and collects their contract violations.
type tally struct {
	mu      sync.Mutex
	checked int
	errs    []error
}

func (t *tally) record(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.checked++
	if err != nil {
		t.errs = append(t.errs, err)
	}
}

// Checked is how many exchanges were checked.
func (t *tally) Checked() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.checked
}

// Errors returns the violations found so far.
func (t *tally) Errors() []error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]error(nil), t.errs...)
}

// readAndRestore reads *body and replaces it with a reader over the same bytes.
func readAndRestore(body *io.ReadCloser) ([]byte, error) {
	if *body == nil || *body == http.NoBody {
		return nil, nil
	}
	b, err := io.ReadAll(*body)
	_ = (*body).Close()
	*body = io.NopCloser(bytes.NewReader(b))
	return b, err
}
