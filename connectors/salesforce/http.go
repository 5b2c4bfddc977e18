package salesforce

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/internal/egress"
)

// DefaultTimeout bounds a call whose context has no deadline: a batch of 2,000 records
// can take a while to serve, but every vendor call must end.
const DefaultTimeout = 30 * time.Second

// maxBodyBytes caps how much of an answer is read.
const maxBodyBytes = 64 << 20

// maxErrorBodyBytes caps how much of an error answer is read for its errorCode.
const maxErrorBodyBytes = 64 << 10

const userAgent = "connector-operator"

var defaultHTTP connectors.Doer = &http.Client{Timeout: DefaultTimeout}

// Near the org's daily API allowance (Sforce-Limit-Info: api-usage=N/M) the client spaces
// its calls out, leaving what remains to the org's other integrations and people: from
// 90% used, at least ThrottleAt90 between the starts of two calls, from 95% ThrottleAt95,
// from 98% ThrottleAt98. Over the allowance Salesforce answers 403 REQUEST_LIMIT_EXCEEDED:
// the allowance is a rolling 24-hour count whose calls free up as those of a day ago age
// out, which the API does not announce, so the client then makes no call for LimitHold
// (or the Retry-After sent, if longer) and answers KindRateLimited with the time left.
const (
	ThrottleAt90 = time.Second
	ThrottleAt95 = 5 * time.Second
	ThrottleAt98 = 20 * time.Second
	LimitHold    = 10 * time.Minute
)

// Salesforce error codes the client acts on.
const (
	codeInvalidSession = "INVALID_SESSION_ID"
	codeRequestLimit   = "REQUEST_LIMIT_EXCEEDED"
	codeUnableToLock   = "UNABLE_TO_LOCK_ROW"
	codeInvalidLocator = "INVALID_QUERY_LOCATOR"
	codeReplDate       = "INVALID_REPLICATION_DATE"
	codeBadOAuthToken  = "Bad_OAuth_Token"
)

// codePattern is what an errorCode may look like to be shown; anything else is not.
var codePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,63}$`)

// VendorCode is the Err of a *connectors.Error that Salesforce answered with an error
// body: its errorCode (for example INVALID_FIELD), never its message.
type VendorCode string

func (v VendorCode) Error() string { return string(v) }

// ErrorCode returns the Salesforce errorCode carried by err, or "".
func ErrorCode(err error) string {
	var v VendorCode
	if errors.As(err, &v) {
		return string(v)
	}
	return ""
}

// call is one request.
type call struct {
	method string
	// path is the absolute path at the instance (/services/…); it reaches errors.
	path string
	// opPath, when set, names the call in errors instead of path (a locator).
	opPath string
	// query is sent as the query string and never reaches an error.
	query url.Values
	// body, when not nil, is sent as JSON.
	body any
	// identity marks the UserInfo call, whose refusals mean the session is dead.
	identity bool
}

func (r call) op() string {
	p := r.path
	if r.opPath != "" {
		p = r.opPath
	}
	return r.method + " " + p
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// APIUsage is the org's API usage from the last Sforce-Limit-Info header: requests used
// in the last 24 hours, the daily allowance, and when it was read (zero before any
// answer carried one).
func (c *Client) APIUsage() (used, limit int64, at time.Time) {
	u := c.currentUsage()
	return u.used, u.max, u.at
}

// Usage reports the API usage for the operator's status (connectors.UsageReporter).
func (c *Client) Usage() (connectors.Usage, bool) {
	used, limit, at := c.APIUsage()
	if at.IsZero() || limit <= 0 {
		return connectors.Usage{}, false
	}
	pause, held := c.Throttle()
	return connectors.Usage{Used: used, Limit: limit, Slowed: pause > 0 || held > 0}, true
}

// Throttle is the pause the client keeps between two calls at the current API usage
// (0 below 90% of the allowance), and, while REQUEST_LIMIT_EXCEEDED holds it, how long
// until it calls again.
func (c *Client) Throttle() (pause, held time.Duration) {
	if d := c.heldUntil().Sub(c.now()); d > 0 {
		held = d
	}
	return pauseFor(c.currentUsage()), held
}

// orgHolds keeps each org's REQUEST_LIMIT_EXCEEDED hold beyond the Client that saw it:
// the operator builds a Client for every probe, sync run and API call of a Connection,
// and the daily allowance is the org's, shared by every Connection to it. A hold kept
// in one Client only would let the next probe or run call the org again at once. Keyed
// by the instance URL; an entry goes once its hold has passed, so the map stays as small
// as the number of orgs held right now.
var orgHolds = struct {
	sync.Mutex
	until map[string]time.Time
}{until: map[string]time.Time{}}

// orgKey names the org in orgHolds: its instance URL (a Client built without one, in
// this package's tests, holds alone).
func (c *Client) orgKey() string {
	if c.instance == nil {
		return fmt.Sprintf("%p", c)
	}
	return c.instance.String()
}

// heldUntil is when the org's limit hold ends (zero when none).
func (c *Client) heldUntil() time.Time {
	key := c.orgKey()
	orgHolds.Lock()
	defer orgHolds.Unlock()
	until := orgHolds.until[key]
	if !until.IsZero() && !until.After(c.now()) {
		delete(orgHolds.until, key)
		return time.Time{}
	}
	return until
}

// holdOrg holds every Client of the org until t (never shortening a hold).
func (c *Client) holdOrg(t time.Time) {
	key := c.orgKey()
	orgHolds.Lock()
	defer orgHolds.Unlock()
	if t.After(orgHolds.until[key]) {
		orgHolds.until[key] = t
	}
}

// orgUsage keeps each org's last API usage beyond the Client that read it, for the same
// reason as orgHolds: a new Client (every probe, run and API call) would otherwise start
// at full speed, and status would never see the usage. Keyed like orgHolds; one entry
// per org the process has talked to.
var orgUsage = struct {
	sync.Mutex
	last map[string]usage
}{last: map[string]usage{}}

// orgUsageFresh is how long an org's usage figure stands without a newer answer.
const orgUsageFresh = time.Hour

// currentUsage is the newest usage figure of this Client or its org. The caller must not
// hold c.mu.
func (c *Client) currentUsage() usage {
	c.mu.Lock()
	own := c.usage
	c.mu.Unlock()
	orgUsage.Lock()
	org := orgUsage.last[c.orgKey()]
	orgUsage.Unlock()
	if org.at.After(own.at) && c.now().Sub(org.at) < orgUsageFresh {
		return org
	}
	return own
}

// pauseFor is the spacing between calls at u.
func pauseFor(u usage) time.Duration {
	if u.max <= 0 {
		return 0
	}
	switch pct := float64(u.used) / float64(u.max); {
	case pct >= 0.98:
		return ThrottleAt98
	case pct >= 0.95:
		return ThrottleAt95
	case pct >= 0.90:
		return ThrottleAt90
	}
	return 0
}

// admit waits for the call's turn: it refuses while the limit hold lasts, and spaces
// calls out near the allowance.
func (c *Client) admit(ctx context.Context, op string) error {
	u := c.currentUsage()
	c.mu.Lock()
	now := c.now()
	if left := c.heldUntil().Sub(now); left > 0 {
		c.mu.Unlock()
		return &connectors.Error{Kind: connectors.KindRateLimited, Vendor: Type, Op: op, RetryAfter: left.Round(time.Second),
			Reason: "the org's daily API request limit is spent (REQUEST_LIMIT_EXCEEDED); holding calls"}
	}
	pause := pauseFor(u)
	start := now
	if pause > 0 && c.nextCall.After(now) {
		start = c.nextCall
	}
	if deadline, ok := ctx.Deadline(); ok && start.After(deadline) {
		// The caller (a search with a short deadline) cannot wait its turn: say when to
		// come back rather than wait in vain.
		c.mu.Unlock()
		return &connectors.Error{Kind: connectors.KindRateLimited, Vendor: Type, Op: op, RetryAfter: start.Sub(now).Round(time.Second) + time.Second,
			Reason: "the org is near its daily API request limit; calls are spaced out"}
	}
	c.nextCall = start.Add(pause)
	c.mu.Unlock()
	if d := start.Sub(now); d > 0 {
		if err := c.sleep(ctx, d); err != nil {
			return &connectors.Error{Kind: connectors.KindUnavailable, Vendor: Type, Op: op,
				Reason: "gave up waiting for a call slot near the daily API limit", Err: err}
		}
	}
	return nil
}

// noteLimits reads Sforce-Limit-Info: api-usage=N/M.
func (c *Client) noteLimits(h http.Header) {
	v := h.Get("Sforce-Limit-Info")
	if v == "" {
		return
	}
	for _, part := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || !strings.EqualFold(k, "api-usage") {
			continue
		}
		n, m, ok := strings.Cut(val, "/")
		used, err1 := strconv.ParseInt(strings.TrimSpace(n), 10, 64)
		limit, err2 := strconv.ParseInt(strings.TrimSpace(m), 10, 64)
		if !ok || err1 != nil || err2 != nil || used < 0 || limit <= 0 {
			return
		}
		u := usage{used: used, max: limit, at: c.now()}
		c.mu.Lock()
		c.usage = u
		c.mu.Unlock()
		orgUsage.Lock()
		orgUsage.last[c.orgKey()] = u
		orgUsage.Unlock()
		return
	}
}

// do sends r to the instance and decodes a 2xx JSON answer into out (unless nil). Any
// failure is a *connectors.Error naming r's method and path (see errorFor).
func (c *Client) do(ctx context.Context, r call, out any) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	op := r.op()
	if err := c.admit(ctx, op); err != nil {
		return err
	}
	u := *c.instance
	u.Path = r.path
	u.RawQuery = r.query.Encode()
	var body io.Reader
	if r.body != nil {
		b, err := json.Marshal(r.body)
		if err != nil {
			return &connectors.Error{Kind: connectors.KindInvalid, Vendor: Type, Op: op, Reason: "cannot encode request body", Err: err}
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u.String(), body)
	if err != nil {
		return &connectors.Error{Kind: connectors.KindInvalid, Vendor: Type, Op: op, Reason: "cannot build request"}
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Authorization", c.authz)
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return transportError(ctx, op, &u, err)
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
	}()
	c.noteLimits(resp.Header)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return c.errorFor(op, r, resp)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxBodyBytes)).Decode(out); err != nil {
		if ctx.Err() != nil {
			return transportError(ctx, op, &u, err)
		}
		// json errors name types and offsets, never a value.
		return &connectors.Error{Kind: connectors.KindUnavailable, Vendor: Type, Op: op, Status: resp.StatusCode,
			Reason: "malformed JSON answer: " + err.Error()}
	}
	return nil
}

// errorFor maps a non-2xx answer. Salesforce answers [{message, errorCode}]; the
// message often quotes the query (MALFORMED_QUERY, INVALID_FIELD) or a record's values,
// so only the errorCode is read, and only when it looks like one:
//
//	401 INVALID_SESSION_ID                 KindSessionExpired (refresh once, retry once)
//	401 otherwise                          KindAuth
//	403 REQUEST_LIMIT_EXCEEDED             KindRateLimited, RetryAfter ≥ LimitHold, calls held
//	403 on UserInfo (Bad_OAuth_Token)      KindSessionExpired; other 403 there KindAuth
//	403 otherwise                          KindInvalid (permission denied)
//	404                                    KindNotFound
//	429                                    KindRateLimited
//	5xx (SERVER_UNAVAILABLE …)             KindUnavailable
//	400 UNABLE_TO_LOCK_ROW                 KindUnavailable (another transaction holds the row)
//	other 4xx (MALFORMED_QUERY, INVALID_FIELD, INVALID_TYPE, …)  KindInvalid
func (c *Client) errorFor(op string, r call, resp *http.Response) error {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBodyBytes))
	code := errorCodeOf(raw)
	now := c.now()
	e := &connectors.Error{Vendor: Type, Op: op, Status: resp.StatusCode, RetryAfter: connectors.ParseRetryAfter(resp.Header, now)}
	status := resp.StatusCode
	switch {
	case status == http.StatusUnauthorized && code == codeInvalidSession:
		e.Kind, e.Reason = connectors.KindSessionExpired, "session expired or invalid"
	case status == http.StatusUnauthorized:
		e.Kind, e.Reason = connectors.KindAuth, "credentials rejected"
	case status == http.StatusForbidden && code == codeRequestLimit:
		e.Kind, e.Reason = connectors.KindRateLimited, "the org's daily API request limit is spent"
		e.RetryAfter = max(e.RetryAfter, LimitHold)
		c.holdOrg(now.Add(e.RetryAfter))
	case status == http.StatusForbidden && r.identity && (code == codeBadOAuthToken || code == codeInvalidSession):
		e.Kind, e.Reason = connectors.KindSessionExpired, "session expired or invalid"
	case status == http.StatusForbidden && r.identity:
		e.Kind, e.Reason = connectors.KindAuth, "credentials not allowed to use the API"
	case status == http.StatusForbidden:
		e.Kind, e.Reason = connectors.KindInvalid, "permission denied"
	case status == http.StatusNotFound:
		e.Kind, e.Reason = connectors.KindNotFound, "not found"
	case status == http.StatusTooManyRequests:
		e.Kind, e.Reason = connectors.KindRateLimited, "rate limited"
	case status >= 500:
		e.Kind, e.Reason = connectors.KindUnavailable, "vendor unavailable"
	case code == codeUnableToLock:
		e.Kind, e.Reason = connectors.KindUnavailable, "the record is locked by another transaction"
	case status >= 300 && status < 400:
		e.Kind, e.Reason = connectors.KindInvalid, "unexpected redirect"
	default:
		e.Kind, e.Reason = connectors.KindInvalid, "request refused"
	}
	if code != "" {
		e.Reason += " (" + code + ")"
		e.Err = VendorCode(code)
	}
	return e
}

// errorCodeOf is the first errorCode of a REST error array, the error of an OAuth error
// object, or a bare word such as Bad_OAuth_Token; "" when none looks like a code.
func errorCodeOf(raw []byte) string {
	var list []struct {
		ErrorCode string `json:"errorCode"`
	}
	if json.Unmarshal(raw, &list) == nil && len(list) > 0 && codePattern.MatchString(list[0].ErrorCode) {
		return list[0].ErrorCode
	}
	var obj struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(raw, &obj) == nil && codePattern.MatchString(obj.Error) {
		return obj.Error
	}
	if s := strings.TrimSpace(string(raw)); codePattern.MatchString(s) {
		return s
	}
	return ""
}

// transportError reports a call that got no (complete) answer, naming the path only.
func transportError(ctx context.Context, op string, u *url.URL, err error) error {
	reason := "request failed"
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded), isTimeout(err):
		reason = "timed out"
	case errors.Is(ctx.Err(), context.Canceled):
		reason = "cancelled"
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = &url.Error{Op: ue.Op, URL: u.EscapedPath(), Err: ue.Err}
	}
	if egress.IsDenied(err) {
		var denied *egress.DeniedError
		errors.As(err, &denied)
		return &connectors.Error{Kind: connectors.KindEgressDenied, Vendor: Type, Op: op, Reason: denied.Error(), Err: err}
	}
	cause := err
	if errors.As(err, &ue) {
		cause = ue.Err
	}
	msg := strings.ReplaceAll(cause.Error(), u.String(), u.EscapedPath())
	if u.RawQuery != "" {
		msg = strings.ReplaceAll(msg, u.RawQuery, "…")
	}
	return &connectors.Error{Kind: connectors.KindUnavailable, Vendor: Type, Op: op, Reason: reason + ": " + msg, Err: err}
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// badAnswer reports a 2xx answer the connector cannot use.
func (c *Client) badAnswer(op, why string) error {
	return &connectors.Error{Kind: connectors.KindUnavailable, Vendor: Type, Op: op, Status: http.StatusOK, Reason: "unexpected answer: " + why}
}

// invalid reports a request refused before it was sent.
func invalid(op, why string) error {
	return &connectors.Error{Kind: connectors.KindInvalid, Vendor: Type, Op: op, Reason: why}
}

func unsupported(op, why string) error {
	return &connectors.Error{Kind: connectors.KindUnsupported, Vendor: Type, Op: op, Reason: why}
}

func notFound(op, why string) error {
	return &connectors.Error{Kind: connectors.KindNotFound, Vendor: Type, Op: op, Status: http.StatusOK, Reason: why}
}
