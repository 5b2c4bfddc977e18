package vendorclient

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unified-connectors/connector-operator/connectors"
)

// sessionVendor is a client whose vendor accepts only the token it was built with while
// that token is the live one.
type sessionVendor struct {
	connectors.Client
	token string
	live  *atomic.Value
}

func (v *sessionVendor) Identity(context.Context) (connectors.Identity, error) {
	if v.live.Load().(string) != v.token {
		return connectors.Identity{}, &connectors.Error{Kind: connectors.KindSessionExpired, Vendor: "test", Op: "GET /me", Status: 401, Reason: "INVALID_SESSION_ID"}
	}
	return connectors.Identity{AccountID: "u1"}, nil
}

func TestEndedSessionRenewedOnceAndRetriedOnce(t *testing.T) {
	live := &atomic.Value{}
	live.Store("t2")
	var renewals atomic.Int32
	var spentSeen atomic.Value
	r := &renewing{cur: &sessionVendor{token: "t1", live: live}, token: "t1",
		renew: func(_ context.Context, spent string) (connectors.Client, string, error) {
			spentSeen.Store(spent)
			renewals.Add(1)
			return &sessionVendor{token: "t2", live: live}, "t2", nil
		}}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := r.Identity(context.Background()); err != nil {
				t.Errorf("Identity after one ended session: %v", err)
			}
		})
	}
	wg.Wait()
	if n := renewals.Load(); n != 1 {
		t.Fatalf("8 callers found the session ended: %d renewals, want 1", n)
	}
	if got := spentSeen.Load(); got != "t1" {
		t.Fatalf("renewed %v, want the spent t1", got)
	}

	// A vendor that refuses the renewed token too: one renewal, one retry, then the
	// credential is rejected (KindAuth), never a loop.
	live.Store("never")
	renewals.Store(0)
	_, err := r.Identity(context.Background())
	if connectors.KindOf(err) != connectors.KindAuth {
		t.Fatalf("a renewed session refused too: %v (kind %q), want KindAuth", err, connectors.KindOf(err))
	}
	if n := renewals.Load(); n != 1 {
		t.Fatalf("%d renewals for one call, want 1", n)
	}
}

// TestRenewalKeepsCallersDeadlines: a slow renewal does not hold a caller past its own
// deadline, and it goes on to serve the next call.
func TestRenewalKeepsCallersDeadlines(t *testing.T) {
	live := &atomic.Value{}
	live.Store("t2")
	release := make(chan struct{})
	r := &renewing{cur: &sessionVendor{token: "t1", live: live}, token: "t1",
		renew: func(context.Context, string) (connectors.Client, string, error) {
			<-release
			return &sessionVendor{token: "t2", live: live}, "t2", nil
		}}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := r.Identity(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a caller waiting on a slow renewal: %v, want its own deadline", err)
	}
	close(release)
	if _, err := r.Identity(context.Background()); err != nil {
		t.Fatalf("after the renewal: %v", err)
	}
}
