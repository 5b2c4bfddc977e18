// Package outcome is the one vocabulary for how a piece of work that did not succeed
// ended: the Connection and Connector reconcilers, the sync engine and the vendor client
// factory all speak it (Flux's internal/error shape).
//
// An *Error carries a condition reason from api/v1alpha1, a message that is safe to show,
// and one of two verdicts:
//
//   - stalling (Stalling): only a human can fix it. Stalled=True, not requeued; a change
//     to the Connection, its Secrets or its Connector wakes the reconciler again.
//   - waiting (Waiting): it may go away by itself. Reconciling=True, looked at again after
//     RequeueAfter, or with the controller's exponential backoff when that is 0.
//
// Classify finds the verdict of any error: an *Error in its chain, else the verdict of a
// vendor error kind (connectors.ErrorKind), the single table below:
//
//	kind          reason               verdict
//	Auth          CredentialsRejected  stalling
//	NotFound      CredentialsRejected  stalling
//	Invalid       CredentialsRejected  stalling
//	EgressDenied  EgressDenied         stalling
//	StreamLost    StreamLost           stalling (a resync request starts over)
//	RateLimited   RateLimited          waiting, for the vendor's Retry-After
//	Unavailable   VendorUnreachable    waiting, for the vendor's Retry-After or backoff
//
// A 4xx other than 429 is never retried on a timer: asking again with the same
// credential, scope and filter gets the same answer.
package outcome

import (
	"errors"
	"fmt"
	"time"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors"
)

// Error is an outcome other than success. Build it with Stalling or Waiting.
type Error struct {
	// Reason is a condition reason from api/v1alpha1 (stable CamelCase API).
	Reason string
	// Message is safe to show in status, Events and logs: it never holds a secret value.
	Message string
	// Transient is true for a waiting error (it may go away by itself) and false for a
	// stalling one (only a human can fix it).
	Transient bool
	// RequeueAfter is a waiting error's requeue hint; 0 means the controller's backoff.
	RequeueAfter time.Duration
	// VendorAsked marks RequeueAfter as the vendor's own Retry-After: no caller of the
	// Connection may call the vendor before it ends, whatever wakes it.
	VendorAsked bool
	// Err is the cause, kept for errors.Is and errors.As.
	Err error
}

// Error returns the message.
func (e *Error) Error() string { return e.Message }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Stalled reports whether only a human can fix the problem.
func (e *Error) Stalled() bool { return !e.Transient }

// Stalling returns a problem only a human can fix. The message is formatted as by
// fmt.Errorf; a %w verb keeps its operand as the cause.
func Stalling(reason, format string, args ...any) *Error {
	msg, cause := format2(format, args)
	return &Error{Reason: reason, Message: msg, Err: cause}
}

// Waiting returns a transient problem to look at again after after (0: backoff). The
// message is formatted as by fmt.Errorf; a %w verb keeps its operand as the cause.
func Waiting(reason string, after time.Duration, format string, args ...any) *Error {
	msg, cause := format2(format, args)
	return &Error{Reason: reason, Message: msg, Transient: true, RequeueAfter: after, Err: cause}
}

func format2(format string, args []any) (string, error) {
	err := fmt.Errorf(format, args...)
	return err.Error(), errors.Unwrap(err)
}

// Classify returns the outcome err stands for: the first *Error in its chain, else the
// verdict of a vendor error's kind (the table in the package doc), else nil: err says
// nothing about the outcome (an API server error, a cancelled context) and the caller
// decides, usually the controller's backoff.
func Classify(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var ve *connectors.Error
	if !errors.As(err, &ve) {
		return nil
	}
	reason, transient := ForKind(ve.Kind)
	o := &Error{Reason: reason, Message: err.Error(), Transient: transient, Err: err}
	if transient && ve.RetryAfter > 0 {
		o.RequeueAfter, o.VendorAsked = ve.RetryAfter, true
	}
	return o
}

// Vendor classifies the failure of a vendor call: as Classify, and an error the
// connector did not type (a transport failure) is VendorUnreachable, retried with
// backoff. It returns nil only for a nil err.
func Vendor(err error) *Error {
	if err == nil {
		return nil
	}
	if o := Classify(err); o != nil {
		return o
	}
	return Waiting(v1alpha1.VendorUnreachableReason, 0, "%w", err)
}

// ForKind maps a vendor error kind to its condition reason and verdict (the table in
// the package doc). An unknown kind is VendorUnreachable, transient.
func ForKind(kind connectors.ErrorKind) (reason string, transient bool) {
	switch kind {
	case connectors.KindAuth, connectors.KindNotFound, connectors.KindInvalid:
		// 401/403, or another 4xx: the credential cannot do what the Connection asks
		// (a scope container that does not exist or it cannot read, a filter the vendor
		// refuses). No retry: the same request gets the same answer.
		return v1alpha1.CredentialsRejectedReason, false
	case connectors.KindEgressDenied:
		// No retry: the address only changes when the Connector does.
		return v1alpha1.EgressDeniedReason, false
	case connectors.KindRateLimited:
		return v1alpha1.RateLimitedReason, true
	case connectors.KindStreamLost:
		// No retry: the history is gone; a resync request starts over.
		return v1alpha1.StreamLostReason, false
	default: // KindUnavailable and anything new
		return v1alpha1.VendorUnreachableReason, true
	}
}

// ReasonOf returns the reason of the outcome err stands for, or fallback.
func ReasonOf(err error, fallback string) string {
	if o := Classify(err); o != nil {
		return o.Reason
	}
	return fallback
}

// IsStalled reports whether err stands for a problem only a human can fix.
func IsStalled(err error) bool {
	o := Classify(err)
	return o != nil && o.Stalled()
}

// IsTransient reports whether err stands for a problem that may go away by itself.
func IsTransient(err error) bool {
	o := Classify(err)
	return o != nil && o.Transient
}
