package atlassiantest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Confluence Cloud REST API v2 (/wiki/api/v2): answers follow the shapes of
// shared/vendor-specs/confluence-cloud-v2.openapi.json, which the fake's tests check
// every answer against.

// v2Time renders t as v2 documents it: "YYYY-MM-DDTHH:mm:ss.sssZ".
func v2Time(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// v2Space is SpaceBulk / SpaceSingle.
type v2Space struct {
	ID        string            `json:"id"`
	Key       string            `json:"key"`
	Name      string            `json:"name"`
	Type      string            `json:"type"`
	Status    string            `json:"status"`
	AuthorID  string            `json:"authorId"`
	CreatedAt string            `json:"createdAt"`
	Links     map[string]string `json:"_links"`
}

func renderV2Space(sp *cfSpace) v2Space {
	return v2Space{ID: sp.id, Key: sp.key, Name: sp.name, Type: "global", Status: "current",
		AuthorID: sp.authorID, CreatedAt: v2Time(sp.createdAt),
		Links: map[string]string{"webui": "/spaces/" + sp.key}}
}

// v2Version is Version.
type v2Version struct {
	CreatedAt string `json:"createdAt"`
	Message   string `json:"message"`
	Number    int    `json:"number"`
	MinorEdit bool   `json:"minorEdit"`
	AuthorID  string `json:"authorId"`
}

// v2Body is BodyBulk / BodySingle: present, with only the representation asked for.
type v2Body struct {
	Storage *v2BodyType `json:"storage,omitempty"`
}

type v2BodyType struct {
	Representation string `json:"representation"`
	Value          string `json:"value"`
}

// v2Page is PageBulk / PageSingle.
type v2Page struct {
	ID        string            `json:"id"`
	Status    string            `json:"status"`
	Title     string            `json:"title"`
	SpaceID   string            `json:"spaceId"`
	AuthorID  string            `json:"authorId"`
	OwnerID   string            `json:"ownerId"`
	CreatedAt string            `json:"createdAt"`
	Version   v2Version         `json:"version"`
	Body      v2Body            `json:"body"`
	Links     map[string]string `json:"_links"`
}

func pageWebUI(sp *cfSpace, p *cfPage) string {
	return "/spaces/" + sp.key + "/pages/" + p.id + "/" + url.PathEscape(strings.ReplaceAll(p.title, " ", "+"))
}

func renderV2Page(sp *cfSpace, p *cfPage, withBody bool) v2Page {
	out := v2Page{
		ID: p.id, Status: "current", Title: p.title, SpaceID: p.spaceID,
		AuthorID: p.authorID, OwnerID: p.authorID, CreatedAt: v2Time(p.createdAt),
		Version: v2Version{CreatedAt: v2Time(p.modifiedAt), Number: p.version, AuthorID: p.modifiedBy},
		Links: map[string]string{
			"webui":  pageWebUI(sp, p),
			"editui": "/pages/resumedraft.action?draftId=" + p.id,
			"tinyui": "/x/" + p.id,
		},
	}
	if withBody {
		out.Body.Storage = &v2BodyType{Representation: "storage", Value: p.body}
	}
	return out
}

// v2Comment is PageCommentModel: note it has no creation time and no author of its
// own, only its version's.
type v2Comment struct {
	ID      string            `json:"id"`
	Status  string            `json:"status"`
	Title   string            `json:"title"`
	PageID  string            `json:"pageId"`
	Version v2Version         `json:"version"`
	Body    v2Body            `json:"body"`
	Links   map[string]string `json:"_links"`
}

// v2List is MultiEntityResult.
type v2List struct {
	Results any               `json:"results"`
	Links   map[string]string `json:"_links"`
}

// v2Limit reads limit (1–250, default 25), answering 400 itself when it is invalid.
func v2Limit(w http.ResponseWriter, r *http.Request) (int, bool) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return 25, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 250 {
		writeError(w, r, http.StatusBadRequest, "limit must be an integer between 1 and 250.")
		return 0, false
	}
	return n, true
}

// v2BodyFormat reads body-format: "" or storage (with a body), or atlas_doc_format, which
// the fake does not render and answers without a body.
func v2BodyFormat(w http.ResponseWriter, r *http.Request, allowed ...string) (withBody, ok bool) {
	switch f := r.URL.Query().Get("body-format"); {
	case f == "":
		return false, true
	case f == "storage":
		return true, true
	case slices.Contains(allowed, f):
		return false, true
	default:
		writeError(w, r, http.StatusBadRequest, "Unsupported body-format.")
		return false, false
	}
}

// v2Key is a listing's sort key for one entity: a value that sorts as the field does,
// and the id that breaks ties.
type v2Key struct{ value, id string }

// v2Cursor is the fake's opaque cursor: the sort key of the last entity answered, so
// that paging is stable while the content changes, as Atlassian's cursors are.
func v2Cursor(k v2Key) string {
	return base64.RawURLEncoding.EncodeToString([]byte(k.value + "\x00" + k.id))
}

func parseV2Cursor(c string) (v2Key, bool) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return v2Key{}, false
	}
	value, id, ok := strings.Cut(string(b), "\x00")
	return v2Key{value, id}, ok
}

// paddedID sorts numeric ids as numbers.
func paddedID(id string) string { return fmt.Sprintf("%020s", id) }

// paddedTime sorts times.
func paddedTime(t time.Time) string { return fmt.Sprintf("%020d", t.UnixMilli()) }

// v2Page answers one page of items sorted by key (descending when desc): those after the
// cursor, at most limit, with _links.next and a Link header when more remain.
func v2Paginate[T any](w http.ResponseWriter, r *http.Request, items []T, key func(T) v2Key, desc bool, limit int, render func(T) any) {
	compare := func(a, b v2Key) int {
		c := strings.Compare(a.value, b.value)
		if c == 0 {
			c = strings.Compare(a.id, b.id)
		}
		if desc {
			c = -c
		}
		return c
	}
	slices.SortStableFunc(items, func(a, b T) int { return compare(key(a), key(b)) })
	if c := r.URL.Query().Get("cursor"); c != "" {
		after, ok := parseV2Cursor(c)
		if !ok {
			writeError(w, r, http.StatusBadRequest, "Invalid cursor.")
			return
		}
		i, _ := slices.BinarySearchFunc(items, after, func(it T, k v2Key) int { return compare(key(it), k) })
		for i < len(items) && compare(key(items[i]), after) <= 0 {
			i++
		}
		items = items[i:]
	}
	more := len(items) > limit
	if more {
		items = items[:limit]
	}
	results := make([]any, 0, len(items))
	for _, it := range items {
		results = append(results, render(it))
	}
	base := siteBase(r) + "/wiki"
	links := map[string]string{"base": base}
	if more {
		q := r.URL.Query()
		q.Set("cursor", v2Cursor(key(items[len(items)-1])))
		q.Set("limit", strconv.Itoa(limit))
		next := r.URL.Path + "?" + q.Encode()
		links["next"] = next
		w.Header().Set("Link", fmt.Sprintf(`<%s>; rel="next", <%s>; rel="base"`, next, base))
	}
	writeJSON(w, http.StatusOK, v2List{Results: results, Links: links})
}

// v2Sort reads a sort parameter among allowed (each also with a leading "-"), returning
// the field and whether it is descending; "" gives def.
func v2Sort(w http.ResponseWriter, r *http.Request, def string, allowed ...string) (field string, desc, ok bool) {
	s := r.URL.Query().Get("sort")
	if s == "" {
		s = def
	}
	field, desc = strings.CutPrefix(s, "-")
	if !slices.Contains(allowed, field) {
		writeError(w, r, http.StatusBadRequest, "Invalid sort.")
		return "", false, false
	}
	return field, desc, true
}

// splitList reads a v2 array parameter, sent repeated (id=1&id=2) or comma-separated.
func splitList(values []string) []string {
	var out []string
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, part)
			}
		}
	}
	return out
}

func isNumericID(s string) bool {
	if s == "" || len(s) > 19 {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// v2Spaces answers GET /wiki/api/v2/spaces: keys, ids, type and status filters, sorted
// by id (or key, name).
func (s *Server) v2Spaces(w http.ResponseWriter, r *http.Request, _ Account) {
	limit, ok := v2Limit(w, r)
	if !ok {
		return
	}
	field, desc, ok := v2Sort(w, r, "id", "id", "key", "name")
	if !ok {
		return
	}
	q := r.URL.Query()
	keys, ids := splitList(q["keys"]), splitList(q["ids"])
	c := s.confluence()
	c.mu.Lock()
	defer c.mu.Unlock()
	var spaces []*cfSpace
	for _, sp := range c.spaces {
		if (len(keys) > 0 && !slices.Contains(keys, sp.key)) || (len(ids) > 0 && !slices.Contains(ids, sp.id)) ||
			(q.Get("type") != "" && q.Get("type") != "global") || (q.Get("status") != "" && q.Get("status") != "current") {
			continue
		}
		spaces = append(spaces, sp)
	}
	key := func(sp *cfSpace) v2Key {
		switch field {
		case "key":
			return v2Key{sp.key, paddedID(sp.id)}
		case "name":
			return v2Key{strings.ToLower(sp.name), paddedID(sp.id)}
		}
		return v2Key{paddedID(sp.id), ""}
	}
	v2Paginate(w, r, spaces, key, desc, limit, func(sp *cfSpace) any { return renderV2Space(sp) })
}

// v2SpaceByID answers GET /wiki/api/v2/spaces/{id}.
func (s *Server) v2SpaceByID(w http.ResponseWriter, r *http.Request, _ Account) {
	id := r.PathValue("id")
	if !isNumericID(id) {
		writeError(w, r, http.StatusBadRequest, "Invalid space id.")
		return
	}
	c := s.confluence()
	c.mu.Lock()
	defer c.mu.Unlock()
	sp := c.spaceByIDLocked(id)
	if sp == nil {
		writeError(w, r, http.StatusNotFound, "Space not found.")
		return
	}
	writeJSON(w, http.StatusOK, renderV2Space(sp))
}

// pageKey is the sort key of a page for sort field.
func pageKey(field string) func(p *cfPage) v2Key {
	return func(p *cfPage) v2Key {
		switch field {
		case "created-date":
			return v2Key{paddedTime(p.createdAt), paddedID(p.id)}
		case "modified-date":
			return v2Key{paddedTime(p.modifiedAt), paddedID(p.id)}
		case "title":
			return v2Key{strings.ToLower(p.title), paddedID(p.id)}
		}
		return v2Key{paddedID(p.id), ""}
	}
}

var pageSorts = []string{"id", "created-date", "modified-date", "title"}

// v2Pages answers GET /wiki/api/v2/pages (id, space-id and title filters) and
// GET /wiki/api/v2/spaces/{id}/pages.
func (s *Server) v2Pages(w http.ResponseWriter, r *http.Request, _ Account) {
	limit, ok := v2Limit(w, r)
	if !ok {
		return
	}
	withBody, ok := v2BodyFormat(w, r, "atlas_doc_format")
	if !ok {
		return
	}
	field, desc, ok := v2Sort(w, r, "id", pageSorts...)
	if !ok {
		return
	}
	q := r.URL.Query()
	ids, spaceIDs := splitList(q["id"]), splitList(q["space-id"])
	for _, id := range append(slices.Clone(ids), spaceIDs...) {
		if !isNumericID(id) {
			writeError(w, r, http.StatusBadRequest, "Ids must be numbers.")
			return
		}
	}
	if len(ids) > 250 {
		writeError(w, r, http.StatusBadRequest, "At most 250 ids.")
		return
	}
	c := s.confluence()
	c.mu.Lock()
	defer c.mu.Unlock()
	if id := r.PathValue("id"); id != "" {
		if !isNumericID(id) {
			writeError(w, r, http.StatusBadRequest, "Invalid space id.")
			return
		}
		if c.spaceByIDLocked(id) == nil {
			writeError(w, r, http.StatusNotFound, "Space not found.")
			return
		}
		spaceIDs = []string{id}
	}
	var pages []*cfPage
	for _, p := range c.pagesLocked("") {
		if (len(ids) > 0 && !slices.Contains(ids, p.id)) || (len(spaceIDs) > 0 && !slices.Contains(spaceIDs, p.spaceID)) ||
			(q.Get("title") != "" && q.Get("title") != p.title) {
			continue
		}
		pages = append(pages, p)
	}
	v2Paginate(w, r, pages, pageKey(field), desc, limit, func(p *cfPage) any {
		return renderV2Page(c.spaceByIDLocked(p.spaceID), p, withBody)
	})
}

// v2PageByID answers GET /wiki/api/v2/pages/{id}.
func (s *Server) v2PageByID(w http.ResponseWriter, r *http.Request, _ Account) {
	withBody, ok := v2BodyFormat(w, r, "atlas_doc_format", "view", "export_view", "anonymous_export_view", "styled_view", "editor")
	if !ok {
		return
	}
	c := s.confluence()
	c.mu.Lock()
	defer c.mu.Unlock()
	p, found := c.pageOf(w, r)
	if !found {
		return
	}
	writeJSON(w, http.StatusOK, withBase(r, renderV2Page(c.spaceByIDLocked(p.spaceID), p, withBody)))
}

// pageOf finds the page named by the request's {id}, answering 400 or 404 when there is
// none. Must be called with c.mu held.
func (c *confluenceSite) pageOf(w http.ResponseWriter, r *http.Request) (*cfPage, bool) {
	id := r.PathValue("id")
	if !isNumericID(id) {
		writeError(w, r, http.StatusBadRequest, "Invalid page id.")
		return nil, false
	}
	p, found := c.pages[id]
	if !found {
		writeError(w, r, http.StatusNotFound, "Page not found.")
	}
	return p, found
}

// withBase adds _links.base to a single entity, as v2 does for gets and creates.
func withBase(r *http.Request, p v2Page) v2Page {
	p.Links["base"] = siteBase(r) + "/wiki"
	return p
}

// v2FooterComments answers GET /wiki/api/v2/pages/{id}/footer-comments.
func (s *Server) v2FooterComments(w http.ResponseWriter, r *http.Request, _ Account) {
	limit, ok := v2Limit(w, r)
	if !ok {
		return
	}
	withBody, ok := v2BodyFormat(w, r, "atlas_doc_format")
	if !ok {
		return
	}
	field, desc, ok := v2Sort(w, r, "created-date", "created-date", "modified-date")
	if !ok {
		return
	}
	c := s.confluence()
	c.mu.Lock()
	defer c.mu.Unlock()
	p, found := c.pageOf(w, r)
	if !found {
		return
	}
	sp := c.spaceByIDLocked(p.spaceID)
	key := func(cm *cfComment) v2Key {
		if field == "modified-date" {
			return v2Key{paddedTime(cm.modifiedAt), paddedID(cm.id)}
		}
		return v2Key{paddedTime(cm.createdAt), paddedID(cm.id)}
	}
	comments := slices.Clone(c.comments[p.id])
	v2Paginate(w, r, comments, key, desc, limit, func(cm *cfComment) any {
		out := v2Comment{
			ID: cm.id, Status: "current", Title: "Re: " + p.title, PageID: p.id,
			Version: v2Version{CreatedAt: v2Time(cm.modifiedAt), Number: cm.version, AuthorID: cm.authorID},
			Links:   map[string]string{"webui": pageWebUI(sp, p) + "?focusedCommentId=" + cm.id},
		}
		if withBody {
			out.Body.Storage = &v2BodyType{Representation: "storage", Value: cm.body}
		}
		return out
	})
}

// v2CreatePage answers POST /wiki/api/v2/pages with 200 (not 201), as Confluence does.
// The body may be {representation, value} or {storage: {representation, value}}; only
// the storage representation is supported.
func (s *Server) v2CreatePage(w http.ResponseWriter, r *http.Request, a Account) {
	var req struct {
		SpaceID string          `json:"spaceId"`
		Status  string          `json:"status"`
		Title   string          `json:"title"`
		Body    json.RawMessage `json:"body"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 5<<20)).Decode(&req); err != nil {
		writeError(w, r, http.StatusBadRequest, "The request body is not valid JSON.")
		return
	}
	var body struct {
		v2BodyType
		Storage *v2BodyType `json:"storage"`
	}
	if len(req.Body) > 0 {
		if err := json.Unmarshal(req.Body, &body); err != nil {
			writeError(w, r, http.StatusBadRequest, "Invalid body.")
			return
		}
	}
	value := body.v2BodyType
	if body.Storage != nil {
		value = *body.Storage
	}
	switch {
	case req.SpaceID == "" || !isNumericID(req.SpaceID):
		writeError(w, r, http.StatusBadRequest, "spaceId is required.")
		return
	case req.Status != "" && req.Status != "current":
		writeError(w, r, http.StatusBadRequest, "The fake publishes pages only (status current).")
		return
	case strings.TrimSpace(req.Title) == "":
		writeError(w, r, http.StatusBadRequest, "Title is required for a published page.")
		return
	case value.Value != "" && value.Representation != "storage":
		writeError(w, r, http.StatusBadRequest, "The fake accepts the storage representation only.")
		return
	}
	c := s.confluence()
	c.mu.Lock()
	defer c.mu.Unlock()
	sp := c.spaceByIDLocked(req.SpaceID)
	if sp == nil {
		writeError(w, r, http.StatusNotFound, "Space not found.")
		return
	}
	p, err := c.addPageLocked(sp, req.Title, value.Value, a.ID, time.Now())
	if err != nil {
		writeError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, withBase(r, renderV2Page(sp, p, true)))
}
