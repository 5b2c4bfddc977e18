package vendorhttp

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/internal/egress"
)

// Pool defaults, for fields left zero.
const (
	// DefaultMaxInFlightPerHost bounds the requests awaiting an answer (until its
	// headers) from one vendor host, over every Client of the pool: a leader start or a Connector edit that wakes 10,000
	// Connections at once queues here instead of opening 10,000 connections.
	DefaultMaxInFlightPerHost = 64
	// DefaultIdleTTL is how long a Client may go unused before the pool drops it. Every
	// replica builds Clients (the HTTP API serves on followers too) but only the leader
	// hears that a Connection was deleted; idle Clients go anyway, so no replica keeps
	// one per Connection ever seen.
	DefaultIdleTTL = 30 * time.Minute
)

// Pool keeps one Client per Connection, so that the reconciler, the sync engine and the
// HTTP API share its rate limit and the vendor's Retry-After. Every Client of the pool
// sends through one HTTP transport (connections to a vendor host are shared, not opened
// per Connection) and at most MaxInFlightPerHost requests to each host at once.
type Pool struct {
	// Egress is the policy of every Client in the pool.
	Egress egress.Policy
	// MaxInFlightPerHost bounds the requests in flight to one host; 0 means
	// DefaultMaxInFlightPerHost, negative means no bound.
	MaxInFlightPerHost int
	// IdleTTL drops a Client unused for that long (and not held by a Retry-After); 0
	// means DefaultIdleTTL.
	IdleTTL time.Duration
	// Next sends every request of the pool; nil means one egress-guarded *http.Client.
	// Tests substitute it.
	Next connectors.Doer

	// now is the clock; nil means time.Now.
	now func() time.Time

	mu        sync.Mutex
	clients   map[string]*Client
	shared    connectors.Doer
	hosts     map[string]chan struct{}
	lastSweep time.Time
}

// Client returns the Client of the Connection named key ("namespace/name"), creating it or
// applying a changed rate limit.
func (p *Pool) Client(key, connectorType string, requestsPerSecond float64, burst int) *Client {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.clock()
	if p.clients == nil {
		p.clients = map[string]*Client{}
		p.lastSweep = now
	}
	p.sweep(now)
	if c, ok := p.clients[key]; ok && c.opts.ConnectorType == connectorType {
		c.SetLimit(requestsPerSecond, burst)
		c.touch(now)
		return c
	}
	c := New(Options{ConnectorType: connectorType, RequestsPerSecond: requestsPerSecond, Burst: burst,
		Egress: p.Egress, Next: p.doer()})
	c.now = p.now
	c.touch(now)
	p.clients[key] = c
	return c
}

// Forget drops the Client of a deleted Connection.
func (p *Pool) Forget(key string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.clients, key)
}

// Len is the number of Clients the pool keeps.
func (p *Pool) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.clients)
}

func (p *Pool) clock() time.Time {
	if p.now != nil {
		return p.now()
	}
	return time.Now()
}

// sweep drops, at most once per tenth of the TTL, the Clients idle for the TTL whose
// vendor hold is over. Callers hold p.mu.
func (p *Pool) sweep(now time.Time) {
	ttl := p.IdleTTL
	if ttl <= 0 {
		ttl = DefaultIdleTTL
	}
	if now.Sub(p.lastSweep) < ttl/10 {
		return
	}
	p.lastSweep = now
	for key, c := range p.clients {
		if c.idleSince(now) >= ttl {
			delete(p.clients, key)
		}
	}
}

// doer is what every Client sends through: the shared transport behind the per-host
// bound. Callers hold p.mu.
func (p *Pool) doer() connectors.Doer {
	if p.shared != nil {
		return p.shared
	}
	next := p.Next
	if next == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		// The default keeps 2 idle connections per host: with dozens of Connections
		// probing one vendor, every other request would dial (and TLS-handshake) anew.
		t.MaxIdleConns = 0 // per host only
		t.MaxIdleConnsPerHost = max(DefaultMaxInFlightPerHost, p.MaxInFlightPerHost)
		// No client-wide timeout: every call carries its own deadline in its context.
		next = p.Egress.ClientWith(t, 0)
	}
	p.shared = next
	if p.MaxInFlightPerHost >= 0 {
		p.shared = &bounded{pool: p, next: next}
	}
	return p.shared
}

// bounded holds each request until its host has a free slot.
type bounded struct {
	pool *Pool
	next connectors.Doer
}

func (b *bounded) Do(req *http.Request) (*http.Response, error) {
	slots := b.pool.slots(req.URL.Host)
	select {
	case slots <- struct{}{}:
	case <-req.Context().Done():
		return nil, context.Cause(req.Context())
	}
	defer func() { <-slots }()
	return b.next.Do(req)
}

func (p *Pool) slots(host string) chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.hosts == nil {
		p.hosts = map[string]chan struct{}{}
	}
	s, ok := p.hosts[host]
	if !ok {
		n := p.MaxInFlightPerHost
		if n == 0 {
			n = DefaultMaxInFlightPerHost
		}
		s = make(chan struct{}, n)
		p.hosts[host] = s
	}
	return s
}
