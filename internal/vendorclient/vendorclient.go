// Package vendorclient builds the connectors.Client of a Connection: it reads the
// Connection's Secret live (Secret data is never cached), refreshes OAuth2 tokens, applies
// the egress rules and hands every call to the Connection's shared vendor HTTP client. The
// reconciler, the sync engine and the HTTP API all get their clients here, so a
// Connection behaves the same (rate limit, Retry-After, credentials) whoever calls.
package vendorclient

import (
	"context"
	"errors"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/internal/egress"
	"github.com/unified-connectors/connector-operator/internal/oauth"
	"github.com/unified-connectors/connector-operator/internal/outcome"
	"github.com/unified-connectors/connector-operator/internal/vendorhttp"
)

// Keys of the Connector's OAuth2 client Secret (spec.oauth2.clientSecretRef, DESIGN.md).
// A Connection's Secret holds the keys its provider's AuthSpec names.
const (
	KeyClientID     = "clientID"
	KeyClientSecret = "clientSecret"
)

// tokenCallTimeout bounds a token refresh.
const tokenCallTimeout = 10 * time.Second

// Problem is a reason the Connection cannot be served, named by a condition reason from
// api/v1alpha1: an outcome error (internal/outcome), stalling unless Transient. Messages
// never carry secret values.
type Problem = outcome.Error

// problem is a stalling Problem: a human must change the Connection, its Secret or its
// Connector.
func problem(reason, format string, args ...any) *Problem {
	return outcome.Stalling(reason, format, args...)
}

// Factory builds Connection clients.
type Factory struct {
	// Reader reads Secrets live from the API server.
	Reader client.Reader
	// Vendors holds the per-Connection HTTP clients; its Egress is the vendor policy.
	Vendors *vendorhttp.Pool
	// Refresher keeps OAuth2 access tokens fresh.
	Refresher *oauth.Refresher
	// Namespace is the operator's namespace, home of the OAuth2 client Secrets and of
	// the ConfigMaps and Secrets a Connector's settings name (a CA bundle).
	Namespace string
	// DatabaseEgress guards vendors whose Description says EgressDatabase: the sink
	// policy (private addresses allowed, link-local never, loopback only with
	// --allow-insecure-vendor-urls), checked on the baseURL's host and at every dial.
	DatabaseEgress egress.Policy

	clientTokens clientTokens
}

// Resolved is a ready-to-use client and what the caller may want to record.
type Resolved struct {
	Client connectors.Client
	// SecretVersion is the resourceVersion of the credential Secret that was read.
	SecretVersion string
	// OAuth is the access token's state for oauth2 Connections, nil otherwise.
	OAuth *oauth.Token
}

// ClientFor returns the client of conn, which uses connector. Failures are *Problem,
// except API server errors, which callers retry.
func (f *Factory) ClientFor(ctx context.Context, conn *v1alpha1.Connection, connector *v1alpha1.Connector) (Resolved, error) {
	if err := f.checkBaseURL(connector); err != nil {
		return Resolved{}, err
	}
	secret, err := ReadSecret(ctx, f.Reader, conn.Namespace, conn.Spec.Auth.SecretRef.Name)
	if err != nil {
		return Resolved{}, err
	}
	creds, grant, err := credentialsFromSecret(string(connector.Spec.Type), conn.Spec.Auth.Method, secret)
	if err != nil {
		return Resolved{}, err
	}
	provider, ok := connectors.Get(string(connector.Spec.Type))
	if !ok {
		return Resolved{}, problem(v1alpha1.ConnectorNotReadyReason, "no connector registered for type %q", connector.Spec.Type)
	}
	rl := connector.Spec.RateLimit
	key := client.ObjectKeyFromObject(conn).String()
	http := f.Vendors.Client(key, string(connector.Spec.Type), float64(rl.RequestsPerSecond), int(rl.Burst))
	build := func(tok oauth.Token) (connectors.Client, error) {
		c := creds
		if grant != connectors.GrantNone {
			c.Token = tok.AccessToken
			c.Values = maps.Clone(creds.Values)
			if c.Values == nil && len(tok.Fields) > 0 {
				c.Values = map[string]string{}
			}
			maps.Copy(c.Values, tok.Fields)
		}
		cfg := f.config(connector, c, http)
		cfg.Key, cfg.Connection = key, conn
		vc, err := provider.NewClient(cfg)
		if err != nil {
			return nil, problem(v1alpha1.ConnectorNotReadyReason, "Connector %q: %v", connector.Name, err)
		}
		return vc, nil
	}
	res := Resolved{SecretVersion: secret.ResourceVersion}
	if grant == connectors.GrantNone {
		res.Client, err = build(oauth.Token{})
		return res, err
	}
	token, err := f.tokenSource(ctx, conn, connector, grant, creds, key, secret.ResourceVersion)
	if err != nil {
		return Resolved{}, err
	}
	tok, err := token(ctx, "")
	if err != nil {
		return Resolved{}, err
	}
	if grant == connectors.GrantAuthorizationCode {
		res.OAuth = &tok
	}
	vc, err := build(tok)
	if err != nil {
		return Resolved{}, err
	}
	res.Client = &renewing{cur: vc, token: tok.AccessToken, renew: func(ctx context.Context, spent string) (connectors.Client, string, error) {
		tok, err := token(ctx, spent)
		if err != nil {
			return nil, "", err
		}
		vc, err := build(tok)
		return vc, tok.AccessToken, err
	}}
	return res, nil
}

// tokenSource returns where the Connection's access tokens come from for grant.
func (f *Factory) tokenSource(ctx context.Context, conn *v1alpha1.Connection, connector *v1alpha1.Connector, grant connectors.Grant,
	creds connectors.Credentials, key, version string) (tokenSource, error) {
	switch grant {
	case connectors.GrantAuthorizationCode:
		oc, err := f.OAuthClient(ctx, connector)
		if err != nil {
			return nil, err
		}
		secret := client.ObjectKey{Namespace: conn.Namespace, Name: conn.Spec.Auth.SecretRef.Name}
		return func(ctx context.Context, spent string) (oauth.Token, error) {
			return f.oauthToken(ctx, secret, oc, spent)
		}, nil
	case connectors.GrantClientCredentials:
		// The Connection's own client, posted to the Connector's token URL.
		ep, err := OAuthEndpointsOf(connector)
		if err != nil {
			return nil, err
		}
		if err := f.checkURL(ep.TokenURL); err != nil {
			return nil, err
		}
		oc := oauth.Client{ClientID: creds.Values[KeyClientID], ClientSecret: creds.Values[KeyClientSecret],
			TokenURL: ep.TokenURL, HTTP: f.Vendors.Egress.Client(tokenCallTimeout),
			NoExpiry: !ep.Rules.AccessTokensExpire, Fields: ep.Rules.TokenFields}
		return func(ctx context.Context, spent string) (oauth.Token, error) {
			return f.clientToken(ctx, key, version, oc, spent)
		}, nil
	default:
		return nil, problem(v1alpha1.AuthMethodNotAllowedReason, "auth method %q has an unknown grant %q", conn.Spec.Auth.Method, grant)
	}
}

// Forget drops what the factory and the providers keep for a deleted Connection.
func (f *Factory) Forget(conn client.ObjectKey) {
	f.Vendors.Forget(conn.String())
	f.forgetClientToken(conn.String())
	for _, typ := range connectors.Types() {
		if p, ok := connectors.Get(typ); ok {
			if cf, ok := p.(connectors.ConnectionForgetter); ok {
				cf.ForgetConnection(conn.String())
			}
		}
	}
}

// CheckURL applies the egress rules that need no DNS (https only unless
// --allow-insecure-vendor-urls; no internal or metadata address in any spelling). The
// dialer checks the resolved address again on every call.
func (f *Factory) checkURL(raw string) error {
	if err := f.Vendors.Egress.CheckURL(raw); err != nil {
		return problem(v1alpha1.EgressDeniedReason, "%v", err)
	}
	return nil
}

// checkBaseURL applies the egress rules to the Connector's baseURL: a SaaS vendor's as
// checkURL does, a database's host under DatabaseEgress (its scheme is the provider's to
// check).
func (f *Factory) checkBaseURL(connector *v1alpha1.Connector) error {
	raw := string(connector.Spec.BaseURL)
	if desc, ok := connectors.Describe(string(connector.Spec.Type)); !ok || desc.Egress != connectors.EgressDatabase {
		return f.checkURL(raw)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return problem(v1alpha1.EgressDeniedReason, "egress denied: the baseURL is not valid")
	}
	if u.User != nil {
		return problem(v1alpha1.EgressDeniedReason, "egress denied: %s has userinfo in the URL, which is refused; put credentials in the Connection's Secret", u.Hostname())
	}
	if err := f.DatabaseEgress.CheckHost(u.Hostname()); err != nil {
		return problem(v1alpha1.EgressDeniedReason, "%v", err)
	}
	return nil
}

// config is Config with what the factory adds: the database dialer, the insecure flag
// and the reader of the Connector's ConfigMap and Secret keys.
func (f *Factory) config(connector *v1alpha1.Connector, creds connectors.Credentials, http connectors.Doer) connectors.Config {
	cfg := Config(connector, creds, http)
	cfg.Dial = f.DatabaseEgress.DialContext
	cfg.AllowInsecure = f.DatabaseEgress.AllowInsecure
	cfg.ReadRef = f.readRef
	return cfg
}

// readRef reads one key of a ConfigMap or Secret in the operator's namespace, live (the
// cache holds neither). Missing objects and keys are stalling Problems naming them.
func (f *Factory) readRef(ctx context.Context, ref v1alpha1.KeyReference) ([]byte, error) {
	key := client.ObjectKey{Namespace: f.Namespace, Name: ref.Name}
	if ref.Kind == "Secret" {
		s, err := ReadSecret(ctx, f.Reader, key.Namespace, key.Name)
		if err != nil {
			return nil, err
		}
		if len(s.Data[ref.Key]) == 0 {
			return nil, problem(v1alpha1.ConnectorNotReadyReason, "Secret %s/%s has no key %q", key.Namespace, key.Name, ref.Key)
		}
		return s.Data[ref.Key], nil
	}
	var cm corev1.ConfigMap
	if err := f.Reader.Get(ctx, key, &cm); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, problem(v1alpha1.ConnectorNotReadyReason, "ConfigMap %s/%s not found", key.Namespace, key.Name)
		}
		return nil, err
	}
	if v, ok := cm.Data[ref.Key]; ok && v != "" {
		return []byte(v), nil
	}
	if v := cm.BinaryData[ref.Key]; len(v) > 0 {
		return v, nil
	}
	return nil, problem(v1alpha1.ConnectorNotReadyReason, "ConfigMap %s/%s has no key %q", key.Namespace, key.Name, ref.Key)
}

// CheckConnector validates what can be checked of a Connector without calling its
// vendor: registered type, static config, egress rules and the OAuth2 client Secret.
// It returns the provider's warnings.
func (f *Factory) CheckConnector(ctx context.Context, connector *v1alpha1.Connector) ([]string, error) {
	provider, ok := connectors.Get(string(connector.Spec.Type))
	if !ok {
		return nil, problem(v1alpha1.ConnectorNotReadyReason, "no connector registered for type %q (have %v)", connector.Spec.Type, connectors.Types())
	}
	if err := f.checkBaseURL(connector); err != nil {
		return nil, err
	}
	warnings, err := provider.Validate(f.config(connector, connectors.Credentials{}, nil))
	if err != nil {
		return nil, problem(v1alpha1.ConnectorNotReadyReason, "invalid Connector: %w", err)
	}
	if err := offersAuthMethods(provider.Describe(), connector); err != nil {
		return nil, err
	}
	if o := connector.Spec.OAuth2; o != nil {
		for _, u := range []v1alpha1.URL{o.AuthorizeURL, o.TokenURL, o.APIBaseURL} {
			if u == "" {
				continue
			}
			if err := f.checkURL(string(u)); err != nil {
				return nil, err
			}
		}
		if _, _, err := f.oauthClientCredentials(ctx, o); err != nil {
			return nil, err
		}
	}
	return warnings, nil
}

// offersAuthMethods refuses a Connector that allows an auth method its vendor does not
// offer (spec.authMethods defaults to apiToken).
func offersAuthMethods(desc connectors.Description, connector *v1alpha1.Connector) error {
	methods := connector.Spec.AuthMethods
	if len(methods) == 0 {
		methods = []v1alpha1.AuthMethod{v1alpha1.AuthMethodAPIToken}
	}
	var offered []string
	for _, a := range desc.Auth {
		offered = append(offered, string(a.Method))
	}
	for _, m := range methods {
		if _, ok := desc.Method(connectors.AuthMethod(m)); !ok {
			return problem(v1alpha1.ConnectorNotReadyReason, "connector type %q does not offer auth method %q; spec.authMethods may list %s",
				connector.Spec.Type, m, strings.Join(offered, ", "))
		}
	}
	return nil
}

// ReadSecret GETs a Secret live. client-go logs whole response bodies at high verbosity
// with the context's logger; a Secret's body is credentials, so this call logs nothing.
func ReadSecret(ctx context.Context, r client.Reader, namespace, name string) (*corev1.Secret, error) {
	quiet := logr.NewContext(ctx, logr.Discard())
	var s corev1.Secret
	if err := r.Get(quiet, client.ObjectKey{Namespace: namespace, Name: name}, &s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, problem(v1alpha1.SecretNotFoundReason, "Secret %s/%s not found", namespace, name)
		}
		return nil, err
	}
	return &s, nil
}

// RequireKeys fails with SecretInvalid naming the missing or empty keys (never values).
func RequireKeys(s *corev1.Secret, keys ...string) error {
	var missing []string
	for _, k := range keys {
		if len(strings.TrimSpace(string(s.Data[k]))) == 0 {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return problem(v1alpha1.SecretInvalidReason, "Secret %s/%s is missing key(s) %s", s.Namespace, s.Name, strings.Join(missing, ", "))
	}
	return nil
}

func value(s *corev1.Secret, k string) string { return strings.TrimSpace(string(s.Data[k])) }

// credentialsFromSecret reads the keys that method needs, as the provider of typ describes
// it, out of s: every SecretKey (missing or empty ones are SecretInvalid) and the
// OptionalKeys present go into Values; which key means what is the provider's business.
// A method the provider does not offer is AuthMethodNotAllowed. For
// GrantAuthorizationCode the Secret must also hold the refresh token; the access token
// may be missing or spent, as the refresh token can mint one.
func credentialsFromSecret(typ string, method v1alpha1.AuthMethod, s *corev1.Secret) (connectors.Credentials, connectors.Grant, error) {
	desc, ok := connectors.Describe(typ)
	if !ok {
		return connectors.Credentials{}, "", problem(v1alpha1.ConnectorNotReadyReason, "no connector registered for type %q", typ)
	}
	spec, ok := desc.Method(connectors.AuthMethod(method))
	if !ok {
		return connectors.Credentials{}, "", problem(v1alpha1.AuthMethodNotAllowedReason, "connector type %q does not offer auth method %q", typ, method)
	}
	required := spec.SecretKeys
	if spec.Grant == connectors.GrantAuthorizationCode {
		required = append(slices.Clip(required), oauth.KeyRefreshToken)
	}
	if err := RequireKeys(s, required...); err != nil {
		return connectors.Credentials{}, "", err
	}
	creds := connectors.Credentials{Method: spec.Method}
	for _, k := range slices.Concat(spec.SecretKeys, spec.OptionalKeys) {
		v := value(s, k)
		if v == "" {
			continue
		}
		if creds.Values == nil {
			creds.Values = make(map[string]string, len(spec.SecretKeys)+len(spec.OptionalKeys))
		}
		creds.Values[k] = v
	}
	return creds, spec.Grant, nil
}

// Config builds the connectors.Config of a Connection of connector; the provider reads its
// own settings from Connector.
func Config(connector *v1alpha1.Connector, creds connectors.Credentials, http connectors.Doer) connectors.Config {
	return connectors.Config{
		BaseURL:     string(connector.Spec.BaseURL),
		Connector:   &connector.Spec,
		Credentials: creds,
		HTTP:        http,
	}
}

// OAuthClient returns the Connector's OAuth2 client (for the authorize/callback flow too).
func (f *Factory) OAuthClient(ctx context.Context, connector *v1alpha1.Connector) (oauth.Client, error) {
	o := connector.Spec.OAuth2
	if o == nil {
		return oauth.Client{}, problem(v1alpha1.AuthMethodNotAllowedReason, "Connector %q has no oauth2 client", connector.Name)
	}
	id, secret, err := f.oauthClientCredentials(ctx, o)
	if err != nil {
		return oauth.Client{}, err
	}
	ep, err := OAuthEndpointsOf(connector)
	if err != nil {
		return oauth.Client{}, err
	}
	if err := f.checkURL(ep.TokenURL); err != nil {
		return oauth.Client{}, err
	}
	return oauth.Client{ClientID: id, ClientSecret: secret, TokenURL: ep.TokenURL, HTTP: f.Vendors.Egress.Client(tokenCallTimeout),
		NoExpiry: !ep.Rules.AccessTokensExpire, Fields: ep.Rules.TokenFields}, nil
}

// OAuthEndpoints are a Connector's OAuth 2.0 endpoints and its vendor's rules.
type OAuthEndpoints struct {
	AuthorizeURL, TokenURL string
	Rules                  connectors.OAuthRules
}

// OAuthEndpointsOf returns connector's endpoints: spec.oauth2's authorizeURL and tokenURL
// where set, else its provider's defaults, with the provider's rules (PKCE, authorize
// parameters, rotation). A type without OAuth rules is AuthMethodNotAllowed.
func OAuthEndpointsOf(connector *v1alpha1.Connector) (OAuthEndpoints, error) {
	desc, ok := connectors.Describe(string(connector.Spec.Type))
	if !ok || desc.OAuth == nil || desc.OAuth.Endpoints == nil {
		return OAuthEndpoints{}, problem(v1alpha1.AuthMethodNotAllowedReason, "connector type %q has no OAuth2 authorization server", connector.Spec.Type)
	}
	ep := OAuthEndpoints{Rules: *desc.OAuth}
	ep.AuthorizeURL, ep.TokenURL = desc.OAuth.Endpoints(&connector.Spec)
	if o := connector.Spec.OAuth2; o != nil {
		if o.AuthorizeURL != "" {
			ep.AuthorizeURL = string(o.AuthorizeURL)
		}
		if o.TokenURL != "" {
			ep.TokenURL = string(o.TokenURL)
		}
	}
	return ep, nil
}

func (f *Factory) oauthClientCredentials(ctx context.Context, o *v1alpha1.OAuth2Spec) (id, secret string, err error) {
	cs, err := ReadSecret(ctx, f.Reader, f.Namespace, o.ClientSecretRef.Name)
	if err != nil {
		return "", "", err
	}
	if err := RequireKeys(cs, KeyClientID, KeyClientSecret); err != nil {
		return "", "", err
	}
	return value(cs, KeyClientID), value(cs, KeyClientSecret), nil
}

// oauthToken returns a fresh access token from the Connection's Secret, refreshing (and
// rotating) it when close to expiry or when it is the spent one.
func (f *Factory) oauthToken(ctx context.Context, key client.ObjectKey, oc oauth.Client, spent string) (oauth.Token, error) {
	tok, err := f.Refresher.Renew(ctx, key, oc, spent)
	var transient *oauth.TransientError
	switch {
	case err == nil:
		return tok, nil
	case errors.Is(err, oauth.ErrRefreshRejected):
		return oauth.Token{}, problem(v1alpha1.RefreshFailedReason, "%w", err)
	case errors.As(err, &transient):
		// Backoff: the token endpoint may answer next time.
		return oauth.Token{}, outcome.Waiting(v1alpha1.RefreshFailedReason, 0, "%w", err)
	case apierrors.IsConflict(err) || apierrors.IsServerTimeout(err) || apierrors.IsTooManyRequests(err) || errors.Is(err, context.DeadlineExceeded):
		return oauth.Token{}, err
	default:
		// The Secret holds something unusable (a bad expiry) or the rotated tokens could
		// not be stored: a human must act.
		return oauth.Token{}, problem(v1alpha1.SecretInvalidReason, "%v", err)
	}
}
