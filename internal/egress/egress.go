// Package egress is the guard every vendor and sink HTTP call goes through. It keeps a
// Connector or Connection author from turning the operator into a proxy into the cluster
// network or the cloud metadata service (SSRF).
//
// The guard checks twice. CheckURL refuses, before any I/O, bad schemes, userinfo and
// hosts that are refused addresses in any spelling. The dialer's Control hook then
// refuses the address actually being connected to, after DNS resolution, for every
// attempt (including each happy-eyeballs race), so a public name that resolves to
// 10.0.0.1 or 127.0.0.1 is refused too. Redirects are re-checked hop by hop.
//
// What each policy refuses:
//
//	                                         Vendor   Vendor    Sink     Sink
//	                                                  insecure           insecure
//	link-local 169.254/16, fe80::/10,
//	  cloud metadata (169.254.169.254,
//	  fd00:ec2::254, ...)                    refuse   refuse    refuse   refuse
//	unspecified, 0.0.0.0/8, multicast,
//	  broadcast, non-canonical numeric hosts refuse   refuse    refuse   refuse
//	loopback 127/8, ::1, localhost names     refuse   allow     refuse   allow
//	RFC 1918, 100.64/10, fc00::/7, fec0::/10,
//	  240/4, internal names (*.internal,
//	  *.local, *.svc, single-label)          refuse   allow     allow    allow
//	plain http                               refuse   allow     allow    allow
//
// IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d), NAT64 (64:ff9b::/96) and
// 6to4 (2002::/16) addresses are judged by the IPv4 address they embed.
//
// AllowInsecure is the operator's --allow-insecure-vendor-urls, for development and tests
// (fake vendors listen on 127.0.0.1). It deliberately never lifts the link-local and
// metadata rule: no test needs 169.254.169.254, and a dev cluster on a cloud VM has
// credentials there all the same.
package egress

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"

	"golang.org/x/net/idna"
)

// Policy says which destinations one kind of caller may reach. Use the Vendor or Sink
// preset, copying it to set AllowInsecure (see WithAllowInsecure).
type Policy struct {
	// sink selects the sink rules: private ranges and plain http are allowed.
	sink bool
	// AllowInsecure is --allow-insecure-vendor-urls: it allows plain http and loopback
	// (and, for vendors, private ranges and internal names). It never allows link-local
	// or metadata addresses. Off in production; the chart never sets it.
	AllowInsecure bool
}

var (
	// Vendor is the policy for calls to vendor SaaS (Jira, Confluence): https only, public
	// addresses only.
	Vendor = Policy{}
	// Sink is the policy for calls to sinks, which may run inside the cluster: http and
	// private addresses are allowed, link-local, metadata and loopback addresses are not.
	Sink = Policy{sink: true}
)

// WithAllowInsecure returns a copy of p with AllowInsecure set to allow, so that callers
// never modify the shared presets.
func (p Policy) WithAllowInsecure(allow bool) Policy {
	p.AllowInsecure = allow
	return p
}

// DeniedError is the guard's refusal. Its message names the host and address only, never
// the URL's userinfo, path or query, so it is safe to log and to put in a condition.
type DeniedError struct {
	// Host is the host name or IP literal as written in the URL or dial address; empty
	// when the URL had none or the dialer was used without a name.
	Host string
	// Addr is the refused IP address, empty when the refusal is about the URL or name.
	Addr string
	// Reason completes a sentence about Host (or Addr), e.g. "is a private address
	// (RFC 1918)"; when both are empty it is a whole clause.
	Reason string
}

// Error returns, e.g., "egress denied: 10.0.0.1 is a private address (RFC 1918)".
func (e *DeniedError) Error() string {
	subject := e.Host
	switch {
	case subject == "":
		subject = e.Addr
	case e.Addr != "" && e.Addr != e.Host:
		subject += " (" + e.Addr + ")"
	}
	if subject == "" {
		return "egress denied: " + e.Reason
	}
	return "egress denied: " + subject + " " + e.Reason
}

// EgressDenied marks the refusal for code that may not import this package (connectors
// match interface{ EgressDenied() bool } with errors.As).
func (e *DeniedError) EgressDenied() bool { return true }

// IsDenied reports whether err, or any error it wraps (*url.Error, *net.OpError, ...), is
// a refusal by the guard.
func IsDenied(err error) bool {
	var d *DeniedError
	return errors.As(err, &d)
}

// level says under which policies a class of destination is refused.
type level int

const (
	// always: refused by every policy, insecure or not.
	always level = iota
	// loopback: refused unless AllowInsecure.
	loopback
	// internal: refused for secure vendors only; sinks may be cluster-internal.
	internal
)

func (p Policy) refuses(l level) bool {
	switch l {
	case always:
		return true
	case loopback:
		return !p.AllowInsecure
	default:
		return !p.AllowInsecure && !p.sink
	}
}

type rule struct {
	prefix netip.Prefix
	level  level
	desc   string
}

// rules is searched in order, so a specific address (the metadata IPs) comes before
// the range that contains it and names it more vaguely.
var rules = func() []rule {
	r := func(cidr string, l level, desc string) rule {
		return rule{netip.MustParsePrefix(cidr), l, desc}
	}
	return []rule{
		r("169.254.169.254/32", always, "the cloud metadata address"),
		r("fd00:ec2::254/128", always, "the AWS metadata address"),
		r("100.100.100.200/32", always, "the Alibaba Cloud metadata address"),
		r("168.63.129.16/32", always, "the Azure host (WireServer) address"),
		r("169.254.0.0/16", always, "a link-local address"),
		r("fe80::/10", always, "a link-local address"),
		r("0.0.0.0/32", always, "the unspecified address"),
		r("::/128", always, "the unspecified address"),
		r("0.0.0.0/8", always, "in 0.0.0.0/8 (\"this network\")"),
		r("224.0.0.0/4", always, "a multicast address"),
		r("ff00::/8", always, "a multicast address"),
		r("255.255.255.255/32", always, "the broadcast address"),
		r("127.0.0.0/8", loopback, "a loopback address"),
		r("::1/128", loopback, "a loopback address"),
		r("10.0.0.0/8", internal, "a private address (RFC 1918)"),
		r("172.16.0.0/12", internal, "a private address (RFC 1918)"),
		r("192.168.0.0/16", internal, "a private address (RFC 1918)"),
		r("100.64.0.0/10", internal, "a shared (CGNAT) address (RFC 6598)"),
		r("240.0.0.0/4", internal, "a reserved address (240.0.0.0/4)"),
		r("fc00::/7", internal, "a unique-local address (RFC 4193)"),
		r("fec0::/10", internal, "a site-local address"),
		r("64:ff9b:1::/48", internal, "a local-use NAT64 address (RFC 8215)"),
	}
}()

var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
	v4compat  = netip.MustParsePrefix("::/96")
)

// refusal returns why p refuses a, or "" when it does not.
func (p Policy) refusal(a netip.Addr) string {
	a = a.WithZone("")
	for _, r := range rules {
		if r.prefix.Contains(a) {
			if p.refuses(r.level) {
				return r.desc
			}
			break
		}
	}
	// Judge an IPv6 address that carries an IPv4 one by the IPv4 address too: the kernel
	// (mapped), a NAT64 gateway or a 6to4 relay may deliver it there.
	if v4, form := embeddedV4(a); form != "" {
		if why := p.refusal(v4); why != "" {
			return fmt.Sprintf("%s of %s, %s", form, v4, why)
		}
	}
	return ""
}

func embeddedV4(a netip.Addr) (netip.Addr, string) {
	if !a.Is6() {
		return netip.Addr{}, ""
	}
	b := a.As16()
	switch {
	case a.Is4In6():
		return a.Unmap(), "an IPv4-mapped form"
	case nat64.Contains(a):
		return netip.AddrFrom4([4]byte(b[12:])), "a NAT64 form"
	case sixToFour.Contains(a):
		return netip.AddrFrom4([4]byte(b[2:6])), "a 6to4 form"
	case v4compat.Contains(a) && a != netip.IPv6Unspecified() && a != netip.IPv6Loopback():
		return netip.AddrFrom4([4]byte(b[12:])), "an IPv4-compatible form"
	}
	return netip.Addr{}, ""
}

// checkAddr refuses an address that p does not allow; host is how it was written.
func (p Policy) checkAddr(host string, a netip.Addr) error {
	if why := p.refusal(a); why != "" {
		return &DeniedError{Host: host, Addr: a.WithZone("").String(), Reason: "is " + why}
	}
	return nil
}

// Names refused before any lookup. The dial-time check would catch what they resolve
// to; refusing the name gives a clearer message and covers /etc/hosts tricks.
var (
	metadataNames = map[string]bool{
		"metadata.google.internal":   true,
		"metadata.goog":              true,
		"instance-data.ec2.internal": true,
	}
	loopbackNames = map[string]bool{
		"localhost":             true,
		"localhost.localdomain": true,
		"ip6-localhost":         true,
		"ip6-loopback":          true,
	}
	internalSuffixes = []string{".local", ".localdomain", ".internal", ".svc", ".home.arpa", ".lan"}
)

// CheckURL checks raw before any I/O: the scheme (https for Vendor unless AllowInsecure;
// http or https otherwise), no userinfo, a host, and that the host is not a refused
// address or name in any spelling. Numeric hosts that are not a canonical dotted quad
// (2130706433, 0x7f000001, 0177.0.0.1, 127.1) are refused under every policy: resolvers
// disagree on what they mean, and no legitimate URL needs them.
func (p Policy) CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		// Not %v of err: url.Error quotes raw, query and all.
		return &DeniedError{Reason: "the URL is not valid"}
	}
	return p.checkURL(u)
}

func (p Policy) checkURL(u *url.URL) error {
	host := u.Hostname()
	switch u.Scheme {
	case "https":
	case "http":
		if !p.sink && !p.AllowInsecure {
			return &DeniedError{Host: host, Reason: "uses plain http; vendor URLs must be https (http is allowed only with --allow-insecure-vendor-urls)"}
		}
	default:
		return &DeniedError{Host: host, Reason: fmt.Sprintf("uses scheme %q; only http and https are allowed", u.Scheme)}
	}
	if u.User != nil {
		return &DeniedError{Host: host, Reason: "has userinfo in the URL, which is refused"}
	}
	if host == "" {
		return &DeniedError{Reason: "the URL has no host"}
	}
	return p.checkHost(host)
}

// CheckHost checks a host name or IP literal before any I/O, as CheckURL checks a URL's
// host: for destinations that are not URLs of http or https (a database's host).
func (p Policy) CheckHost(host string) error {
	if host == "" {
		return &DeniedError{Reason: "the address has no host"}
	}
	return p.checkHost(host)
}

func (p Policy) checkHost(host string) error {
	if a, err := netip.ParseAddr(host); err == nil {
		return p.checkAddr(host, a)
	}
	// net/http maps a non-ASCII host through IDNA before dialing, and IDNA turns
	// fullwidth digits and dots into ASCII (１２７.０.０.１ is 127.0.0.1), so judge the
	// name net/http will use.
	name := host
	if !isASCII(name) {
		ascii, err := idna.Lookup.ToASCII(name)
		if err != nil {
			return &DeniedError{Host: host, Reason: "is not a valid host name"}
		}
		if a, err := netip.ParseAddr(ascii); err == nil {
			return p.checkAddr(host, a)
		}
		name = ascii
	}
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	if !validName(name) {
		return &DeniedError{Host: host, Reason: "is not a valid host name"}
	}
	if endsInNumber(name) {
		return &DeniedError{Host: host, Reason: "is a numeric host that is not a dotted-quad IPv4 address"}
	}
	if metadataNames[name] {
		return &DeniedError{Host: host, Reason: "is a cloud metadata name"}
	}
	if (loopbackNames[name] || strings.HasSuffix(name, ".localhost")) && p.refuses(loopback) {
		return &DeniedError{Host: host, Reason: "is a loopback name"}
	}
	if !p.refuses(internal) {
		return nil
	}
	if !strings.Contains(name, ".") {
		return &DeniedError{Host: host, Reason: "is a single-label name, which resolves through cluster search domains"}
	}
	for _, s := range internalSuffixes {
		if strings.HasSuffix(name, s) {
			return &DeniedError{Host: host, Reason: "is an internal name (" + s + ")"}
		}
	}
	return nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// validName accepts lower-case DNS names (with underscores, which some real names use).
// Anything else, such as a "%zone" on an IPv4 address, is refused rather than guessed.
func validName(name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' && c != '_' {
				return false
			}
		}
	}
	return true
}

// endsInNumber is the WHATWG URL rule: a host whose last label is decimal or 0x-hex is
// an IPv4 address, in whatever shorthand inet_aton accepts. Reaching this check means
// it was not a canonical dotted quad.
func endsInNumber(name string) bool {
	last := name[strings.LastIndexByte(name, '.')+1:]
	digits := "0123456789"
	if strings.HasPrefix(last, "0x") {
		last, digits = last[2:], "0123456789abcdef"
		if last == "" {
			return true
		}
	}
	return strings.Trim(last, digits) == ""
}
