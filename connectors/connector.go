// Package connectors defines the vendor-neutral interface every SaaS connector implements,
// the normalized data model the sync engine and HTTP API speak, and the registry the
// reconcilers use to find a connector by its Connector spec.type.
package connectors

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
)

// AuthMethod names how a Connection authenticates; the values match spec.auth.method.
type AuthMethod string

const (
	// AuthAPIToken is Atlassian Cloud's email + API token, sent as HTTP Basic.
	AuthAPIToken AuthMethod = "apiToken"
	// AuthOAuth2 is an OAuth 2.0 (3LO) access token, sent as Bearer through the gateway.
	AuthOAuth2 AuthMethod = "oauth2"
	// AuthPAT is a personal access token, sent as Bearer.
	AuthPAT AuthMethod = "pat"
	// AuthClientCredentials is the OAuth 2.0 client credentials grant of the tenant's own
	// client; the operator hands the connector the access token in Credentials.Token.
	AuthClientCredentials AuthMethod = "clientCredentials"
	// AuthPassword is a database role's user name and password (Secret keys username,
	// password; optionally tls.crt and tls.key for a client certificate).
	AuthPassword AuthMethod = "password"
)

// Credentials holds the secret material for one Connection. Its String and GoString
// methods redact every value (Token and Values alike) so that a stray %v never prints a
// token. Which keys mean what is the provider's business: the operator fills Values with
// the keys the provider's AuthSpec names and Token with an access token it obtained.
type Credentials struct {
	Method AuthMethod
	// Token is the access token the operator obtained for the Connection (Grant
	// GrantAuthorizationCode or GrantClientCredentials); empty for GrantNone, whose
	// secrets are in Values.
	Token string
	// Values are the Secret keys the method names in the provider's AuthSpec
	// (SecretKeys and OptionalKeys present), and for OAuth2 the token answer's
	// OAuthRules.TokenFields, keyed by name.
	Values map[string]string
}

// String returns a description of the credentials without any secret value.
func (c Credentials) String() string { return fmt.Sprintf("Credentials{Method:%s}", c.Method) }

// GoString is String, so that %#v redacts as well.
func (c Credentials) GoString() string { return c.String() }

// Doer sends one HTTP request. *http.Client satisfies it; tests and the shared vendor
// client (rate limits, retries, egress guard) substitute their own.
type Doer interface {
	Do(*http.Request) (*http.Response, error)
}

// Config is what a Provider needs to build a Client for one Connection.
type Config struct {
	// BaseURL is the Connector's spec.baseURL (site root).
	BaseURL string
	// Connector is the Connector's spec, from which a provider reads its own settings
	// (spec.deployment, spec.cloudID, spec.salesforce); nothing outside the provider
	// reads them. It may be nil (tests, static checks): a provider then uses its
	// defaults.
	Connector *v1alpha1.ConnectorSpec
	// Credentials authenticate every call.
	Credentials Credentials
	// HTTP sends the requests; nil means http.DefaultClient (tests only).
	HTTP Doer
	// Key names the Connection ("namespace/name"); providers that keep state across
	// Clients (a database connection pool) key it by this. Empty in Validate.
	Key string
	// Connection is the Connection the client serves, from which a provider reads its
	// own settings (spec.postgresql) and its UID; nil in Validate and static checks.
	Connection *v1alpha1.Connection
	// Dial opens the TCP connections of vendors that speak their own wire protocol
	// (Description.Egress EgressDatabase), through the egress guard; nil means a plain
	// net.Dialer (tests only).
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// AllowInsecure is --allow-insecure-vendor-urls: plain-text protocols (a database
	// without TLS) are allowed, for local development.
	AllowInsecure bool
	// ReadRef reads one key of a ConfigMap or Secret the Connector names (a CA bundle),
	// live from the operator's namespace; nil when there is none to read (tests).
	ReadRef func(ctx context.Context, ref v1alpha1.KeyReference) ([]byte, error)
}

// Identity is who the credential belongs to, as the vendor reports it.
type Identity struct {
	AccountID   string
	DisplayName string
	// TimeZone is the account's IANA zone when the vendor reports one; the vendor reads
	// date strings in queries in this zone.
	TimeZone string
	// Organization is the tenant the account belongs to, where the vendor names one
	// (a Salesforce org Id, a PostgreSQL database).
	Organization string
	// ServerVersion is the vendor's software version where it reports one (PostgreSQL's
	// server_version).
	ServerVersion string
}

// Container is a Jira project or a Confluence space.
type Container struct {
	ID   string `json:"id"`
	Key  string `json:"key"`
	Name string `json:"name"`
}

// Person is an author as the vendor names it.
type Person struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
}

// ConnectionRef says which Connection an item was read through.
type ConnectionRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// Item kinds.
const (
	KindIssue  = "issue"
	KindPage   = "page"
	KindRecord = "record"
	KindRow    = "row"
)

// MaxFieldsBytes bounds Item.Fields encoded as JSON; a connector drops the largest
// values first to stay under it.
const MaxFieldsBytes = 16 << 10

// Item is the normalized form of a Jira issue or a Confluence page.
type Item struct {
	ID         string        `json:"id"`
	Key        string        `json:"key"`
	Kind       string        `json:"kind"`
	Title      string        `json:"title"`
	Text       string        `json:"text"`
	URL        string        `json:"url"`
	Container  string        `json:"container"`
	Author     Person        `json:"author"`
	CreatedAt  time.Time     `json:"createdAt"`
	UpdatedAt  time.Time     `json:"updatedAt"`
	Connection ConnectionRef `json:"connection"`
	Type       string        `json:"type"`
	// Fields are the source's scalar fields (records and rows; omitted for issues and
	// pages), at most MaxFieldsBytes as JSON.
	Fields map[string]any `json:"fields,omitempty"`
	// Deleted marks a change-feed entry for an item the source reports deleted (at
	// UpdatedAt); the sync engine sends it as an item.deleted event, never as data.
	Deleted bool `json:"-"`
}

// Comment is the normalized form of a Jira comment or a Confluence footer comment.
type Comment struct {
	ID        string    `json:"id"`
	ItemID    string    `json:"itemID"`
	Author    Person    `json:"author"`
	Text      string    `json:"text"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
	URL       string    `json:"url"`
}

// Page is one page of a listing. NextCursor is empty on the last page; cursors are
// opaque to callers.
type Page[T any] struct {
	Items      []T
	NextCursor string
}

// ItemQuery selects items of one container.
type ItemQuery struct {
	Container    string
	UpdatedSince time.Time
	// Filter is the Connection's spec.scope.filter (a JQL or CQL clause), ANDed onto
	// the listing as onto sync and search; empty lists every item of the container.
	Filter string
	Cursor string
	Limit  int
}

// SearchQuery is a free-text search across the containers a Connection may see.
type SearchQuery struct {
	Text string
	// Containers narrows the search; empty means every container in scope.
	Containers []string
	// Filter is the Connection's spec.scope.filter, ANDed onto the query.
	Filter string
	Kind   string
	Cursor string
	Limit  int
}

// NewItem is the body of a create call.
type NewItem struct {
	Container string
	Title     string
	Text      string
}

// ChangeQuery asks for the items of one container updated at or after Since, oldest
// first. Implementations must be exact whatever the account's time zone.
type ChangeQuery struct {
	Container Container
	Since     time.Time
	Filter    string
	Cursor    string
	Limit     int
}

// Prober checks a credential against the vendor's identity endpoint.
type Prober interface {
	Identity(ctx context.Context) (Identity, error)
}

// Reader reads what a Connection holds.
type Reader interface {
	Containers(ctx context.Context, cursor string, limit int) (Page[Container], error)
	Items(ctx context.Context, q ItemQuery) (Page[Item], error)
	Item(ctx context.Context, id string) (Item, error)
	Comments(ctx context.Context, itemID, cursor string, limit int) (Page[Comment], error)
	Search(ctx context.Context, q SearchQuery) (Page[Item], error)
}

// FilterReader is implemented by clients that can read one item only when it matches a
// Connection's spec.scope.filter, so that the HTTP API answers an item outside the
// filter as if it were missing. See ItemInFilter.
type FilterReader interface {
	// ItemMatching reads item id as Reader.Item does, if it matches filter (a JQL or CQL
	// clause, as the vendor's search evaluates it); an item that exists but does not
	// match is a KindNotFound error, like a missing one. An empty filter is Item.
	ItemMatching(ctx context.Context, id, filter string) (Item, error)
}

// ItemInFilter reads item id through r within filter (spec.scope.filter): Item when
// filter is empty, else r's FilterReader. A Reader without one cannot honour a filter
// and answers errors.ErrUnsupported, never an item the filter may exclude.
func ItemInFilter(ctx context.Context, r Reader, id, filter string) (Item, error) {
	if strings.TrimSpace(filter) == "" {
		return r.Item(ctx, id)
	}
	fr, ok := r.(FilterReader)
	if !ok {
		return Item{}, fmt.Errorf("reading one item within a scope filter: %w", errors.ErrUnsupported)
	}
	return fr.ItemMatching(ctx, id, filter)
}

// Writer creates items.
type Writer interface {
	Create(ctx context.Context, item NewItem) (Item, error)
}

// ChangeFeed serves incremental sync and pruning.
type ChangeFeed interface {
	Changes(ctx context.Context, q ChangeQuery) (Page[Item], error)
	LiveIDs(ctx context.Context, container Container, cursor string) (Page[string], error)
}

// Client is one Connection's handle on its vendor.
type Client interface {
	Prober
	Reader
	Writer
	ChangeFeed
}

// Provider builds Clients for one vendor type.
type Provider interface {
	// Type is the Connector spec.type this provider serves.
	Type() string
	// Validate checks a Config without I/O and returns warnings for odd but legal input.
	Validate(cfg Config) (warnings []string, err error)
	// NewClient returns a Client for cfg. It does no I/O.
	NewClient(cfg Config) (Client, error)
	// Describe says what the vendor accepts and serves (auth methods and their Secret
	// keys, OAuth rules, item kinds, capabilities). It is constant.
	Describe() Description
}

// Lookbacker is implemented by providers whose change feed is not in commit order (a
// search index that lags behind writes, timestamps set before commit). DefaultLookback is
// how far behind its cursor the sync engine re-reads every run when neither the
// Connection nor the Connector sets spec.sync.lookback / spec.defaults.lookback.
type Lookbacker interface {
	DefaultLookback() time.Duration
}

type idempotentKey struct{}

// WithIdempotent marks the calls made with ctx as safe to repeat even though their HTTP
// method is not (a search sent as POST), so the vendor client may retry them.
func WithIdempotent(ctx context.Context) context.Context {
	return context.WithValue(ctx, idempotentKey{}, true)
}

// IsIdempotent reports whether ctx was marked by WithIdempotent.
func IsIdempotent(ctx context.Context) bool {
	marked, _ := ctx.Value(idempotentKey{}).(bool)
	return marked
}
