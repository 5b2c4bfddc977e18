package api

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// Defaults for Options fields left zero.
const (
	DefaultBindAddress         = ":8082"
	DefaultVendorTimeout       = 10 * time.Second
	DefaultSearchSourceTimeout = 5 * time.Second
	DefaultSearchConcurrency   = 128
	DefaultAuthCacheSize       = 4096
	DefaultAuthCacheTTL        = 10 * time.Second
	DefaultAuthDenyCacheTTL    = 2 * time.Second
	DefaultStateTTL            = 10 * time.Minute
	// StateKeySecretName is the Secret in the operator's namespace holding the key that
	// signs and encrypts OAuth2 states; the first replica that needs it creates it.
	StateKeySecretName = "connector-operator-api-state-key"
	// UsedStatesSecretName is the Secret in the operator's namespace recording the OAuth2
	// states already used (digests and expiry times only), so that no replica accepts a
	// replay.
	UsedStatesSecretName = "connector-operator-api-oauth-states"
)

// Options configure the HTTP API server. The zero value of every field but BindAddress
// means its default; an empty BindAddress or "0" disables the API.
type Options struct {
	// BindAddress is host:port to listen on (flag --api-bind-address, default ":8082").
	BindAddress string
	// CertDir holds tls.crt and tls.key (flag --api-cert-dir), reloaded when they change.
	// Without it the server makes a self-signed certificate at start, except on a loopback
	// address, where it serves plain HTTP.
	CertDir string
	// InsecurePlainHTTP serves plain HTTP on any address (flag --api-insecure-plain-http),
	// for a TLS-terminating proxy or mesh in front. Never expose it directly.
	InsecurePlainHTTP bool
	// ExternalURL is the API's root as browsers and vendors reach it, for example
	// https://connectors.example.com (flag --api-external-url); the OAuth2 redirect URI is
	// ExternalURL + "/oauth/v1/callback". Empty means the root the authorize request
	// itself was sent to.
	ExternalURL string
	// Audiences, when set, are the token audiences TokenReview must confirm; empty means
	// the API server's own.
	Audiences []string

	// VendorTimeout bounds each vendor call of a single-Connection route.
	VendorTimeout time.Duration
	// SearchSourceTimeout is each search source's deadline, and so the longest a search
	// takes: a source still waiting when it strikes is reported as "timeout".
	SearchSourceTimeout time.Duration
	// SearchConcurrency bounds the sources one search asks at once.
	SearchConcurrency int

	// AuthCacheSize bounds each of the TokenReview and SubjectAccessReview caches.
	AuthCacheSize int
	// AuthCacheTTL is how long an authenticated token or an allowed decision is reused;
	// AuthDenyCacheTTL the same for refusals.
	AuthCacheTTL, AuthDenyCacheTTL time.Duration
	// StateTTL is how long an OAuth2 state (and so an authorization flow) stays valid.
	StateTTL time.Duration

	// Listener, when set, is served instead of listening on BindAddress (tests).
	Listener net.Listener
}

// Enabled reports whether the API should run.
func (o Options) Enabled() bool {
	return o.Listener != nil || (o.BindAddress != "" && o.BindAddress != "0")
}

func (o Options) withDefaults() Options {
	if o.BindAddress == "" {
		o.BindAddress = DefaultBindAddress
	}
	if o.VendorTimeout <= 0 {
		o.VendorTimeout = DefaultVendorTimeout
	}
	if o.SearchSourceTimeout <= 0 {
		o.SearchSourceTimeout = DefaultSearchSourceTimeout
	}
	if o.SearchConcurrency <= 0 {
		o.SearchConcurrency = DefaultSearchConcurrency
	}
	if o.AuthCacheSize <= 0 {
		o.AuthCacheSize = DefaultAuthCacheSize
	}
	if o.AuthCacheTTL <= 0 {
		o.AuthCacheTTL = DefaultAuthCacheTTL
	}
	if o.AuthDenyCacheTTL <= 0 {
		o.AuthDenyCacheTTL = DefaultAuthDenyCacheTTL
	}
	if o.StateTTL <= 0 {
		o.StateTTL = DefaultStateTTL
	}
	o.ExternalURL = strings.TrimRight(o.ExternalURL, "/")
	return o
}

func (o Options) validate() error {
	if o.ExternalURL != "" {
		u, err := url.Parse(o.ExternalURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("api external URL %q must be an absolute http(s) URL without userinfo, query or fragment", o.ExternalURL)
		}
	}
	if o.Listener == nil {
		if _, _, err := net.SplitHostPort(o.BindAddress); err != nil {
			return fmt.Errorf("api bind address %q: %w", o.BindAddress, err)
		}
	}
	return nil
}

// plainHTTP decides between HTTP and HTTPS: plain only when asked explicitly, or on a
// loopback address without certificates.
func (o Options) plainHTTP(addr net.Addr) bool {
	if o.InsecurePlainHTTP {
		return true
	}
	if o.CertDir != "" {
		return false
	}
	return isLoopback(addr)
}

func isLoopback(addr net.Addr) bool {
	tcp, ok := addr.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

var errNoDeps = errors.New("api: Client, Reader, APIReader and Vendors are required")
