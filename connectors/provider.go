package connectors

import (
	"context"
	"time"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
)

// Description is everything the rest of the operator may know about a vendor: how its
// Connections authenticate (and which Secret keys each method needs), its OAuth 2.0 rules,
// the kinds its items take and what it can serve. The reconcilers, the sync engine, the
// OAuth2 refresher and the HTTP API ask a provider's Describe and hold no vendor names, so
// adding a vendor is one package and one registration import.
type Description struct {
	// Auth lists the auth methods the vendor accepts, in the order the docs list them.
	Auth []AuthSpec
	// OAuth holds the vendor's OAuth 2.0 rules; nil when no method uses a token endpoint.
	OAuth *OAuthRules
	// ItemKinds are the values Item.Kind takes (search's kind= accepts these only).
	ItemKinds []string
	// Capabilities say which optional routes and sync features the vendor serves; a
	// route it cannot serve answers 501 NOT_SUPPORTED.
	Capabilities Capabilities
	// Egress is the policy the vendor's destinations follow.
	Egress EgressClass
}

// EgressClass says which egress policy a vendor's destinations follow (DESIGN.md).
type EgressClass string

const (
	// EgressVendor: a SaaS vendor over https (http only with
	// --allow-insecure-vendor-urls), public addresses only.
	EgressVendor EgressClass = ""
	// EgressDatabase: a database, which follows the sink policy: private addresses and
	// in-cluster names allowed, link-local and metadata never, loopback only with
	// --allow-insecure-vendor-urls. The provider dials through Config.Dial, which checks
	// every resolved address; the baseURL's scheme is the provider's to check.
	EgressDatabase EgressClass = "database"
)

// Grant says how the operator obtains a Connection's access token.
type Grant string

const (
	// GrantNone: the Secret's values authenticate as they are (API token, PAT).
	GrantNone Grant = ""
	// GrantAuthorizationCode: the OAuth 2.0 authorization code flow through the
	// authorize/callback routes; the operator keeps the tokens in the Connection's Secret
	// and refreshes them with the refresh token.
	GrantAuthorizationCode Grant = "authorizationCode"
	// GrantClientCredentials: the Secret's clientID and clientSecret are posted to the
	// token URL (the tenant's own client); tokens are kept in memory only.
	GrantClientCredentials Grant = "clientCredentials"
)

// AuthSpec is one auth method of a vendor.
type AuthSpec struct {
	Method AuthMethod
	// SecretKeys must be present and non-empty in the Connection's Secret.
	SecretKeys []string
	// OptionalKeys are read into Credentials.Values when present.
	OptionalKeys []string
	// Grant is how access tokens are obtained.
	Grant Grant
}

// OAuthRules are a vendor's OAuth 2.0 endpoints and habits.
type OAuthRules struct {
	// Endpoints returns the authorize and token URLs of a Connector whose spec.oauth2
	// does not override them.
	Endpoints func(spec *v1alpha1.ConnectorSpec) (authorizeURL, tokenURL string)
	// PKCE reports whether the authorization server at authorizeURL takes an S256 PKCE
	// challenge (RFC 7636).
	PKCE func(authorizeURL string) bool
	// AuthorizeParams are added to the authorize redirect (audience, prompt).
	AuthorizeParams map[string]string
	// RotatesRefreshTokens: a refresh may answer a new refresh token that replaces the
	// old one, which must then be stored before it is used.
	RotatesRefreshTokens bool
	// AccessTokensExpire is false when token answers carry no expiry: the token is then
	// refreshed only when a call fails with KindSessionExpired, never on a timer.
	AccessTokensExpire bool
	// TokenFields name fields of the token answer (for example instance_url) that the
	// operator keeps with the tokens and hands back in Credentials.Values under the same
	// names. A provider must check any URL among them against its Connector before use.
	TokenFields []string
}

// Capabilities say what a vendor's client serves beyond probing and reading.
type Capabilities struct {
	// Create: POST …/items.
	Create bool `json:"create"`
	// Comments: GET …/items/{id}/comments.
	Comments bool `json:"comments"`
	// ChangeFeed: incremental sync (and therefore sinks).
	ChangeFeed bool `json:"changeFeed"`
	// Search: free-text search through the vendor.
	Search bool `json:"search"`
	// RankedSearch: the vendor answers search in relevance order (else the API ranks
	// each page itself).
	RankedSearch bool `json:"rankedSearch"`
	// Snapshots: full live-id listings for deletions (LiveIDs).
	Snapshots bool `json:"snapshots"`
	// Deletions: the change feed reports deletions itself (item.deleted events).
	Deletions bool `json:"deletions"`
}

// Usage is a vendor's request allowance as its last answer reported it.
type Usage struct {
	Used, Limit int64
	// Slowed: the client spaces its calls out to stay inside the allowance.
	Slowed bool
}

// UsageReporter is implemented by clients of vendors that meter requests against an
// allowance (Salesforce's daily API requests, Sforce-Limit-Info); ok is false before the
// vendor has said.
type UsageReporter interface {
	Usage() (u Usage, ok bool)
}

// DeletionLog is implemented by clients whose vendor keeps a log of deletions
// (Salesforce's getDeleted). At prune time the sync engine then sends the deletions since
// the last prune as item.deleted events, and walks every live id (LiveIDs) only when the
// log no longer reaches back that far.
type DeletionLog interface {
	// DeletedBetween lists the items of c deleted in [start, end) and covered, the
	// instant the log is complete up to (at most end). complete is false when the log
	// does not reach back to start: the caller must take a full snapshot instead.
	DeletedBetween(ctx context.Context, c Container, start, end time.Time) (deleted []Item, covered time.Time, complete bool, err error)
}

// Method returns the AuthSpec of m and whether the vendor accepts m.
func (d Description) Method(m AuthMethod) (AuthSpec, bool) {
	for _, a := range d.Auth {
		if a.Method == m {
			return a, true
		}
	}
	return AuthSpec{}, false
}

// HasKind reports whether kind is one of the vendor's item kinds.
func (d Description) HasKind(kind string) bool {
	for _, k := range d.ItemKinds {
		if k == kind {
			return true
		}
	}
	return false
}

// Describe returns the Description of the provider registered for typ.
func Describe(typ string) (Description, bool) {
	p, ok := Get(typ)
	if !ok {
		return Description{}, false
	}
	return p.Describe(), true
}

// StreamBatch is one step of a change stream: items (upserts, and deletions marked
// Deleted) in source order, and the position a restart resumes from once the sink
// acknowledged them.
type StreamBatch struct {
	Items []Item
	// Position is opaque to the engine, which stores it in status.sync.position (at most
	// 8 KiB) once the sink acknowledged Items, and hands it back to Stream on the next
	// run. Empty leaves the stored position as it is.
	Position string
	// CaughtUp: nothing more was pending at the source when the batch was cut (the
	// initial snapshot is over and the stream has reached the present).
	CaughtUp bool
}

// Streamer is implemented by clients whose Connection syncs from the source's ordered
// change log (PostgreSQL logical replication) instead of per-container change queries.
type Streamer interface {
	// Streaming reports whether this Connection, as specified, syncs by stream; when
	// false the engine uses the ChangeFeed.
	Streaming() bool
	// Stream delivers changes from position (as the engine stored it; "" means nothing
	// yet, and the stream starts with a snapshot of every container, consistent with the
	// stream). It calls deliver for each batch in order and moves its own confirmation
	// at the source only past batches deliver accepted. It returns when ctx ends, when
	// deliver fails, or on a source error (KindStreamLost when the history the position
	// points into is gone).
	Stream(ctx context.Context, position string, deliver func(context.Context, StreamBatch) error) error
}

// ExternalResources is implemented by clients that create resources at the vendor for
// their Connection (a replication slot and its publication): the Connection carries a
// finalizer until they are released.
type ExternalResources interface {
	// Finalizer names the finalizer that must keep the Connection until Release ran; ""
	// when the Connection as specified now holds none (a Connection that still carries
	// the finalizer, after a mode change, is then released).
	Finalizer() string
	// Release deletes what the Connection holds at the vendor; nothing held is not an
	// error. It must work whatever the Connection's current mode.
	Release(ctx context.Context) error
	// Report fills the provider's block of the Connection's status (status.postgresql)
	// with what the vendor says now; it runs on every reconcile that reaches it.
	Report(ctx context.Context, status *v1alpha1.ConnectionStatus) error
}

// ConnectionForgetter is implemented by providers that keep per-Connection state across
// Clients (a database connection pool, keyed by Config.Key): ForgetConnection drops it
// when the Connection goes.
type ConnectionForgetter interface {
	ForgetConnection(key string)
}
