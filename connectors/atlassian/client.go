// Package atlassian is the HTTP plumbing that the Jira and Confluence connectors share:
// it resolves where a Connection's calls go (the site, or the OAuth2 gateway), attaches
// the credential, sends through the caller's connectors.Doer, turns every failure into a
// *connectors.Error whose message is safe to log and show, and decodes JSON answers.
//
// Where calls go:
//
//	apiToken (cloud or datacenter)  BaseURL + path, Authorization: Basic email:apiToken (Secret keys)
//	pat      (cloud or datacenter)  BaseURL + path, Authorization: Bearer token (Secret key)
//	oauth2   (cloud only)           {spec.oauth2.apiBaseURL or https://api.atlassian.com}/ex/{jira|confluence}/{spec.cloudID} + path,
//	                                Authorization: Bearer Credentials.Token (the access token)
//
// Paths are the vendor's, for example /rest/api/3/myself or /wiki/rest/api/user/current;
// the vendor packages choose them per deployment.
package atlassian

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/internal/egress"
)

// Product names the Atlassian product a Client talks to. Its value is the connector type
// used in error messages and the product segment of the OAuth2 gateway path.
type Product string

const (
	// Jira is Jira Software / Jira platform.
	Jira Product = "jira"
	// Confluence is Confluence.
	Confluence Product = "confluence"
)

// DefaultAPIBaseURL is the OAuth2 gateway root used when the Connector sets no
// spec.oauth2.apiBaseURL.
const DefaultAPIBaseURL = "https://api.atlassian.com"

// DefaultTimeout bounds a call whose context has no deadline, and is the timeout of the
// HTTP client used when Config.HTTP is nil. Every vendor call must end.
const DefaultTimeout = 10 * time.Second

// maxBodyBytes caps how much of an answer is read, so that a misbehaving vendor (or
// something pretending to be one) cannot exhaust the operator's memory.
const maxBodyBytes = 32 << 20

// userAgent identifies the operator to Atlassian, which asks integrations to name themselves.
const userAgent = "connector-operator"

// defaultHTTP is used when Config.HTTP is nil. Go's client drops Authorization on
// redirects to another host, so a redirect cannot carry the credential away.
var defaultHTTP connectors.Doer = &http.Client{Timeout: DefaultTimeout}

// Client sends authenticated JSON requests to one Atlassian site for one Connection.
// It is safe for concurrent use. Its String method never shows the credential.
type Client struct {
	product    Product
	deployment string
	site       *url.URL // the Connector's baseURL, for links shown to users
	api        *url.URL // where API calls go: site, or the OAuth2 gateway
	authz      string   // the Authorization header value; secret
	http       connectors.Doer
}

// New returns a Client for cfg. It checks cfg like Validate and also that the
// credential fields the chosen method needs are present; it does no I/O.
func New(product Product, cfg connectors.Config) (*Client, error) {
	if _, err := Validate(product, cfg); err != nil {
		return nil, err
	}
	authz, err := authorization(product, cfg.Credentials)
	if err != nil {
		return nil, err
	}
	site, _ := url.Parse(cfg.BaseURL) // Validate parsed it already
	site.Path = strings.TrimRight(site.Path, "/")
	site.RawPath = ""
	api := site
	if cfg.Credentials.Method == connectors.AuthOAuth2 {
		if api, err = gatewayURL(product, cfg); err != nil {
			return nil, err
		}
	}
	doer := cfg.HTTP
	if doer == nil {
		doer = defaultHTTP
	}
	return &Client{
		product:    product,
		deployment: settingsOf(cfg).deployment,
		site:       site,
		api:        api,
		authz:      authz,
		http:       doer,
	}, nil
}

// authorization builds the Authorization header value for creds: apiToken and pat read
// their Secret keys from Values, oauth2 the access token the operator put in Token.
func authorization(product Product, creds connectors.Credentials) (string, error) {
	switch creds.Method {
	case connectors.AuthAPIToken:
		email, token := creds.Values[KeyEmail], creds.Values[KeyAPIToken]
		if email == "" || token == "" {
			return "", fmt.Errorf("%s: apiToken credentials need keys %s and %s", product, KeyEmail, KeyAPIToken)
		}
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(email+":"+token)), nil
	case connectors.AuthPAT:
		if creds.Values[KeyToken] == "" {
			return "", fmt.Errorf("%s: pat credentials need key %s", product, KeyToken)
		}
		return "Bearer " + creds.Values[KeyToken], nil
	case connectors.AuthOAuth2:
		if creds.Token == "" {
			return "", fmt.Errorf("%s: oauth2 credentials need an access token", product)
		}
		return "Bearer " + creds.Token, nil
	case "":
		return "", fmt.Errorf("%s: credentials have no auth method", product)
	default:
		return "", fmt.Errorf("%s: unknown auth method %q", product, creds.Method)
	}
}

// gatewayURL is {spec.oauth2.apiBaseURL}/ex/{product}/{spec.cloudID}.
func gatewayURL(product Product, cfg connectors.Config) (*url.URL, error) {
	set := settingsOf(cfg)
	root := set.apiBaseURL
	if root == "" {
		root = DefaultAPIBaseURL
	}
	u, err := url.Parse(root)
	if err != nil {
		return nil, fmt.Errorf("%s: apiBaseURL is not a URL", product)
	}
	u.Path = strings.TrimRight(u.Path, "/") + "/ex/" + string(product) + "/" + set.cloudID
	u.RawPath = ""
	return u, nil
}

// Product is the product this Client talks to.
func (c *Client) Product() Product { return c.product }

// Deployment is DeploymentCloud or DeploymentDataCenter.
func (c *Client) Deployment() string { return c.deployment }

// IsCloud reports whether the site is Atlassian Cloud.
func (c *Client) IsCloud() bool { return c.deployment == DeploymentCloud }

// SiteURL returns the site root (the Connector's baseURL without a trailing slash) joined
// with path, for links shown to users; OAuth2 calls go elsewhere but links do not.
func (c *Client) SiteURL(path string) string {
	u := *c.site
	u.Path += path
	return u.String()
}

// String describes the client without its credential.
func (c *Client) String() string {
	return fmt.Sprintf("atlassian.Client{%s %s %s}", c.product, c.deployment, c.api.Redacted())
}

// GoString is String, so that %#v redacts as well.
func (c *Client) GoString() string { return c.String() }

// url is where a call to the vendor path goes.
func (c *Client) url(path string) url.URL {
	u := *c.api
	u.Path += path
	return u
}

// Op is the connectors.Error Op of a call to the vendor path: the method and the URL path
// as sent (with the gateway prefix for OAuth2), for errors that a vendor package raises
// about an answer.
func (c *Client) Op(method, path string) string {
	u := c.url(path)
	return method + " " + u.EscapedPath()
}

// Request is one API call.
type Request struct {
	// Method is the HTTP method; empty means GET.
	Method string
	// Path is the vendor's API path, for example /rest/api/3/myself. It is appended to
	// the site (or gateway) root unescaped: callers escape variable segments with
	// url.PathEscape.
	Path string
	// Query is sent as the query string; it never appears in errors.
	Query url.Values
	// Body, when not nil, is sent as JSON.
	Body any
	// Idempotent marks a call that may be repeated although its method is not GET, such
	// as Jira's POST /rest/api/3/search/jql, so the vendor client may retry it.
	Idempotent bool
}

// Get is Do for a GET of path with query, decoding the answer into out.
func (c *Client) Get(ctx context.Context, path string, query url.Values, out any) error {
	return c.Do(ctx, Request{Method: http.MethodGet, Path: path, Query: query}, out)
}

// Do sends r and decodes a 2xx JSON answer into out (unless out is nil). Any failure is
// a *connectors.Error:
//
//   - a non-2xx answer has Kind connectors.KindForStatus(status), the Status, and the
//     RetryAfter the vendor asked for (Retry-After or X-RateLimit-Reset);
//   - no answer (refused connection, timeout, cancelled ctx) and an unreadable answer
//     (malformed JSON) are KindUnavailable, wrapping the cause.
//
// Errors name the method and URL path only: never the query string, a header or a body.
// When ctx has no deadline, Do applies DefaultTimeout.
func (c *Client) Do(ctx context.Context, r Request, out any) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	method := r.Method
	if method == "" {
		method = http.MethodGet
	}
	u := c.url(r.Path)
	u.RawQuery = r.Query.Encode()
	op := method + " " + u.EscapedPath()

	var body io.Reader
	if r.Body != nil {
		b, err := json.Marshal(r.Body)
		if err != nil {
			// A programming error, but report it like any other failure of this call.
			return &connectors.Error{Kind: connectors.KindInvalid, Vendor: string(c.product), Op: op,
				Reason: "cannot encode request body", Err: err}
		}
		body = bytes.NewReader(b)
	}
	if r.Idempotent {
		ctx = connectors.WithIdempotent(ctx)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return &connectors.Error{Kind: connectors.KindInvalid, Vendor: string(c.product), Op: op,
			Reason: "cannot build request", Err: scrubURLError(err, &u)}
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Authorization", c.authz)
	if r.Body != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	resp, err := c.http.Do(req)
	if err != nil {
		return c.transportError(ctx, op, &u, err)
	}
	defer func() {
		// Drain a little so the connection can be reused, then close.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
	}()

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &connectors.Error{
			Kind:       connectors.KindForStatus(resp.StatusCode),
			Vendor:     string(c.product),
			Op:         op,
			Status:     resp.StatusCode,
			RetryAfter: connectors.ParseRetryAfter(resp.Header, time.Now()),
			Reason:     reasonFor(resp.StatusCode),
		}
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxBodyBytes)).Decode(out); err != nil {
		if ctx.Err() != nil {
			// The deadline struck while the body was being read.
			return c.transportError(ctx, op, &u, err)
		}
		// json errors name types, fields and at most one offending character, never a
		// value, so they are safe to show.
		return &connectors.Error{Kind: connectors.KindUnavailable, Vendor: string(c.product), Op: op,
			Status: resp.StatusCode, Reason: "malformed JSON answer: " + err.Error(), Err: err}
	}
	return nil
}

// transportError reports a call that got no (complete) answer.
func (c *Client) transportError(ctx context.Context, op string, u *url.URL, err error) error {
	err = scrubURLError(err, u)
	reason := "request failed"
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded), isTimeout(err):
		reason = "timed out"
	case errors.Is(ctx.Err(), context.Canceled):
		reason = "cancelled"
	}
	if egress.IsDenied(err) {
		// The guard's message names host and address only: safe to show as is.
		var denied *egress.DeniedError
		errors.As(err, &denied)
		return &connectors.Error{Kind: connectors.KindEgressDenied, Vendor: string(c.product), Op: op,
			Reason: denied.Error(), Err: err}
	}
	// The url.Error prefix ("Get \"/path\": ") repeats the op; show only the cause.
	cause := err
	var ue *url.Error
	if errors.As(err, &ue) {
		cause = ue.Err
	}
	return &connectors.Error{Kind: connectors.KindUnavailable, Vendor: string(c.product), Op: op,
		Reason: reason + ": " + scrubString(cause.Error(), u), Err: err}
}

// scrubURLError rewrites the URL of a *url.Error (whose message would print the full URL,
// query string included) to the path alone, keeping the cause wrapped so that
// errors.Is(err, context.DeadlineExceeded) and Timeout() still work.
func scrubURLError(err error, u *url.URL) error {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return err
	}
	return &url.Error{Op: ue.Op, URL: u.EscapedPath(), Err: ue.Err}
}

// scrubString removes the full URL and the query string from a message built by a
// transport that quoted them, as a second line of defence behind scrubURLError.
func scrubString(msg string, u *url.URL) string {
	msg = strings.ReplaceAll(msg, u.String(), u.EscapedPath())
	if u.RawQuery != "" {
		msg = strings.ReplaceAll(msg, u.RawQuery, "…")
	}
	return msg
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// reasonFor is the short explanation of a non-2xx status. It deliberately ignores the
// answer's body, which may echo the request.
func reasonFor(status int) string {
	switch {
	case status == http.StatusUnauthorized:
		return "credentials rejected"
	case status == http.StatusForbidden:
		return "permission denied"
	case status == http.StatusNotFound:
		return "not found"
	case status == http.StatusTooManyRequests:
		return "rate limited"
	case status >= 500:
		return "vendor unavailable"
	case status >= 300 && status < 400:
		return "unexpected redirect"
	default:
		return "request refused"
	}
}

// AuthOnForbidden turns a 403 from an identity call into KindAuth: on the identity
// endpoint a 403 means the credential itself may not use the API (for example a scoped
// token without the read:jira-user scope, or a deactivated account), which only a human
// can fix. Other errors are returned unchanged.
func AuthOnForbidden(err error) error {
	var ve *connectors.Error
	if errors.As(err, &ve) && ve.Status == http.StatusForbidden {
		ve.Kind = connectors.KindAuth
		ve.Reason = "credentials not allowed to use the API"
	}
	return err
}
