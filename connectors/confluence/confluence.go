// Package confluence is the Confluence connector: Confluence Cloud (at the site under
// /wiki, or at the OAuth2 gateway for Bearer tokens) and Confluence Data Center (REST API
// at the site root or its context path, with a personal access token). It registers
// itself as the "confluence" provider; import it for its side effect:
//
//	import _ "github.com/unified-connectors/connector-operator/connectors/confluence"
//
// What it calls:
//
//	                Cloud                                          Data Center
//	Identity        GET /wiki/rest/api/user/current                GET /rest/api/user/current
//	Containers      GET /wiki/api/v2/spaces                        GET /rest/api/space
//	Items           GET /wiki/api/v2/spaces/{id}/pages             GET /rest/api/content?spaceKey=…&type=page
//	LiveIDs         GET /wiki/api/v2/spaces/{id}/pages?sort=id     GET /rest/api/content/scan?spaceKey=… (7.18+)
//	Item            GET /wiki/api/v2/pages/{id}                    GET /rest/api/content/{id}
//	ItemMatching    Item, then search (CQL id = … AND (filter))    Item, then search (CQL)
//	Items, filtered search (CQL space = … AND (filter))            search (CQL)
//	Comments        GET /wiki/api/v2/pages/{id}/footer-comments    GET /rest/api/content/{id}/child/comment
//	Search          GET /wiki/rest/api/search?cql=…                GET /rest/api/content/search?cql=…
//	Changes         search (CQL), then GET /wiki/api/v2/pages?id=… search (CQL), twice
//	Create          POST /wiki/api/v2/pages (answers 200)          POST /rest/api/content
//
// Pages are read in storage format (XHTML) and normalized to plain text with
// atlassian.StorageToText. Space keys are resolved to ids (v2 wants ids) once per Client.
// Cursors are opaque (see cursor.go); Changes is exact whatever the account's time zone
// (see changes.go).
package confluence

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/connectors/atlassian"
)

// Type is the Connector spec.type this package serves.
const Type = "confluence"

func init() { connectors.Register(Provider{}) }

var (
	_ connectors.Provider     = Provider{}
	_ connectors.Lookbacker   = Provider{}
	_ connectors.Client       = (*Client)(nil)
	_ connectors.FilterReader = (*Client)(nil)
)

// Provider builds Confluence Clients.
type Provider struct{}

// Type returns "confluence".
func (Provider) Type() string { return Type }

// Validate checks cfg without I/O; see atlassian.Validate for the rules. On Data Center,
// baseURL includes the context path if Confluence has one (https://host/confluence).
func (Provider) Validate(cfg connectors.Config) ([]string, error) {
	return atlassian.Validate(atlassian.Confluence, cfg)
}

// DefaultLookback is 5 minutes: how far behind its cursor the sync engine re-reads
// every run unless spec.sync.lookback says otherwise. Changes walks CQL search, whose
// index is eventually consistent: a new page version committed at t1 can become
// searchable after one committed later, usually seconds later and occasionally minutes,
// once a run has moved past t1. Re-reading the window finds such versions.
func (Provider) DefaultLookback() time.Duration { return 5 * time.Minute }

// Describe is Atlassian's Description for Confluence (atlassian.Describe).
func (Provider) Describe() connectors.Description { return atlassian.Describe(atlassian.Confluence) }

// NewClient returns a Client for cfg without I/O.
func (Provider) NewClient(cfg connectors.Config) (connectors.Client, error) {
	return New(cfg)
}

// Limits of a page of results: what callers get when they ask for none, and the most
// that Confluence's v2 lists answer (limit ≤ 250).
const (
	defaultLimit = 25
	maxLimit     = 250
)

// Client is one Connection's handle on a Confluence site. It is safe for concurrent use.
type Client struct {
	api *atlassian.Client
	// wiki prefixes every REST path: Cloud serves Confluence under /wiki (also through
	// the gateway), Data Center at its context path, which is part of baseURL.
	wiki string
	// walkPage is how many search hits Changes asks for at a time.
	walkPage int

	// spaceIDs and spaceKeys cache the space key ↔ id mapping: v2 addresses spaces by
	// id, callers and CQL by key, and neither changes for the life of a space.
	mu        sync.Mutex
	spaceIDs  map[string]string
	spaceKeys map[string]string
}

// New returns a Client for cfg without I/O.
func New(cfg connectors.Config) (*Client, error) {
	api, err := atlassian.New(atlassian.Confluence, cfg)
	if err != nil {
		return nil, err
	}
	c := &Client{api: api, walkPage: maxLimit, spaceIDs: map[string]string{}, spaceKeys: map[string]string{}}
	if api.IsCloud() {
		c.wiki = "/wiki"
	}
	return c, nil
}

// String describes the client without its credential.
func (c *Client) String() string { return c.api.String() }

// currentUser is the part of Confluence's v1 User the connector reads. Cloud identifies
// a user by accountId; Data Center by userKey (and username).
type currentUser struct {
	Type        string `json:"type"`
	AccountID   string `json:"accountId"`
	UserKey     string `json:"userKey"`
	Username    string `json:"username"`
	DisplayName string `json:"displayName"`
	TimeZone    string `json:"timeZone"`
}

// id is the user's identifier on the deployment: accountId on Cloud, userKey (or the
// username) on Data Center.
func (u currentUser) id(cloud bool) string {
	if cloud {
		return u.AccountID
	}
	if u.UserKey != "" {
		return u.UserKey
	}
	return u.Username
}

// Identity asks Confluence who the credential belongs to: GET /wiki/rest/api/user/current
// on Cloud, GET /rest/api/user/current on Data Center, where the user key stands in for
// the account id. A 401 or 403 is a connectors.KindAuth error, and so is an anonymous
// answer: Confluence answers a request it could not authenticate with the anonymous user
// rather than 401 on some sites.
func (c *Client) Identity(ctx context.Context) (connectors.Identity, error) {
	path := c.wiki + "/rest/api/user/current"
	var me currentUser
	if err := c.api.Get(ctx, path, nil, &me); err != nil {
		return connectors.Identity{}, atlassian.AuthOnForbidden(err)
	}
	if me.Type == "anonymous" {
		return connectors.Identity{}, &connectors.Error{Kind: connectors.KindAuth, Vendor: Type,
			Op: c.api.Op(http.MethodGet, path), Status: http.StatusOK, Reason: "credentials not recognised (anonymous user)"}
	}
	id := me.id(c.api.IsCloud())
	if id == "" {
		return connectors.Identity{}, &connectors.Error{Kind: connectors.KindUnavailable, Vendor: Type,
			Op: c.api.Op(http.MethodGet, path), Status: http.StatusOK, Reason: "identity answer names no account"}
	}
	return connectors.Identity{AccountID: id, DisplayName: me.DisplayName, TimeZone: me.TimeZone}, nil
}

// Containers lists the spaces the credential can see, in the vendor's order.
func (c *Client) Containers(ctx context.Context, cursor string, limit int) (connectors.Page[connectors.Container], error) {
	if c.api.IsCloud() {
		return c.cloudContainers(ctx, cursor, limit)
	}
	return c.dcContainers(ctx, cursor, limit)
}

// Items lists the pages of the space whose key is q.Container. With q.UpdatedSince set
// they come newest first and stop at the first page modified before it (Cloud; Data
// Center filters its id-ordered listing); without, in the vendor's order. With q.Filter
// set it is a CQL search within the filter, newest first (see filteredItems).
func (c *Client) Items(ctx context.Context, q connectors.ItemQuery) (connectors.Page[connectors.Item], error) {
	if strings.TrimSpace(q.Filter) != "" {
		return c.filteredItems(ctx, q)
	}
	if c.api.IsCloud() {
		return c.cloudItems(ctx, q)
	}
	return c.dcItems(ctx, q)
}

// Item reads one page by id.
func (c *Client) Item(ctx context.Context, id string) (connectors.Item, error) {
	if c.api.IsCloud() {
		return c.cloudItem(ctx, id)
	}
	return c.dcItem(ctx, id)
}

// Comments lists the footer comments of page itemID, oldest first.
func (c *Client) Comments(ctx context.Context, itemID, cursor string, limit int) (connectors.Page[connectors.Comment], error) {
	if c.api.IsCloud() {
		return c.cloudComments(ctx, itemID, cursor, limit)
	}
	return c.dcComments(ctx, itemID, cursor, limit)
}

// Create publishes a page titled item.Title in the space whose key is item.Container,
// with item.Text as its body (escaped, one paragraph per blank-line-separated block). It
// is sent once: creating is not idempotent, so a failure is the caller's to retry.
func (c *Client) Create(ctx context.Context, item connectors.NewItem) (connectors.Item, error) {
	if c.api.IsCloud() {
		return c.cloudCreate(ctx, item)
	}
	return c.dcCreate(ctx, item)
}

// LiveIDs lists the id of every page of container (its ID when set, else its Key), for
// pruning.
func (c *Client) LiveIDs(ctx context.Context, container connectors.Container, cursor string) (connectors.Page[string], error) {
	if c.api.IsCloud() {
		return c.cloudLiveIDs(ctx, container, cursor)
	}
	return c.dcLiveIDs(ctx, container, cursor)
}

// clampLimit turns a caller's limit into one the vendor accepts.
func clampLimit(n int) int {
	switch {
	case n <= 0:
		return defaultLimit
	case n > maxLimit:
		return maxLimit
	}
	return n
}

// invalid is a request the connector refuses before sending it.
func (c *Client) invalid(method, path, reason string) error {
	return &connectors.Error{Kind: connectors.KindInvalid, Vendor: Type, Op: c.api.Op(method, path), Reason: reason}
}

// badAnswer is a 2xx answer the connector cannot use.
func (c *Client) badAnswer(method, path, reason string, err error) error {
	return &connectors.Error{Kind: connectors.KindUnavailable, Vendor: Type, Op: c.api.Op(method, path),
		Status: http.StatusOK, Reason: reason, Err: err}
}

// nextPage turns a vendor next link into the caller's next cursor for call op and query
// digest q: "" when the listing is over.
func (c *Client) nextPage(op, q, method, path, link string) (string, error) {
	token, start, more, err := nextFromLink(link)
	if err != nil {
		return "", c.badAnswer(method, path, err.Error(), nil)
	}
	if !more {
		return "", nil
	}
	return cursor{Op: op, Q: q, Token: token, Start: start}.encode(), nil
}
