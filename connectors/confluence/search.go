package confluence

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode"

	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/connectors/atlassian"
)

// Search is CQL through v1 search: Cloud's GET /wiki/rest/api/search (results wrapping
// content, with an excerpt) and Data Center's GET /rest/api/content/search (content).

// cqlString quotes s as a CQL string literal. Backslash and double quote are escaped
// and control characters become spaces, so that no input can end the literal early and
// add clauses of its own (CQL injection): whatever the user types stays one value.
func cqlString(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case unicode.IsControl(r):
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// spaceClause is `space in ("A","B")` for keys, or "" for none.
func spaceClause(keys []string) string {
	if len(keys) == 0 {
		return ""
	}
	quoted := make([]string, len(keys))
	for i, k := range keys {
		quoted[i] = cqlString(k)
	}
	return "space in (" + strings.Join(quoted, ",") + ")"
}

// andCQL joins the non-empty clauses with AND. The Connection's filter is wrapped in
// parentheses so that an OR in it cannot widen the rest.
func andCQL(clauses ...string) string {
	var out []string
	for _, c := range clauses {
		if c != "" {
			out = append(out, c)
		}
	}
	return strings.Join(out, " AND ")
}

func filterClause(filter string) string {
	if strings.TrimSpace(filter) == "" {
		return ""
	}
	return "(" + filter + ")"
}

// checkFilter refuses a filter that would not stay inside its parentheses (an
// unbalanced one such as `x) OR (y`, which would widen the query past the spaces in
// scope and past the filter itself), as a request of method to path.
func (c *Client) checkFilter(method, path, filter string) error {
	if strings.TrimSpace(filter) == "" {
		return nil
	}
	if err := atlassian.CheckFilter(filter); err != nil {
		return c.invalid(method, path, err.Error())
	}
	return nil
}

// searchCQL is the query of a text search.
func searchCQL(q connectors.SearchQuery) string {
	text := ""
	if strings.TrimSpace(q.Text) != "" {
		text = "text ~ " + cqlString(q.Text)
	}
	return andCQL("type = page", text, spaceClause(q.Containers), filterClause(q.Filter))
}

// v1Hit is a Cloud search result.
type v1Hit struct {
	Content               v1Content `json:"content"`
	Excerpt               string    `json:"excerpt"`
	LastModified          string    `json:"lastModified"`
	ResultGlobalContainer struct {
		DisplayURL string `json:"displayUrl"`
	} `json:"resultGlobalContainer"`
}

// excerptText turns a search excerpt into plain text: Confluence marks the matches with
// @@@hl@@@…@@@endhl@@@ and may escape entities.
func excerptText(s string) string {
	s = strings.NewReplacer("@@@hl@@@", "", "@@@endhl@@@", "").Replace(s)
	return strings.TrimSpace(html.UnescapeString(s))
}

// Search runs a CQL text search for pages: type = page AND text ~ "q.Text", narrowed to
// q.Containers (space keys) and ANDed with the Connection's filter. Results come in the
// vendor's relevance order. Kind "issue" (or any kind but page) finds nothing without a
// call. On Cloud an item's Text is the vendor's excerpt; Data Center has no excerpts and
// gives the whole text.
func (c *Client) Search(ctx context.Context, q connectors.SearchQuery) (connectors.Page[connectors.Item], error) {
	page := connectors.Page[connectors.Item]{Items: []connectors.Item{}}
	if q.Kind != "" && q.Kind != connectors.KindPage {
		return page, nil
	}
	cql := searchCQL(q)
	path, expand := c.wiki+"/rest/api/search", "content.space,content.history,content.version"
	if !c.api.IsCloud() {
		path, expand = "/rest/api/content/search", dcExpand
	}
	if err := c.checkFilter(http.MethodGet, path, q.Filter); err != nil {
		return page, err
	}
	digest := queryDigest(cql)
	st, err := decodeCursor(q.Cursor, opSearch, digest)
	if err != nil {
		return page, c.invalid(http.MethodGet, path, err.Error())
	}
	params := pageParams(st, clampLimit(q.Limit))
	params.Set("cql", cql)
	params.Set("expand", expand)
	if st.Token != "" {
		params.Set("cursor", st.Token)
	}
	op := c.api.Op(http.MethodGet, path)
	var next string
	if c.api.IsCloud() {
		var list v1List[v1Hit]
		if err := c.api.Get(ctx, path, params, &list); err != nil {
			return page, err
		}
		for _, h := range list.Results {
			it, err := c.hitItem(h, op)
			if err != nil {
				return connectors.Page[connectors.Item]{}, err
			}
			page.Items = append(page.Items, it)
		}
		next = list.Links.Next
	} else {
		var list v1List[v1Content]
		if err := c.api.Get(ctx, path, params, &list); err != nil {
			return page, err
		}
		for _, ct := range list.Results {
			it, err := c.v1Item(ct, "", op)
			if err != nil {
				return connectors.Page[connectors.Item]{}, err
			}
			page.Items = append(page.Items, it)
		}
		next = list.Links.Next
	}
	page.NextCursor, err = c.nextPage(opSearch, digest, http.MethodGet, path, next)
	return page, err
}

// hitItem normalizes a Cloud search result: the content's own fields where expanded,
// the result's (last-modified time, container) otherwise, and the excerpt as text.
func (c *Client) hitItem(h v1Hit, op string) (connectors.Item, error) {
	ct := h.Content
	key := ""
	if ct.Space != nil {
		key = ct.Space.Key
	} else if k, ok := strings.CutPrefix(h.ResultGlobalContainer.DisplayURL, "/spaces/"); ok {
		key, _ = url.PathUnescape(strings.Trim(k, "/"))
	}
	if ct.Version == nil {
		ct.Version = &v1Version{When: h.LastModified}
	}
	if ct.History == nil {
		// Without history there is no creation time: the last change stands in.
		ct.History = &v1History{CreatedDate: ct.Version.When}
	}
	it, err := c.v1Item(ct, key, op)
	if err != nil {
		return connectors.Item{}, err
	}
	it.Text = excerptText(h.Excerpt)
	return it, nil
}

// searchHit is one hit of the Changes walk: what the vendor orders by, and the version
// it saw.
type searchHit struct {
	id      string
	at      int64 // Unix nanoseconds of the version's time
	version int
}

// searchPage runs one search for the Changes walk, asking only for versions: start and
// limit (offset paging, which Changes checks itself), no bodies.
func (c *Client) searchPage(ctx context.Context, cql string, start, limit int) (hits []searchHit, more bool, err error) {
	path, expand := c.wiki+"/rest/api/search", "content.version"
	if !c.api.IsCloud() {
		path, expand = "/rest/api/content/search", "version"
	}
	params := url.Values{"cql": {cql}, "limit": {strconv.Itoa(limit)}, "expand": {expand}}
	if start > 0 {
		params.Set("start", strconv.Itoa(start))
	}
	var contents []v1Content
	var next string
	if c.api.IsCloud() {
		var list v1List[v1Hit]
		if err := c.api.Get(ctx, path, params, &list); err != nil {
			return nil, false, err
		}
		for _, h := range list.Results {
			if h.Content.Version == nil {
				h.Content.Version = &v1Version{When: h.LastModified}
			}
			contents = append(contents, h.Content)
		}
		next = list.Links.Next
	} else {
		var list v1List[v1Content]
		if err := c.api.Get(ctx, path, params, &list); err != nil {
			return nil, false, err
		}
		contents, next = list.Results, list.Links.Next
	}
	for _, ct := range contents {
		if !numericID(ct.ID) || ct.Version == nil {
			return nil, false, c.badAnswer(http.MethodGet, path, "unreadable search result", nil)
		}
		times, err := parseTimes(ct.Version.When)
		if err != nil {
			return nil, false, c.badAnswer(http.MethodGet, path, "unreadable search result", err)
		}
		hits = append(hits, searchHit{id: ct.ID, at: times[0].UnixNano(), version: ct.Version.Number})
	}
	return hits, next != "" && len(hits) > 0, nil
}

// dcPagesByID reads the pages with ids (at most maxLimit) with their bodies, in one
// search: id in (…).
func (c *Client) dcPagesByID(ctx context.Context, spaceKey string, ids []string) (map[string]filled, error) {
	path := "/rest/api/content/search"
	params := url.Values{
		"cql":    {"id in (" + strings.Join(ids, ",") + ")"},
		"expand": {dcExpand},
		"limit":  {strconv.Itoa(len(ids))},
	}
	var list v1List[v1Content]
	if err := c.api.Get(ctx, path, params, &list); err != nil {
		return nil, err
	}
	op := c.api.Op(http.MethodGet, path)
	out := make(map[string]filled, len(list.Results))
	for _, ct := range list.Results {
		it, err := c.v1Item(ct, spaceKey, op)
		if err != nil {
			return nil, err
		}
		out[ct.ID] = filled{item: it, version: ct.Version.Number}
	}
	return out, nil
}

// searchPath is the CQL search of the deployment, and what to expand on each result to
// read whole pages: v1 search (content wrapped in results) on Cloud, content search on
// Data Center.
func (c *Client) searchPath() (path, expand string) {
	if c.api.IsCloud() {
		return c.wiki + "/rest/api/search", "content.space,content.history,content.version,content.body.storage"
	}
	return "/rest/api/content/search", dcExpand
}

// searchContents runs one page of a CQL search and returns the pages it found, whole,
// and the next link.
func (c *Client) searchContents(ctx context.Context, path string, params url.Values, spaceKey string) ([]connectors.Item, string, error) {
	op := c.api.Op(http.MethodGet, path)
	var items []connectors.Item
	if c.api.IsCloud() {
		var list v1List[v1Hit]
		if err := c.api.Get(ctx, path, params, &list); err != nil {
			return nil, "", err
		}
		for _, h := range list.Results {
			if h.Content.Version == nil {
				h.Content.Version = &v1Version{When: h.LastModified}
			}
			it, err := c.v1Item(h.Content, spaceKey, op)
			if err != nil {
				return nil, "", err
			}
			items = append(items, it)
		}
		return items, list.Links.Next, nil
	}
	var list v1List[v1Content]
	if err := c.api.Get(ctx, path, params, &list); err != nil {
		return nil, "", err
	}
	for _, ct := range list.Results {
		it, err := c.v1Item(ct, spaceKey, op)
		if err != nil {
			return nil, "", err
		}
		items = append(items, it)
	}
	return items, list.Links.Next, nil
}

// filteredItems is Items within q.Filter: the v2 and Data Center listings cannot take a
// CQL filter, so this is a CQL search, space = KEY AND type = page AND (filter), newest
// first. Its lower bound, when q.UpdatedSince is set, is widened by zoneSlack (CQL reads
// dates in the account's zone) and applied exactly here; the listing stops at the first
// page modified before it.
func (c *Client) filteredItems(ctx context.Context, q connectors.ItemQuery) (connectors.Page[connectors.Item], error) {
	var page connectors.Page[connectors.Item]
	path, expand := c.searchPath()
	if q.Container == "" {
		return page, c.invalid(http.MethodGet, path, "a space key is required")
	}
	if err := c.checkFilter(http.MethodGet, path, q.Filter); err != nil {
		return page, err
	}
	lower := ""
	if !q.UpdatedSince.IsZero() && q.UpdatedSince.Year() > 1970 {
		lower = "lastmodified >= " + cqlString(q.UpdatedSince.Add(-zoneSlack).UTC().Format(cqlDateLayout))
	}
	cql := andCQL("space = "+cqlString(q.Container), "type = page", lower, filterClause(q.Filter)) + " ORDER BY lastmodified DESC"
	digest := queryDigest(cql, instant(q.UpdatedSince))
	st, err := decodeCursor(q.Cursor, opItems, digest)
	if err != nil {
		return page, c.invalid(http.MethodGet, path, err.Error())
	}
	params := pageParams(st, clampLimit(q.Limit))
	params.Set("cql", cql)
	params.Set("expand", expand)
	if st.Token != "" {
		params.Set("cursor", st.Token)
	}
	items, next, err := c.searchContents(ctx, path, params, q.Container)
	if err != nil {
		return page, err
	}
	page.Items = make([]connectors.Item, 0, len(items))
	for _, it := range items {
		if !q.UpdatedSince.IsZero() && it.UpdatedAt.Before(q.UpdatedSince) {
			return page, nil // and nothing after it is newer
		}
		page.Items = append(page.Items, it)
	}
	page.NextCursor, err = c.nextPage(opItems, digest, http.MethodGet, path, next)
	return page, err
}

// ItemMatching reads one page by id, if it matches filter (the Connection's
// spec.scope.filter): the page is read live, then the search `id = <id> AND type = page
// AND (filter)` says whether the filter admits it. A page the filter leaves out is
// KindNotFound, as a missing one is. The search is Confluence's, so a page edited into
// the filter, or created, counts only once the search index has it.
func (c *Client) ItemMatching(ctx context.Context, id, filter string) (connectors.Item, error) {
	path, _ := c.searchPath()
	if err := c.checkFilter(http.MethodGet, path, filter); err != nil {
		return connectors.Item{}, err
	}
	it, err := c.Item(ctx, id)
	if err != nil || strings.TrimSpace(filter) == "" {
		return it, err
	}
	params := url.Values{"cql": {andCQL("id = "+it.ID, "type = page", filterClause(filter))}, "limit": {"1"}}
	found, _, err := c.searchIDs(ctx, path, params)
	if err != nil {
		return connectors.Item{}, err
	}
	if len(found) == 0 || found[0] != it.ID {
		return connectors.Item{}, &connectors.Error{Kind: connectors.KindNotFound, Vendor: Type, Op: c.api.Op(http.MethodGet, path),
			Status: http.StatusOK, Reason: "no such page within the connection's filter"}
	}
	return it, nil
}

// searchIDs runs one page of a CQL search for ids only.
func (c *Client) searchIDs(ctx context.Context, path string, params url.Values) ([]string, string, error) {
	type content struct {
		ID string `json:"id"`
	}
	var ids []string
	if c.api.IsCloud() {
		var list v1List[struct {
			Content content `json:"content"`
		}]
		if err := c.api.Get(ctx, path, params, &list); err != nil {
			return nil, "", err
		}
		for _, r := range list.Results {
			ids = append(ids, r.Content.ID)
		}
		return ids, list.Links.Next, nil
	}
	var list v1List[content]
	if err := c.api.Get(ctx, path, params, &list); err != nil {
		return nil, "", err
	}
	for _, r := range list.Results {
		ids = append(ids, r.ID)
	}
	return ids, list.Links.Next, nil
}
