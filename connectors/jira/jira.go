// Package jira is the Jira connector: Jira Cloud through REST API v3 (at the site, or at
// the OAuth2 gateway for Bearer tokens) and Jira Data Center through REST API v2 with a
// personal access token. It registers itself as the "jira" provider; import it for its
// side effect:
//
//	import _ "github.com/unified-connectors/connector-operator/connectors/jira"
//
// Calls, Cloud (v3) and Data Center (v2):
//
//	Identity     GET  /rest/api/3/myself                 GET  /rest/api/2/myself
//	Containers   GET  /rest/api/3/project/search         GET  /rest/api/2/project (paged here)
//	Items, Search, Changes, LiveIDs
//	             POST /rest/api/3/search/jql (tokens)    POST /rest/api/2/search (startAt)
//	Item         GET  /rest/api/3/issue/{idOrKey}        GET  /rest/api/2/issue/{idOrKey}
//	ItemMatching Item, then the search id = … AND (filter)
//	Comments     GET  …/issue/{idOrKey}, then …/issue/{id}/comment
//	Create       POST /rest/api/3/issue (ADF)            POST /rest/api/2/issue (wiki markup)
//
// The removed GET|POST /rest/api/3/search is never called. JQL goes in request bodies,
// never in a URL, so it cannot reach an error message. Items and Search page with
// Jira's own tokens (offsets on Data Center); Changes and LiveIDs page by key set (see
// changes.go), because offsets skip issues that change or vanish between pages. Cursors
// are opaque (see cursor.go). Times are read with atlassian.ParseTime, so the zone Jira
// renders them in (the account's) does not matter, and JQL bounds are epoch
// milliseconds, because Jira reads date strings in that zone.
package jira

import (
	"context"
	"net/http"
	"time"

	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/connectors/atlassian"
)

// Type is the Connector spec.type this package serves.
const Type = "jira"

func init() { connectors.Register(Provider{}) }

var (
	_ connectors.Provider     = Provider{}
	_ connectors.Lookbacker   = Provider{}
	_ connectors.Client       = (*Client)(nil)
	_ connectors.FilterReader = (*Client)(nil)
)

// Provider builds Jira Clients.
type Provider struct{}

// Type returns "jira".
func (Provider) Type() string { return Type }

// Validate checks cfg without I/O; see atlassian.Validate for the rules.
func (Provider) Validate(cfg connectors.Config) ([]string, error) {
	return atlassian.Validate(atlassian.Jira, cfg)
}

// DefaultLookback is 5 minutes: how far behind its cursor the sync engine re-reads
// every run unless spec.sync.lookback says otherwise. Changes reads Jira's issue search,
// whose index is eventually consistent: an update committed at t1 can become searchable
// after one committed later, usually seconds later and occasionally minutes, once a run
// has moved past t1. Re-reading the window finds such issues.
func (Provider) DefaultLookback() time.Duration { return 5 * time.Minute }

// Describe is Atlassian's Description for Jira (atlassian.Describe).
func (Provider) Describe() connectors.Description { return atlassian.Describe(atlassian.Jira) }

// NewClient returns a Client for cfg without I/O.
func (Provider) NewClient(cfg connectors.Config) (connectors.Client, error) {
	return New(cfg)
}

// Client is one Connection's handle on a Jira site. It is safe for concurrent use.
type Client struct {
	api *atlassian.Client
}

// New returns a Client for cfg without I/O.
func New(cfg connectors.Config) (*Client, error) {
	api, err := atlassian.New(atlassian.Jira, cfg)
	if err != nil {
		return nil, err
	}
	return &Client{api: api}, nil
}

// String describes the client without its credential.
func (c *Client) String() string { return c.api.String() }

// myself is the part of Jira's User (GET /rest/api/{2,3}/myself) the connector reads.
// Cloud identifies a user by accountId; Data Center by key (and name, the username).
type myself struct {
	AccountID   string `json:"accountId"`
	Key         string `json:"key"`
	Name        string `json:"name"`
	DisplayName string `json:"displayName"`
	TimeZone    string `json:"timeZone"`
}

// Identity asks Jira who the credential belongs to: GET /rest/api/3/myself on Cloud, GET
// /rest/api/2/myself on Data Center, where the user key stands in for the account id.
// A 401 or 403 is a connectors.KindAuth error.
func (c *Client) Identity(ctx context.Context) (connectors.Identity, error) {
	path := "/rest/api/3/myself"
	if !c.api.IsCloud() {
		path = "/rest/api/2/myself"
	}
	var me myself
	if err := c.api.Get(ctx, path, nil, &me); err != nil {
		return connectors.Identity{}, atlassian.AuthOnForbidden(err)
	}
	id := me.AccountID
	if !c.api.IsCloud() {
		id = me.Key
		if id == "" {
			id = me.Name
		}
	}
	if id == "" {
		return connectors.Identity{}, &connectors.Error{Kind: connectors.KindUnavailable, Vendor: Type,
			Op: c.api.Op(http.MethodGet, path), Status: http.StatusOK, Reason: "identity answer names no account"}
	}
	return connectors.Identity{AccountID: id, DisplayName: me.DisplayName, TimeZone: me.TimeZone}, nil
}
