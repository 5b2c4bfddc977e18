package egress

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// maxRedirects matches net/http's default limit.
const maxRedirects = 10

// Dialer returns a dialer whose Control hook refuses, after DNS resolution, every
// connection attempt to an address p does not allow. Its refusals carry no host name;
// DialContext adds it.
func (p Policy) Dialer() *net.Dialer {
	// Timeouts as in http.DefaultTransport.
	return &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Control: p.control("")}
}

// DialContext dials address like net.Dialer.DialContext, refusing at connect time any
// resolved address p does not allow. The refusal is a *net.OpError wrapping a
// *DeniedError.
func (p Policy) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	d := p.Dialer()
	if host, _, err := net.SplitHostPort(address); err == nil {
		d.Control = p.control(host)
	}
	return d.DialContext(ctx, network, address)
}

// control checks the address the socket is about to connect to. Control runs for every
// attempt, with the resolved IP, so DNS rebinding and happy-eyeballs fallbacks are
// covered too.
func (p Policy) control(host string) func(network, address string, _ syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			// Fail closed: a unix socket or anything else that is not IP:port.
			return &DeniedError{Host: host, Addr: address, Reason: fmt.Sprintf("is not an IP address (%s)", network)}
		}
		return p.checkAddr(host, ap.Addr())
	}
}

// Transport returns a clone of base (http.DefaultTransport when nil) that dials through
// p's guarded dialer. Proxy is cleared: through a proxy the dialer would only see the
// proxy's address and the proxy would reach the refused destination for us. Custom
// TLS dialers are cleared too, as they would bypass DialContext.
func (p Policy) Transport(base *http.Transport) *http.Transport {
	if base == nil {
		base = http.DefaultTransport.(*http.Transport)
	}
	t := base.Clone()
	t.Proxy = nil
	t.OnProxyConnectResponse = nil
	t.Dial = nil    //nolint:staticcheck // cleared so it cannot bypass DialContext
	t.DialTLS = nil //nolint:staticcheck // cleared so it cannot bypass DialContext
	t.DialTLSContext = nil
	t.DialContext = p.DialContext
	return t
}

// CheckRedirect is an http.Client CheckRedirect that applies CheckURL to every
// redirect hop (so a vendor cannot bounce us to http://169.254.169.254/ or downgrade
// to http) and stops after 10 hops.
func (p Policy) CheckRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("egress: stopped after %d redirects", maxRedirects)
	}
	return p.checkURL(req.URL)
}

// Client returns an *http.Client for p: every request URL is checked with CheckURL
// before it is sent, every redirect with CheckRedirect, and every connection at dial
// time. timeout bounds each whole request (0 means none; rely on the context then).
// http.Client wraps every error in a *url.Error that quotes the request URL, query and
// all; show the *DeniedError (errors.As) or the URL path, not the wrapper.
func (p Policy) Client(timeout time.Duration) *http.Client {
	return p.ClientWith(nil, timeout)
}

// ClientWith is Client over a clone of base (its pool sizes and timeouts), nil meaning
// http.DefaultTransport, with p's guards.
func (p Policy) ClientWith(base *http.Transport, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout:       timeout,
		Transport:     &guard{policy: p, next: p.Transport(base)},
		CheckRedirect: p.CheckRedirect,
	}
}

// guard applies CheckURL to the first request, which http.Client's CheckRedirect never
// sees.
type guard struct {
	policy Policy
	next   *http.Transport
}

func (g *guard) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := g.policy.checkURL(req.URL); err != nil {
		// A RoundTripper must close the body, even on error.
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, err
	}
	return g.next.RoundTrip(req)
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the transport.
func (g *guard) CloseIdleConnections() { g.next.CloseIdleConnections() }
