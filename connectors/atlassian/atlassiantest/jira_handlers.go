package atlassiantest

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Messages of Jira's that the fake repeats.
const (
	jiraMsgIssueNotFound = "Issue does not exist or you do not have permission to see it."
	jiraMsgUnbounded     = "Unbounded JQL queries are not allowed here. Please add a search restriction to your query."
	jiraMsgSearchGone    = "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046"
	jiraMsgBadToken      = "The provided next page token is invalid or expired."
)

// Page size limits. Jira Cloud's search/jql returns at most 100 issues a page when
// fields are asked for, and up to 5000 ids without (the fake stops at 1000); Data Center
// stops at its default jira.search.views.default.max of 1000.
const (
	jiraDefaultPage    = 50
	jiraMaxFieldsPage  = 100
	jiraMaxIDsPage     = 1000
	jiraMaxDCPage      = 1000
	jiraMaxListingPage = 100
)

// intParam reads an optional non-negative integer query parameter; ok is false (and 400
// answered) when it is malformed.
func intParam(w http.ResponseWriter, r *http.Request, name string, def int) (n int, ok bool) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		writeError(w, r, http.StatusBadRequest, fmt.Sprintf("The value '%s' is invalid for the parameter '%s'.", s, name))
		return 0, false
	}
	return n, true
}

// pageBounds clamps [start, start+max) to n items.
func pageBounds(start, size, n int) (lo, hi int) {
	lo = min(start, n)
	hi = min(lo+size, n)
	return lo, hi
}

// jiraProjectSearch answers GET /rest/api/3/project/search: startAt, maxResults (at
// most 100), orderBy (key or name, "-" for descending), query (a substring of the key
// or name) and keys.
func (s *Server) jiraProjectSearch(w http.ResponseWriter, r *http.Request, a Account) {
	v := newJiraView(r, a)
	startAt, ok := intParam(w, r, "startAt", 0)
	if !ok {
		return
	}
	maxResults, ok := intParam(w, r, "maxResults", jiraDefaultPage)
	if !ok {
		return
	}
	maxResults = min(maxResults, jiraMaxListingPage)
	q := r.URL.Query()
	query := strings.ToLower(q.Get("query"))
	var keys []string
	for _, k := range q["keys"] {
		keys = append(keys, strings.Split(strings.ToUpper(k), ",")...)
	}

	j := s.jira()
	j.mu.Lock()
	var matched []*jiraProject
	for _, p := range j.projects {
		if query != "" && !strings.Contains(strings.ToLower(p.key), query) && !strings.Contains(strings.ToLower(p.name), query) {
			continue
		}
		if len(keys) > 0 && !slices.Contains(keys, p.key) {
			continue
		}
		matched = append(matched, p)
	}
	orderBy := strings.TrimPrefix(q.Get("orderBy"), "+")
	desc := strings.HasPrefix(orderBy, "-")
	byName := strings.TrimPrefix(orderBy, "-") == "name"
	slices.SortStableFunc(matched, func(x, y *jiraProject) int {
		c := strings.Compare(x.key, y.key)
		if byName {
			c = strings.Compare(strings.ToLower(x.name), strings.ToLower(y.name))
		}
		if desc {
			c = -c
		}
		return c
	})
	lo, hi := pageBounds(startAt, maxResults, len(matched))
	values := make([]jiraProjectJSON, 0, hi-lo)
	for _, p := range matched[lo:hi] {
		values = append(values, v.project(p, true))
	}
	j.mu.Unlock()

	page := func(start int) string {
		u := url.Values{"startAt": {strconv.Itoa(start)}, "maxResults": {strconv.Itoa(maxResults)}}
		return v.base + "/rest/api/3/project/search?" + u.Encode()
	}
	body := map[string]any{
		"self": page(startAt), "maxResults": maxResults, "startAt": startAt,
		"total": len(matched), "isLast": hi >= len(matched), "values": values,
	}
	if hi < len(matched) {
		body["nextPage"] = page(hi)
	}
	writeJSON(w, http.StatusOK, body)
}

// jiraProjectList answers Data Center's GET /rest/api/2/project: every project, as a
// plain array without paging.
func (s *Server) jiraProjectList(w http.ResponseWriter, r *http.Request, a Account) {
	v := newJiraView(r, a)
	j := s.jira()
	j.mu.Lock()
	out := make([]jiraProjectJSON, 0, len(j.projects))
	for _, p := range j.projects {
		out = append(out, v.project(p, true))
	}
	j.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

// jiraSearchRequest is a search however it arrived (query string or JSON body).
type jiraSearchRequest struct {
	JQL        string
	Token      string // Cloud: nextPageToken
	StartAt    int    // Data Center: startAt
	MaxResults int    // 0: the default
	Fields     []string
}

// jiraSearchJQLBody is the body of POST /rest/api/3/search/jql
// (SearchAndReconcileRequestBean); Jira refuses properties it does not know.
type jiraSearchJQLBody struct {
	JQL             string   `json:"jql"`
	NextPageToken   string   `json:"nextPageToken"`
	MaxResults      *int     `json:"maxResults"`
	Fields          []string `json:"fields"`
	Expand          string   `json:"expand"`
	Properties      []string `json:"properties"`
	FieldsByKeys    bool     `json:"fieldsByKeys"`
	ReconcileIssues []int64  `json:"reconcileIssues"`
}

// jiraSearchDCBody is the body of Data Center's POST /rest/api/2/search.
type jiraSearchDCBody struct {
	JQL           string   `json:"jql"`
	StartAt       *int     `json:"startAt"`
	MaxResults    *int     `json:"maxResults"`
	Fields        []string `json:"fields"`
	Expand        []string `json:"expand"`
	Properties    []string `json:"properties"`
	FieldsByKeys  bool     `json:"fieldsByKeys"`
	ValidateQuery any      `json:"validateQuery"`
}

// readSearch reads a search request from r; ok is false (and 400 answered) when the
// request is malformed.
func readSearch(w http.ResponseWriter, r *http.Request, dc bool) (req jiraSearchRequest, ok bool) {
	if r.Method == http.MethodPost {
		if dc {
			var b jiraSearchDCBody
			if !decodeJiraBody(w, r, &b, true) {
				return req, false
			}
			req = jiraSearchRequest{JQL: b.JQL, Fields: b.Fields}
			if b.StartAt != nil {
				req.StartAt = *b.StartAt
			}
			if b.MaxResults != nil {
				req.MaxResults = *b.MaxResults
			}
		} else {
			var b jiraSearchJQLBody
			if !decodeJiraBody(w, r, &b, true) {
				return req, false
			}
			req = jiraSearchRequest{JQL: b.JQL, Token: b.NextPageToken, Fields: b.Fields}
			if b.MaxResults != nil {
				req.MaxResults = *b.MaxResults
			}
		}
	} else {
		q := r.URL.Query()
		req = jiraSearchRequest{JQL: q.Get("jql"), Token: q.Get("nextPageToken"), Fields: q["fields"]}
		if req.StartAt, ok = intParam(w, r, "startAt", 0); !ok {
			return req, false
		}
		if req.MaxResults, ok = intParam(w, r, "maxResults", 0); !ok {
			return req, false
		}
	}
	if req.StartAt < 0 || req.MaxResults < 0 {
		writeError(w, r, http.StatusBadRequest, "startAt and maxResults must not be negative.")
		return req, false
	}
	return req, true
}

// run evaluates jql for the caller: the matching issues, as the search index has them,
// in the query's order. A query Jira would refuse is a *jqlError. Call with j.mu held.
func (j *jiraSite) run(jql string, v jiraView, requireBounded bool) ([]*jiraIssue, error) {
	q, err := parseJQL(jql, &jqlEnv{site: j, loc: v.loc, now: time.Now()})
	if err != nil {
		return nil, err
	}
	if q.where == nil && requireBounded {
		return nil, &jqlError{msg: jiraMsgUnbounded}
	}
	// Search answers from the index (index.go), not from the issues as they are now.
	j.index.catchUp(time.Now())
	var out []*jiraIssue
	for _, is := range j.index.docs {
		if q.where == nil || q.where(is) {
			out = append(out, is)
		}
	}
	sortIssues(out, q.order)
	return out, nil
}

// jiraSearchJQL answers GET and POST /rest/api/3/search/jql, Jira Cloud's issue search:
// a bounded JQL, pages linked by an opaque nextPageToken (absent on the last page), and
// no total. Without fields only ids come back.
func (s *Server) jiraSearchJQL(w http.ResponseWriter, r *http.Request, a Account) {
	v := newJiraView(r, a)
	req, ok := readSearch(w, r, false)
	if !ok {
		return
	}
	fields := parseJiraFields(req.Fields, "id")
	bare := fields.idsOnly()
	size := req.MaxResults
	if size == 0 {
		size = jiraDefaultPage
	}
	if bare {
		size = min(size, jiraMaxIDsPage)
	} else {
		size = min(size, jiraMaxFieldsPage)
	}
	start := 0
	if req.Token != "" {
		var err error
		if start, err = parseJiraPageToken(req.Token, req.JQL); err != nil {
			writeError(w, r, http.StatusBadRequest, jiraMsgBadToken)
			return
		}
	}

	j := s.jira()
	j.mu.Lock()
	matched, err := j.run(req.JQL, v, true)
	if err != nil {
		j.mu.Unlock()
		writeJQLError(w, r, err)
		return
	}
	lo, hi := pageBounds(start, size, len(matched))
	issues := make([]jiraIssueJSON, 0, hi-lo)
	for _, is := range matched[lo:hi] {
		issues = append(issues, v.issue(is, fields, bare))
	}
	j.mu.Unlock()

	body := map[string]any{"issues": issues, "isLast": hi >= len(matched)}
	if hi < len(matched) {
		body["nextPageToken"] = jiraPageToken(hi, req.JQL)
	}
	writeJSON(w, http.StatusOK, body)
}

// jiraSearchDC answers Data Center's GET and POST /rest/api/2/search: startAt,
// maxResults and total. Data Center runs unbounded queries.
func (s *Server) jiraSearchDC(w http.ResponseWriter, r *http.Request, a Account) {
	v := newJiraView(r, a)
	req, ok := readSearch(w, r, true)
	if !ok {
		return
	}
	fields := parseJiraFields(req.Fields, "*navigable")
	size := req.MaxResults
	if size == 0 {
		size = jiraDefaultPage
	}
	size = min(size, jiraMaxDCPage)

	j := s.jira()
	j.mu.Lock()
	matched, err := j.run(req.JQL, v, false)
	if err != nil {
		j.mu.Unlock()
		writeJQLError(w, r, err)
		return
	}
	lo, hi := pageBounds(req.StartAt, size, len(matched))
	issues := make([]jiraIssueJSON, 0, hi-lo)
	for _, is := range matched[lo:hi] {
		issues = append(issues, v.issue(is, fields, false))
	}
	j.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"expand": "schema,names", "startAt": req.StartAt, "maxResults": size, "total": len(matched), "issues": issues,
	})
}

// jiraSearchGone answers the removed GET and POST /rest/api/3/search with 410 Gone.
func (s *Server) jiraSearchGone(w http.ResponseWriter, r *http.Request, _ Account) {
	writeError(w, r, http.StatusGone, jiraMsgSearchGone)
}

// jiraApproximateCount answers POST /rest/api/3/search/approximate-count.
func (s *Server) jiraApproximateCount(w http.ResponseWriter, r *http.Request, a Account) {
	v := newJiraView(r, a)
	var body struct {
		JQL string `json:"jql"`
	}
	if !decodeJiraBody(w, r, &body, true) {
		return
	}
	j := s.jira()
	j.mu.Lock()
	matched, err := j.run(body.JQL, v, true)
	j.mu.Unlock()
	if err != nil {
		writeJQLError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"count": len(matched)})
}

// writeJQLError answers a refused query with 400 and Jira's message.
func writeJQLError(w http.ResponseWriter, r *http.Request, err error) {
	var je *jqlError
	if !errors.As(err, &je) {
		writeError(w, r, http.StatusInternalServerError, "Internal server error.")
		return
	}
	writeError(w, r, http.StatusBadRequest, je.msg)
}

// jiraPageToken is the opaque nextPageToken of the page at offset of jql's results:
// tokens are bound to their query, as Jira's are. It is an offset, so that the fake is
// as unforgiving as a vendor whose pages shift when issues change between requests.
func jiraPageToken(offset int, jql string) string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%d.%x", offset, jqlHash(jql)))
}

func parseJiraPageToken(token, jql string) (int, error) {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return 0, err
	}
	off, hash, ok := strings.Cut(string(raw), ".")
	n, err := strconv.Atoi(off)
	if !ok || err != nil || n < 0 || hash != fmt.Sprintf("%x", jqlHash(jql)) {
		return 0, errors.New("bad token")
	}
	return n, nil
}

func jqlHash(jql string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(jql))
	return h.Sum64()
}

// jiraGetIssue answers GET /rest/api/{2,3}/issue/{issueIdOrKey}; fields defaults to *all.
func (s *Server) jiraGetIssue(w http.ResponseWriter, r *http.Request, a Account) {
	v := newJiraView(r, a)
	fields := parseJiraFields(r.URL.Query()["fields"], "*all")
	j := s.jira()
	j.mu.Lock()
	is := j.findIssue(r.PathValue("issueIdOrKey"))
	var out jiraIssueJSON
	if is != nil {
		out = v.issue(is, fields, false)
		if out.Fields == nil {
			out.Fields = map[string]any{}
		}
	}
	j.mu.Unlock()
	if is == nil {
		writeError(w, r, http.StatusNotFound, jiraMsgIssueNotFound)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// jiraGetComments answers GET /rest/api/{2,3}/issue/{issueIdOrKey}/comment: startAt,
// maxResults (at most 100), orderBy created, -created or +created.
func (s *Server) jiraGetComments(w http.ResponseWriter, r *http.Request, a Account) {
	v := newJiraView(r, a)
	startAt, ok := intParam(w, r, "startAt", 0)
	if !ok {
		return
	}
	maxResults, ok := intParam(w, r, "maxResults", 100)
	if !ok {
		return
	}
	maxResults = min(maxResults, jiraMaxListingPage)
	orderBy := r.URL.Query().Get("orderBy")
	switch orderBy {
	case "", "created", "+created", "-created":
	default:
		writeError(w, r, http.StatusBadRequest, "The value '"+orderBy+"' is invalid for orderBy.")
		return
	}

	j := s.jira()
	j.mu.Lock()
	is := j.findIssue(r.PathValue("issueIdOrKey"))
	var page jiraCommentPage
	if is != nil {
		comments := slices.Clone(is.comments)
		slices.SortStableFunc(comments, func(x, y *jiraComment) int {
			if c := x.created.Compare(y.created); c != 0 {
				return c
			}
			return cmp.Compare(x.id, y.id)
		})
		if orderBy == "-created" {
			slices.Reverse(comments)
		}
		lo, hi := pageBounds(startAt, maxResults, len(comments))
		page = jiraCommentPage{StartAt: startAt, MaxResults: maxResults, Total: len(comments), Comments: []jiraCommentJSON{}}
		for _, c := range comments[lo:hi] {
			page.Comments = append(page.Comments, v.comment(is, c))
		}
	}
	j.mu.Unlock()
	if is == nil {
		writeError(w, r, http.StatusNotFound, jiraMsgIssueNotFound)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

// jiraCreateIssue answers POST /rest/api/{2,3}/issue with 201 {id, key, self}, checking
// the fields as Jira does: project and issuetype must exist, summary is required and
// one line of at most 255 characters, description is an ADF document on Cloud and a
// string on Data Center; other fields cannot be set. The caller reports the issue.
func (s *Server) jiraCreateIssue(w http.ResponseWriter, r *http.Request, a Account) {
	v := newJiraView(r, a)
	var body struct {
		Fields map[string]json.RawMessage `json:"fields"`
	}
	if !decodeJiraBody(w, r, &body, false) {
		return
	}
	type ref struct {
		ID   string `json:"id"`
		Key  string `json:"key"`
		Name string `json:"name"`
	}
	var (
		errs    = map[string]string{}
		summary string
		desc    json.RawMessage
	)
	j := s.jira()
	j.mu.Lock()
	defer j.mu.Unlock()

	var project *jiraProject
	var pref ref
	if json.Unmarshal(body.Fields["project"], &pref) == nil {
		project = j.findProject(cmp.Or(pref.Key, pref.ID))
	}
	if project == nil {
		errs["project"] = "valid project is required"
	}
	var tref ref
	var typ jiraIssueType
	typeOK := json.Unmarshal(body.Fields["issuetype"], &tref) == nil
	if typeOK {
		typ, typeOK = jiraIssueTypeNamed(cmp.Or(tref.Name, tref.ID))
	}
	if !typeOK {
		errs["issuetype"] = "Specify a valid issue type"
	}
	switch err := json.Unmarshal(body.Fields["summary"], &summary); {
	case err != nil || strings.TrimSpace(summary) == "":
		errs["summary"] = "You must specify a summary of the issue."
	case strings.ContainsAny(summary, "\r\n"):
		errs["summary"] = "The summary is invalid because it contains newline characters."
	case len([]rune(summary)) > 255:
		errs["summary"] = "Summary must be less than 255 characters."
	}
	if raw, ok := body.Fields["description"]; ok && string(raw) != "null" {
		if v.dc {
			var text string
			if json.Unmarshal(raw, &text) != nil {
				errs["description"] = "Operation value must be a string"
			} else {
				desc = jiraTextADF(text)
			}
		} else if !isADFDoc(raw) {
			errs["description"] = "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
		} else {
			desc = raw
		}
	}
	for name := range body.Fields {
		if !slices.Contains([]string{"project", "issuetype", "summary", "description"}, name) {
			errs[name] = "Field '" + name + "' cannot be set. It is not on the appropriate screen, or unknown."
		}
	}
	if len(errs) > 0 {
		jiraFieldErrors(w, errs)
		return
	}
	is := j.addIssue(project, typ.name, summary, desc, jiraPerson{accountID: a.ID, displayName: a.DisplayName, email: a.Email}, time.Now())
	id := strconv.FormatInt(is.id, 10)
	writeJSON(w, http.StatusCreated, map[string]any{"id": id, "key": is.key, "self": v.base + v.api + "/issue/" + id})
}

// isADFDoc checks raw minimally as an ADF document: an object with type "doc", version 1
// and a content array of objects that each have a type.
func isADFDoc(raw json.RawMessage) bool {
	var doc struct {
		Type    string `json:"type"`
		Version int    `json:"version"`
		Content []struct {
			Type string `json:"type"`
		} `json:"content"`
	}
	if json.Unmarshal(raw, &doc) != nil || doc.Type != "doc" || doc.Version != 1 || doc.Content == nil {
		return false
	}
	for _, n := range doc.Content {
		if n.Type == "" {
			return false
		}
	}
	return true
}
