package vendorclient

import (
	"context"
	"errors"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/internal/oauth"
	"github.com/unified-connectors/connector-operator/internal/outcome"
)

// Access tokens come from a grant (connectors.Grant): the authorization code flow, whose
// tokens live in the Connection's Secret and are refreshed by the Refresher, or the
// client credentials grant, whose tokens live in this process only. Either way a vendor
// may end a session without warning (a token with no expiry, revoked or timed out):
// the call then fails with connectors.KindSessionExpired, the token is renewed once,
// serialised across callers, and the call is retried once; a second refusal is the
// vendor's answer.

// tokenSource yields a Connection's access token; spent names one the vendor refused.
type tokenSource func(ctx context.Context, spent string) (oauth.Token, error)

// clientTokens caches client-credentials tokens per Connection and Secret version.
type clientTokens struct {
	mu     sync.Mutex
	tokens map[string]cachedToken
	flight singleflight.Group
}

type cachedToken struct {
	version string // the Secret's resourceVersion the token was minted from
	tok     oauth.Token
}

// clientCredentialsTimeout bounds one client-credentials grant, detached from the caller
// (callers join it).
const clientCredentialsTimeout = 30 * time.Second

// clientToken returns the cached token of key minted from the Secret at version, or a new
// one when there is none, it is spent, or it expires within oauth.RefreshBefore.
func (f *Factory) clientToken(ctx context.Context, key, version string, oc oauth.Client, spent string) (oauth.Token, error) {
	cache := &f.clientTokens
	cache.mu.Lock()
	c, ok := cache.tokens[key]
	cache.mu.Unlock()
	if ok && c.version == version && c.tok.AccessToken != spent &&
		(c.tok.Expiry.IsZero() || time.Until(c.tok.Expiry) > oauth.RefreshBefore) {
		return c.tok, nil
	}
	// One grant in flight per Connection and Secret version: a caller of an edited
	// Secret never joins a grant made with the old client.
	ch := cache.flight.DoChan(key+"@"+version, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), clientCredentialsTimeout)
		defer cancel()
		tok, err := oauth.ClientCredentials(fctx, oc)
		if err != nil {
			return oauth.Token{}, err
		}
		cache.mu.Lock()
		if cache.tokens == nil {
			cache.tokens = map[string]cachedToken{}
		}
		cache.tokens[key] = cachedToken{version: version, tok: tok}
		cache.mu.Unlock()
		return tok, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return oauth.Token{}, grantProblem(r.Err)
		}
		return r.Val.(oauth.Token), nil
	case <-ctx.Done():
		return oauth.Token{}, ctx.Err()
	}
}

// forgetClientToken drops the cached token of a deleted Connection.
func (f *Factory) forgetClientToken(key string) {
	f.clientTokens.mu.Lock()
	delete(f.clientTokens.tokens, key)
	f.clientTokens.mu.Unlock()
}

// grantProblem classifies a token endpoint's failure as the conditions name it.
func grantProblem(err error) error {
	var transient *oauth.TransientError
	switch {
	case errors.Is(err, oauth.ErrClientRejected):
		// No requeue: the Secret's client is wrong; the Secret watch wakes us.
		return problem(v1alpha1.CredentialsRejectedReason, "%v", err)
	case errors.As(err, &transient):
		return outcome.Waiting(v1alpha1.VendorUnreachableReason, 0, "%v", err)
	default:
		return err
	}
}

// renewing is a vendor client whose calls, refused with KindSessionExpired, are retried
// once on a client built with a renewed token.
type renewing struct {
	mu       sync.Mutex
	cur      connectors.Client
	token    string
	inflight *renewal // the renewal under way, nil when none
	renew    func(ctx context.Context, spent string) (connectors.Client, string, error)
}

// renewal is one renewal every call that found the session ended waits for.
type renewal struct {
	done chan struct{}
	c    connectors.Client
	err  error
}

// renewTimeout bounds one renewal, which runs detached from the calls waiting for it.
const renewTimeout = 30 * time.Second

func (r *renewing) client() (connectors.Client, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur, r.token
}

// again renews the session the token spent was refused for (once, however many calls
// found it so) and returns the client to retry on. Each caller waits only as long as
// its own context allows; the renewal goes on without it.
func (r *renewing) again(ctx context.Context, spent string) (connectors.Client, error) {
	r.mu.Lock()
	if r.token != spent {
		c := r.cur
		r.mu.Unlock()
		return c, nil // another call renewed it meanwhile
	}
	rn := r.inflight
	if rn == nil {
		rn = &renewal{done: make(chan struct{})}
		r.inflight = rn
		go func() {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), renewTimeout)
			defer cancel()
			c, tok, err := r.renew(rctx, spent)
			r.mu.Lock()
			if err == nil {
				r.cur, r.token = c, tok
			}
			r.inflight = nil
			rn.c, rn.err = c, err
			r.mu.Unlock()
			close(rn.done)
		}()
	}
	r.mu.Unlock()
	select {
	case <-rn.done:
		return rn.c, rn.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// call runs f on the current client and, when the vendor ended the session, once more on
// a renewed one. A create refused with an ended session was not processed, so the one
// retry cannot create twice.
func call[T any](ctx context.Context, r *renewing, f func(connectors.Client) (T, error)) (T, error) {
	c, tok := r.client()
	v, err := f(c)
	if connectors.KindOf(err) != connectors.KindSessionExpired {
		return v, err
	}
	c, rerr := r.again(ctx, tok)
	if rerr != nil {
		return v, rerr
	}
	v, err = f(c)
	if connectors.KindOf(err) == connectors.KindSessionExpired {
		// The renewed token was refused too: the grant itself is no longer good.
		err = sessionRefused(err)
	}
	return v, err
}

// sessionRefused turns a second ended session into the vendor's rejection of the
// credential (KindAuth), which stalls the Connection.
func sessionRefused(err error) error {
	var ve *connectors.Error
	if errors.As(err, &ve) {
		cp := *ve
		cp.Kind = connectors.KindAuth
		cp.Reason = "the vendor refused a renewed session too: " + cp.Reason
		return &cp
	}
	return err
}

var (
	_ connectors.Client        = (*renewing)(nil)
	_ connectors.FilterReader  = (*renewing)(nil)
	_ connectors.UsageReporter = (*renewing)(nil)
	_ connectors.DeletionLog   = (*renewing)(nil)
)

// DeletedBetween is the current client's, renewed like every call; a client without a
// deletion log answers errors.ErrUnsupported.
func (r *renewing) DeletedBetween(ctx context.Context, c connectors.Container, start, end time.Time) ([]connectors.Item, time.Time, bool, error) {
	type answer struct {
		items    []connectors.Item
		covered  time.Time
		complete bool
	}
	a, err := call(ctx, r, func(vc connectors.Client) (answer, error) {
		dl, ok := vc.(connectors.DeletionLog)
		if !ok {
			return answer{}, errors.ErrUnsupported
		}
		items, covered, complete, err := dl.DeletedBetween(ctx, c, start, end)
		return answer{items, covered, complete}, err
	})
	return a.items, a.covered, a.complete, err
}

// Usage is the current client's, when it reports one.
func (r *renewing) Usage() (connectors.Usage, bool) {
	c, _ := r.client()
	if u, ok := c.(connectors.UsageReporter); ok {
		return u.Usage()
	}
	return connectors.Usage{}, false
}

func (r *renewing) Identity(ctx context.Context) (connectors.Identity, error) {
	return call(ctx, r, func(c connectors.Client) (connectors.Identity, error) { return c.Identity(ctx) })
}

func (r *renewing) Containers(ctx context.Context, cursor string, limit int) (connectors.Page[connectors.Container], error) {
	return call(ctx, r, func(c connectors.Client) (connectors.Page[connectors.Container], error) {
		return c.Containers(ctx, cursor, limit)
	})
}

func (r *renewing) Items(ctx context.Context, q connectors.ItemQuery) (connectors.Page[connectors.Item], error) {
	return call(ctx, r, func(c connectors.Client) (connectors.Page[connectors.Item], error) { return c.Items(ctx, q) })
}

func (r *renewing) Item(ctx context.Context, id string) (connectors.Item, error) {
	return call(ctx, r, func(c connectors.Client) (connectors.Item, error) { return c.Item(ctx, id) })
}

func (r *renewing) ItemMatching(ctx context.Context, id, filter string) (connectors.Item, error) {
	return call(ctx, r, func(c connectors.Client) (connectors.Item, error) { return connectors.ItemInFilter(ctx, c, id, filter) })
}

func (r *renewing) Comments(ctx context.Context, itemID, cursor string, limit int) (connectors.Page[connectors.Comment], error) {
	return call(ctx, r, func(c connectors.Client) (connectors.Page[connectors.Comment], error) {
		return c.Comments(ctx, itemID, cursor, limit)
	})
}

func (r *renewing) Search(ctx context.Context, q connectors.SearchQuery) (connectors.Page[connectors.Item], error) {
	return call(ctx, r, func(c connectors.Client) (connectors.Page[connectors.Item], error) { return c.Search(ctx, q) })
}

func (r *renewing) Create(ctx context.Context, item connectors.NewItem) (connectors.Item, error) {
	return call(ctx, r, func(c connectors.Client) (connectors.Item, error) { return c.Create(ctx, item) })
}

func (r *renewing) Changes(ctx context.Context, q connectors.ChangeQuery) (connectors.Page[connectors.Item], error) {
	return call(ctx, r, func(c connectors.Client) (connectors.Page[connectors.Item], error) { return c.Changes(ctx, q) })
}

func (r *renewing) LiveIDs(ctx context.Context, container connectors.Container, cursor string) (connectors.Page[string], error) {
	return call(ctx, r, func(c connectors.Client) (connectors.Page[string], error) { return c.LiveIDs(ctx, container, cursor) })
}
