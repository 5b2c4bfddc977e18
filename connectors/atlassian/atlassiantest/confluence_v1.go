package atlassiantest

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/html"
)

// Confluence's v1 REST API: search on Cloud (/wiki/rest/api/search), and the content API
// of Data Center (/rest/api/space, /rest/api/content…), whose shapes
// shared/vendor-specs/README.md summarises. Data Center renders times in the account's
// zone with an offset; Cloud in UTC.

// v1Flavour is the deployment a v1 answer is for.
type v1Flavour struct {
	dc   bool
	base string         // _links.base: the site plus /wiki on Cloud
	loc  *time.Location // Data Center renders times in it
	// names maps account ids to display names.
	names map[string]string
}

func (s *Server) v1Flavour(r *http.Request, a Account, dc bool) v1Flavour {
	f := v1Flavour{dc: dc, base: siteBase(r), loc: accountLocation(a), names: s.displayNames()}
	if !dc {
		f.base += "/wiki"
	}
	return f
}

// accountLocation is the zone the account reads and writes dates in.
func accountLocation(a Account) *time.Location {
	loc, err := time.LoadLocation(timeZone(a))
	if err != nil {
		return time.UTC
	}
	return loc
}

func (f v1Flavour) time(t time.Time) string {
	if f.dc {
		return t.In(f.loc).Format("2006-01-02T15:04:05.000Z07:00")
	}
	return v2Time(t)
}

// user is v1's User for an account id.
func (f v1Flavour) user(id string) map[string]any {
	name, ok := f.names[id]
	if !ok {
		name = "User " + id
	}
	u := map[string]any{"type": "known", "displayName": name,
		"profilePicture": map[string]any{"path": "/images/icons/profilepics/default.svg", "width": 48, "height": 48, "isDefault": true}}
	if f.dc {
		u["userKey"] = id
		u["username"] = strings.ToLower(strings.ReplaceAll(name, " ", "."))
	} else {
		u["accountId"] = id
		u["accountType"] = "atlassian"
	}
	return u
}

func (f v1Flavour) space(sp *cfSpace) map[string]any {
	id, _ := strconv.ParseInt(sp.id, 10, 64)
	webui := "/spaces/" + sp.key
	if f.dc {
		webui = "/display/" + sp.key
	}
	return map[string]any{
		"id": id, "key": sp.key, "name": sp.name, "type": "global", "status": "current",
		"_expandable": map[string]string{"description": "", "homepage": "", "metadata": ""},
		"_links":      map[string]string{"webui": webui, "self": f.base + "/rest/api/space/" + sp.key},
	}
}

// content is v1's Content for a page, with the expansions asked for (body.storage,
// version, history, space; a "content." prefix is accepted, as search wants it).
func (f v1Flavour) content(sp *cfSpace, p *cfPage, expand []string) map[string]any {
	webui := pageWebUI(sp, p)
	if f.dc {
		webui = "/pages/viewpage.action?pageId=" + p.id
	}
	out := map[string]any{
		"id": p.id, "type": "page", "status": "current", "title": p.title,
		"_links": map[string]string{"webui": webui, "tinyui": "/x/" + p.id, "self": f.base + "/rest/api/content/" + p.id},
	}
	expandable := map[string]string{}
	for _, e := range []string{"body.storage", "version", "history", "space"} {
		if !slices.Contains(expand, e) && !slices.Contains(expand, "content."+e) {
			expandable[strings.Split(e, ".")[0]] = ""
			continue
		}
		switch e {
		case "body.storage":
			out["body"] = map[string]any{"storage": map[string]any{"value": p.body, "representation": "storage"}}
		case "version":
			out["version"] = map[string]any{"by": f.user(p.modifiedBy), "when": f.time(p.modifiedAt),
				"number": p.version, "message": "", "minorEdit": false}
		case "history":
			out["history"] = map[string]any{"latest": true, "createdBy": f.user(p.authorID), "createdDate": f.time(p.createdAt)}
		case "space":
			out["space"] = f.space(sp)
		}
	}
	out["_expandable"] = expandable
	return out
}

func (f v1Flavour) comment(sp *cfSpace, p *cfPage, cm *cfComment, expand []string) map[string]any {
	out := map[string]any{
		"id": cm.id, "type": "comment", "status": "current", "title": "Re: " + p.title,
		"extensions": map[string]any{"location": "footer"},
		"_links": map[string]string{"webui": "/pages/viewpage.action?pageId=" + p.id + "&focusedCommentId=" + cm.id,
			"self": f.base + "/rest/api/content/" + cm.id},
	}
	if slices.Contains(expand, "body.storage") {
		out["body"] = map[string]any{"storage": map[string]any{"value": cm.body, "representation": "storage"}}
	}
	if slices.Contains(expand, "version") {
		out["version"] = map[string]any{"by": f.user(cm.authorID), "when": f.time(cm.modifiedAt), "number": cm.version, "message": "", "minorEdit": false}
	}
	if slices.Contains(expand, "history") {
		out["history"] = map[string]any{"latest": true, "createdBy": f.user(cm.authorID), "createdDate": f.time(cm.createdAt)}
	}
	return out
}

func expandOf(r *http.Request) []string { return splitList(r.URL.Query()["expand"]) }

// v1Error answers status with Confluence's v1 error body. writeError does so for /wiki
// paths; Data Center's content paths share /rest/api with Jira, so they come here.
func v1Error(w http.ResponseWriter, r *http.Request, status int, msg string) {
	if strings.HasPrefix(r.URL.Path, "/wiki/") {
		writeError(w, r, status, msg)
		return
	}
	writeJSON(w, status, map[string]any{
		"statusCode": status,
		"data":       map[string]any{"authorized": true, "valid": status < 400, "errors": []any{}, "successful": false},
		"message":    msg,
		"reason":     http.StatusText(status),
	})
}

// v1Paging reads start and limit (default 25, at most max), or answers 400.
func v1Paging(w http.ResponseWriter, r *http.Request, max int) (start, limit int, ok bool) {
	q := r.URL.Query()
	start, limit = 0, 25
	var err error
	if v := q.Get("start"); v != "" {
		if start, err = strconv.Atoi(v); err != nil || start < 0 {
			v1Error(w, r, http.StatusBadRequest, "start must be a non-negative integer")
			return 0, 0, false
		}
	}
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 0 {
			v1Error(w, r, http.StatusBadRequest, "limit must be a non-negative integer")
			return 0, 0, false
		}
	}
	// Confluence caps limit silently.
	return start, min(limit, max), true
}

// v1Page slices one page of n results and builds the envelope around it, with a next
// link to path when more remain. The cursor parameter, when given, stands for start.
func v1Page(r *http.Request, f v1Flavour, path string, start, limit, n int, results []any) map[string]any {
	links := map[string]any{"base": f.base, "context": strings.TrimPrefix(f.base, siteBase(r)),
		"self": f.base + path}
	if start+limit < n && limit > 0 {
		q := r.URL.Query()
		q.Set("start", strconv.Itoa(start+limit))
		q.Set("limit", strconv.Itoa(limit))
		if q.Has("cursor") || strings.HasSuffix(path, "/search") {
			q.Set("cursor", searchCursor(start+limit))
		}
		links["next"] = path + "?" + q.Encode()
	}
	return map[string]any{"results": results, "start": start, "limit": limit, "size": len(results), "_links": links}
}

// searchCursor is the opaque cursor of search's next link; it stands for an offset.
func searchCursor(start int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("fake-search-offset:" + strconv.Itoa(start)))
}

func parseSearchCursor(c string) (int, bool) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimPrefix(string(b), "fake-search-offset:"))
	return n, err == nil && n >= 0 && strings.HasPrefix(string(b), "fake-search-offset:")
}

// window is items[start:start+limit], clamped.
func window[T any](items []T, start, limit int) []T {
	if start > len(items) {
		start = len(items)
	}
	return items[start:min(start+limit, len(items))]
}

// runSearch parses and runs the cql parameter for a, answering 400 itself when it is
// missing or does not parse. Paging is by offset: start, or the cursor that stands for it.
func (s *Server) runSearch(w http.ResponseWriter, r *http.Request, a Account) (q *cqlQuery, docs []*cqlDoc, start, limit int, ok bool) {
	start, limit, ok = v1Paging(w, r, 250)
	if !ok {
		return nil, nil, 0, 0, false
	}
	if c := r.URL.Query().Get("cursor"); c != "" {
		if start, ok = parseSearchCursor(c); !ok {
			v1Error(w, r, http.StatusBadRequest, "Invalid cursor")
			return nil, nil, 0, 0, false
		}
	}
	cql := r.URL.Query().Get("cql")
	if strings.TrimSpace(cql) == "" {
		v1Error(w, r, http.StatusBadRequest, "cql is required")
		return nil, nil, 0, 0, false
	}
	q, err := parseCQL(cql, accountLocation(a))
	if err != nil {
		v1Error(w, r, http.StatusBadRequest, err.(*cqlSyntaxError).message())
		return nil, nil, 0, 0, false
	}
	c := s.confluence()
	c.mu.Lock()
	defer c.mu.Unlock()
	return q, c.runLocked(q), start, limit, true
}

// searchCloud answers GET /wiki/rest/api/search: search results wrapping content, with
// an excerpt, a URL relative to /wiki and the last-modified time.
func (s *Server) searchCloud(w http.ResponseWriter, r *http.Request, a Account) {
	q, docs, start, limit, ok := s.runSearch(w, r, a)
	if !ok {
		return
	}
	f := s.v1Flavour(r, a, false)
	expand := expandOf(r)
	var results []any
	for _, d := range window(docs, start, limit) {
		results = append(results, map[string]any{
			"content":               f.content(d.space, d.page, expand),
			"title":                 d.page.title,
			"excerpt":               excerpt(d, q.terms),
			"url":                   pageWebUI(d.space, d.page),
			"resultGlobalContainer": map[string]string{"title": d.space.name, "displayUrl": "/spaces/" + d.space.key},
			"breadcrumbs":           []any{},
			"entityType":            "content",
			"iconCssClass":          "aui-icon content-type-page",
			"lastModified":          v2Time(d.page.modifiedAt),
			"friendlyLastModified":  d.page.modifiedAt.In(f.loc).Format("Jan 02, 2006"),
			"score":                 0.0,
		})
	}
	out := v1Page(r, f, "/rest/api/search", start, limit, len(docs), orEmpty(results))
	out["totalSize"] = len(docs)
	out["cqlQuery"] = r.URL.Query().Get("cql")
	out["searchDuration"] = 7
	writeJSON(w, http.StatusOK, out)
}

// excerpt is the start of the page's text with the first searched word marked the way
// Confluence marks matches (@@@hl@@@word@@@endhl@@@).
func excerpt(d *cqlDoc, terms []string) string {
	text := plainText(d.page.body)
	if r := []rune(text); len(r) > 180 {
		text = string(r[:180]) + "…"
	}
	lower := strings.ToLower(text)
	if len(terms) == 0 || len(lower) != len(text) {
		return text
	}
	if i := strings.Index(lower, terms[0]); i >= 0 {
		j := i + len(terms[0])
		text = text[:i] + "@@@hl@@@" + text[i:j] + "@@@endhl@@@" + text[j:]
	}
	return text
}

func orEmpty(v []any) []any {
	if v == nil {
		return []any{}
	}
	return v
}

// dcSearch answers Data Center's GET /rest/api/content/search: content, no excerpts.
func (s *Server) dcSearch(w http.ResponseWriter, r *http.Request, a Account) {
	_, docs, start, limit, ok := s.runSearch(w, r, a)
	if !ok {
		return
	}
	f := s.v1Flavour(r, a, true)
	var results []any
	for _, d := range window(docs, start, limit) {
		results = append(results, f.content(d.space, d.page, expandOf(r)))
	}
	out := v1Page(r, f, "/rest/api/content/search", start, limit, len(docs), orEmpty(results))
	out["totalSize"] = len(docs)
	out["cqlQuery"] = r.URL.Query().Get("cql")
	writeJSON(w, http.StatusOK, out)
}

// dcSpaces answers GET /rest/api/space.
func (s *Server) dcSpaces(w http.ResponseWriter, r *http.Request, a Account) {
	start, limit, ok := v1Paging(w, r, 500)
	if !ok {
		return
	}
	f := s.v1Flavour(r, a, true)
	keys := splitList(r.URL.Query()["spaceKey"])
	c := s.confluence()
	c.mu.Lock()
	defer c.mu.Unlock()
	var spaces []*cfSpace
	for _, sp := range c.spaces {
		if len(keys) == 0 || slices.Contains(keys, sp.key) {
			spaces = append(spaces, sp)
		}
	}
	var results []any
	for _, sp := range window(spaces, start, limit) {
		results = append(results, f.space(sp))
	}
	writeJSON(w, http.StatusOK, v1Page(r, f, "/rest/api/space", start, limit, len(spaces), orEmpty(results)))
}

// dcContent answers GET /rest/api/content: the pages of a space (spaceKey, type=page), in
// id order.
func (s *Server) dcContent(w http.ResponseWriter, r *http.Request, a Account) {
	start, limit, ok := v1Paging(w, r, 200)
	if !ok {
		return
	}
	q := r.URL.Query()
	if t := q.Get("type"); t != "" && t != "page" {
		v1Error(w, r, http.StatusBadRequest, "The fake lists pages only")
		return
	}
	f := s.v1Flavour(r, a, true)
	c := s.confluence()
	c.mu.Lock()
	defer c.mu.Unlock()
	spaceID := ""
	if key := q.Get("spaceKey"); key != "" {
		sp := c.spaceByKeyLocked(key)
		if sp == nil {
			v1Error(w, r, http.StatusNotFound, "No space with key : "+key)
			return
		}
		spaceID = sp.id
	}
	pages := c.pagesLocked(spaceID)
	var results []any
	for _, p := range window(pages, start, limit) {
		results = append(results, f.content(c.spaceByIDLocked(p.spaceID), p, expandOf(r)))
	}
	writeJSON(w, http.StatusOK, v1Page(r, f, "/rest/api/content", start, limit, len(pages), orEmpty(results)))
}

// dcScanMax is the most pages one scan answers.
const dcScanMax = 200

// dcScan answers Data Center's GET /rest/api/content/scan (Confluence 7.18 and later):
// the pages of a space (spaceKey; type page, the only type scan serves) from the
// database, in ascending id order, paged by a cursor that is a position in that order:
// "content:false:<id>" continues after id, "content:true:<id>" goes back before it. A
// page deleted between two requests therefore shifts nothing, unlike start offsets.
// nextCursor (and _links.next) comes with every full page, so the last page may be
// empty; prevCursor with every page after the first.
func (s *Server) dcScan(w http.ResponseWriter, r *http.Request, a Account) {
	q := r.URL.Query()
	limit := 25
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			v1Error(w, r, http.StatusBadRequest, "limit must be a non-negative integer")
			return
		}
		limit = min(n, dcScanMax)
	}
	if t := q.Get("type"); t != "" && t != "page" {
		v1Error(w, r, http.StatusBadRequest, "Scan supports pages only")
		return
	}
	if st := q.Get("status"); st != "" && st != "current" {
		writeJSON(w, http.StatusOK, scanPage(r, s.v1Flavour(r, a, true), q.Get("cursor"), nil, false, limit))
		return
	}
	backward, after := false, ""
	if cur := q.Get("cursor"); cur != "" {
		dir, id, ok := strings.Cut(strings.TrimPrefix(cur, "content:"), ":")
		if !strings.HasPrefix(cur, "content:") || !ok || (dir != "true" && dir != "false") || (id != "null" && !isNumericID(id)) {
			v1Error(w, r, http.StatusBadRequest, "Invalid cursor")
			return
		}
		backward = dir == "true"
		if id != "null" {
			after = id
		}
	}
	f := s.v1Flavour(r, a, true)
	c := s.confluence()
	c.mu.Lock()
	defer c.mu.Unlock()
	spaceID := ""
	if key := q.Get("spaceKey"); key != "" {
		sp := c.spaceByKeyLocked(key)
		if sp == nil {
			v1Error(w, r, http.StatusNotFound, "No space with key : "+key)
			return
		}
		spaceID = sp.id
	}
	pages := c.pagesLocked(spaceID) // by id
	var window []*cfPage
	if backward {
		i := len(pages)
		if after != "" {
			i, _ = slices.BinarySearchFunc(pages, after, func(p *cfPage, id string) int { return compareIDs(p.id, id) })
		}
		window = pages[max(i-limit, 0):i]
	} else {
		i := 0
		if after != "" {
			i, _ = slices.BinarySearchFunc(pages, after, func(p *cfPage, id string) int { return compareIDs(p.id, id) })
			for i < len(pages) && compareIDs(pages[i].id, after) <= 0 {
				i++
			}
		}
		window = pages[i:min(i+limit, len(pages))]
	}
	results := make([]any, 0, len(window))
	for _, p := range window {
		results = append(results, f.content(c.spaceByIDLocked(p.spaceID), p, expandOf(r)))
	}
	writeJSON(w, http.StatusOK, scanPage(r, f, q.Get("cursor"), results, len(window) == limit && limit > 0, limit))
}

// scanPage is a scan answer around results. The cursors name the last and first ids
// of results.
func scanPage(r *http.Request, f v1Flavour, cur string, results []any, full bool, limit int) map[string]any {
	if cur == "" {
		cur = "content:false:null"
	}
	self := f.base + "/rest/api/content/scan"
	if c := r.URL.Query().Get("cursor"); c != "" {
		self += "?cursor=" + url.QueryEscape(c)
	}
	links := map[string]any{"base": f.base, "context": strings.TrimPrefix(f.base, siteBase(r)), "self": self}
	out := map[string]any{"results": orEmpty(results), "cursor": cur, "limit": limit, "size": len(results), "_links": links}
	link := func(c string) string {
		q := r.URL.Query()
		q.Set("cursor", c)
		q.Set("limit", strconv.Itoa(limit))
		return "/rest/api/content/scan?" + q.Encode()
	}
	if full {
		last := results[len(results)-1].(map[string]any)["id"].(string)
		out["nextCursor"] = "content:false:" + last
		links["next"] = link("content:false:" + last)
	}
	if r.URL.Query().Get("cursor") != "" && len(results) > 0 {
		first := results[0].(map[string]any)["id"].(string)
		out["prevCursor"] = "content:true:" + first
		links["prev"] = link("content:true:" + first)
	}
	return out
}

// dcContentByID answers GET /rest/api/content/{id}.
func (s *Server) dcContentByID(w http.ResponseWriter, r *http.Request, a Account) {
	f := s.v1Flavour(r, a, true)
	c := s.confluence()
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.pages[r.PathValue("id")]
	if !ok {
		v1Error(w, r, http.StatusNotFound, "No content found with id : "+r.PathValue("id"))
		return
	}
	writeJSON(w, http.StatusOK, f.content(c.spaceByIDLocked(p.spaceID), p, expandOf(r)))
}

// dcComments answers GET /rest/api/content/{id}/child/comment (footer comments only).
func (s *Server) dcComments(w http.ResponseWriter, r *http.Request, a Account) {
	start, limit, ok := v1Paging(w, r, 200)
	if !ok {
		return
	}
	if loc := r.URL.Query().Get("location"); loc != "" && loc != "footer" {
		// The fake has no inline or resolved comments.
		writeJSON(w, http.StatusOK, v1Page(r, s.v1Flavour(r, a, true), r.URL.Path, start, limit, 0, []any{}))
		return
	}
	f := s.v1Flavour(r, a, true)
	c := s.confluence()
	c.mu.Lock()
	defer c.mu.Unlock()
	p, found := c.pages[r.PathValue("id")]
	if !found {
		v1Error(w, r, http.StatusNotFound, "No content found with id : "+r.PathValue("id"))
		return
	}
	sp := c.spaceByIDLocked(p.spaceID)
	comments := c.comments[p.id]
	var results []any
	for _, cm := range window(comments, start, limit) {
		results = append(results, f.comment(sp, p, cm, expandOf(r)))
	}
	writeJSON(w, http.StatusOK, v1Page(r, f, r.URL.Path, start, limit, len(comments), orEmpty(results)))
}

// dcCreate answers POST /rest/api/content with 200 and the new page.
func (s *Server) dcCreate(w http.ResponseWriter, r *http.Request, a Account) {
	var req struct {
		Type  string `json:"type"`
		Title string `json:"title"`
		Space struct {
			Key string `json:"key"`
		} `json:"space"`
		Body struct {
			Storage struct {
				Value          string `json:"value"`
				Representation string `json:"representation"`
			} `json:"storage"`
		} `json:"body"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 5<<20)).Decode(&req); err != nil {
		v1Error(w, r, http.StatusBadRequest, "The request body is not valid JSON")
		return
	}
	switch {
	case req.Type != "page":
		v1Error(w, r, http.StatusBadRequest, "The fake creates pages only")
		return
	case strings.TrimSpace(req.Title) == "":
		v1Error(w, r, http.StatusBadRequest, "A page must have a title")
		return
	case req.Body.Storage.Value != "" && req.Body.Storage.Representation != "storage":
		v1Error(w, r, http.StatusBadRequest, "The fake accepts the storage representation only")
		return
	}
	f := s.v1Flavour(r, a, true)
	c := s.confluence()
	c.mu.Lock()
	defer c.mu.Unlock()
	sp := c.spaceByKeyLocked(req.Space.Key)
	if sp == nil {
		v1Error(w, r, http.StatusNotFound, "No space with key : "+req.Space.Key)
		return
	}
	p, err := c.addPageLocked(sp, req.Title, req.Body.Storage.Value, a.ID, time.Now())
	if err != nil {
		v1Error(w, r, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, f.content(sp, p, []string{"body.storage", "version", "history", "space"}))
}

// plainText is the words of a storage-format body, for text search and excerpts: text
// outside macro parameters, with CDATA kept.
func plainText(storage string) string {
	z := html.NewTokenizer(strings.NewReader(storage))
	z.AllowCDATA(true)
	var words []string
	params := 0
	for {
		switch z.Next() {
		case html.ErrorToken:
			return strings.Join(words, " ")
		case html.TextToken:
			if params == 0 {
				words = append(words, strings.Fields(string(z.Text()))...)
			}
		case html.StartTagToken:
			if name, _ := z.TagName(); string(name) == "ac:parameter" {
				params++
			}
		case html.EndTagToken:
			if name, _ := z.TagName(); string(name) == "ac:parameter" && params > 0 {
				params--
			}
		}
	}
}
