// Package vendorhttp is the one HTTP client under every vendor call: a per-Connection
// token bucket (spec.rateLimit) that also adapts to the vendor's own signals, Retry-After
// honoured for every caller of the Connection, bounded retries with jittered exponential
// backoff for idempotent calls only, the egress guard, and Prometheus metrics.
//
// Atlassian's advice (vendor-specs/README.md): honour Retry-After, otherwise back off
// exponentially with jitter and a cap, never retry a non-idempotent call blindly, and slow
// down when X-RateLimit-NearLimit says fewer than 20% of the budget is left.
package vendorhttp

import (
	"context"
	"errors"
	"github.com/unified-connectors/connector-operator/internal/wait"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/internal/egress"
)

// Defaults for Options fields left zero.
const (
	DefaultMaxRetries  = 4
	DefaultBaseBackoff = 500 * time.Millisecond
	DefaultMaxBackoff  = 30 * time.Second
	// recoverEvery successes without a near-limit warning raise the adapted rate one step.
	recoverEvery = 10
)

// Options configure a Client.
type Options struct {
	// ConnectorType labels the metrics ("jira", "confluence").
	ConnectorType string
	// RequestsPerSecond and Burst are the Connection's spec.rateLimit.
	RequestsPerSecond float64
	Burst             int
	// Egress guards every destination; its AllowInsecure is --allow-insecure-vendor-urls.
	Egress egress.Policy
	// MaxRetries bounds the retries of one idempotent call; 0 means DefaultMaxRetries,
	// negative means none.
	MaxRetries int
	// BaseBackoff and MaxBackoff shape the exponential backoff when the vendor gives no
	// Retry-After.
	BaseBackoff, MaxBackoff time.Duration
	// Next sends the requests; nil means an egress-guarded *http.Client. Tests substitute it.
	Next connectors.Doer
}

// Client is safe for concurrent use; keep one per Connection (see Pool) so that its rate
// and the vendor's Retry-After apply to every caller of the Connection.
type Client struct {
	opts    Options
	next    connectors.Doer
	limiter *rate.Limiter

	// now is the clock of lastUsed (the Pool's); nil means time.Now.
	now func() time.Time
	// lastUsed is when the Client was last handed out or sent a request (Unix nanos).
	lastUsed atomic.Int64

	mu        sync.Mutex
	holdUntil time.Time // no request before this instant (the vendor's Retry-After)
	adapted   float64   // current rate, ≤ opts.RequestsPerSecond
	successes int       // consecutive successes without a near-limit warning
}

// New returns a Client for opts.
func New(opts Options) *Client {
	if opts.MaxRetries == 0 {
		opts.MaxRetries = DefaultMaxRetries
	}
	if opts.BaseBackoff == 0 {
		opts.BaseBackoff = DefaultBaseBackoff
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	if opts.RequestsPerSecond <= 0 {
		opts.RequestsPerSecond = 10
	}
	if opts.Burst <= 0 {
		opts.Burst = 20
	}
	next := opts.Next
	if next == nil {
		// No client-wide timeout: every call carries its own deadline in its context.
		next = opts.Egress.Client(0)
	}
	return &Client{
		opts:    opts,
		next:    next,
		limiter: rate.NewLimiter(rate.Limit(opts.RequestsPerSecond), opts.Burst),
		adapted: opts.RequestsPerSecond,
	}
}

// SetLimit applies a changed spec.rateLimit without losing the Retry-After hold.
func (c *Client) SetLimit(requestsPerSecond float64, burst int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if requestsPerSecond == c.opts.RequestsPerSecond && burst == c.opts.Burst {
		return
	}
	c.opts.RequestsPerSecond, c.opts.Burst = requestsPerSecond, burst
	c.adapted = requestsPerSecond
	c.limiter.SetLimit(rate.Limit(requestsPerSecond))
	c.limiter.SetBurst(burst)
}

func idempotent(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete:
		return true
	}
	// Jira's POST /rest/api/3/search/jql is a read: connectors mark such calls.
	return connectors.IsIdempotent(req.Context())
}

// Do sends req, waiting for the rate limit and any Retry-After, and retries an idempotent
// call on 429, 502, 503, 504 and transport errors. The last answer (or error) is returned
// as is, for the connector to map to a *connectors.Error.
func (c *Client) Do(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	retries := c.opts.MaxRetries
	if !idempotent(req) || retries < 0 {
		retries = 0
	}
	c.touch(c.clock())
	for attempt := 0; ; attempt++ {
		if err := c.wait(ctx); err != nil {
			return nil, err
		}
		try, err := rewind(req, attempt)
		if err != nil {
			return nil, err
		}
		start := time.Now()
		resp, err := c.next.Do(try)
		observe(c.opts.ConnectorType, resp, err, time.Since(start))

		pause, retryable := c.learn(resp, err)
		if !retryable || attempt >= retries || errors.Is(err, context.Canceled) {
			return resp, err
		}
		if pause == 0 {
			pause = backoff(c.opts.BaseBackoff, c.opts.MaxBackoff, attempt)
		}
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < pause {
			return resp, err // the retry could not finish in time: answer now
		}
		if resp != nil {
			drain(resp)
		}
		retriesTotal.WithLabelValues(c.opts.ConnectorType, retryReason(resp, err)).Inc()
		if err := wait.Sleep(ctx, pause); err != nil {
			return nil, err
		}
	}
}

func (c *Client) clock() time.Time {
	if c.now != nil {
		return c.now()
	}
	return time.Now()
}

func (c *Client) touch(now time.Time) { c.lastUsed.Store(now.UnixNano()) }

// idleSince is how long the Client has gone unused at now; 0 while a vendor hold runs
// (forgetting it would let the next caller ignore the vendor's Retry-After).
func (c *Client) idleSince(now time.Time) time.Duration {
	c.mu.Lock()
	held := c.holdUntil.After(now)
	c.mu.Unlock()
	if held {
		return 0
	}
	return now.Sub(time.Unix(0, c.lastUsed.Load()))
}

// wait blocks until the vendor's hold is over and the token bucket grants a request.
func (c *Client) wait(ctx context.Context) error {
	c.mu.Lock()
	hold := time.Until(c.holdUntil)
	c.mu.Unlock()
	if hold > 0 {
		if err := wait.Sleep(ctx, hold); err != nil {
			return err
		}
	}
	return c.limiter.Wait(ctx)
}

// learn updates the hold and the adapted rate from an answer and says whether the call
// may be retried, with the vendor's requested pause when it gave one.
func (c *Client) learn(resp *http.Response, err error) (pause time.Duration, retryable bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		// The guard's refusal is final; so is a cancelled or expired context.
		return 0, !egress.IsDenied(err) && !errors.Is(err, context.DeadlineExceeded)
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		pause = connectors.ParseRetryAfter(resp.Header, time.Now())
		if pause > 0 {
			// Every caller of this Connection waits, not just this one.
			if until := time.Now().Add(pause); until.After(c.holdUntil) {
				c.holdUntil = until
			}
		}
		if resp.StatusCode == http.StatusTooManyRequests {
			c.slowDown()
		}
		return pause, true
	case http.StatusBadGateway, http.StatusGatewayTimeout:
		return 0, true
	}
	if resp.Header.Get("X-RateLimit-NearLimit") == "true" {
		c.slowDown()
	} else if c.successes++; c.successes >= recoverEvery && c.adapted < c.opts.RequestsPerSecond {
		c.successes = 0
		c.adapted = min(c.opts.RequestsPerSecond, c.adapted+max(0.5, c.opts.RequestsPerSecond/10))
		c.limiter.SetLimit(rate.Limit(c.adapted))
		if c.adapted == c.opts.RequestsPerSecond {
			c.limiter.SetBurst(c.opts.Burst)
		}
	}
	return 0, false
}

// slowDown halves the rate and drops the burst: the vendor says we are at its limit.
// Must be called with c.mu held.
func (c *Client) slowDown() {
	c.successes = 0
	c.adapted = max(0.5, c.adapted/2)
	c.limiter.SetLimit(rate.Limit(c.adapted))
	c.limiter.SetBurst(1)
	// The bucket may still hold a token from the old burst: space the next request one
	// interval at the new rate, as the vendor's budget is nearly spent.
	if next := time.Now().Add(time.Duration(float64(time.Second) / c.adapted)); next.After(c.holdUntil) {
		c.holdUntil = next
	}
}

// rewind returns req for attempt n, with a fresh body for a retry.
func rewind(req *http.Request, attempt int) (*http.Request, error) {
	if attempt == 0 || req.Body == nil || req.Body == http.NoBody {
		return req, nil
	}
	if req.GetBody == nil {
		return nil, errors.New("vendorhttp: cannot retry a request whose body cannot be replayed")
	}
	body, err := req.GetBody()
	if err != nil {
		return nil, err
	}
	r := req.Clone(req.Context())
	r.Body = body
	return r, nil
}

// backoff is full-jitter exponential backoff: uniform in [0, min(max, base·2^attempt)].
func backoff(base, maxB time.Duration, attempt int) time.Duration {
	d := base << min(attempt, 20)
	if d <= 0 || d > maxB {
		d = maxB
	}
	return time.Duration(rand.Int64N(int64(d)) + 1)
}

// drain lets the connection be reused before a retry.
func drain(resp *http.Response) {
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	_ = resp.Body.Close()
}

func retryReason(resp *http.Response, err error) string {
	if err != nil {
		return "error"
	}
	return strconv.Itoa(resp.StatusCode)
}
