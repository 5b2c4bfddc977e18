package vendorhttp

import (
	"sync"

	"github.com/unified-connectors/connector-operator/internal/egress"
)

// Pool keeps one Client per Connection, so that the reconciler, the sync engine and the
// HTTP API share its rate limit and the vendor's Retry-After.
type Pool struct {
	// Egress is the policy of every Client in the pool.
	Egress egress.Policy

	mu      sync.Mutex
	clients map[string]*Client
}

// Client returns the Client of the Connection named key ("namespace/name"), creating it or
// applying a changed rate limit.
func (p *Pool) Client(key, connectorType string, requestsPerSecond float64, burst int) *Client {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.clients == nil {
		p.clients = map[string]*Client{}
	}
	if c, ok := p.clients[key]; ok && c.opts.ConnectorType == connectorType {
		c.SetLimit(requestsPerSecond, burst)
		return c
	}
	c := New(Options{ConnectorType: connectorType, RequestsPerSecond: requestsPerSecond, Burst: burst, Egress: p.Egress})
	p.clients[key] = c
	return c
}

// Forget drops the Client of a deleted Connection.
func (p *Pool) Forget(key string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.clients, key)
}
