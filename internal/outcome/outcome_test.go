package outcome_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/internal/outcome"
)

func TestClassifyVendorKinds(t *testing.T) {
	tests := []struct {
		kind        connectors.ErrorKind
		retryAfter  time.Duration
		reason      string
		stalled     bool
		after       time.Duration
		vendorAsked bool
	}{
		{connectors.KindAuth, 0, v1alpha1.CredentialsRejectedReason, true, 0, false},
		{connectors.KindNotFound, 0, v1alpha1.CredentialsRejectedReason, true, 0, false},
		{connectors.KindInvalid, 0, v1alpha1.CredentialsRejectedReason, true, 0, false},
		{connectors.KindEgressDenied, 0, v1alpha1.EgressDeniedReason, true, 0, false},
		{connectors.KindRateLimited, 7 * time.Second, v1alpha1.RateLimitedReason, false, 7 * time.Second, true},
		{connectors.KindRateLimited, 0, v1alpha1.RateLimitedReason, false, 0, false},
		{connectors.KindUnavailable, 0, v1alpha1.VendorUnreachableReason, false, 0, false},
		{connectors.KindUnavailable, 30 * time.Second, v1alpha1.VendorUnreachableReason, false, 30 * time.Second, true},
		// A stalling kind never turns a Retry-After into a timer.
		{connectors.KindAuth, 5 * time.Second, v1alpha1.CredentialsRejectedReason, true, 0, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%s", tt.kind, tt.retryAfter), func(t *testing.T) {
			ve := &connectors.Error{Kind: tt.kind, Vendor: "jira", Op: "GET /rest/api/3/myself", Status: 400, RetryAfter: tt.retryAfter, Reason: "no"}
			wrapped := fmt.Errorf("probing: %w", ve)
			o := outcome.Classify(wrapped)
			if o == nil {
				t.Fatal("Classify returned nil for a vendor error")
			}
			if o.Reason != tt.reason || o.Stalled() != tt.stalled || o.RequeueAfter != tt.after || o.VendorAsked != tt.vendorAsked {
				t.Errorf("got reason %s stalled %v after %s vendorAsked %v; want %s %v %s %v",
					o.Reason, o.Stalled(), o.RequeueAfter, o.VendorAsked, tt.reason, tt.stalled, tt.after, tt.vendorAsked)
			}
			if !errors.Is(o, ve) {
				t.Error("the vendor error is not kept as the cause")
			}
			if o.Message != wrapped.Error() {
				t.Errorf("message %q, want %q", o.Message, wrapped.Error())
			}
		})
	}
}

func TestClassifyKeepsTheOutermostOutcome(t *testing.T) {
	ve := &connectors.Error{Kind: connectors.KindUnavailable, Vendor: "jira", Op: "GET /x", Reason: "reset"}
	inner := outcome.Stalling(v1alpha1.SecretInvalidReason, "bad expiry: %w", ve)
	got := outcome.Classify(fmt.Errorf("building client: %w", inner))
	if got != inner {
		t.Fatalf("got %#v, want the *Error in the chain", got)
	}
	if !errors.Is(got, ve) {
		t.Error("Stalling with %w does not keep the cause")
	}
	var asVendor *connectors.Error
	if !errors.As(got, &asVendor) || asVendor != ve {
		t.Error("errors.As does not reach the cause through Unwrap")
	}
}

func TestClassifyUntyped(t *testing.T) {
	for _, err := range []error{errors.New("etcd is sad"), context.Canceled, nil} {
		if o := outcome.Classify(err); o != nil {
			t.Errorf("Classify(%v) = %#v, want nil: the caller decides", err, o)
		}
	}
	o := outcome.Vendor(errors.New("connection reset"))
	if o == nil || o.Reason != v1alpha1.VendorUnreachableReason || !o.Transient || o.RequeueAfter != 0 {
		t.Errorf("Vendor(untyped) = %#v, want VendorUnreachable with backoff", o)
	}
	if outcome.Vendor(nil) != nil {
		t.Error("Vendor(nil) is not nil")
	}
}

func TestConstructors(t *testing.T) {
	s := outcome.Stalling(v1alpha1.SecretNotFoundReason, "Secret %s/%s not found", "ns", "name")
	if !s.Stalled() || s.Transient || s.RequeueAfter != 0 || s.Error() != "Secret ns/name not found" || s.Unwrap() != nil {
		t.Errorf("Stalling: %#v", s)
	}
	w := outcome.Waiting(v1alpha1.ConnectorNotReadyReason, time.Minute, "Connector %q is not ready yet", "c")
	if w.Stalled() || w.RequeueAfter != time.Minute || w.VendorAsked || w.Error() != `Connector "c" is not ready yet` {
		t.Errorf("Waiting: %#v", w)
	}
	if !outcome.IsStalled(fmt.Errorf("x: %w", s)) || outcome.IsStalled(w) || !outcome.IsTransient(w) || outcome.IsTransient(errors.New("x")) {
		t.Error("IsStalled / IsTransient disagree with the constructors")
	}
	if outcome.ReasonOf(w, "fallback") != v1alpha1.ConnectorNotReadyReason || outcome.ReasonOf(errors.New("x"), "fallback") != "fallback" {
		t.Error("ReasonOf")
	}
}
