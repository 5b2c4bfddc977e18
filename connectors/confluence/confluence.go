// Package confluence is the Confluence connector: Confluence Cloud (at the site under
// /wiki, or at the OAuth2 gateway for Bearer tokens) and Confluence Data Center (REST API
// at the site root or its context path, with a personal access token). It registers
// itself as the "confluence" provider; import it for its side effect:
//
//	import _ "github.com/unified-connectors/connector-operator/connectors/confluence"
package confluence

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/connectors/atlassian"
)

// Type is the Connector spec.type this package serves.
const Type = "confluence"

func init() { connectors.Register(Provider{}) }

var (
	_ connectors.Provider = Provider{}
	_ connectors.Client   = (*Client)(nil)
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

// NewClient returns a Client for cfg without I/O.
func (Provider) NewClient(cfg connectors.Config) (connectors.Client, error) {
	return New(cfg)
}

// Client is one Connection's handle on a Confluence site. It is safe for concurrent use.
type Client struct {
	api *atlassian.Client
	// wiki prefixes every REST path: Cloud serves Confluence under /wiki (also through
	// the gateway), Data Center at its context path, which is part of baseURL.
	wiki string
}

// New returns a Client for cfg without I/O.
func New(cfg connectors.Config) (*Client, error) {
	api, err := atlassian.New(atlassian.Confluence, cfg)
	if err != nil {
		return nil, err
	}
	c := &Client{api: api}
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
	id := me.AccountID
	if !c.api.IsCloud() {
		id = me.UserKey
		if id == "" {
			id = me.Username
		}
	}
	if id == "" {
		return connectors.Identity{}, &connectors.Error{Kind: connectors.KindUnavailable, Vendor: Type,
			Op: c.api.Op(http.MethodGet, path), Status: http.StatusOK, Reason: "identity answer names no account"}
	}
	return connectors.Identity{AccountID: id, DisplayName: me.DisplayName, TimeZone: me.TimeZone}, nil
}

// notImplemented is the error of the Client methods still to be written.
func notImplemented(method string) error {
	return fmt.Errorf("%s: %s is not implemented yet: %w", Type, method, errors.ErrUnsupported)
}

// Containers is not implemented yet.
func (c *Client) Containers(context.Context, string, int) (connectors.Page[connectors.Container], error) {
	return connectors.Page[connectors.Container]{}, notImplemented("Containers")
}

// Items is not implemented yet.
func (c *Client) Items(context.Context, connectors.ItemQuery) (connectors.Page[connectors.Item], error) {
	return connectors.Page[connectors.Item]{}, notImplemented("Items")
}

// Item is not implemented yet.
func (c *Client) Item(context.Context, string) (connectors.Item, error) {
	return connectors.Item{}, notImplemented("Item")
}

// Comments is not implemented yet.
func (c *Client) Comments(context.Context, string, string, int) (connectors.Page[connectors.Comment], error) {
	return connectors.Page[connectors.Comment]{}, notImplemented("Comments")
}

// Search is not implemented yet.
func (c *Client) Search(context.Context, connectors.SearchQuery) (connectors.Page[connectors.Item], error) {
	return connectors.Page[connectors.Item]{}, notImplemented("Search")
}

// Create is not implemented yet.
func (c *Client) Create(context.Context, connectors.NewItem) (connectors.Item, error) {
	return connectors.Item{}, notImplemented("Create")
}

// Changes is not implemented yet.
func (c *Client) Changes(context.Context, connectors.ChangeQuery) (connectors.Page[connectors.Item], error) {
	return connectors.Page[connectors.Item]{}, notImplemented("Changes")
}

// LiveIDs is not implemented yet.
func (c *Client) LiveIDs(context.Context, connectors.Container, string) (connectors.Page[string], error) {
	return connectors.Page[string]{}, notImplemented("LiveIDs")
}
