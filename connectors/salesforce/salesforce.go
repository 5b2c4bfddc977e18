// Package salesforce is the Salesforce connector: one org's REST API (My Domain root as
// the Connector's baseURL, data calls at the token answer's instance_url) with an OAuth
// 2.0 access token the operator obtained (web server flow with PKCE, or the client
// credentials flow of the tenant's own connected app). It registers itself as the
// "salesforce" provider; import it for its side effect:
//
//	import _ "github.com/unified-connectors/connector-operator/connectors/salesforce"
//
// Calls ({v} is spec.salesforce.apiVersion, v66.0 by default):
//
//	Identity      GET /services/oauth2/userinfo
//	Containers    GET /services/data/{v}/sobjects (describeGlobal, cached 10 minutes)
//	Items         GET /services/data/{v}/query?q=SELECT … ORDER BY SystemModstamp DESC, Id DESC LIMIT n
//	Item          GET /services/data/{v}/sobjects/{type}/{id}?fields=… (type from the Id's key prefix)
//	ItemMatching  GET /services/data/{v}/query?q=SELECT … WHERE Id = '…' AND (filter)
//	Comments      GET /services/data/{v}/query?q=SELECT … FROM CaseComment WHERE ParentId = '…' (Cases only)
//	Create        POST /services/data/{v}/sobjects/{type}/ (never retried), then Item
//	Search        GET /services/data/{v}/search?q=FIND {…} IN ALL FIELDS RETURNING …
//	Changes       GET /services/data/{v}/queryAll?q=… then nextRecordsUrl (see changes.go)
//	LiveIDs       GET /services/data/{v}/query?q=SELECT Id FROM {type} … ORDER BY Id
//	Deleted       GET /services/data/{v}/sobjects/{type}/deleted/?start=&end= (getDeleted)
//
// Every SOQL and SOSL text is built here from validated names and escaped values (see
// soql.go); a tenant's spec.scope.filter is checked to be one balanced condition and is
// always parenthesized. Errors are *connectors.Error naming the method, the path and
// Salesforce's errorCode, never a query, a token, or the vendor's message (which quotes
// the query). Every answer's Sforce-Limit-Info is read (APIUsage); near the org's daily
// limit the client spaces its calls out (see http.go).
package salesforce

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors"
)

// Type is the Connector spec.type this package serves.
const Type = "salesforce"

// DefaultAPIVersion is the REST API version used when spec.salesforce.apiVersion is unset.
const DefaultAPIVersion = "v66.0"

// Secret keys and token fields of the Salesforce auth methods (DESIGN.md).
const (
	KeyClientID     = "clientID"
	KeyClientSecret = "clientSecret"
	// TokenFieldInstanceURL is the token answer's instance_url: where data calls go.
	TokenFieldInstanceURL = "instance_url"
)

// AllowedInstanceDomains are the host suffixes an instance_url may have besides the
// Connector's own baseURL host: Salesforce's My Domain hosts (sandboxes included), which
// every org has had since enhanced domains became mandatory. Not the wider
// .salesforce.com and .force.com, where another tenant's Salesforce Site can answer.
// Anything else (a token answer naming another host) is refused with KindEgressDenied,
// so that a compromised or misconfigured token endpoint cannot send the Bearer token
// elsewhere.
var AllowedInstanceDomains = []string{".my.salesforce.com"}

func init() { connectors.Register(Provider{}) }

var (
	_ connectors.Provider     = Provider{}
	_ connectors.Lookbacker   = Provider{}
	_ connectors.Client       = (*Client)(nil)
	_ connectors.FilterReader = (*Client)(nil)
)

// Provider builds Salesforce Clients.
type Provider struct{}

// Type returns "salesforce".
func (Provider) Type() string { return Type }

// DefaultLookback is 10 minutes. Salesforce stamps SystemModstamp when a record is
// written inside its transaction, not when the transaction commits, so a record can
// become visible with a stamp older than records a sync has already read: an Apex
// transaction may run up to 10 minutes (Salesforce's per-transaction limit), and bulk
// jobs hold rows as long. Re-reading 10 minutes behind the cursor on every run finds
// such records; the cost is one queryAll of the window per run (the engine skips what
// it delivered).
func (Provider) DefaultLookback() time.Duration { return 10 * time.Minute }

// Describe is Salesforce's Description: oauth2 (authorization code with PKCE, rotating
// refresh tokens when the connected app says so, access tokens without expiry that die
// with their session, and instance_url kept with the tokens) and clientCredentials
// (the tenant's connected app: clientID and clientSecret posted to the token URL).
func (Provider) Describe() connectors.Description {
	return connectors.Description{
		Auth: []connectors.AuthSpec{
			{Method: connectors.AuthOAuth2, Grant: connectors.GrantAuthorizationCode},
			{Method: connectors.AuthClientCredentials, SecretKeys: []string{KeyClientID, KeyClientSecret}, Grant: connectors.GrantClientCredentials},
		},
		OAuth: &connectors.OAuthRules{
			Endpoints: func(spec *v1alpha1.ConnectorSpec) (string, string) {
				root := ""
				if spec != nil {
					root = strings.TrimRight(string(spec.BaseURL), "/")
				}
				return root + "/services/oauth2/authorize", root + "/services/oauth2/token"
			},
			// Connected apps must require PKCE for the web server flow (2026); S256 always.
			PKCE: func(string) bool { return true },
			// Refresh Token Rotation is a connected app setting: assume it may be on.
			RotatesRefreshTokens: true,
			// Token answers carry no expires_in: refresh on INVALID_SESSION_ID only.
			AccessTokensExpire: false,
			TokenFields:        []string{TokenFieldInstanceURL},
		},
		ItemKinds: []string{connectors.KindRecord},
		Capabilities: connectors.Capabilities{
			Create: true, Comments: true, ChangeFeed: true, Search: true, Snapshots: true, Deletions: true,
		},
	}
}

// apiVersionPattern is the shape of spec.salesforce.apiVersion (the CRD's pattern too).
var apiVersionPattern = regexp.MustCompile(`^v[0-9]{2,3}\.0$`)

// oldestRecommendedVersion: versions before it lack parts of the REST API used here
// (queryAll paging, the search answer's searchRecords object).
const oldestRecommendedVersion = 40

// Validate checks cfg without I/O and returns warnings for odd but legal settings:
// baseURL is an absolute http(s) URL with a host and no userinfo, query or fragment
// (plain http is a warning, refused at run time without --allow-insecure-vendor-urls;
// a host outside AllowedInstanceDomains is a warning, as My Domains end in
// .my.salesforce.com); spec.salesforce.apiVersion is vNN.0 (below v40.0 a warning); the
// auth method, when set, is oauth2 or clientCredentials. Credentials are not required.
func (Provider) Validate(cfg connectors.Config) ([]string, error) {
	var warnings []string
	u, err := parseBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	if u.Scheme == "http" {
		warnings = append(warnings, "salesforce: baseURL uses plain http; the operator refuses it unless it runs with --allow-insecure-vendor-urls")
	}
	if !allowedDomain(u.Hostname()) {
		warnings = append(warnings, "salesforce: baseURL is not a Salesforce My Domain (*.my.salesforce.com)")
	}
	v, err := apiVersion(cfg.Connector)
	if err != nil {
		return nil, err
	}
	if n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(v, "v"), ".0")); n < oldestRecommendedVersion {
		warnings = append(warnings, fmt.Sprintf("salesforce: apiVersion %s is older than v%d.0; some calls may not be served", v, oldestRecommendedVersion))
	}
	switch cfg.Credentials.Method {
	case "", connectors.AuthOAuth2, connectors.AuthClientCredentials:
	default:
		return nil, fmt.Errorf("salesforce: auth method %q is not supported; use oauth2 or clientCredentials", cfg.Credentials.Method)
	}
	return warnings, nil
}

// NewClient returns a Client for cfg without I/O.
func (Provider) NewClient(cfg connectors.Config) (connectors.Client, error) { return New(cfg) }

func parseBaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		return nil, fmt.Errorf("salesforce: baseURL is required")
	case err != nil:
		return nil, fmt.Errorf("salesforce: baseURL is not a URL")
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, fmt.Errorf("salesforce: baseURL must use https")
	case u.Host == "":
		return nil, fmt.Errorf("salesforce: baseURL has no host")
	case u.User != nil:
		// Never echo the URL: its userinfo may hold a password.
		return nil, fmt.Errorf("salesforce: baseURL must not contain credentials")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return nil, fmt.Errorf("salesforce: baseURL must not have a query or fragment")
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

func apiVersion(spec *v1alpha1.ConnectorSpec) (string, error) {
	if spec == nil || spec.Salesforce == nil || spec.Salesforce.APIVersion == "" {
		return DefaultAPIVersion, nil
	}
	v := spec.Salesforce.APIVersion
	if !apiVersionPattern.MatchString(v) {
		return "", fmt.Errorf("salesforce: spec.salesforce.apiVersion must look like v66.0")
	}
	return v, nil
}

func allowedDomain(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, d := range AllowedInstanceDomains {
		if strings.HasSuffix(host, d) && len(host) > len(d) {
			return true
		}
	}
	return false
}

// instanceURL checks the token answer's instance_url against the Connector: https (or
// baseURL's own scheme, for tests over http), no userinfo, query, fragment or path, and
// a host that is baseURL's or ends in one of AllowedInstanceDomains (any port for
// baseURL's host, the default one otherwise). The error names the host, never a token.
func instanceURL(base *url.URL, raw string) (*url.URL, error) {
	if raw == "" {
		return base, nil
	}
	deny := func(host, why string) error {
		return &connectors.Error{Kind: connectors.KindEgressDenied, Vendor: Type, Op: "instance_url",
			Reason: fmt.Sprintf("host %q %s", host, why)}
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, &connectors.Error{Kind: connectors.KindEgressDenied, Vendor: Type, Op: "instance_url",
			Reason: "the token answer's instance_url is not an absolute URL"}
	}
	host := u.Hostname()
	switch {
	case u.Scheme != "https" && u.Scheme != base.Scheme:
		return nil, deny(host, "is not served over https")
	case u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Trim(u.Path, "/") != "":
		return nil, deny(host, "comes with credentials, a path, a query or a fragment")
	case strings.EqualFold(u.Host, base.Host):
	case allowedDomain(host) && (u.Port() == "" || u.Port() == "443") && u.Scheme == "https":
	default:
		return nil, deny(host, "is neither the Connector's baseURL host nor a Salesforce domain ("+strings.Join(AllowedInstanceDomains, ", ")+")")
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}

// Client is one Connection's handle on a Salesforce org. It is safe for concurrent use.
// Its String method never shows the credential.
type Client struct {
	base     *url.URL // the Connector's baseURL (My Domain)
	instance *url.URL // where calls go: instance_url, else base
	version  string   // v66.0
	authz    string   // the Authorization header value; secret
	http     connectors.Doer

	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error

	mu       sync.Mutex
	usage    usage
	nextCall time.Time // the earliest start of the next call when throttled
	orgID    string

	schema  schemaCache
	buffers bufferCache
}

// usage is the last Sforce-Limit-Info seen.
type usage struct {
	used, max int64
	at        time.Time
}

// New returns a Client for cfg without I/O. It needs an access token
// (Credentials.Token) for either auth method, and refuses an instance_url that is not
// baseURL's host or a Salesforce domain (KindEgressDenied).
func New(cfg connectors.Config) (*Client, error) {
	if _, err := (Provider{}).Validate(cfg); err != nil {
		return nil, err
	}
	switch cfg.Credentials.Method {
	case connectors.AuthOAuth2, connectors.AuthClientCredentials:
	case "":
		return nil, fmt.Errorf("salesforce: credentials have no auth method")
	}
	if cfg.Credentials.Token == "" {
		return nil, fmt.Errorf("salesforce: %s credentials need an access token", cfg.Credentials.Method)
	}
	base, _ := parseBaseURL(cfg.BaseURL) // Validate parsed it already
	inst, err := instanceURL(base, cfg.Credentials.Values[TokenFieldInstanceURL])
	if err != nil {
		return nil, err
	}
	v, _ := apiVersion(cfg.Connector)
	doer := cfg.HTTP
	if doer == nil {
		doer = defaultHTTP
	}
	return &Client{
		base: base, instance: inst, version: v, authz: "Bearer " + cfg.Credentials.Token, http: doer,
		now: time.Now, sleep: sleepCtx,
	}, nil
}

// String describes the client without its credential.
func (c *Client) String() string {
	return fmt.Sprintf("salesforce.Client{%s %s}", c.instance.Redacted(), c.version)
}

// GoString is String, so that %#v redacts as well.
func (c *Client) GoString() string { return c.String() }

// dataPath is the data API root plus rest: /services/data/v66.0/rest.
func (c *Client) dataPath(rest string) string { return "/services/data/" + c.version + rest }

// userinfo is the part of the UserInfo answer the connector reads.
type userinfo struct {
	UserID         string `json:"user_id"`
	OrganizationID string `json:"organization_id"`
	Name           string `json:"name"`
	ZoneInfo       string `json:"zoneinfo"`
}

// Identity asks Salesforce who the token belongs to: GET /services/oauth2/userinfo at
// the instance. The user Id is the AccountID; the organization Id is kept for
// OrganizationID. UserInfo answers a dead token with 403 Bad_OAuth_Token, which is
// KindSessionExpired like the REST API's 401 INVALID_SESSION_ID (the operator
// refreshes once and retries); any other 401/403 is KindAuth.
func (c *Client) Identity(ctx context.Context) (connectors.Identity, error) {
	const path = "/services/oauth2/userinfo"
	var me userinfo
	if err := c.do(ctx, call{method: http.MethodGet, path: path, identity: true}, &me); err != nil {
		return connectors.Identity{}, err
	}
	if !validID(me.UserID) {
		return connectors.Identity{}, c.badAnswer("GET "+path, "userinfo names no user")
	}
	org := ""
	if validID(me.OrganizationID) {
		org = me.OrganizationID
		c.mu.Lock()
		c.orgID = org
		c.mu.Unlock()
	}
	return connectors.Identity{AccountID: me.UserID, DisplayName: me.Name, TimeZone: me.ZoneInfo, Organization: org}, nil
}

// OrganizationID is the org's Id as the last successful Identity call reported it, ""
// before one. connectors.Identity has no field for it.
func (c *Client) OrganizationID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.orgID
}

// recordURL is the record's page in Lightning Experience.
func (c *Client) recordURL(typ, id string) string {
	return c.instance.String() + "/lightning/r/" + typ + "/" + id + "/view"
}
