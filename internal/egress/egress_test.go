package egress

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestVendorCheckURLRefuses(t *testing.T) {
	tests := []struct {
		raw    string
		reason string // substring of the message
		// insecureOK: --allow-insecure-vendor-urls lets it through.
		insecureOK bool
	}{
		{"https://169.254.169.254/latest/meta-data/", "cloud metadata address", false},
		{"https://[::ffff:169.254.169.254]/", "IPv4-mapped form of 169.254.169.254", false},
		{"https://[::ffff:a9fe:a9fe]/", "IPv4-mapped form of 169.254.169.254", false},
		{"https://[64:ff9b::a9fe:a9fe]/", "NAT64 form of 169.254.169.254", false},
		{"https://169.254.1.1/", "link-local", false},
		{"https://[fe80::1%25eth0]/", "link-local", false},
		{"https://[fd00:ec2::254]/", "AWS metadata", false},
		{"https://100.100.100.200/", "metadata", false},
		{"https://metadata.google.internal/computeMetadata/v1/", "metadata name", false},
		{"https://METADATA.google.internal./", "metadata name", false},
		{"https://0x7f000001/", "numeric host", false},
		{"https://2130706433/", "numeric host", false},
		{"https://0177.0.0.1/", "numeric host", false},
		{"https://127.1/", "numeric host", false},
		{"https://0x7f.0.0.1/", "numeric host", false},
		{"https://8.8.8.8./", "numeric host", false},
		{"https://1.2.3.4%25eth0/", "not a valid host name", false},
		{"https://[::]/", "unspecified", false},
		{"https://0.0.0.0/", "unspecified", false},
		{"https://0.1.2.3/", "0.0.0.0/8", false},
		{"https://224.0.0.1/", "multicast", false},
		{"https://[ff02::1]/", "multicast", false},
		{"https://255.255.255.255/", "broadcast", false},
		{"https://user:secret@acme.atlassian.net/", "userinfo", false},
		{"ftp://acme.atlassian.net/", "scheme", false},
		{"https:///rest/api/3/myself", "no host", false},
		{"https://localhost/", "loopback name", true},
		{"https://LOCALHOST./", "loopback name", true},
		{"https://jira.localhost/", "loopback name", true},
		{"https://127.0.0.1/", "loopback address", true},
		{"https://[::1]/", "loopback address", true},
		{"https://[::127.0.0.1]/", "IPv4-compatible form of 127.0.0.1", true},
		{"https://１２７.０.０.１/", "loopback address", true}, // fullwidth: IDNA maps it to 127.0.0.1
		{"https://10.0.0.1/", "private address (RFC 1918)", true},
		{"https://172.16.5.4/", "private address (RFC 1918)", true},
		{"https://172.31.255.255/", "private address (RFC 1918)", true},
		{"https://192.168.1.1/", "private address (RFC 1918)", true},
		{"https://[::ffff:10.0.0.1]/", "IPv4-mapped form of 10.0.0.1", true},
		{"https://[2002:a00:1::1]/", "6to4 form of 10.0.0.1", true},
		{"https://100.64.0.1/", "CGNAT", true},
		{"https://[fd12:3456::1]/", "unique-local", true},
		{"https://[fec0::1]/", "site-local", true},
		{"https://240.0.0.1/", "reserved", true},
		{"https://kubernetes/", "single-label", true},
		{"https://api.default.svc/", "internal name", true},
		{"https://jira.corp.internal/", "internal name", true},
		{"http://acme.atlassian.net/", "plain http", true},
	}
	insecure := Vendor.WithAllowInsecure(true)
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			err := Vendor.CheckURL(tt.raw)
			var d *DeniedError
			if !errors.As(err, &d) {
				t.Fatalf("Vendor.CheckURL(%q) = %v, want *DeniedError", tt.raw, err)
			}
			if !strings.Contains(err.Error(), tt.reason) || !strings.HasPrefix(err.Error(), "egress denied: ") {
				t.Errorf("message %q does not say %q", err, tt.reason)
			}
			err = insecure.CheckURL(tt.raw)
			if tt.insecureOK && err != nil {
				t.Errorf("insecure Vendor.CheckURL(%q) = %v, want allowed", tt.raw, err)
			}
			if !tt.insecureOK && !IsDenied(err) {
				t.Errorf("insecure Vendor.CheckURL(%q) = %v, want denied", tt.raw, err)
			}
		})
	}
}

func TestVendorCheckURLAllows(t *testing.T) {
	for _, raw := range []string{
		"https://93.184.215.14/",
		"https://[2606:4700::1111]/",
		"https://acme.atlassian.net",
		"https://ACME.atlassian.net./rest/api/3/search?jql=project%3DX",
		"https://acme.atlassian.net:8443/wiki",
		"https://[::ffff:93.184.215.14]/",
		"https://[2002:5db8:d70e::1]/", // 6to4 of 93.184.215.14
		"https://bücher.example/",
		"https://8.8.8.8/",
	} {
		if err := Vendor.CheckURL(raw); err != nil {
			t.Errorf("Vendor.CheckURL(%q) = %v, want allowed", raw, err)
		}
	}
}

func TestSinkCheckURL(t *testing.T) {
	tests := []struct {
		raw                  string
		secureOK, insecureOK bool
	}{
		{"http://10.0.0.5:9200/", true, true},
		{"http://elastic.search.svc.cluster.local:9200/", true, true},
		{"http://elastic/", true, true},
		{"http://100.64.3.4/", true, true},
		{"http://[fd12::1]/", true, true},
		{"https://elastic.example.com/", true, true},
		{"http://169.254.169.254/latest/meta-data/", false, false},
		{"http://[::ffff:169.254.169.254]/", false, false},
		{"http://[fd00:ec2::254]/", false, false},
		{"http://[fe80::1%25eth0]/", false, false},
		{"http://metadata.google.internal/", false, false},
		{"http://0.0.0.0:9200/", false, false},
		{"http://224.0.0.1/", false, false},
		{"http://2130706433/", false, false},
		{"ftp://elastic/", false, false},
		{"http://127.0.0.1:9200/", false, true},
		{"http://localhost:9200/", false, true},
		{"http://[::1]:9200/", false, true},
	}
	for _, tt := range tests {
		for _, insecure := range []bool{false, true} {
			want := tt.secureOK
			if insecure {
				want = tt.insecureOK
			}
			err := Sink.WithAllowInsecure(insecure).CheckURL(tt.raw)
			if want && err != nil {
				t.Errorf("Sink(insecure=%v).CheckURL(%q) = %v, want allowed", insecure, tt.raw, err)
			}
			if !want && !IsDenied(err) {
				t.Errorf("Sink(insecure=%v).CheckURL(%q) = %v, want denied", insecure, tt.raw, err)
			}
		}
	}
}

func TestDeniedErrorMessage(t *testing.T) {
	err := Vendor.CheckURL("https://10.0.0.1/rest?token=s3cr3t")
	if got, want := err.Error(), "egress denied: 10.0.0.1 is a private address (RFC 1918)"; got != want {
		t.Errorf("message = %q, want %q", got, want)
	}
	for _, raw := range []string{
		"https://10.0.0.1/rest?token=s3cr3t",
		"https://bob:s3cr3t@acme.atlassian.net/",
		"https://acme.atlassian.net/%zz?token=s3cr3t", // unparseable: url.Error would quote it
		"http://acme.atlassian.net/rest?token=s3cr3t",
	} {
		err := Vendor.CheckURL(raw)
		if err == nil || strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("Vendor.CheckURL(%q) = %v, want a refusal without the secret", raw, err)
		}
	}
}

// server counts the requests that reached it, so a test can tell a refusal from a
// request that was sent and failed afterwards.
func server(t *testing.T) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func port(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	_, p, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDialRefusesResolvedAddress(t *testing.T) {
	srv, _ := server(t)
	addr := net.JoinHostPort("localhost", port(t, srv))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// The name is only resolved by the dialer: the refusal comes from Control, on the
	// resolved 127.0.0.1 or ::1.
	for name, dial := range map[string]func(context.Context, string, string) (net.Conn, error){
		"DialContext": Vendor.DialContext,
		"Dialer":      Vendor.Dialer().DialContext,
		"Sink":        Sink.DialContext,
	} {
		conn, err := dial(ctx, "tcp", addr)
		if err == nil {
			_ = conn.Close()
			t.Fatalf("%s: dial %s succeeded, want refused", name, addr)
		}
		var d *DeniedError
		var op *net.OpError
		if !errors.As(err, &d) || !errors.As(err, &op) {
			t.Fatalf("%s: dial %s = %v, want *net.OpError wrapping *DeniedError", name, addr, err)
		}
		if d.Addr != "127.0.0.1" && d.Addr != "::1" {
			t.Errorf("%s: refused Addr = %q, want the resolved loopback address", name, d.Addr)
		}
	}

	for _, p := range []Policy{Vendor.WithAllowInsecure(true), Sink.WithAllowInsecure(true)} {
		conn, err := p.DialContext(ctx, "tcp", addr)
		if err != nil {
			t.Fatalf("insecure dial %s = %v, want success", addr, err)
		}
		_ = conn.Close()
	}
}

func TestTransportRefusesAtDialTime(t *testing.T) {
	srv, hits := server(t)
	target := "http://localhost:" + port(t, srv) + "/"

	// Transport alone skips CheckURL, so this exercises the dial-time check only.
	c := &http.Client{Transport: Vendor.Transport(nil)}
	_, err := c.Get(target)
	var ue *url.Error
	var op *net.OpError
	if !IsDenied(err) || !errors.As(err, &ue) || !errors.As(err, &op) {
		t.Fatalf("GET %s = %v, want *url.Error wrapping *net.OpError wrapping *DeniedError", target, err)
	}
	if hits.Load() != 0 {
		t.Fatal("refused request reached the server")
	}

	c = &http.Client{Transport: Vendor.WithAllowInsecure(true).Transport(nil)}
	resp, err := c.Get(target)
	if err != nil {
		t.Fatalf("insecure GET %s = %v, want success", target, err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || hits.Load() != 1 {
		t.Fatalf("insecure GET: status %d, %d hits", resp.StatusCode, hits.Load())
	}
}

func TestTransportClearsProxy(t *testing.T) {
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.Proxy = http.ProxyURL(&url.URL{Scheme: "http", Host: "proxy.example.com:3128"})
	if Vendor.Transport(base).Proxy != nil {
		t.Fatal("Transport kept the proxy, which would bypass the dial-time check")
	}
}

func TestClientChecksFirstRequest(t *testing.T) {
	srv, hits := server(t)
	_, err := Vendor.Client(5 * time.Second).Get(srv.URL)
	if !IsDenied(err) || !strings.Contains(err.Error(), "plain http") {
		t.Fatalf("GET %s = %v, want plain http refused", srv.URL, err)
	}
	if hits.Load() != 0 {
		t.Fatal("refused request reached the server")
	}
}

func TestCheckRedirect(t *testing.T) {
	req := func(raw string) *http.Request {
		r, err := http.NewRequest(http.MethodGet, raw, nil)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	via := []*http.Request{req("https://acme.atlassian.net/rest/api/3/myself")}
	tests := []struct {
		policy Policy
		to     string
		denied bool
	}{
		{Vendor, "http://10.0.0.1/", true},
		{Vendor, "https://10.0.0.1/", true},
		{Vendor, "http://acme.atlassian.net/login", true}, // downgrade
		{Vendor, "https://id.atlassian.com/login", false},
		{Sink, "http://169.254.169.254/latest/meta-data/", true},
		{Sink.WithAllowInsecure(true), "http://169.254.169.254/latest/meta-data/", true},
		{Sink, "http://10.0.0.1/", false},
	}
	for _, tt := range tests {
		err := tt.policy.CheckRedirect(req(tt.to), via)
		if IsDenied(err) != tt.denied {
			t.Errorf("CheckRedirect(sink=%v, insecure=%v) to %s = %v, want denied=%v",
				tt.policy.sink, tt.policy.AllowInsecure, tt.to, err, tt.denied)
		}
	}

	long := make([]*http.Request, maxRedirects)
	for i := range long {
		long[i] = via[0]
	}
	if err := Vendor.CheckRedirect(req("https://acme.atlassian.net/"), long); err == nil || IsDenied(err) {
		t.Errorf("CheckRedirect after %d hops = %v, want a hop-limit error", maxRedirects, err)
	}
}

func TestClientRefusesRedirectToMetadata(t *testing.T) {
	// The first hop is a loopback fake (allowed by insecure); the redirect must be
	// refused before anything dials 169.254.169.254.
	srv := httptest.NewServer(http.RedirectHandler("http://169.254.169.254/latest/meta-data/", http.StatusFound))
	defer srv.Close()
	for _, p := range []Policy{Vendor.WithAllowInsecure(true), Sink.WithAllowInsecure(true)} {
		_, err := p.Client(5 * time.Second).Get(srv.URL)
		if !IsDenied(err) || !strings.Contains(err.Error(), "169.254.169.254 is the cloud metadata address") {
			t.Errorf("sink=%v: GET redirecting to metadata = %v, want denied", p.sink, err)
		}
	}
}
