package egress

import (
	"errors"
	"net"
	"net/url"
	"strings"
	"testing"
)

// refusedNets is an oracle independent of the package's rule table: the classes the
// design says a vendor may never reach, as net.IP sees them.
var refusedNets = func() []*net.IPNet {
	var nets []*net.IPNet
	for _, cidr := range []string{"0.0.0.0/8", "100.64.0.0/10", "240.0.0.0/4", "fd00:ec2::254/128"} {
		_, n, _ := net.ParseCIDR(cidr)
		nets = append(nets, n)
	}
	return nets
}()

func refusedForVendor(ip net.IP) bool {
	if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsMulticast() ||
		ip.IsUnspecified() || ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() {
		return true
	}
	for _, n := range refusedNets {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{
		"https://acme.atlassian.net/rest/api/3/myself",
		"https://93.184.215.14/",
		"https://[2606:4700::1111]/",
		"https://169.254.169.254/",
		"https://[::ffff:169.254.169.254]/",
		"https://[::ffff:a9fe:a9fe]/",
		"https://[fe80::1%25eth0]/",
		"https://0x7f000001/",
		"https://2130706433/",
		"https://0177.0.0.1/",
		"https://127.1/",
		"https://LOCALHOST./",
		"https://１２７.０.０.１/",
		"http://10.0.0.1/",
		"https://u:p@h/?q",
		"https://[64:ff9b::7f00:1]/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		for _, p := range []Policy{Vendor, Sink, Vendor.WithAllowInsecure(true), Sink.WithAllowInsecure(true)} {
			if err := p.CheckURL(raw); err != nil {
				var d *DeniedError
				if !errors.As(err, &d) {
					t.Fatalf("CheckURL(%q) = %v (%T), want *DeniedError", raw, err, err)
				}
			}
		}
		if Vendor.CheckURL(raw) != nil {
			return
		}
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("Vendor.CheckURL accepted unparseable %q", raw)
		}
		host, _, _ := strings.Cut(u.Hostname(), "%") // net.ParseIP knows no zones
		if ip := net.ParseIP(host); ip != nil && refusedForVendor(ip) {
			t.Fatalf("Vendor.CheckURL accepted %q, whose host %s is in a refused class", raw, ip)
		}
	})
}
