package controllers

import (
	"errors"
	"fmt"
	"time"
)

// stallingError is a problem only a human can fix: a missing Secret, a rejected
// credential, a refused namespace. The reconciler records it as Stalled and does not
// requeue; a change to the Connection, its Secret or its Connector wakes it again.
type stallingError struct {
	reason string
	msg    string
}

func (e *stallingError) Error() string { return e.msg }

// waitingError is a transient problem with its own retry delay, for example a vendor's
// Retry-After. after == 0 means "use the controller's exponential backoff".
type waitingError struct {
	reason string
	msg    string
	after  time.Duration
	// vendorAsked marks a pause the vendor requested (Retry-After): no trigger of any kind
	// may call the vendor before it ends.
	vendorAsked bool
}

func (e *waitingError) Error() string { return e.msg }

func stalled(reason, format string, args ...any) error {
	return &stallingError{reason: reason, msg: fmt.Sprintf(format, args...)}
}

func waiting(reason string, after time.Duration, format string, args ...any) error {
	return &waitingError{reason: reason, after: after, msg: fmt.Sprintf(format, args...)}
}

// reasonOf returns the condition reason an error carries, or fallback.
// vendorWaiting is a pause the vendor asked for; after == 0 means backoff.
func vendorWaiting(reason string, after time.Duration, cause error) error {
	return &waitingError{reason: reason, after: after, msg: cause.Error(), vendorAsked: after > 0}
}

func reasonOf(err error, fallback string) string {
	var s *stallingError
	if errors.As(err, &s) {
		return s.reason
	}
	var w *waitingError
	if errors.As(err, &w) {
		return w.reason
	}
	return fallback
}
