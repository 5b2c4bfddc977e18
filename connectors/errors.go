package connectors

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// ErrorKind classifies a vendor failure so that reconcilers and the HTTP API can map it
// to a condition reason or an error code without looking at status codes.
type ErrorKind string

const (
	// KindAuth: the vendor rejected the credential (401, or 403 on the identity call).
	KindAuth ErrorKind = "Auth"
	// KindRateLimited: the vendor answered 429; RetryAfter says when to come back.
	KindRateLimited ErrorKind = "RateLimited"
	// KindUnavailable: 5xx, a timeout, a reset connection or an unreadable answer.
	KindUnavailable ErrorKind = "Unavailable"
	// KindNotFound: the vendor answered 404.
	KindNotFound ErrorKind = "NotFound"
	// KindInvalid: the vendor refused the request itself (400, 403, 409, 422, ...).
	KindInvalid ErrorKind = "Invalid"
	// KindEgressDenied: the egress guard refused the destination.
	KindEgressDenied ErrorKind = "EgressDenied"
	// KindSessionExpired: the vendor no longer accepts an access token that carries no
	// expiry (Salesforce INVALID_SESSION_ID). The operator refreshes the token once and
	// retries the call once; a second one is KindAuth.
	KindSessionExpired ErrorKind = "SessionExpired"
	// KindUnsupported: the vendor cannot serve this call (a route outside its
	// Capabilities); the HTTP API answers 501 NOT_SUPPORTED.
	KindUnsupported ErrorKind = "Unsupported"
	// KindStreamLost: the source no longer holds the change history a stream position
	// points into (a replication slot whose WAL was removed). Only a resync, which starts
	// over from a new snapshot, can continue.
	KindStreamLost ErrorKind = "StreamLost"
)

// Error is a vendor call failure. Its message names the vendor, the method and the URL
// path (never the query string, a header or a body) so it is safe to log and to show.
type Error struct {
	Kind ErrorKind
	// Vendor is the connector type, e.g. "jira".
	Vendor string
	// Op is "METHOD /path" of the failed call.
	Op string
	// Status is the HTTP status, 0 when no answer arrived.
	Status int
	// RetryAfter is the vendor's requested pause, 0 when it gave none.
	RetryAfter time.Duration
	// Reason is a short human explanation.
	Reason string
	// Err is the underlying transport error, if any. It must not carry secrets.
	Err error
}

func (e *Error) Error() string {
	msg := e.Vendor + " " + e.Op + ": "
	if e.Status != 0 {
		msg += strconv.Itoa(e.Status) + " " + http.StatusText(e.Status) + ": "
	}
	msg += e.Reason
	if e.RetryAfter > 0 {
		msg += fmt.Sprintf(" (retry after %s)", e.RetryAfter)
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the kind of a vendor error, or "" when err is not one.
func KindOf(err error) ErrorKind {
	var ve *Error
	if errors.As(err, &ve) {
		return ve.Kind
	}
	return ""
}

// RetryAfterOf returns the vendor's requested pause carried by err, or 0.
func RetryAfterOf(err error) time.Duration {
	var ve *Error
	if errors.As(err, &ve) {
		return ve.RetryAfter
	}
	return 0
}

// KindForStatus maps an HTTP status to an ErrorKind.
func KindForStatus(status int) ErrorKind {
	switch {
	case status == http.StatusUnauthorized:
		return KindAuth
	case status == http.StatusTooManyRequests:
		return KindRateLimited
	case status == http.StatusNotFound:
		return KindNotFound
	case status >= 500:
		return KindUnavailable
	default:
		return KindInvalid
	}
}

// ParseRetryAfter reads Retry-After (seconds or an HTTP date) and, failing that,
// X-RateLimit-Reset (an RFC 3339 or epoch-seconds instant). It returns 0 when neither
// header gives a future pause.
func ParseRetryAfter(h http.Header, now time.Time) time.Duration {
	if v := h.Get("Retry-After"); v != "" {
		if secs, err := strconv.Atoi(v); err == nil && secs > 0 {
			return time.Duration(secs) * time.Second
		}
		if t, err := http.ParseTime(v); err == nil && t.After(now) {
			return t.Sub(now)
		}
	}
	if v := h.Get("X-RateLimit-Reset"); v != "" {
		if t, err := time.Parse(time.RFC3339, v); err == nil && t.After(now) {
			return t.Sub(now)
		}
		if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
			if t := time.Unix(secs, 0); t.After(now) {
				return t.Sub(now)
			}
		}
	}
	return 0
}
