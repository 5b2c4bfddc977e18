package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/oauth2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/internal/oauth"
	"github.com/unified-connectors/connector-operator/internal/policy"
	"github.com/unified-connectors/connector-operator/internal/vendorclient"
)

// OAuth2 authorization code flow (3LO) for Connections with spec.auth.method oauth2.
const (
	callbackPath    = "/oauth/v1/callback"
	exchangeTimeout = 10 * time.Second
	// storeTokensTimeout is what writing the tokens gets after the exchange.
	storeTokensTimeout = 10 * time.Second
	maxCodeLen         = 4096
)

// authorizeView is the body of the authorize redirect, for clients that do not follow it.
type authorizeView struct {
	AuthorizeURL string    `json:"authorizeURL"`
	ExpiresAt    time.Time `json:"expiresAt"`
}

// callbackView is the answer of a successful callback.
type callbackView struct {
	Namespace string     `json:"namespace"`
	Name      string     `json:"name"`
	Secret    string     `json:"secret"`
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
}

// authorizeFlow answers GET /oauth/v1/namespaces/{ns}/connections/{name}/authorize with
// a redirect to the vendor's consent page. It needs update connections/credentials.
func (s *Server) authorizeFlow(w http.ResponseWriter, r *http.Request, rq *request) error {
	ns, name, aerr := connectionPath(r, rq)
	if aerr != nil {
		return aerr
	}
	if _, err := newQuery(r.URL.RawQuery); err != nil {
		return err
	}
	if err := s.authorize(r.Context(), rq, access{verb: "update", resource: resourceConnections, subresource: subresourceCreds, namespace: ns, name: name}); err != nil {
		return err
	}
	conn, err := s.connection(r.Context(), ns, name)
	if err != nil {
		return err
	}
	connector, oc, err := s.oauthTarget(r.Context(), conn)
	if err != nil {
		return err
	}
	redirectURI, aerr := s.callbackURL(r)
	if aerr != nil {
		return aerr
	}
	// The vendor's endpoints and rules (audience, PKCE) are its provider's to say.
	ep, err := vendorclient.OAuthEndpointsOf(connector)
	if err != nil {
		return err
	}
	authURL := ep.AuthorizeURL
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	expires := time.Now().Add(s.opts.StateTTL).Truncate(time.Second)
	p := statePayload{
		Namespace: ns, Name: name, UID: string(conn.UID), Expires: expires.Unix(),
		Nonce: hex.EncodeToString(nonce[:]), RedirectURI: redirectURI, User: rq.caller.Username,
	}
	var opts []oauth2.AuthCodeOption
	for _, k := range slices.Sorted(maps.Keys(ep.Rules.AuthorizeParams)) {
		opts = append(opts, oauth2.SetAuthURLParam(k, ep.Rules.AuthorizeParams[k]))
	}
	if ep.Rules.PKCE == nil || ep.Rules.PKCE(authURL) {
		p.Verifier = oauth2.GenerateVerifier()
		opts = append(opts, oauth2.S256ChallengeOption(p.Verifier))
	}
	state, err := s.states.seal(r.Context(), p)
	if err != nil {
		return err
	}
	cfg := oauth2.Config{
		ClientID:    oc.ClientID,
		Endpoint:    oauth2.Endpoint{AuthURL: authURL},
		RedirectURL: redirectURI,
		Scopes:      connector.Spec.OAuth2.Scopes,
	}
	location := cfg.AuthCodeURL(state, opts...)
	s.log.Info("OAuth2 authorization started", "requestId", rq.id, "namespace", ns, "connection", name, "user", rq.caller.Username, "pkce", p.Verifier != "")
	w.Header().Set("Location", location)
	writeOK(w, http.StatusFound, authorizeView{AuthorizeURL: location, ExpiresAt: expires.UTC()})
	return nil
}

// oauthTarget checks that conn authenticates with oauth2 and that its Connector admits
// it as the reconciler would (policy.Admit: it exists, its allowedNamespaces match the
// namespace's labels, it allows oauth2, it is Ready), and returns the Connector's OAuth2
// client. A refusal is CONFLICT, not CONNECTION_NOT_READY: a Connection being authorized
// is not Ready by design (it has no tokens yet); what stands in the way is the
// Connector's policy or state, which the request cannot change. The message carries the
// condition reason the reconciler reports for the same Connection.
func (s *Server) oauthTarget(ctx context.Context, conn *v1alpha1.Connection) (*v1alpha1.Connector, oauth.Client, error) {
	if conn.Spec.Auth.Method != v1alpha1.AuthMethodOAuth2 {
		return nil, oauth.Client{}, errorf(CodeConflict, "connection %q authenticates with %s, not oauth2", conn.Name, conn.Spec.Auth.Method)
	}
	connector := &v1alpha1.Connector{}
	if err := s.deps.Reader.Get(ctx, client.ObjectKey{Name: conn.Spec.ConnectorRef.Name}, connector); err != nil {
		if !apierrors.IsNotFound(err) {
			return nil, oauth.Client{}, err
		}
		connector = nil
	}
	var nsLabels map[string]string
	if policy.NeedsNamespaceLabels(connector) {
		// Metadata only, from the informer the reconciler's namespace watch runs anyway.
		ns := &metav1.PartialObjectMetadata{}
		ns.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
		if err := s.deps.Reader.Get(ctx, client.ObjectKey{Name: conn.Namespace}, ns); err != nil {
			return nil, oauth.Client{}, err
		}
		nsLabels = ns.Labels
	}
	if err := policy.Admit(conn, connector, nsLabels); err != nil {
		var r *policy.Refusal
		if errors.As(err, &r) {
			return nil, oauth.Client{}, errorf(CodeConflict, "connection %q is not admitted by its Connector (%s): %s", conn.Name, r.Reason, r.Message)
		}
		return nil, oauth.Client{}, err
	}
	if connector.Spec.OAuth2 == nil {
		// The CRD requires spec.oauth2 when oauth2 is allowed; an object older than that
		// rule may still lack it.
		return nil, oauth.Client{}, errorf(CodeConflict, "Connector %q has no oauth2 client", connector.Name)
	}
	oc, err := s.deps.Vendors.OAuthClient(ctx, connector)
	if err != nil {
		var p *vendorclient.Problem
		if errors.As(err, &p) {
			return nil, oauth.Client{}, errorf(CodeConflict, "Connector %q cannot run OAuth2 (%s): %s", connector.Name, p.Reason, p.Message)
		}
		return nil, oauth.Client{}, err
	}
	return connector, oc, nil
}

// callbackURL is the redirect URI: ExternalURL's, or the root this request came to.
func (s *Server) callbackURL(r *http.Request) (string, *apiError) {
	if s.opts.ExternalURL != "" {
		return s.opts.ExternalURL + callbackPath, nil
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	u, err := url.Parse(scheme + "://" + r.Host)
	if err != nil || r.Host == "" || u.Host != r.Host || u.User != nil || u.Path != "" {
		return "", validationf("the Host header is not usable for the redirect URI; set --api-external-url")
	}
	return scheme + "://" + r.Host + callbackPath, nil
}

// callback answers GET /oauth/v1/callback: the vendor sends the browser back with a
// code and the state. Nothing in the request is trusted but the state's signature;
// the state says which Connection the tokens are for.
func (s *Server) callback(w http.ResponseWriter, r *http.Request, rq *request) error {
	q, aerr := newQuery(r.URL.RawQuery, "code", "state", "error", "error_description", "error_uri", "scope")
	if aerr != nil {
		return aerr
	}
	raw := q.get("state")
	if raw == "" {
		return validationf("state is required")
	}
	p, err := s.states.open(r.Context(), raw)
	switch {
	case errors.Is(err, errStateInvalid):
		return validationf("the state is not one this API issued")
	case errors.Is(err, errStateExpired):
		return validationf("the state has expired; start the authorization again")
	case err != nil:
		return err
	}
	rq.namespace, rq.user = p.Namespace, p.User
	switch err := s.states.claim(r.Context(), p); {
	case errors.Is(err, errStateReplayed):
		return errorf(CodeConflict, "the state was already used; start the authorization again")
	case errors.Is(err, errStatesFull):
		return errorf(CodeConflict, "too many authorizations in progress; try again in a few minutes")
	case err != nil:
		return err
	}
	if e := q.get("error"); e != "" {
		return validationf("the vendor did not authorize the connection: %s", oauthErrorCode(e))
	}
	code := q.get("code")
	if code == "" || len(code) > maxCodeLen {
		return validationf("code is required")
	}
	conn, err := s.connection(r.Context(), p.Namespace, p.Name)
	if err != nil {
		return err
	}
	if string(conn.UID) != p.UID {
		return errorf(CodeNotFound, "connection %q was replaced since the authorization started", p.Name)
	}
	// Admitted again: the namespace may have been relabelled, or the Connector changed,
	// since the state was minted. The state is spent either way.
	_, oc, err := s.oauthTarget(r.Context(), conn)
	if err != nil {
		return err
	}
	// The code is single use and the tokens it buys exist nowhere else until stored: a
	// browser that goes away must not strand them, so exchange and store run detached,
	// with their own deadline.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), exchangeTimeout+storeTokensTimeout)
	defer cancel()
	tok, err := exchange(sctx, oc, p, code)
	if err != nil {
		return err
	}
	if err := s.storeTokens(sctx, conn, tok, oc.Fields); err != nil {
		return err
	}
	s.log.Info("OAuth2 authorization stored", "requestId", rq.id, "namespace", conn.Namespace, "connection", conn.Name,
		"secret", conn.Spec.Auth.SecretRef.Name, "user", p.User)
	view := callbackView{Namespace: conn.Namespace, Name: conn.Name, Secret: conn.Spec.Auth.SecretRef.Name}
	if !tok.Expiry.IsZero() {
		at := tok.Expiry.UTC()
		view.ExpiresAt = &at
	}
	writeOK(w, http.StatusOK, view)
	return nil
}

// oauthErrorCode keeps an RFC 6749 error code shown back, and nothing else.
func oauthErrorCode(e string) string {
	if len(e) > 64 {
		return "unknown_error"
	}
	if strings.IndexFunc(e, func(c rune) bool { return (c < 'a' || c > 'z') && c != '_' }) >= 0 {
		return "unknown_error"
	}
	return e
}

// exchange trades the code for tokens at the Connector's token endpoint.
func exchange(ctx context.Context, oc oauth.Client, p statePayload, code string) (*oauth2.Token, error) {
	cfg := oauth2.Config{
		ClientID:     oc.ClientID,
		ClientSecret: oc.ClientSecret,
		Endpoint:     oauth2.Endpoint{TokenURL: oc.TokenURL, AuthStyle: oauth2.AuthStyleInParams},
		RedirectURL:  p.RedirectURI,
	}
	ctx, cancel := context.WithTimeout(ctx, exchangeTimeout)
	defer cancel()
	if oc.HTTP != nil {
		ctx = context.WithValue(ctx, oauth2.HTTPClient, oc.HTTP)
	}
	var opts []oauth2.AuthCodeOption
	if p.Verifier != "" {
		opts = append(opts, oauth2.VerifierOption(p.Verifier))
	}
	tok, err := cfg.Exchange(ctx, code, opts...)
	if err != nil {
		// Keep the vendor's verdict, drop what else it said: a token endpoint's error
		// body may echo the request.
		var re *oauth2.RetrieveError
		switch {
		case errors.As(err, &re) && (re.ErrorCode == "invalid_grant" || re.ErrorCode == "invalid_client" || re.ErrorCode == "unauthorized_client"):
			return nil, errorf(CodeVendorAuthFailed, "the token endpoint refused the authorization code (%s)", re.ErrorCode)
		case errors.As(err, &re):
			status := 0
			if re.Response != nil {
				status = re.Response.StatusCode
			}
			return nil, errorf(CodeVendorUnavailable, "the token endpoint answered %d %s", status, oauthErrorCode(re.ErrorCode))
		case ctx.Err() != nil:
			return nil, errorf(CodeTimeout, "the token endpoint did not answer in time")
		default:
			return nil, errorf(CodeVendorUnavailable, "the token endpoint is unreachable")
		}
	}
	if tok.RefreshToken == "" {
		return nil, errorf(CodeVendorAuthFailed, "the vendor issued no refresh token; the Connector's oauth2 scopes must ask for one (offline_access, refresh_token)")
	}
	if tok.Expiry.IsZero() && !oc.NoExpiry {
		// Without expires_in the token's life is unknown: refresh it at first use.
		tok.Expiry = time.Now()
	}
	return tok, nil
}

// storeTokens writes the tokens into the Connection's Secret (in its own namespace),
// creating it owned by the Connection, or updating it with optimistic concurrency. An
// existing Secret is only updated when it is one the operator made or already holds
// OAuth2 keys, so that a Connection pointed at an unrelated Secret cannot be used to
// overwrite it. The reconciler's Secret watch then probes the Connection.
func (s *Server) storeTokens(ctx context.Context, conn *v1alpha1.Connection, tok *oauth2.Token, fields []string) error {
	data := oauth.SecretData(tok, fields)
	key := client.ObjectKey{Namespace: conn.Namespace, Name: conn.Spec.Auth.SecretRef.Name}
	authorized := time.Now().UTC().Format(time.RFC3339Nano)
	backoff := wait.Backoff{Steps: 8, Duration: 20 * time.Millisecond, Factor: 1.5, Jitter: 0.5}
	return retry.RetryOnConflict(backoff, func() error {
		var sec corev1.Secret
		err := s.deps.APIReader.Get(quiet(ctx), key, &sec)
		if apierrors.IsNotFound(err) {
			owner := true
			sec = corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{
					Namespace: key.Namespace, Name: key.Name, Labels: managedLabels(),
					Annotations: map[string]string{oauth.AuthorizedAnnotation: authorized},
					OwnerReferences: []metav1.OwnerReference{{
						APIVersion: v1alpha1.GroupVersion.String(), Kind: "Connection",
						Name: conn.Name, UID: conn.UID, Controller: &owner,
					}},
				},
				Type: corev1.SecretTypeOpaque,
				Data: data,
			}
			err = s.deps.Client.Create(quiet(ctx), &sec)
			if apierrors.IsAlreadyExists(err) {
				return apierrors.NewConflict(corev1.Resource("secrets"), key.Name, err)
			}
			return err
		}
		if err != nil {
			return err
		}
		if !tokenSecret(&sec, fields) {
			return errorf(CodeConflict, "secret %q holds other data; point the Connection at a new Secret name and authorize again", key.Name)
		}
		if sec.Data == nil {
			sec.Data = map[string][]byte{}
		}
		for k, v := range data {
			sec.Data[k] = v
		}
		// A refresh lock of the old tokens means nothing for the new ones. The new
		// authorization is marked so that the Secret watch wakes the Connection even when
		// the lock goes with it (the watch ignores the lock's own writes).
		delete(sec.Annotations, oauth.LockAnnotation)
		if sec.Annotations == nil {
			sec.Annotations = map[string]string{}
		}
		sec.Annotations[oauth.AuthorizedAnnotation] = authorized
		return s.deps.Client.Update(quiet(ctx), &sec)
	})
}

// tokenSecret reports whether an existing Secret may receive OAuth2 tokens.
func tokenSecret(s *corev1.Secret, fields []string) bool {
	if s.Type != "" && s.Type != corev1.SecretTypeOpaque || (s.Immutable != nil && *s.Immutable) {
		return false
	}
	if s.Labels["app.kubernetes.io/managed-by"] == "connector-operator" {
		return true
	}
	for k := range s.Data {
		switch k {
		case oauth.KeyAccessToken, oauth.KeyRefreshToken, oauth.KeyExpiry:
		default:
			if !slices.Contains(fields, k) {
				return false
			}
		}
	}
	return true
}
