package jira

import (
	"context"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/connectors/atlassian"
)

// Page sizes. Jira Cloud answers at most 100 issues a page when fields are asked for;
// the connector never asks for more, on Data Center either, so both behave alike.
const (
	defaultLimit = 50
	maxLimit     = 100
)

// limitOf is the page size for a requested limit.
func limitOf(limit int) int {
	switch {
	case limit <= 0:
		return defaultLimit
	case limit > maxLimit:
		return maxLimit
	}
	return limit
}

// Search paths. Cloud's POST /rest/api/3/search was removed (it answers 410); Data
// Center still has POST /rest/api/2/search, paged by startAt.
const (
	cloudSearchPath = "/rest/api/3/search/jql"
	dcSearchPath    = "/rest/api/2/search"
)

func (c *Client) searchPath() string {
	if c.api.IsCloud() {
		return cloudSearchPath
	}
	return dcSearchPath
}

// searchOp names a search call in errors.
func (c *Client) searchOp() string { return c.api.Op(http.MethodPost, c.searchPath()) }

// position is where a search page starts: Jira Cloud's nextPageToken, or Data
// Center's startAt.
type position struct {
	token string
	start int
}

// searchPage is one page of a search.
type searchPage struct {
	issues []issueJSON
	next   position
	last   bool
}

// cloudSearchBody is POST /rest/api/3/search/jql's SearchAndReconcileRequestBean.
type cloudSearchBody struct {
	JQL           string   `json:"jql"`
	Fields        []string `json:"fields,omitempty"`
	MaxResults    int      `json:"maxResults"`
	NextPageToken string   `json:"nextPageToken,omitempty"`
}

// dcSearchBody is Data Center's POST /rest/api/2/search body.
type dcSearchBody struct {
	JQL        string   `json:"jql"`
	Fields     []string `json:"fields,omitempty"`
	MaxResults int      `json:"maxResults"`
	StartAt    int      `json:"startAt"`
}

// search runs jql from at, asking for fields (nil: ids only on Cloud) and max issues.
// The JQL travels in the body, so it never reaches a URL, a log line or an error. A
// search is a read and may be retried, although its method is POST.
func (c *Client) search(ctx context.Context, jql string, fields []string, max int, at position) (searchPage, error) {
	var body any = cloudSearchBody{JQL: jql, Fields: fields, MaxResults: max, NextPageToken: at.token}
	if !c.api.IsCloud() {
		body = dcSearchBody{JQL: jql, Fields: fields, MaxResults: max, StartAt: at.start}
	}
	var out searchJSON
	if err := c.api.Do(ctx, atlassian.Request{Method: http.MethodPost, Path: c.searchPath(), Body: body, Idempotent: true}, &out); err != nil {
		return searchPage{}, err
	}
	page := searchPage{issues: out.Issues}
	if c.api.IsCloud() {
		// The last page has no token; trust either signal of the end.
		page.last = out.NextPageToken == "" || (out.IsLast != nil && *out.IsLast)
		page.next.token = out.NextPageToken
	} else {
		page.next.start = out.StartAt + len(out.Issues)
		page.last = len(out.Issues) == 0 || page.next.start >= out.Total
	}
	return page, nil
}

// pageCursor resumes a token or offset listing: the position in cur, for the listing of
// kind over scope whose JQL is jql.
func (c *Client) pageCursor(s, op, kind, scope, jql string) (position, error) {
	if s == "" {
		return position{}, nil
	}
	cur, err := decodeCursor(s, op, kind, scope)
	if err != nil {
		return position{}, err
	}
	if cur.Query != fingerprint(jql) || (c.api.IsCloud() && cur.Token == "") {
		// A token from another query would page through the wrong results.
		return position{}, invalid(op, "invalid cursor")
	}
	return position{token: cur.Token, start: cur.Start}, nil
}

// nextCursor is the cursor after page, or "" on the last page.
func nextCursor(page searchPage, kind, scope, jql string) string {
	if page.last {
		return ""
	}
	return cursor{Kind: kind, Scope: scope, Query: fingerprint(jql), Token: page.next.token, Start: page.next.start}.encode()
}

// Items lists the issues of the project q.Container (a key, required) updated at or
// after q.UpdatedSince and within q.Filter, newest first. It pages with Jira's own
// tokens (offsets on Data Center): fine for browsing; sync uses Changes, which cannot
// skip issues that change meanwhile.
func (c *Client) Items(ctx context.Context, q connectors.ItemQuery) (connectors.Page[connectors.Item], error) {
	op := c.searchOp()
	project := strings.TrimSpace(q.Container)
	if project == "" {
		return connectors.Page[connectors.Item]{}, invalid(op, "container is required")
	}
	jql := projectClause([]string{project})
	if !q.UpdatedSince.IsZero() {
		// Epoch milliseconds: a date string would be read in the account's time zone.
		jql += " AND updated >= " + millis(q.UpdatedSince)
	}
	if f := strings.TrimSpace(q.Filter); f != "" {
		if err := checkFilter(f); err != nil {
			return connectors.Page[connectors.Item]{}, invalid(op, err.Error())
		}
		jql += " AND (" + f + ")"
	}
	jql += " ORDER BY updated DESC, id DESC"
	return c.searchItems(ctx, op, kindItems, project, jql, q.Cursor, q.Limit)
}

// maxSearchText bounds the text of a search, which Jira would refuse long before its
// JQL limit anyway.
const maxSearchText = 1000

// Search finds issues whose text (summary, description, comments) matches q.Text, in
// q.Containers when given and within q.Filter when set, most recently updated first:
// JQL cannot order by relevance. q.Kind "page" finds nothing without calling Jira;
// q.Text is required.
func (c *Client) Search(ctx context.Context, q connectors.SearchQuery) (connectors.Page[connectors.Item], error) {
	op := c.searchOp()
	switch q.Kind {
	case "", connectors.KindIssue:
	case connectors.KindPage:
		return connectors.Page[connectors.Item]{Items: []connectors.Item{}}, nil
	default:
		return connectors.Page[connectors.Item]{}, invalid(op, "kind must be issue or page")
	}
	text := strings.TrimSpace(q.Text)
	switch {
	case text == "":
		return connectors.Page[connectors.Item]{}, invalid(op, "search text is required")
	case utf8.RuneCountInString(text) > maxSearchText:
		return connectors.Page[connectors.Item]{}, invalid(op, "search text is too long")
	}
	clauses := []string{"text ~ " + quote(text)}
	var projects []string
	for _, k := range q.Containers {
		if k = strings.TrimSpace(k); k != "" {
			projects = append(projects, k)
		}
	}
	if len(projects) > 0 {
		clauses = append(clauses, projectClause(projects))
	}
	if f := strings.TrimSpace(q.Filter); f != "" {
		if err := checkFilter(f); err != nil {
			return connectors.Page[connectors.Item]{}, invalid(op, err.Error())
		}
		clauses = append(clauses, "("+f+")")
	}
	jql := strings.Join(clauses, " AND ") + " ORDER BY updated DESC, id DESC"
	return c.searchItems(ctx, op, kindSearch, "", jql, q.Cursor, q.Limit)
}

// searchItems runs one page of a token-paged listing of items.
func (c *Client) searchItems(ctx context.Context, op, kind, scope, jql, cur string, limit int) (connectors.Page[connectors.Item], error) {
	at, err := c.pageCursor(cur, op, kind, scope, jql)
	if err != nil {
		return connectors.Page[connectors.Item]{}, err
	}
	page, err := c.search(ctx, jql, itemFields, limitOf(limit), at)
	if err != nil {
		return connectors.Page[connectors.Item]{}, err
	}
	items, err := c.items(op, page.issues)
	if err != nil {
		return connectors.Page[connectors.Item]{}, err
	}
	return connectors.Page[connectors.Item]{Items: items, NextCursor: nextCursor(page, kind, scope, jql)}, nil
}
