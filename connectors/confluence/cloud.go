package confluence

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/connectors/atlassian"
)

// Confluence Cloud through the REST API v2 (/wiki/api/v2), whose shapes are in
// shared/vendor-specs/confluence-cloud-v2.openapi.json.

const v2 = "/wiki/api/v2"

// v2List is MultiEntityResult. The next link is also in the Link header; the body's is
// read because the shared client decodes bodies.
type v2List[T any] struct {
	Results []T `json:"results"`
	Links   struct {
		Next string `json:"next"`
	} `json:"_links"`
}

// v2Space is the part of SpaceBulk the connector reads.
type v2Space struct {
	ID   string `json:"id"`
	Key  string `json:"key"`
	Name string `json:"name"`
}

// v2Version is Version.
type v2Version struct {
	CreatedAt string `json:"createdAt"`
	Number    int    `json:"number"`
	AuthorID  string `json:"authorId"`
}

// v2Body is BodyBulk with the storage representation.
type v2Body struct {
	Storage *struct {
		Value string `json:"value"`
	} `json:"storage"`
}

func (b v2Body) storage() string {
	if b.Storage == nil {
		return ""
	}
	return b.Storage.Value
}

// v2Page is the part of PageBulk / PageSingle the connector reads.
type v2Page struct {
	ID        string    `json:"id"`
	Title     string    `json:"title"`
	SpaceID   string    `json:"spaceId"`
	AuthorID  string    `json:"authorId"`
	CreatedAt string    `json:"createdAt"`
	Version   v2Version `json:"version"`
	Body      v2Body    `json:"body"`
}

// v2Comment is the part of PageCommentModel the connector reads. It has no creation time
// or author of its own: only its current version's.
type v2Comment struct {
	ID      string    `json:"id"`
	PageID  string    `json:"pageId"`
	Version v2Version `json:"version"`
	Body    v2Body    `json:"body"`
	Links   struct {
		WebUI string `json:"webui"`
	} `json:"_links"`
}

func (c *Client) cloudContainers(ctx context.Context, cur string, limit int) (connectors.Page[connectors.Container], error) {
	path := v2 + "/spaces"
	st, err := decodeCursor(cur, opContainers, "")
	if err != nil {
		return connectors.Page[connectors.Container]{}, c.invalid(http.MethodGet, path, err.Error())
	}
	q := url.Values{"limit": {strconv.Itoa(clampLimit(limit))}}
	if st.Token != "" {
		q.Set("cursor", st.Token)
	}
	var list v2List[v2Space]
	if err := c.api.Get(ctx, path, q, &list); err != nil {
		return connectors.Page[connectors.Container]{}, err
	}
	page := connectors.Page[connectors.Container]{Items: make([]connectors.Container, 0, len(list.Results))}
	for _, sp := range list.Results {
		c.rememberSpace(sp.Key, sp.ID)
		page.Items = append(page.Items, connectors.Container{ID: sp.ID, Key: sp.Key, Name: sp.Name})
	}
	page.NextCursor, err = c.nextPage(opContainers, "", http.MethodGet, path, list.Links.Next)
	return page, err
}

func (c *Client) rememberSpace(key, id string) {
	if key == "" || id == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.spaceIDs[key] = id
	c.spaceKeys[id] = key
}

// spaceID resolves a space key to the id v2 wants, once per Client:
// GET /wiki/api/v2/spaces?keys=KEY. An unknown key is KindNotFound.
func (c *Client) spaceID(ctx context.Context, key string) (string, error) {
	path := v2 + "/spaces"
	if key == "" || strings.ContainsAny(key, ", ") {
		return "", c.invalid(http.MethodGet, path, "a space key is required (one, without commas or spaces)")
	}
	c.mu.Lock()
	id, ok := c.spaceIDs[key]
	c.mu.Unlock()
	if ok {
		return id, nil
	}
	var list v2List[v2Space]
	if err := c.api.Get(ctx, path, url.Values{"keys": {key}}, &list); err != nil {
		return "", err
	}
	for _, sp := range list.Results {
		if sp.Key == key && numericID(sp.ID) {
			c.rememberSpace(sp.Key, sp.ID)
			return sp.ID, nil
		}
	}
	return "", &connectors.Error{Kind: connectors.KindNotFound, Vendor: Type, Op: c.api.Op(http.MethodGet, path),
		Status: http.StatusOK, Reason: "no space with that key"}
}

// spaceKey resolves a space id to its key, once per Client: GET /wiki/api/v2/spaces/{id}.
func (c *Client) spaceKey(ctx context.Context, id string) (string, error) {
	c.mu.Lock()
	key, ok := c.spaceKeys[id]
	c.mu.Unlock()
	if ok {
		return key, nil
	}
	path := v2 + "/spaces/" + id
	if !numericID(id) {
		return "", c.badAnswer(http.MethodGet, path, "the page names no space", nil)
	}
	var sp v2Space
	if err := c.api.Get(ctx, path, nil, &sp); err != nil {
		return "", err
	}
	c.rememberSpace(sp.Key, sp.ID)
	return sp.Key, nil
}

// pageURL is where a user reads a page: the site's own URL (never the OAuth2 gateway).
func (c *Client) pageURL(spaceKey, id string) string {
	return c.api.SiteURL(c.wiki + "/spaces/" + url.PathEscape(spaceKey) + "/pages/" + id)
}

// webURL joins a webui link (relative to /wiki) to the site, keeping its query. Only
// its path and query are used, so a link naming another host stays on the site.
func (c *Client) webURL(webui string) string {
	u, err := url.Parse(webui)
	if err != nil || u.Path == "" {
		return ""
	}
	out := c.api.SiteURL(c.wiki + u.Path)
	if u.RawQuery != "" {
		out += "?" + u.RawQuery
	}
	return out
}

// parseTimes parses vendor timestamps, failing on the first it cannot read.
func parseTimes(ss ...string) ([]time.Time, error) {
	out := make([]time.Time, len(ss))
	for i, s := range ss {
		t, err := atlassian.ParseTime(s)
		if err != nil {
			return nil, err
		}
		out[i] = t
	}
	return out, nil
}

// v2Item normalizes a v2 page of the space with key spaceKey.
func (c *Client) v2Item(p v2Page, spaceKey, op string) (connectors.Item, error) {
	times, err := parseTimes(p.CreatedAt, p.Version.CreatedAt)
	if err != nil || !numericID(p.ID) {
		return connectors.Item{}, &connectors.Error{Kind: connectors.KindUnavailable, Vendor: Type, Op: op,
			Status: http.StatusOK, Reason: "unreadable page in the answer", Err: err}
	}
	return connectors.Item{
		ID: p.ID, Key: p.ID, Kind: connectors.KindPage, Title: p.Title,
		Text:      atlassian.StorageToText(p.Body.storage()),
		URL:       c.pageURL(spaceKey, p.ID),
		Container: spaceKey,
		Author:    connectors.Person{ID: p.AuthorID},
		CreatedAt: times[0], UpdatedAt: times[1],
		Type: Type,
	}, nil
}

func (c *Client) cloudItems(ctx context.Context, q connectors.ItemQuery) (connectors.Page[connectors.Item], error) {
	var page connectors.Page[connectors.Item]
	spaceID, err := c.spaceID(ctx, q.Container)
	if err != nil {
		return page, err
	}
	path := v2 + "/spaces/" + spaceID + "/pages"
	digest := queryDigest(q.Container, instant(q.UpdatedSince))
	st, err := decodeCursor(q.Cursor, opItems, digest)
	if err != nil {
		return page, c.invalid(http.MethodGet, path, err.Error())
	}
	params := url.Values{"body-format": {"storage"}, "limit": {strconv.Itoa(clampLimit(q.Limit))}}
	if !q.UpdatedSince.IsZero() {
		// v2 cannot filter by date, but it can sort: newest first, stop at the first older.
		params.Set("sort", "-modified-date")
	}
	if st.Token != "" {
		params.Set("cursor", st.Token)
	}
	var list v2List[v2Page]
	if err := c.api.Get(ctx, path, params, &list); err != nil {
		return page, err
	}
	op := c.api.Op(http.MethodGet, path)
	page.Items = make([]connectors.Item, 0, len(list.Results))
	for _, p := range list.Results {
		it, err := c.v2Item(p, q.Container, op)
		if err != nil {
			return connectors.Page[connectors.Item]{}, err
		}
		if !q.UpdatedSince.IsZero() && it.UpdatedAt.Before(q.UpdatedSince) {
			return page, nil // and nothing after it is newer
		}
		page.Items = append(page.Items, it)
	}
	page.NextCursor, err = c.nextPage(opItems, digest, http.MethodGet, path, list.Links.Next)
	return page, err
}

func (c *Client) cloudItem(ctx context.Context, id string) (connectors.Item, error) {
	path := v2 + "/pages/" + id
	if !numericID(id) {
		return connectors.Item{}, c.invalid(http.MethodGet, v2+"/pages/{id}", "page ids are numbers")
	}
	var p v2Page
	if err := c.api.Get(ctx, path, url.Values{"body-format": {"storage"}}, &p); err != nil {
		return connectors.Item{}, err
	}
	key, err := c.spaceKey(ctx, p.SpaceID)
	if err != nil {
		return connectors.Item{}, err
	}
	return c.v2Item(p, key, c.api.Op(http.MethodGet, path))
}

// v2PagesByID reads the pages with ids (at most maxLimit) with their bodies, in one
// call: GET /wiki/api/v2/pages?id=…&id=…. Pages that no longer exist are absent.
func (c *Client) v2PagesByID(ctx context.Context, spaceKey string, ids []string) (map[string]filled, error) {
	path := v2 + "/pages"
	params := url.Values{"id": ids, "body-format": {"storage"}, "limit": {strconv.Itoa(len(ids))}}
	var list v2List[v2Page]
	if err := c.api.Get(ctx, path, params, &list); err != nil {
		return nil, err
	}
	op := c.api.Op(http.MethodGet, path)
	out := make(map[string]filled, len(list.Results))
	for _, p := range list.Results {
		it, err := c.v2Item(p, spaceKey, op)
		if err != nil {
			return nil, err
		}
		out[p.ID] = filled{item: it, version: p.Version.Number}
	}
	return out, nil
}

func (c *Client) cloudComments(ctx context.Context, itemID, cur string, limit int) (connectors.Page[connectors.Comment], error) {
	var page connectors.Page[connectors.Comment]
	path := v2 + "/pages/" + itemID + "/footer-comments"
	if !numericID(itemID) {
		return page, c.invalid(http.MethodGet, v2+"/pages/{id}/footer-comments", "page ids are numbers")
	}
	st, err := decodeCursor(cur, opComments, queryDigest(itemID))
	if err != nil {
		return page, c.invalid(http.MethodGet, path, err.Error())
	}
	params := url.Values{"body-format": {"storage"}, "sort": {"created-date"}, "limit": {strconv.Itoa(clampLimit(limit))}}
	if st.Token != "" {
		params.Set("cursor", st.Token)
	}
	var list v2List[v2Comment]
	if err := c.api.Get(ctx, path, params, &list); err != nil {
		return page, err
	}
	page.Items = make([]connectors.Comment, 0, len(list.Results))
	for _, cm := range list.Results {
		times, err := parseTimes(cm.Version.CreatedAt)
		if err != nil {
			return connectors.Page[connectors.Comment]{}, c.badAnswer(http.MethodGet, path, "unreadable comment in the answer", err)
		}
		comment := connectors.Comment{
			ID: cm.ID, ItemID: itemID,
			// A comment's versions are its author's edits, so the version's author is
			// the comment's.
			Author:    connectors.Person{ID: cm.Version.AuthorID},
			Text:      atlassian.StorageToText(cm.Body.storage()),
			UpdatedAt: times[0],
			URL:       c.webURL(cm.Links.WebUI),
		}
		// v2 gives no creation time: it is the version's only while there is one version.
		if cm.Version.Number <= 1 {
			comment.CreatedAt = times[0]
		}
		if comment.URL == "" {
			comment.URL = c.api.SiteURL(c.wiki+"/pages/viewpage.action") + "?pageId=" + itemID + "&focusedCommentId=" + cm.ID
		}
		page.Items = append(page.Items, comment)
	}
	page.NextCursor, err = c.nextPage(opComments, queryDigest(itemID), http.MethodGet, path, list.Links.Next)
	return page, err
}

// v2PageCreate is createPage's body.
type v2PageCreate struct {
	SpaceID string `json:"spaceId"`
	Status  string `json:"status"`
	Title   string `json:"title"`
	Body    struct {
		Representation string `json:"representation"`
		Value          string `json:"value"`
	} `json:"body"`
}

func (c *Client) cloudCreate(ctx context.Context, item connectors.NewItem) (connectors.Item, error) {
	path := v2 + "/pages"
	if strings.TrimSpace(item.Title) == "" {
		return connectors.Item{}, c.invalid(http.MethodPost, path, "a page needs a title")
	}
	spaceID, err := c.spaceID(ctx, item.Container)
	if err != nil {
		return connectors.Item{}, err
	}
	body := v2PageCreate{SpaceID: spaceID, Status: "current", Title: item.Title}
	body.Body.Representation = "storage"
	body.Body.Value = atlassian.TextToStorage(item.Text)
	var p v2Page
	if err := c.api.Do(ctx, atlassian.Request{Method: http.MethodPost, Path: path, Body: body}, &p); err != nil {
		return connectors.Item{}, err
	}
	if p.Body.Storage == nil {
		// Not every answer carries the body back; it is what was sent.
		p.Body.Storage = &struct {
			Value string `json:"value"`
		}{body.Body.Value}
	}
	return c.v2Item(p, item.Container, c.api.Op(http.MethodPost, path))
}

// cloudLiveIDs lists the pages of a space by ascending id (GET
// /wiki/api/v2/spaces/{id}/pages?sort=id): v2's cursor is a position in that order, so
// a page deleted or created during the walk moves nothing and every page live throughout
// is listed exactly once. Answers are checked to keep to the order (see dcLiveIDs).
func (c *Client) cloudLiveIDs(ctx context.Context, container connectors.Container, cur string) (connectors.Page[string], error) {
	var page connectors.Page[string]
	spaceID := container.ID
	if !numericID(spaceID) {
		var err error
		if spaceID, err = c.spaceID(ctx, container.Key); err != nil {
			return page, err
		}
	}
	path := v2 + "/spaces/" + spaceID + "/pages"
	digest := queryDigest(spaceID, "id")
	st, err := decodeCursor(cur, opLiveIDs, digest)
	if err != nil {
		return page, c.invalid(http.MethodGet, path, err.Error())
	}
	// No body-format: ids are all pruning needs, and bodies are most of the weight.
	params := url.Values{"limit": {strconv.Itoa(maxLimit)}, "sort": {"id"}}
	if st.Token != "" {
		params.Set("cursor", st.Token)
	}
	var list v2List[struct {
		ID string `json:"id"`
	}]
	if err := c.api.Get(ctx, path, params, &list); err != nil {
		return page, err
	}
	ids := make([]string, 0, len(list.Results))
	for _, p := range list.Results {
		ids = append(ids, p.ID)
	}
	if page.Items, err = rising(ids, st.ID); err != nil {
		return connectors.Page[string]{}, c.badAnswer(http.MethodGet, path, err.Error(), nil)
	}
	return c.liveIDsNext(page, st.ID, digest, path, list.Links.Next)
}

// instant renders t for a query digest: the same instant gives the same string whatever
// its zone.
func instant(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
