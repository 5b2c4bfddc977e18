package confluence

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/connectors/atlassian"
)

// Confluence Data Center through its REST API (/rest/api at the context path), and the
// v1 shapes Cloud's search shares with it: content with expansions (body.storage,
// version, history, space), and lists paged by start and limit with _links.next.

// v1List is a paged v1 list.
type v1List[T any] struct {
	Results []T `json:"results"`
	Links   struct {
		Next string `json:"next"`
	} `json:"_links"`
}

// v1User is the part of v1's User the connector reads.
type v1User struct {
	AccountID   string `json:"accountId"`
	UserKey     string `json:"userKey"`
	Username    string `json:"username"`
	DisplayName string `json:"displayName"`
}

// person is the user as an author: accountId on Cloud, userKey (or username) on Data
// Center, as Identity reports the account.
func (u v1User) person(cloud bool) connectors.Person {
	return connectors.Person{ID: currentUser{AccountID: u.AccountID, UserKey: u.UserKey, Username: u.Username}.id(cloud), DisplayName: u.DisplayName}
}

// v1Content is the part of v1's Content the connector reads.
type v1Content struct {
	ID    string `json:"id"`
	Type  string `json:"type"`
	Title string `json:"title"`
	Space *struct {
		Key string `json:"key"`
	} `json:"space"`
	History *v1History `json:"history"`
	Version *v1Version `json:"version"`
	Body    struct {
		Storage *struct {
			Value string `json:"value"`
		} `json:"storage"`
	} `json:"body"`
}

// v1Version is the part of v1's Version the connector reads.
type v1Version struct {
	By     v1User `json:"by"`
	When   string `json:"when"`
	Number int    `json:"number"`
}

// v1History is the part of v1's History the connector reads.
type v1History struct {
	CreatedBy   v1User `json:"createdBy"`
	CreatedDate string `json:"createdDate"`
}

// v1Space is the part of v1's Space the connector reads; its id is a number.
type v1Space struct {
	ID   int64  `json:"id"`
	Key  string `json:"key"`
	Name string `json:"name"`
}

// dcPageURL is where a user reads a Data Center page: viewpage.action is the one URL
// that survives renames and moves.
func (c *Client) dcPageURL(id string) string {
	return c.api.SiteURL("/pages/viewpage.action") + "?pageId=" + id
}

// v1Item normalizes v1 content (expanded with version and history; body and space when
// asked for). spaceKey is used when the content does not name its space.
func (c *Client) v1Item(ct v1Content, spaceKey, op string) (connectors.Item, error) {
	bad := func(err error) error {
		return &connectors.Error{Kind: connectors.KindUnavailable, Vendor: Type, Op: op, Status: http.StatusOK,
			Reason: "unreadable page in the answer", Err: err}
	}
	if !numericID(ct.ID) || ct.Version == nil || ct.History == nil {
		return connectors.Item{}, bad(nil)
	}
	times, err := parseTimes(ct.History.CreatedDate, ct.Version.When)
	if err != nil {
		return connectors.Item{}, bad(err)
	}
	if ct.Space != nil && ct.Space.Key != "" {
		spaceKey = ct.Space.Key
	}
	it := connectors.Item{
		ID: ct.ID, Key: ct.ID, Kind: connectors.KindPage, Title: ct.Title,
		Container: spaceKey,
		Author:    ct.History.CreatedBy.person(c.api.IsCloud()),
		CreatedAt: times[0], UpdatedAt: times[1],
		Type: Type,
	}
	if ct.Body.Storage != nil {
		it.Text = atlassian.StorageToText(ct.Body.Storage.Value)
	}
	if c.api.IsCloud() {
		it.URL = c.pageURL(spaceKey, ct.ID)
	} else {
		it.URL = c.dcPageURL(ct.ID)
	}
	return it, nil
}

// pageParams are start and limit of a v1 listing.
func pageParams(st cursor, limit int) url.Values {
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if st.Start > 0 {
		q.Set("start", strconv.Itoa(st.Start))
	}
	return q
}

func (c *Client) dcContainers(ctx context.Context, cur string, limit int) (connectors.Page[connectors.Container], error) {
	var page connectors.Page[connectors.Container]
	path := "/rest/api/space"
	st, err := decodeCursor(cur, opContainers, "")
	if err != nil {
		return page, c.invalid(http.MethodGet, path, err.Error())
	}
	var list v1List[v1Space]
	if err := c.api.Get(ctx, path, pageParams(st, clampLimit(limit)), &list); err != nil {
		return page, err
	}
	page.Items = make([]connectors.Container, 0, len(list.Results))
	for _, sp := range list.Results {
		page.Items = append(page.Items, connectors.Container{ID: strconv.FormatInt(sp.ID, 10), Key: sp.Key, Name: sp.Name})
	}
	page.NextCursor, err = c.nextPage(opContainers, "", http.MethodGet, path, list.Links.Next)
	return page, err
}

// dcExpand is what Data Center is asked to expand on pages.
const dcExpand = "body.storage,version,history,space"

func (c *Client) dcItems(ctx context.Context, q connectors.ItemQuery) (connectors.Page[connectors.Item], error) {
	var page connectors.Page[connectors.Item]
	path := "/rest/api/content"
	if q.Container == "" {
		return page, c.invalid(http.MethodGet, path, "a space key is required")
	}
	digest := queryDigest(q.Container, instant(q.UpdatedSince))
	st, err := decodeCursor(q.Cursor, opItems, digest)
	if err != nil {
		return page, c.invalid(http.MethodGet, path, err.Error())
	}
	params := pageParams(st, clampLimit(q.Limit))
	params.Set("spaceKey", q.Container)
	params.Set("type", "page")
	params.Set("expand", dcExpand)
	var list v1List[v1Content]
	if err := c.api.Get(ctx, path, params, &list); err != nil {
		return page, err
	}
	op := c.api.Op(http.MethodGet, path)
	page.Items = make([]connectors.Item, 0, len(list.Results))
	for _, ct := range list.Results {
		it, err := c.v1Item(ct, q.Container, op)
		if err != nil {
			return connectors.Page[connectors.Item]{}, err
		}
		// This listing cannot be sorted by date: filter it, page by page.
		if it.UpdatedAt.Before(q.UpdatedSince) {
			continue
		}
		page.Items = append(page.Items, it)
	}
	page.NextCursor, err = c.nextPage(opItems, digest, http.MethodGet, path, list.Links.Next)
	return page, err
}

func (c *Client) dcItem(ctx context.Context, id string) (connectors.Item, error) {
	path := "/rest/api/content/" + id
	if !numericID(id) {
		return connectors.Item{}, c.invalid(http.MethodGet, "/rest/api/content/{id}", "page ids are numbers")
	}
	var ct v1Content
	if err := c.api.Get(ctx, path, url.Values{"expand": {dcExpand}}, &ct); err != nil {
		return connectors.Item{}, err
	}
	if ct.Type != "page" {
		return connectors.Item{}, &connectors.Error{Kind: connectors.KindNotFound, Vendor: Type,
			Op: c.api.Op(http.MethodGet, path), Status: http.StatusOK, Reason: "not a page"}
	}
	return c.v1Item(ct, "", c.api.Op(http.MethodGet, path))
}

func (c *Client) dcComments(ctx context.Context, itemID, cur string, limit int) (connectors.Page[connectors.Comment], error) {
	var page connectors.Page[connectors.Comment]
	path := "/rest/api/content/" + itemID + "/child/comment"
	if !numericID(itemID) {
		return page, c.invalid(http.MethodGet, "/rest/api/content/{id}/child/comment", "page ids are numbers")
	}
	st, err := decodeCursor(cur, opComments, queryDigest(itemID))
	if err != nil {
		return page, c.invalid(http.MethodGet, path, err.Error())
	}
	params := pageParams(st, clampLimit(limit))
	params.Set("expand", "body.storage,version,history")
	params.Set("location", "footer")
	var list v1List[v1Content]
	if err := c.api.Get(ctx, path, params, &list); err != nil {
		return page, err
	}
	page.Items = make([]connectors.Comment, 0, len(list.Results))
	for _, ct := range list.Results {
		if ct.Version == nil || ct.History == nil {
			return connectors.Page[connectors.Comment]{}, c.badAnswer(http.MethodGet, path, "unreadable comment in the answer", nil)
		}
		times, err := parseTimes(ct.History.CreatedDate, ct.Version.When)
		if err != nil {
			return connectors.Page[connectors.Comment]{}, c.badAnswer(http.MethodGet, path, "unreadable comment in the answer", err)
		}
		cm := connectors.Comment{
			ID: ct.ID, ItemID: itemID,
			Author:    ct.History.CreatedBy.person(false),
			CreatedAt: times[0], UpdatedAt: times[1],
			URL: c.dcPageURL(itemID) + "&focusedCommentId=" + url.QueryEscape(ct.ID),
		}
		if ct.Body.Storage != nil {
			cm.Text = atlassian.StorageToText(ct.Body.Storage.Value)
		}
		page.Items = append(page.Items, cm)
	}
	page.NextCursor, err = c.nextPage(opComments, queryDigest(itemID), http.MethodGet, path, list.Links.Next)
	return page, err
}

// dcContentCreate is Data Center's create-content body.
type dcContentCreate struct {
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

func (c *Client) dcCreate(ctx context.Context, item connectors.NewItem) (connectors.Item, error) {
	path := "/rest/api/content"
	if strings.TrimSpace(item.Title) == "" || item.Container == "" {
		return connectors.Item{}, c.invalid(http.MethodPost, path, "a page needs a space and a title")
	}
	body := dcContentCreate{Type: "page", Title: item.Title}
	body.Space.Key = item.Container
	body.Body.Storage.Value = atlassian.TextToStorage(item.Text)
	body.Body.Storage.Representation = "storage"
	var ct v1Content
	if err := c.api.Do(ctx, atlassian.Request{Method: http.MethodPost, Path: path, Body: body}, &ct); err != nil {
		return connectors.Item{}, err
	}
	return c.v1Item(ct, item.Container, c.api.Op(http.MethodPost, path))
}

// dcLiveIDs lists the pages of a space by ascending id with GET /rest/api/content/scan
// (Confluence Data Center 7.18 and later), whose cursor is a position in that order: a
// page deleted or created during the walk moves nothing, so every page live throughout is
// listed, exactly once. The start offsets of GET /rest/api/content would shift under a
// deletion and leave a live page out of a snapshot that consumers prune by. Each answer
// is checked to keep to that order (ids rising, past the last one listed): one that does
// not is an error, never a page of a snapshot that may be incomplete.
func (c *Client) dcLiveIDs(ctx context.Context, container connectors.Container, cur string) (connectors.Page[string], error) {
	var page connectors.Page[string]
	path := "/rest/api/content/scan"
	if container.Key == "" {
		return page, c.invalid(http.MethodGet, path, "a space key is required")
	}
	digest := queryDigest("scan", container.Key)
	st, err := decodeCursor(cur, opLiveIDs, digest)
	if err != nil {
		return page, c.invalid(http.MethodGet, path, err.Error())
	}
	params := url.Values{"spaceKey": {container.Key}, "type": {"page"}, "limit": {strconv.Itoa(maxLimit)}}
	if st.Token != "" {
		params.Set("cursor", st.Token)
	}
	var list v1List[struct {
		ID string `json:"id"`
	}]
	if err := c.api.Get(ctx, path, params, &list); err != nil {
		if connectors.KindOf(err) == connectors.KindNotFound {
			return page, &connectors.Error{Kind: connectors.KindNotFound, Vendor: Type, Op: c.api.Op(http.MethodGet, path),
				Status: http.StatusNotFound, Reason: "no such space, or no content scan (Confluence Data Center 7.18 or later)", Err: err}
		}
		return page, err
	}
	ids := make([]string, 0, len(list.Results))
	for _, ct := range list.Results {
		ids = append(ids, ct.ID)
	}
	if page.Items, err = rising(ids, st.ID); err != nil {
		return connectors.Page[string]{}, c.badAnswer(http.MethodGet, path, err.Error(), nil)
	}
	return c.liveIDsNext(page, st.ID, digest, path, list.Links.Next)
}

// errNotRising is a listing by id that went back: the walk cannot vouch for it.
var errNotRising = errors.New("page ids out of order in a listing by id")

// rising checks that ids are numeric and strictly rising, all after after (the last id
// listed before; "" at the start), and returns them.
func rising(ids []string, after string) ([]string, error) {
	for _, id := range ids {
		if !numericID(id) || (after != "" && compareIDs(id, after) <= 0) {
			return nil, errNotRising
		}
		after = id
	}
	return ids, nil
}

// liveIDsNext sets page's cursor from the vendor's next link, remembering the last id
// listed (after, when the page is empty) so that the next answer can be checked to go
// on after it.
func (c *Client) liveIDsNext(page connectors.Page[string], after, digest, path, link string) (connectors.Page[string], error) {
	token, start, more, err := nextFromLink(link)
	if err != nil {
		return connectors.Page[string]{}, c.badAnswer(http.MethodGet, path, err.Error(), nil)
	}
	if !more {
		return page, nil
	}
	if start != 0 || token == "" {
		// An offset would shift under a deletion: nothing here pages by one.
		return connectors.Page[string]{}, c.badAnswer(http.MethodGet, path, "a listing by id answered an offset", nil)
	}
	next := cursor{Op: opLiveIDs, Q: digest, Token: token, ID: after}
	if n := len(page.Items); n > 0 {
		next.ID = page.Items[n-1]
	}
	page.NextCursor = next.encode()
	return page, nil
}
