package vendorhttp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/internal/egress"
)

// script answers with the statuses in order (then 200), recording arrival times.
type script struct {
	mu       sync.Mutex
	statuses []int
	headers  []http.Header
	arrivals []time.Time
	bodies   []string
}

func (s *script) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.arrivals = append(s.arrivals, time.Now())
	s.bodies = append(s.bodies, string(body))
	status, h := http.StatusOK, http.Header{}
	if len(s.statuses) > 0 {
		status, s.statuses = s.statuses[0], s.statuses[1:]
		h, s.headers = s.headers[0], s.headers[1:]
	}
	for k, v := range h {
		w.Header()[k] = v
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, `{}`)
}

func (s *script) then(status int, h http.Header) *script {
	s.statuses = append(s.statuses, status)
	s.headers = append(s.headers, h)
	return s
}

func (s *script) times() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.arrivals...)
}

func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func testClient(typ string) *Client {
	// The real guard, with loopback allowed as --allow-insecure-vendor-urls does.
	return New(Options{ConnectorType: typ, RequestsPerSecond: 100, Burst: 100,
		Egress: egress.Vendor.WithAllowInsecure(true), BaseBackoff: 10 * time.Millisecond})
}

func get(t *testing.T, c *Client, ctx context.Context, url string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c.Do(req)
}

func retryAfter(secs string) http.Header { return http.Header{"Retry-After": {secs}} }

func TestRetriesIdempotentCallsAfterRetryAfter(t *testing.T) {
	s := (&script{}).then(http.StatusServiceUnavailable, retryAfter("1"))
	url := serve(t, s)
	resp, err := get(t, testClient("t1"), context.Background(), url)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("want 200 after one retry, got %v %v", resp, err)
	}
	at := s.times()
	if len(at) != 2 {
		t.Fatalf("want 2 requests, got %d", len(at))
	}
	if gap := at[1].Sub(at[0]); gap < time.Second {
		t.Fatalf("retried %s after a 503 asking for 1s", gap)
	}
}

func TestNeverRetriesNonIdempotentCalls(t *testing.T) {
	s := (&script{}).then(http.StatusServiceUnavailable, http.Header{})
	url := serve(t, s)
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"fields":{}}`))
	resp, err := testClient("t2").Do(req)
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("want the 503 back, got %v %v", resp, err)
	}
	if n := len(s.times()); n != 1 {
		t.Fatalf("a POST was sent %d times", n)
	}
}

func TestRetriesMarkedReadsWithTheSameBody(t *testing.T) {
	s := (&script{}).then(http.StatusBadGateway, http.Header{}).then(http.StatusTooManyRequests, http.Header{})
	url := serve(t, s)
	req, _ := http.NewRequestWithContext(connectors.WithIdempotent(context.Background()), http.MethodPost, url, strings.NewReader(`{"jql":"project = A"}`))
	resp, err := testClient("t3").Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("want 200, got %v %v", resp, err)
	}
	for i, b := range s.bodies {
		if b != `{"jql":"project = A"}` {
			t.Fatalf("attempt %d sent body %q", i, b)
		}
	}
	if len(s.bodies) != 3 {
		t.Fatalf("want 3 attempts, got %d", len(s.bodies))
	}
}

func TestRetryAfterHoldsEveryCallerOfTheConnection(t *testing.T) {
	var first atomic.Bool
	var mu sync.Mutex
	var arrivals []time.Time
	url := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrivals = append(arrivals, time.Now())
		mu.Unlock()
		if r.URL.Path == "/limited" && first.CompareAndSwap(false, true) {
			w.Header().Set("Retry-After", "2")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	c := New(Options{ConnectorType: "t4", Egress: egress.Vendor.WithAllowInsecure(true), MaxRetries: -1})
	resp, err := get(t, c, context.Background(), url+"/limited")
	if err != nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("want the 429 (no retries configured), got %v %v", resp, err)
	}
	limitedAt := time.Now()
	// Another caller of the same Connection, on another path, must wait too.
	resp, err = get(t, c, context.Background(), url+"/other")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("second call: %v %v", resp, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if gap := arrivals[1].Sub(arrivals[0]); gap < 2*time.Second {
		t.Fatalf("a request arrived %s after a 429 asking for 2s (hold started %s)", gap, limitedAt.Sub(arrivals[0]))
	}
}

func TestAnswersAtOnceWhenTheRetryWouldMissTheDeadline(t *testing.T) {
	s := (&script{}).then(http.StatusTooManyRequests, retryAfter("30"))
	url := serve(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	resp, err := get(t, testClient("t5"), ctx, url)
	if err != nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("want the 429 back, got %v %v", resp, err)
	}
	if time.Since(start) > time.Second {
		t.Fatalf("waited %s for a retry that could not happen before the deadline", time.Since(start))
	}
}

func TestEgressRefusalIsFinal(t *testing.T) {
	c := New(Options{ConnectorType: "t6", Egress: egress.Vendor})
	req, _ := http.NewRequest(http.MethodGet, "https://169.254.169.254/latest/meta-data/", nil)
	_, err := c.Do(req)
	if !egress.IsDenied(err) {
		t.Fatalf("want an egress refusal, got %v", err)
	}
	if got := testutil.ToFloat64(retriesTotal.WithLabelValues("t6", "error")); got != 0 {
		t.Fatalf("an egress refusal was retried %v times", got)
	}
}

func TestTransportErrorsAreRetriedThenReturned(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // connection refused from now on
	_, err := get(t, testClient("t7"), context.Background(), url)
	if err == nil {
		t.Fatal("want an error from a closed server")
	}
	if got := testutil.ToFloat64(retriesTotal.WithLabelValues("t7", "error")); got != DefaultMaxRetries {
		t.Fatalf("want %d retries, got %v", DefaultMaxRetries, got)
	}
}

func TestMetricsCountRequestsByTypeAndCode(t *testing.T) {
	url := serve(t, (&script{}).then(http.StatusNotFound, http.Header{}))
	c := testClient("t8")
	for range 2 {
		resp, err := get(t, c, context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
	}
	if got := testutil.ToFloat64(requestsTotal.WithLabelValues("t8", "404")); got != 1 {
		t.Fatalf("404 count = %v", got)
	}
	if got := testutil.ToFloat64(requestsTotal.WithLabelValues("t8", "200")); got != 1 {
		t.Fatalf("200 count = %v", got)
	}
}

func TestTokenBucketSpacesRequests(t *testing.T) {
	url := serve(t, &script{})
	c := New(Options{ConnectorType: "t9", RequestsPerSecond: 5, Burst: 1, Egress: egress.Vendor.WithAllowInsecure(true)})
	start := time.Now()
	for range 6 {
		resp, err := get(t, c, context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
	}
	if d := time.Since(start); d < time.Second {
		t.Fatalf("6 requests at 5/s with burst 1 took %s, want ≥ 1s", d)
	}
}

func TestNearLimitSlowsDownAndRecovers(t *testing.T) {
	c := New(Options{ConnectorType: "t10", RequestsPerSecond: 8, Burst: 8, Next: http.DefaultClient})
	near := &http.Response{StatusCode: 200, Header: http.Header{"X-Ratelimit-Nearlimit": {"true"}}}
	c.learn(near, nil)
	if c.adapted != 4 || c.limiter.Burst() != 1 {
		t.Fatalf("after a near-limit warning: rate %v burst %d, want 4 and 1", c.adapted, c.limiter.Burst())
	}
	ok := &http.Response{StatusCode: 200, Header: http.Header{}}
	for range 10 * recoverEvery {
		c.learn(ok, nil)
	}
	if c.adapted != 8 || c.limiter.Burst() != 8 {
		t.Fatalf("after successes: rate %v burst %d, want 8 and 8", c.adapted, c.limiter.Burst())
	}
}

func poolGet(t *testing.T, c *Client, url string) {
	t.Helper()
	resp, err := get(t, c, context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	drain(resp)
}

func TestPoolSharesConnectionsToAHost(t *testing.T) {
	var dials atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "{}") }))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			dials.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	p := &Pool{Egress: egress.Vendor.WithAllowInsecure(true)}
	for i := range 20 {
		poolGet(t, p.Client(fmt.Sprintf("ns/conn-%d", i), "jira", 100, 100), srv.URL)
	}
	if n := dials.Load(); n != 1 {
		t.Errorf("20 Connections calling one host one after the other opened %d connections, want 1", n)
	}
}

func TestPoolBoundsRequestsInFlightPerHost(t *testing.T) {
	var now, peak atomic.Int64
	srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n := now.Add(1)
		defer now.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.Sleep(50 * time.Millisecond)
		_, _ = io.WriteString(w, "{}")
	}))
	p := &Pool{Egress: egress.Vendor.WithAllowInsecure(true), MaxInFlightPerHost: 3}
	var wg sync.WaitGroup
	for i := range 12 {
		c := p.Client(fmt.Sprintf("ns/conn-%d", i), "jira", 100, 100)
		wg.Go(func() { poolGet(t, c, srv) })
	}
	wg.Wait()
	if got := peak.Load(); got > 3 || got == 0 {
		t.Errorf("%d requests at once from 12 Connections, want at most MaxInFlightPerHost (3)", got)
	}

	// A caller whose deadline strikes while it waits for a slot gets its context's error.
	full := &Pool{Egress: egress.Vendor.WithAllowInsecure(true), MaxInFlightPerHost: 1}
	slow := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _, _ = get(t, full.Client("ns/a", "jira", 100, 100), ctx, slow) }()
	time.Sleep(50 * time.Millisecond)
	short, stop := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer stop()
	if _, err := get(t, full.Client("ns/b", "jira", 100, 100), short, slow); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiting for a slot past the deadline: %v, want DeadlineExceeded", err)
	}
}

func TestPoolForgetsIdleClients(t *testing.T) {
	now := time.Now()
	p := &Pool{Egress: egress.Vendor.WithAllowInsecure(true), now: func() time.Time { return now }}
	deleted := p.Client("ns/deleted", "jira", 10, 10)
	held := p.Client("ns/held", "jira", 10, 10)
	held.mu.Lock()
	held.holdUntil = now.Add(2 * DefaultIdleTTL)
	held.mu.Unlock()
	now = now.Add(DefaultIdleTTL / 2)
	busy := p.Client("ns/busy", "jira", 10, 10)
	now = now.Add(DefaultIdleTTL/2 + time.Second)
	p.Client("ns/busy", "jira", 10, 10) // still in use
	if p.Len() != 2 {
		t.Fatalf("pool holds %d Clients, want 2: the one idle for %s stays on a replica that never hears of its deletion", p.Len(), DefaultIdleTTL)
	}
	if p.Client("ns/held", "jira", 10, 10) != held || p.Client("ns/busy", "jira", 10, 10) != busy {
		t.Error("a Client in use or under the vendor's Retry-After was dropped")
	}
	if p.Client("ns/deleted", "jira", 10, 10) == deleted {
		t.Error("the idle Client is still served")
	}
}
