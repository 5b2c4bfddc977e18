package api

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
)

func TestPlainHTTPOnlyOnLoopbackOrWhenAsked(t *testing.T) {
	loop := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8082}
	any := &net.TCPAddr{IP: net.IPv6unspecified, Port: 8082}
	for _, c := range []struct {
		o    Options
		addr net.Addr
		want bool
	}{
		{Options{}, loop, true},
		{Options{}, any, false},
		{Options{CertDir: "/certs"}, loop, false},
		{Options{InsecurePlainHTTP: true}, any, true},
	} {
		if got := c.o.plainHTTP(c.addr); got != c.want {
			t.Errorf("plainHTTP(%+v, %s) = %v, want %v", c.o, c.addr, got, c.want)
		}
	}
}

func TestSelfSignedCertificate(t *testing.T) {
	cert, err := selfSigned(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}, "https://connectors.example.com")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	for _, name := range []string{"localhost", "127.0.0.1", "connectors.example.com"} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: name}); err != nil {
			t.Errorf("not valid for %s: %v", name, err)
		}
	}
}

// TestServeTLSFromCertDirAndShutDownGracefully serves HTTPS with the certificate in
// CertDir, and lets a request in flight finish when the manager stops.
func TestServeTLSFromCertDirAndShutDownGracefully(t *testing.T) {
	dir := t.TempDir()
	cert, err := selfSigned(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}, "")
	if err != nil {
		t.Fatal(err)
	}
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, der []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("tls.crt", "CERTIFICATE", cert.Certificate[0])
	write("tls.key", "PRIVATE KEY", key)

	srv, site := fuzzServerAndSite(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.opts.Listener, srv.opts.CertDir, srv.log = ln, dir, logr.Discard()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()

	leaf, _ := x509.ParseCertificate(cert.Certificate[0])
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}}}
	base := "https://" + ln.Addr().String()
	var resp *http.Response
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, err = hc.Get(base + "/openapi.json"); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil {
		t.Fatalf("HTTPS /openapi.json: %d, TLS %v", resp.StatusCode, resp.TLS != nil)
	}
	plain, err := http.Get("http://" + ln.Addr().String() + "/openapi.json")
	if err == nil {
		_ = plain.Body.Close()
		if plain.StatusCode == http.StatusOK {
			t.Error("plain HTTP was served next to HTTPS")
		}
	}

	// A search that takes a while (its vendor hangs until the 700 ms deadline) is in
	// flight when the manager stops: it completes.
	site.SetFault(atlassiantest.Fault{Hang: true})
	answered := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, base+"/api/v1/search?q=fuzzed&timeout=700ms", nil)
		req.Header.Set("Authorization", "Bearer "+fuzzToken)
		r, err := hc.Do(req)
		if err != nil {
			answered <- 0
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		_ = r.Body.Close()
		answered <- r.StatusCode
	}()
	// Stop once the search is waiting on the vendor.
	for deadline := time.Now().Add(5 * time.Second); site.CountRequests("/rest/api/3/search/jql") == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the search never reached the vendor")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Start: %v", err)
	}
	if code := <-answered; code != http.StatusOK {
		t.Errorf("the request in flight at shutdown got %d, want 200", code)
	}
	if _, err := hc.Get(base + "/openapi.json"); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("the server still answers after shutdown: %v", err)
	}
}
