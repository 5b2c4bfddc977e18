package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"golang.org/x/sync/singleflight"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/util/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
)

// Resources and subresources the API authorizes against, in group connectors.unified.dev.
const (
	resourceConnectors  = "connectors"
	resourceConnections = "connections"
	subresourceData     = "data"
	subresourceCreds    = "credentials"
)

// maxTokenBytes bounds a bearer token; service account and OIDC tokens are a few KiB.
const maxTokenBytes = 16 << 10

// caller is an authenticated user as TokenReview reported it.
type caller struct {
	Username string
	UID      string
	Groups   []string
	Extra    map[string]authzv1.ExtraValue
	// key identifies the user (name, uid, groups, extra) in the decision cache.
	key string
}

// reviewer authenticates bearer tokens with TokenReview and authorizes callers with
// SubjectAccessReview, caching both briefly in bounded LRU caches. Cache keys are
// SHA-256 digests: neither cache holds a token.
type reviewer struct {
	client    client.Client
	audiences []string
	allowTTL  time.Duration
	denyTTL   time.Duration

	tokens    *cache.LRUExpireCache // token digest → *caller (nil: not authenticated)
	decisions *cache.LRUExpireCache // caller key + attributes digest → bool
	flight    singleflight.Group    // collapses identical reviews in flight
}

func newReviewer(c client.Client, o Options) *reviewer {
	return &reviewer{
		client:    c,
		audiences: o.Audiences,
		allowTTL:  o.AuthCacheTTL,
		denyTTL:   o.AuthDenyCacheTTL,
		tokens:    cache.NewLRUExpireCache(o.AuthCacheSize),
		decisions: cache.NewLRUExpireCache(o.AuthCacheSize),
	}
}

func digest(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// bearerToken extracts the token of an Authorization: Bearer header.
func bearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" || len(token) > maxTokenBytes {
		return "", false
	}
	return token, true
}

// authenticate returns the user the token belongs to, nil when the API server does not
// accept it, or an error when it could not be asked.
func (rv *reviewer) authenticate(ctx context.Context, token string) (*caller, error) {
	key := "t" + digest(token)
	if v, ok := rv.tokens.Get(key); ok {
		return v.(*caller), nil
	}
	v, err, _ := rv.flight.Do(key, func() (any, error) {
		tr := &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: token, Audiences: rv.audiences}}
		if err := rv.client.Create(quiet(ctx), tr); err != nil {
			// The error names the API call, never the token (it travels in the body).
			return nil, fmt.Errorf("TokenReview: %w", err)
		}
		if !tr.Status.Authenticated || tr.Status.Error != "" || !audienceOK(rv.audiences, tr.Status.Audiences) {
			rv.tokens.Add(key, (*caller)(nil), rv.denyTTL)
			return (*caller)(nil), nil
		}
		u := tr.Status.User
		c := &caller{Username: u.Username, UID: u.UID, Groups: slices.Clone(u.Groups)}
		if len(u.Extra) > 0 {
			c.Extra = make(map[string]authzv1.ExtraValue, len(u.Extra))
			for k, v := range u.Extra {
				c.Extra[k] = authzv1.ExtraValue(v)
			}
		}
		c.key = callerKey(c)
		rv.tokens.Add(key, c, rv.allowTTL)
		return c, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*caller), nil
}

// audienceOK checks that the token was issued for one of the wanted audiences, when
// the API is configured with any.
func audienceOK(want, got []string) bool {
	if len(want) == 0 {
		return true
	}
	for _, a := range got {
		if slices.Contains(want, a) {
			return true
		}
	}
	return false
}

func callerKey(c *caller) string {
	groups := slices.Clone(c.Groups)
	sort.Strings(groups)
	parts := []string{c.Username, c.UID, strings.Join(groups, "\x01")}
	keys := make([]string, 0, len(c.Extra))
	for k := range c.Extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		parts = append(parts, k+"="+strings.Join(c.Extra[k], "\x01"))
	}
	return digest(parts...)
}

// access is the resource attributes of one decision.
type access struct {
	verb        string
	resource    string
	subresource string
	namespace   string // "" for cluster-scoped resources and cluster-wide checks
	name        string // "" for every object
}

// allowed asks (or remembers) whether c may perform a.
func (rv *reviewer) allowed(ctx context.Context, c *caller, a access) (bool, error) {
	key := digest(c.key, a.verb, a.resource, a.subresource, a.namespace, a.name)
	if v, ok := rv.decisions.Get(key); ok {
		return v.(bool), nil
	}
	v, err, _ := rv.flight.Do("d"+key, func() (any, error) {
		sar := &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
			User:   c.Username,
			UID:    c.UID,
			Groups: c.Groups,
			Extra:  c.Extra,
			ResourceAttributes: &authzv1.ResourceAttributes{
				Group:       v1alpha1.GroupVersion.Group,
				Version:     v1alpha1.GroupVersion.Version,
				Resource:    a.resource,
				Subresource: a.subresource,
				Verb:        a.verb,
				Namespace:   a.namespace,
				Name:        a.name,
			},
		}}
		if err := rv.client.Create(ctx, sar); err != nil {
			return false, fmt.Errorf("SubjectAccessReview: %w", err)
		}
		ok := sar.Status.Allowed && !sar.Status.Denied
		ttl := rv.denyTTL
		if ok {
			ttl = rv.allowTTL
		}
		rv.decisions.Add(key, ok, ttl)
		return ok, nil
	})
	if err != nil {
		return false, err
	}
	return v.(bool), nil
}
