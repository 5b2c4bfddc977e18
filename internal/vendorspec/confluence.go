package vendorspec

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// The Confluence contract spans three APIs a connector uses: the v2 REST API, which
// Atlassian's OpenAPI document describes (server root /wiki/api/v2), and two the
// document does not cover, kept here by hand from shared/vendor-specs/README.md and
// Atlassian's reference: Cloud's v1 search and current user (/wiki/rest/api/…), and Data
// Center's REST API (/rest/api/…). ConfluenceDoer checks each exchange against the one it
// belongs to, and anything else is a violation.

var (
	confluenceOnce sync.Once
	confluenceSpec *Spec
	confluenceErr  error
)

// ConfluenceV2Contract returns the Confluence Cloud v2 document with its errata fixed
// (see fixConfluenceV2), loaded once per process. It is a copy of its own: the document
// ConfluenceV2 returns is left as published.
func ConfluenceV2Contract() (*Spec, error) {
	confluenceOnce.Do(func() {
		confluenceSpec, confluenceErr = loadConfluenceV2Contract()
	})
	return confluenceSpec, confluenceErr
}

func loadConfluenceV2Contract() (*Spec, error) {
	dir, err := Dir()
	if err != nil {
		return nil, err
	}
	doc, err := openapi3.NewLoader().LoadFromFile(filepath.Join(dir, ConfluenceCloudV2File))
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", ConfluenceCloudV2File, err)
	}
	if err := fixConfluenceV2(doc); err != nil {
		return nil, err
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("route %s: %w", ConfluenceCloudV2File, err)
	}
	// The server is https://{your-domain}/wiki/api/v2; ValidateRequest sends every
	// request to its host, and the router matches the /wiki/api/v2 prefix of the path, so
	// a request for /wiki/api/v2/pages finds getPages and one for /wiki/rest/api/search
	// finds nothing.
	srv := doc.Servers[0]
	raw := srv.URL
	for name, v := range srv.Variables {
		raw = strings.ReplaceAll(raw, "{"+name+"}", v.Default)
	}
	server, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s server URL: %w", ConfluenceCloudV2File, err)
	}
	return &Spec{Doc: doc, router: router, server: server}, nil
}

// fixConfluenceV2 corrects what in the published document refuses valid requests:
//
//   - createPage's body.body is oneOf [PageBodyWrite, PageNestedBodyWrite], two object
//     schemas with no required property, so every value matches both and oneOf refuses
//     them all. Confluence accepts either shape; anyOf says so.
func fixConfluenceV2(doc *openapi3.T) error {
	item := doc.Paths.Value("/pages")
	if item == nil || item.Post == nil || item.Post.RequestBody == nil || item.Post.RequestBody.Value == nil {
		return errors.New("confluence v2: createPage has no request body; the erratum no longer applies")
	}
	mt := item.Post.RequestBody.Value.Content.Get("application/json")
	if mt == nil || mt.Schema == nil || mt.Schema.Value == nil {
		return errors.New("confluence v2: createPage has no JSON body schema")
	}
	body := mt.Schema.Value.Properties["body"]
	if body == nil || body.Value == nil || len(body.Value.OneOf) != 2 {
		return errors.New("confluence v2: createPage body is no longer a oneOf of two; review the erratum")
	}
	// A fresh schema: the loader may share body.Value with other operations.
	fixed := *body.Value
	fixed.AnyOf, fixed.OneOf = fixed.OneOf, nil
	mt.Schema.Value.Properties["body"] = openapi3.NewSchemaRef("", &fixed)
	return nil
}

// handRule is the contract of one operation outside the v2 document.
type handRule struct {
	method string
	path   *regexp.Regexp
	// params are the query parameters the operation takes; required must be present.
	params, required []string
	// check validates a 2xx answer's body.
	check func(body any) error
}

// handRules are the v1 (Cloud) and Data Center operations a Confluence connector may
// call. Parameters are those Atlassian documents; answers are checked for the fields
// README.md promises and connectors read.
var handRules = []handRule{
	{method: http.MethodGet, path: regexp.MustCompile(`^/wiki/rest/api/user/current$`), params: []string{"expand"},
		check: checkUser},
	{method: http.MethodGet, path: regexp.MustCompile(`^/wiki/rest/api/search$`),
		params: []string{"cql", "limit", "start", "cursor", "expand"}, required: []string{"cql"},
		check: checkCloudSearch},
	{method: http.MethodGet, path: regexp.MustCompile(`^/rest/api/user/current$`), params: []string{"expand"},
		check: checkUser},
	{method: http.MethodGet, path: regexp.MustCompile(`^/rest/api/space$`),
		params: []string{"spaceKey", "type", "status", "label", "expand", "start", "limit"},
		check:  checkList(checkSpace)},
	{method: http.MethodGet, path: regexp.MustCompile(`^/rest/api/content$`),
		params: []string{"type", "spaceKey", "title", "status", "postingDay", "expand", "trigger", "orderby", "start", "limit"},
		check:  checkList(checkContent)},
	{method: http.MethodPost, path: regexp.MustCompile(`^/rest/api/content$`), params: []string{"status", "expand"},
		check: checkContent},
	// Confluence Data Center 7.18 and later: pages by ascending id, paged by a cursor.
	{method: http.MethodGet, path: regexp.MustCompile(`^/rest/api/content/scan$`),
		params: []string{"type", "spaceKey", "status", "postingDay", "expand", "cursor", "limit"},
		check:  checkScan},
	{method: http.MethodGet, path: regexp.MustCompile(`^/rest/api/content/search$`),
		params: []string{"cql", "cqlcontext", "expand", "start", "limit", "cursor"}, required: []string{"cql"},
		check: checkList(checkContent)},
	{method: http.MethodGet, path: regexp.MustCompile(`^/rest/api/content/[0-9]+$`), params: []string{"status", "version", "expand"},
		check: checkContent},
	{method: http.MethodGet, path: regexp.MustCompile(`^/rest/api/content/[0-9]+/child/comment$`),
		params: []string{"expand", "parentVersion", "start", "limit", "location", "depth"},
		check:  checkList(checkContent)},
}

// ConfluenceDoer sends requests through Next and checks every exchange of a Confluence
// connector: v2 calls against the v2 document (ConfluenceV2Contract), the v1 and Data
// Center calls against handRules, and any other method or path is a violation.
// Violations are collected, not returned, so the code under test sees the real answer.
// It is safe for concurrent use.
// Make one with NewConfluenceDoer.
type ConfluenceDoer struct {
	next interface {
		Do(*http.Request) (*http.Response, error)
	}
	v2    *Doer // checks and counts the v2 exchanges
	tally       // the v1 and Data Center exchanges
}

// NewConfluenceDoer returns a ConfluenceDoer sending through next (nil: http.DefaultClient).
func NewConfluenceDoer(next interface {
	Do(*http.Request) (*http.Response, error)
}) (*ConfluenceDoer, error) {
	spec, err := ConfluenceV2Contract()
	if err != nil {
		return nil, err
	}
	if next == nil {
		next = http.DefaultClient
	}
	return &ConfluenceDoer{next: next, v2: &Doer{Spec: spec, Next: next}}, nil
}

// Do checks req against its contract, sends it, and checks the answer.
func (d *ConfluenceDoer) Do(req *http.Request) (*http.Response, error) {
	path := gatewayPrefix.ReplaceAllString(req.URL.Path, "")
	if strings.HasPrefix(path, "/wiki/api/v2/") {
		return d.v2.Do(req)
	}
	rule, reqErr := findHandRule(req.Method, path, req.URL.Query())
	resp, err := d.next.Do(req)
	if err != nil || rule == nil {
		d.record(reqErr)
		return resp, err
	}
	var respErr error
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		body, rerr := readAndRestore(&resp.Body)
		if rerr != nil {
			respErr = rerr
		} else {
			respErr = checkJSON(body, rule.check)
		}
		if respErr != nil {
			respErr = fmt.Errorf("response %d of %s %s: %w", resp.StatusCode, req.Method, path, respErr)
		}
	}
	d.record(errors.Join(reqErr, respErr))
	return resp, nil
}

// findHandRule returns the rule for method and path, and a violation when there is none
// or the query breaks it.
func findHandRule(method, path string, query url.Values) (*handRule, error) {
	for i := range handRules {
		r := &handRules[i]
		if r.method != method || !r.path.MatchString(path) {
			continue
		}
		var problems []string
		for name := range query {
			if !slices.Contains(r.params, name) {
				problems = append(problems, "undeclared query parameter "+name)
			}
		}
		for _, name := range r.required {
			if query.Get(name) == "" {
				problems = append(problems, "missing required parameter "+name)
			}
		}
		if len(problems) > 0 {
			slices.Sort(problems)
			return r, fmt.Errorf("request %s %s: %s", method, path, strings.Join(problems, ", "))
		}
		return r, nil
	}
	return nil, fmt.Errorf("%s %s: no Confluence operation (v2, v1 or Data Center) has this method and path", method, path)
}

// Checked is how many exchanges were checked, v2 included.
func (d *ConfluenceDoer) Checked() int { return d.tally.Checked() + d.v2.Checked() }

// Errors returns the violations found so far, v2 included.
func (d *ConfluenceDoer) Errors() []error { return append(d.v2.Errors(), d.tally.Errors()...) }

// checkJSON decodes body and runs check on it.
func checkJSON(body []byte, check func(any) error) error {
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	return check(v)
}

// shape reads fields of a decoded JSON object by path, collecting what is missing or of
// the wrong type.
type shape struct {
	problems []string
}

func (s *shape) obj(v any, where string) map[string]any {
	m, ok := v.(map[string]any)
	if !ok {
		s.problems = append(s.problems, where+" is not an object")
	}
	return m
}

func (s *shape) str(m map[string]any, key, where string) string {
	v, ok := m[key].(string)
	if !ok {
		s.problems = append(s.problems, where+"."+key+" is not a string")
	}
	return v
}

func (s *shape) num(m map[string]any, key, where string) {
	if _, ok := m[key].(float64); !ok {
		s.problems = append(s.problems, where+"."+key+" is not a number")
	}
}

func (s *shape) time(m map[string]any, key, where string) {
	v := s.str(m, key, where)
	if v == "" {
		return
	}
	if _, err := time.Parse(time.RFC3339Nano, v); err != nil {
		s.problems = append(s.problems, fmt.Sprintf("%s.%s = %q is not an RFC 3339 time", where, key, v))
	}
}

func (s *shape) err() error {
	if len(s.problems) == 0 {
		return nil
	}
	return errors.New(strings.Join(s.problems, "; "))
}

// checkUser: Cloud's user has accountId, Data Center's userKey; both type and displayName.
func checkUser(v any) error {
	var s shape
	m := s.obj(v, "user")
	s.str(m, "type", "user")
	s.str(m, "displayName", "user")
	return s.err()
}

// checkList checks v1's paged list envelope and each result.
func checkList(item func(any) error) func(any) error {
	return func(v any) error {
		var s shape
		m := s.obj(v, "list")
		for _, k := range []string{"start", "limit", "size"} {
			s.num(m, k, "list")
		}
		links := s.obj(m["_links"], "list._links")
		if next, ok := links["next"]; ok {
			if n, _ := next.(string); !strings.HasPrefix(n, "/rest/api/") {
				s.problems = append(s.problems, fmt.Sprintf("list._links.next = %v is not a /rest/api path", next))
			}
		}
		results, ok := m["results"].([]any)
		if !ok {
			s.problems = append(s.problems, "list.results is not an array")
		}
		for i, r := range results {
			if err := item(r); err != nil {
				s.problems = append(s.problems, fmt.Sprintf("results[%d]: %v", i, err))
			}
		}
		return s.err()
	}
}

// checkScan checks Data Center's content scan: cursor-paged (cursor, nextCursor and
// prevCursor, no start), results as content, a next link to the scan itself.
func checkScan(v any) error {
	var s shape
	m := s.obj(v, "scan")
	for _, k := range []string{"limit", "size"} {
		s.num(m, k, "scan")
	}
	s.str(m, "cursor", "scan")
	if _, ok := m["start"]; ok {
		s.problems = append(s.problems, "scan has a start offset; it pages by cursor")
	}
	for _, k := range []string{"nextCursor", "prevCursor"} {
		if _, ok := m[k]; ok {
			s.str(m, k, "scan")
		}
	}
	links := s.obj(m["_links"], "scan._links")
	if next, ok := links["next"]; ok {
		if n, _ := next.(string); !strings.HasPrefix(n, "/rest/api/content/scan?") {
			s.problems = append(s.problems, fmt.Sprintf("scan._links.next = %v is not a scan path", next))
		}
	}
	results, ok := m["results"].([]any)
	if !ok {
		s.problems = append(s.problems, "scan.results is not an array")
	}
	for i, r := range results {
		if err := checkContent(r); err != nil {
			s.problems = append(s.problems, fmt.Sprintf("results[%d]: %v", i, err))
		}
	}
	return s.err()
}

// checkSpace: id (a number in v1), key, name, type.
func checkSpace(v any) error {
	var s shape
	m := s.obj(v, "space")
	s.num(m, "id", "space")
	for _, k := range []string{"key", "name", "type"} {
		s.str(m, k, "space")
	}
	return s.err()
}

// checkContent: id, type, title, and the expansions present well formed.
func checkContent(v any) error {
	var s shape
	m := s.obj(v, "content")
	for _, k := range []string{"id", "type", "title"} {
		s.str(m, k, "content")
	}
	if ver, ok := m["version"]; ok {
		vm := s.obj(ver, "content.version")
		s.time(vm, "when", "content.version")
		s.num(vm, "number", "content.version")
	}
	if h, ok := m["history"]; ok {
		hm := s.obj(h, "content.history")
		s.time(hm, "createdDate", "content.history")
		if err := checkUser(hm["createdBy"]); err != nil {
			s.problems = append(s.problems, "content.history.createdBy: "+err.Error())
		}
	}
	if b, ok := m["body"]; ok {
		storage := s.obj(s.obj(b, "content.body")["storage"], "content.body.storage")
		s.str(storage, "value", "content.body.storage")
		if r := s.str(storage, "representation", "content.body.storage"); r != "storage" {
			s.problems = append(s.problems, "content.body.storage.representation is "+r)
		}
	}
	if sp, ok := m["space"]; ok {
		if err := checkSpace(sp); err != nil {
			s.problems = append(s.problems, "content."+err.Error())
		}
	}
	return s.err()
}

// checkCloudSearch: README.md's search answer, results carrying content{id,type,title},
// excerpt, url and lastModified, and a next link relative to /wiki.
func checkCloudSearch(v any) error {
	var s shape
	m := s.obj(v, "search")
	for _, k := range []string{"start", "limit", "size"} {
		s.num(m, k, "search")
	}
	links := s.obj(m["_links"], "search._links")
	if next, ok := links["next"]; ok {
		if n, _ := next.(string); !strings.HasPrefix(n, "/rest/api/search?") {
			s.problems = append(s.problems, fmt.Sprintf("search._links.next = %v is not relative to /wiki", next))
		}
	}
	results, ok := m["results"].([]any)
	if !ok {
		s.problems = append(s.problems, "search.results is not an array")
	}
	for i, r := range results {
		where := fmt.Sprintf("results[%d]", i)
		rm := s.obj(r, where)
		if err := checkContent(rm["content"]); err != nil {
			s.problems = append(s.problems, where+"."+err.Error())
		}
		s.str(rm, "excerpt", where)
		s.str(rm, "url", where)
		s.time(rm, "lastModified", where)
	}
	return s.err()
}
