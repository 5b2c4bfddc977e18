// Package oauth keeps OAuth 2.0 (3LO) access tokens of Connections fresh. Atlassian's
// refresh tokens rotate: every refresh returns a new one and invalidates the old at once.
// So a refresh must never run twice for the same Connection, in this process or in another
// replica, and the new refresh token must be safely stored before the access token is used;
// otherwise the next refresh fails with invalid_grant and a human must authorise again.
//
// Serialisation has two layers: a mutex per Connection in this process, and a lock
// annotation on the Connection's Secret taken with optimistic concurrency (resourceVersion),
// so that two replicas cannot both win. The rotated tokens are written with the
// resourceVersion of the locked Secret, which also releases the lock.
package oauth

import (
	"context"
	"errors"
	"fmt"
	"github.com/unified-connectors/connector-operator/internal/wait"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/oauth2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Secret keys of an oauth2 Connection (DESIGN.md).
const (
	KeyAccessToken  = "accessToken"
	KeyRefreshToken = "refreshToken"
	KeyExpiry       = "expiry"
)

// LockAnnotation marks a Secret whose refresh token is being used: "<holder> <RFC 3339
// expiry>". A lock past its expiry is stale (its holder died) and may be taken over.
const LockAnnotation = "connectors.unified.dev/refresh-lock"

// Defaults.
const (
	// RefreshBefore is how long before expiry a token is refreshed.
	RefreshBefore = 5 * time.Minute
	lockTTL       = 30 * time.Second
	pollLock      = 200 * time.Millisecond
)

// ErrRefreshRejected means the authorization server refused the refresh token
// (invalid_grant): only a new authorization can fix it.
var ErrRefreshRejected = errors.New("the authorization server rejected the refresh token (invalid_grant); authorise the Connection again")

// Token is the outcome of Fresh: a usable access token and its expiry.
type Token struct {
	AccessToken string
	Expiry      time.Time
	// Refreshed is set when this call rotated the tokens.
	Refreshed bool
}

// Client is the OAuth2 client of a Connector.
type Client struct {
	ClientID, ClientSecret string
	TokenURL               string
	// HTTP sends token requests (egress-guarded in production).
	HTTP *http.Client
}

// Refresher refreshes tokens for one operator replica.
type Refresher struct {
	// Client writes Secrets; Reader reads them live (never from a cache).
	Client client.Client
	Reader client.Reader
	// Holder names this replica in the lock annotation (the pod name).
	Holder string
	Now    func() time.Time

	mu    sync.Mutex
	locks map[client.ObjectKey]*sync.Mutex
}

func (r *Refresher) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Fresh returns an access token valid for at least RefreshBefore, refreshing it first
// when needed. secret names the Connection's Secret.
func (r *Refresher) Fresh(ctx context.Context, secret client.ObjectKey, oc Client) (Token, error) {
	l := r.lock(secret)
	l.Lock()
	defer l.Unlock()

	for {
		s, err := r.read(ctx, secret)
		if err != nil {
			return Token{}, err
		}
		tok, err := tokenOf(s)
		if err != nil {
			return Token{}, err
		}
		if tok.AccessToken != "" && tok.Expiry.Sub(r.now()) > RefreshBefore {
			return tok, nil
		}
		// Another replica is refreshing: wait for its rotated tokens, then look again.
		if holder, until, ok := parseLock(s.Annotations[LockAnnotation]); ok && holder != r.Holder && until.After(r.now()) {
			if err := wait.Sleep(ctx, pollLock); err != nil {
				return Token{}, err
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
	s.Data[KeyAccessToken] = []byte(nt.AccessToken)
	s.Data[KeyRefreshToken] = []byte(nt.RefreshToken)
	s.Data[KeyExpiry] = []byte(nt.Expiry.UTC().Format(time.RFC3339))
	delete(s.Annotations, LockAnnotation)
	// Optimistic concurrency on the locked version: only the lock holder can write.
	if err := r.Client.Update(quiet(ctx), s); err != nil {
		// The new refresh token is lost and the old one is spent: say so plainly.
		return Token{}, fmt.Errorf("storing the rotated tokens in Secret %s/%s failed (%v); the Connection must be authorised again", s.Namespace, s.Name, err)
	}
	return Token{AccessToken: nt.AccessToken, Expiry: nt.Expiry, Refreshed: true}, nil
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

// unlock releases the lock after a failed refresh; a failure here only delays others
// until the lock expires.
func (r *Refresher) unlock(ctx context.Context, s *corev1.Secret) {
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

func (r *Refresher) lock(key client.ObjectKey) *sync.Mutex {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.locks == nil {
		r.locks = map[client.ObjectKey]*sync.Mutex{}
	}
	l, ok := r.locks[key]
	if !ok {
		l = &sync.Mutex{}
		r.locks[key] = l
	}
	return l
}

func tokenOf(s *corev1.Secret) (Token, error) {
	tok := Token{AccessToken: strings.TrimSpace(string(s.Data[KeyAccessToken]))}
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
