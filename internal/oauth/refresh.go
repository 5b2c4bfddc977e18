// Package oauth keeps OAuth 2.0 (3LO) access tokens of Connections fresh. Atlassian's
// refresh tokens rotate: every refresh returns a new one and invalidates the old at once.
// So a refresh must never run twice for the same Connection, in this process or in another
// replica, and the new refresh token must be safely stored before the access token is used;
// otherwise the next refresh fails with invalid_grant and a human must authorise again.
//
// Serialisation has two layers: one refresh in flight per Secret in this process, which
// every caller that needs it joins, and a lock annotation on the Connection's Secret taken
// with optimistic concurrency (resourceVersion), so that two replicas cannot both win. The
// rotated tokens are written with the resourceVersion of the locked Secret, which also
// releases the lock.
//
// A refresh runs on its own context and deadline (refreshTimeout), never on a caller's:
// once the token endpoint has rotated the refresh token, the old one is spent, so giving
// up before the new one is stored would leave the Connection unusable until a human
// authorises it again. A caller may stop waiting (its context ends, as a 100 ms search
// deadline does); the refresh goes on and stores its result for the next caller.
package oauth

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/oauth2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/unified-connectors/connector-operator/internal/wait"
)

// The refresher reads a Connection's Secret live and writes the rotated tokens (and its
// lock annotation) back.
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;update

// Secret keys of an oauth2 Connection (DESIGN.md).
const (
	KeyAccessToken  = "accessToken"
	KeyRefreshToken = "refreshToken"
	KeyExpiry       = "expiry"
)

// LockAnnotation marks a Secret whose refresh token is being used: "<holder> <RFC 3339
// expiry>". A lock past its expiry is stale (its holder died) and may be taken over.
const LockAnnotation = "connectors.unified.dev/refresh-lock"

// AuthorizedAnnotation is set by the OAuth2 callback to the time it stored new tokens, so
// that the Secret watch (which ignores the lock's own writes) always sees a new
// authorization.
const AuthorizedAnnotation = "connectors.unified.dev/authorized-at"

// Defaults.
const (
	// RefreshBefore is how long before expiry a token is refreshed.
	RefreshBefore = 5 * time.Minute
	// refreshTimeout bounds one refresh as a whole: reading the Secret, waiting for
	// another replica's refresh, taking the lock, the token call and the write-back.
	refreshTimeout = 30 * time.Second
	// storeTimeout is what writing the rotated tokens back gets on top, whatever is left
	// of refreshTimeout: the token endpoint has spent the old refresh token by then, and
	// the new one exists nowhere else.
	storeTimeout = 10 * time.Second
	// unlockTimeout bounds releasing the lock after a failed refresh.
	unlockTimeout = 5 * time.Second
	// lockTTL outlives the longest a holder can still write (refreshTimeout +
	// storeTimeout, plus the second RFC 3339 drops), so that no replica takes over a lock
	// whose holder may yet store rotated tokens.
	lockTTL  = refreshTimeout + storeTimeout + 5*time.Second
	pollLock = 200 * time.Millisecond
)

// errReauthorized: the Secret was given another refresh token (a new authorization)
// while a refresh ran; the new tokens stand.
var errReauthorized = errors.New("the Secret was given another refresh token meanwhile")

// ErrRefreshRejected means the authorization server refused the refresh token
// (invalid_grant): only a new authorization can fix it.
var ErrRefreshRejected = errors.New("the authorization server rejected the refresh token (invalid_grant); authorise the Connection again")

// Token is the outcome of Fresh: a usable access token and its expiry.
type Token struct {
	AccessToken string
	// Expiry is zero when the vendor's tokens carry none (Client.NoExpiry).
	Expiry time.Time
	// Fields are the token answer's Client.Fields, as stored with the tokens.
	Fields map[string]string
	// Refreshed is set when this call rotated the tokens.
	Refreshed bool
}

// Client is the OAuth2 client of a Connector, with its vendor's rules.
type Client struct {
	ClientID, ClientSecret string
	TokenURL               string
	// HTTP sends token requests (egress-guarded in production).
	HTTP *http.Client
	// NoExpiry: the vendor's access tokens carry no expiry (Salesforce). A stored token
	// is used until the vendor refuses it; then Renew replaces it.
	NoExpiry bool
	// Fields name token-answer fields (instance_url) kept in the Secret, under the same
	// names, next to the tokens.
	Fields []string
}

// SecretData is what a Connection's Secret holds for tok: the access and refresh
// tokens, the expiry (empty when the answer gave none) and the answer's fields. Both
// the callback and every refresh write it, so the layout has one source.
func SecretData(tok *oauth2.Token, fields []string) map[string][]byte {
	data := map[string][]byte{
		KeyAccessToken:  []byte(tok.AccessToken),
		KeyRefreshToken: []byte(tok.RefreshToken),
		KeyExpiry:       nil,
	}
	if !tok.Expiry.IsZero() {
		data[KeyExpiry] = []byte(tok.Expiry.UTC().Format(time.RFC3339))
	}
	for _, f := range fields {
		if v, ok := tok.Extra(f).(string); ok && v != "" {
			data[f] = []byte(v)
		}
	}
	return data
}

// Refresher refreshes tokens for one operator replica.
type Refresher struct {
	// Client writes Secrets; Reader reads them live (never from a cache).
	Client client.Client
	Reader client.Reader
	// Holder names this replica in the lock annotation (the pod name).
	Holder string
	Now    func() time.Time

	mu      sync.Mutex
	flights map[client.ObjectKey]*flight // the refresh in flight, by Secret
}

// flight is one refresh that every caller needing it waits for; tok and err are set
// before done is closed.
type flight struct {
	done chan struct{}
	tok  Token
	err  error
}

func (r *Refresher) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Fresh returns an access token valid for at least RefreshBefore, refreshing it first
// when needed. secret names the Connection's Secret. A refresh runs on its own context
// (the values of ctx, not its deadline or cancellation) and is shared by every caller
// that needs it meanwhile; Fresh returns ctx's error when ctx ends first, and the refresh
// goes on and stores the rotated tokens without it.
func (r *Refresher) Fresh(ctx context.Context, secret client.ObjectKey, oc Client) (Token, error) {
	return r.Renew(ctx, secret, oc, "")
}

// Renew is Fresh, but also refreshes when the stored access token is spent: the vendor
// refused it (a session that expired without warning). Of many callers that found one
// token spent, one refreshes and the others join it or find its successor stored.
func (r *Refresher) Renew(ctx context.Context, secret client.ObjectKey, oc Client, spent string) (Token, error) {
	_, tok, ok, err := r.current(ctx, secret, oc, spent)
	if err != nil || ok {
		return tok, err
	}
	f := r.join(ctx, secret, oc, spent)
	select {
	case <-f.done:
		return f.tok, f.err
	case <-ctx.Done():
		return Token{}, fmt.Errorf("waiting for the token refresh, which goes on without this caller: %w", ctx.Err())
	}
}

// join returns the refresh in flight for secret, starting one when there is none. The
// first caller's client is used: every caller of one Secret has the same Connector.
func (r *Refresher) join(ctx context.Context, secret client.ObjectKey, oc Client, spent string) *flight {
	r.mu.Lock()
	defer r.mu.Unlock()
	if f, ok := r.flights[secret]; ok {
		return f
	}
	if r.flights == nil {
		r.flights = map[client.ObjectKey]*flight{}
	}
	f := &flight{done: make(chan struct{})}
	r.flights[secret] = f
	// Detached from the caller: see the package comment.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshTimeout)
	go func() {
		defer cancel()
		f.tok, f.err = r.settle(fctx, secret, oc, spent)
		r.mu.Lock()
		delete(r.flights, secret)
		r.mu.Unlock()
		close(f.done)
	}()
	return f
}

// current reads the Secret live and the token it holds; ok when that token is not the
// spent one and is usable for at least RefreshBefore (or carries no expiry, when the
// vendor's never do).
func (r *Refresher) current(ctx context.Context, secret client.ObjectKey, oc Client, spent string) (*corev1.Secret, Token, bool, error) {
	s, err := r.read(ctx, secret)
	if err != nil {
		return nil, Token{}, false, err
	}
	tok, err := tokenOf(s, oc.Fields)
	if err != nil {
		return nil, Token{}, false, err
	}
	usable := tok.AccessToken != "" && tok.AccessToken != spent &&
		(oc.NoExpiry || tok.Expiry.Sub(r.now()) > RefreshBefore)
	return s, tok, usable, nil
}

// settle looks at the Secret again and refreshes it unless another replica did
// meanwhile. It runs on the flight's context.
func (r *Refresher) settle(ctx context.Context, secret client.ObjectKey, oc Client, spent string) (Token, error) {
	for {
		s, tok, ok, err := r.current(ctx, secret, oc, spent)
		if err != nil || ok {
			return tok, err
		}
		// Another replica is refreshing: wait for its rotated tokens, then look again.
		if holder, until, ok := parseLock(s.Annotations[LockAnnotation]); ok && holder != r.Holder && until.After(r.now()) {
			if err := wait.Sleep(ctx, pollLock); err != nil {
				return Token{}, fmt.Errorf("waiting for replica %s to finish its token refresh: %w", holder, err)
			}
			continue
		}
		locked, err := r.takeLock(ctx, s)
		if apierrors.IsConflict(err) {
			continue // someone changed the Secret meanwhile: look again
		}
		if err != nil {
			return Token{}, err
		}
		return r.refresh(ctx, locked, oc)
	}
}

// refresh rotates the tokens of a Secret this replica has locked and stores them before
// returning the access token.
func (r *Refresher) refresh(ctx context.Context, s *corev1.Secret, oc Client) (Token, error) {
	refreshToken := strings.TrimSpace(string(s.Data[KeyRefreshToken]))
	if refreshToken == "" {
		r.unlock(ctx, s)
		return Token{}, fmt.Errorf("secret %s/%s has no %s: authorise the Connection again", s.Namespace, s.Name, KeyRefreshToken)
	}
	cfg := oauth2.Config{
		ClientID:     oc.ClientID,
		ClientSecret: oc.ClientSecret,
		Endpoint:     oauth2.Endpoint{TokenURL: oc.TokenURL, AuthStyle: oauth2.AuthStyleInParams},
	}
	callCtx := ctx
	if oc.HTTP != nil {
		callCtx = context.WithValue(ctx, oauth2.HTTPClient, oc.HTTP)
	}
	// An expired token forces the token source to refresh.
	nt, err := cfg.TokenSource(callCtx, &oauth2.Token{RefreshToken: refreshToken, Expiry: time.Unix(1, 0)}).Token()
	if err != nil {
		r.unlock(ctx, s)
		return Token{}, classify(err)
	}
	if nt.RefreshToken == "" {
		nt.RefreshToken = refreshToken // servers that do not rotate keep the old one valid
	}
	data := SecretData(nt, oc.Fields)
	if err := r.store(ctx, s, refreshToken, data); errors.Is(err, errReauthorized) {
		// A new authorization replaced the tokens while this refresh ran: they are the
		// ones to use, and the Connection is not stalled.
		cur, rerr := r.read(ctx, client.ObjectKeyFromObject(s))
		if rerr != nil {
			return Token{}, rerr
		}
		return tokenOf(cur, oc.Fields)
	} else if err != nil {
		// The new refresh token is lost and the old one is spent: say so plainly.
		return Token{}, fmt.Errorf("storing the rotated tokens in Secret %s/%s failed (%v); the Connection must be authorised again", s.Namespace, s.Name, err)
	}
	tok := Token{AccessToken: nt.AccessToken, Expiry: nt.Expiry, Refreshed: true}
	for _, f := range oc.Fields {
		if v := strings.TrimSpace(string(s.Data[f])); v != "" {
			if tok.Fields == nil {
				tok.Fields = map[string]string{}
			}
			tok.Fields[f] = v
		}
	}
	return tok, nil
}

// store writes the rotated tokens into the locked Secret s, releasing the lock, with
// storeTimeout of its own. A write that fails for a passing reason is retried. A conflict
// means someone changed the Secret while we held the lock (a label, say): the tokens
// are put onto the new version, unless its refresh token is no longer the one this
// refresh spent (a new authorization replaced it), which must not be overwritten.
func (r *Refresher) store(ctx context.Context, s *corev1.Secret, spent string, data map[string][]byte) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	for attempt := 0; ; attempt++ {
		maps.Copy(s.Data, data)
		delete(s.Annotations, LockAnnotation)
		// Optimistic concurrency on the locked version: only the lock holder can write.
		err := r.Client.Update(quiet(ctx), s)
		switch {
		case err == nil:
			return nil
		case apierrors.IsConflict(err):
			cur, rerr := r.read(ctx, client.ObjectKeyFromObject(s))
			if rerr != nil {
				return errors.Join(err, rerr)
			}
			if strings.TrimSpace(string(cur.Data[KeyRefreshToken])) != spent {
				return fmt.Errorf("%w: %w", errReauthorized, err)
			}
			if cur.Data == nil {
				cur.Data = map[string][]byte{}
			}
			s = cur
		case apierrors.IsNotFound(err) || apierrors.IsInvalid(err) || apierrors.IsForbidden(err):
			return err
		}
		if werr := wait.Sleep(ctx, min(time.Duration(attempt+1)*100*time.Millisecond, time.Second)); werr != nil {
			return errors.Join(err, werr)
		}
	}
}

// classify keeps the vendor's verdict and drops everything else it said: a token
// endpoint's error body must not reach logs or conditions.
func classify(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		if re.ErrorCode == "invalid_grant" {
			return ErrRefreshRejected
		}
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		return &TransientError{Status: status, Code: re.ErrorCode}
	}
	return &TransientError{Cause: "token endpoint unreachable"}
}

// TransientError is a refresh that may succeed later (5xx, timeouts, unexpected answers).
type TransientError struct {
	Status int
	Code   string
	Cause  string
}

func (e *TransientError) Error() string {
	switch {
	case e.Status != 0:
		return fmt.Sprintf("token refresh failed: %d %s %s", e.Status, http.StatusText(e.Status), e.Code)
	case e.Cause != "":
		return "token refresh failed: " + e.Cause
	default:
		return "token refresh failed"
	}
}

func (r *Refresher) takeLock(ctx context.Context, s *corev1.Secret) (*corev1.Secret, error) {
	s = s.DeepCopy()
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	s.Annotations[LockAnnotation] = r.Holder + " " + r.now().Add(lockTTL).UTC().Format(time.RFC3339)
	if s.Data == nil {
		s.Data = map[string][]byte{}
	}
	// Update carries s.ResourceVersion: it fails with Conflict if anyone got there first.
	if err := r.Client.Update(quiet(ctx), s); err != nil {
		return nil, err
	}
	return s, nil
}

// unlock releases the lock after a failed refresh, with unlockTimeout of its own; a
// failure here only delays others until the lock expires.
func (r *Refresher) unlock(ctx context.Context, s *corev1.Secret) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), unlockTimeout)
	defer cancel()
	delete(s.Annotations, LockAnnotation)
	_ = r.Client.Update(quiet(ctx), s)
}

func (r *Refresher) read(ctx context.Context, key client.ObjectKey) (*corev1.Secret, error) {
	var s corev1.Secret
	if err := r.Reader.Get(quiet(ctx), key, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

func tokenOf(s *corev1.Secret, fields []string) (Token, error) {
	tok := Token{AccessToken: strings.TrimSpace(string(s.Data[KeyAccessToken]))}
	for _, f := range fields {
		if v := strings.TrimSpace(string(s.Data[f])); v != "" {
			if tok.Fields == nil {
				tok.Fields = map[string]string{}
			}
			tok.Fields[f] = v
		}
	}
	if raw := strings.TrimSpace(string(s.Data[KeyExpiry])); raw != "" {
		t, err := time.Parse(time.RFC3339, raw)
		if err != nil {
			return Token{}, fmt.Errorf("secret %s/%s: %s is not an RFC 3339 time", s.Namespace, s.Name, KeyExpiry)
		}
		tok.Expiry = t
	}
	return tok, nil
}

func parseLock(v string) (holder string, until time.Time, ok bool) {
	holder, at, found := strings.Cut(v, " ")
	if !found {
		return "", time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339, at)
	return holder, t, err == nil
}

// quiet silences client-go's body logging for calls that carry Secret data.
func quiet(ctx context.Context) context.Context { return logr.NewContext(ctx, logr.Discard()) }
