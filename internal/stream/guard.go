package stream

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// Policy says which addresses destinations may reach. By default only
// public unicast addresses: a stream configured by a tenant's admin must not
// become a way into the deployment's own network (server-side request
// forgery).
//
// An IPv6 address that carries an IPv4 address (IPv4-mapped and
// IPv4-compatible, NAT64, 6to4, Teredo) is judged by the IPv4 address too:
// on a network with a NAT64 gateway, 64:ff9b::7f00:1 reaches 127.0.0.1.
type Policy struct {
	// AllowLoopback allows 127.0.0.0/8 and ::1 (tests, a local relay).
	AllowLoopback bool
	// AllowPrivate allows loopback, private (RFC 1918, fc00::/7) and
	// shared (100.64.0.0/10) addresses: for an operator whose SIEM is on
	// an internal network. Link-local addresses stay refused: that is
	// where cloud credential endpoints live (169.254.169.254,
	// 169.254.170.2, 169.254.170.23, fd00:ec2::…).
	AllowPrivate bool
	// AllowLinkLocal allows 169.254.0.0/16 and fe80::/10, for an operator
	// whose receiver has only a link-local address. The known cloud
	// metadata addresses stay refused even then.
	AllowLinkLocal bool
}

// ErrRefusedAddress is returned (wrapped) when a destination resolves to an
// address the Policy refuses.
var ErrRefusedAddress = errors.New("destination address refused")

// RefusedError is an address the Policy refuses, and why. It wraps
// ErrRefusedAddress. Format and Args are the reason before its values were
// filled in: a stable key a user interface translates (the Admin Portal's
// catalogs), and the values of its verbs, one of which may be another
// RefusedError (the IPv4 address an IPv6 one carries).
type RefusedError struct {
	Format string
	Args   []any
}

func refused(format string, args ...any) *RefusedError {
	return &RefusedError{Format: format, Args: args}
}

// Reason is the reason alone, in English.
func (e *RefusedError) Reason() string {
	args := make([]any, len(e.Args))
	for i, a := range e.Args {
		if r, ok := a.(*RefusedError); ok {
			a = r.Reason()
		}
		args[i] = a
	}
	return fmt.Sprintf(e.Format, args...)
}

func (e *RefusedError) Error() string { return ErrRefusedAddress.Error() + ": " + e.Reason() }

func (e *RefusedError) Unwrap() error { return ErrRefusedAddress }

// metadata are cloud instance metadata and credential endpoints, refused
// whatever the policy: AWS/GCP/Azure/OpenStack (169.254.169.254), AWS
// IPv6, ECS task credentials (169.254.170.2), EKS Pod Identity
// (169.254.170.23, fd00:ec2::23), Alibaba, Azure's wire server.
var metadata = []netip.Addr{
	netip.MustParseAddr("169.254.169.254"),
	netip.MustParseAddr("169.254.170.2"),
	netip.MustParseAddr("169.254.170.23"),
	netip.MustParseAddr("fd00:ec2::254"),
	netip.MustParseAddr("fd00:ec2::23"),
	netip.MustParseAddr("100.100.100.200"),
	netip.MustParseAddr("168.63.129.16"),
}

var (
	thisNet    = netip.MustParsePrefix("0.0.0.0/8")
	shared     = netip.MustParsePrefix("100.64.0.0/10")
	ietf       = netip.MustParsePrefix("192.0.0.0/24")
	reserved   = netip.MustParsePrefix("240.0.0.0/4")
	linkLocal4 = netip.MustParsePrefix("169.254.0.0/16")
	linkLocal6 = netip.MustParsePrefix("fe80::/10")

	// IPv6 prefixes that carry an IPv4 address.
	compatible = netip.MustParsePrefix("::/96")           // IPv4-compatible (deprecated, RFC 4291)
	translated = netip.MustParsePrefix("::ffff:0:0:0/96") // IPv4-translated (RFC 2765)
	nat64      = netip.MustParsePrefix("64:ff9b::/96")    // NAT64 well-known prefix (RFC 6052)
	nat64Local = netip.MustParsePrefix("64:ff9b:1::/48")  // NAT64 local-use prefix (RFC 8215)
	sixToFour  = netip.MustParsePrefix("2002::/16")       // 6to4 (RFC 3056)
	teredo     = netip.MustParsePrefix("2001::/32")       // Teredo (RFC 4380)
)

// embedded returns the IPv4 addresses an IPv6 address carries, by the
// prefixes that define one. For the NAT64 local-use prefix, where the
// operator picks the prefix length, every position RFC 6052 allows is
// returned: Check refuses the address if any reading of it that names a
// host is refused.
func embedded(ip netip.Addr) []netip.Addr {
	if !ip.Is6() || ip.Is4In6() {
		return nil
	}
	b := ip.As16()
	v4 := func(a, b2, c, d byte) netip.Addr { return netip.AddrFrom4([4]byte{a, b2, c, d}) }
	switch {
	case compatible.Contains(ip):
		if ip.IsUnspecified() || ip.IsLoopback() {
			return nil // judged as they are
		}
		return []netip.Addr{v4(b[12], b[13], b[14], b[15])}
	case translated.Contains(ip), nat64.Contains(ip):
		return []netip.Addr{v4(b[12], b[13], b[14], b[15])}
	case nat64Local.Contains(ip):
		// Check refuses the prefix itself unless private addresses are
		// allowed; these readings then catch link-local and metadata.
		return []netip.Addr{
			v4(b[6], b[7], b[9], b[10]),    // /48
			v4(b[7], b[9], b[10], b[11]),   // /56
			v4(b[9], b[10], b[11], b[12]),  // /64
			v4(b[12], b[13], b[14], b[15]), // /96
		}
	case sixToFour.Contains(ip):
		return []netip.Addr{v4(b[2], b[3], b[4], b[5])}
	case teredo.Contains(ip):
		// The Teredo server, then the client (stored inverted).
		return []netip.Addr{v4(b[4], b[5], b[6], b[7]), v4(^b[12], ^b[13], ^b[14], ^b[15])}
	}
	return nil
}

// unicast reports whether ip may name one host.
func unicast(ip netip.Addr) bool {
	return !(ip.IsUnspecified() || ip.IsMulticast() || ip.IsInterfaceLocalMulticast() || reserved.Contains(ip) ||
		thisNet.Contains(ip) || ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}))
}

// Check reports whether ip may be dialed: a refusal is a *RefusedError.
func (p Policy) Check(ip netip.Addr) error {
	// Without its zone (fe80::1%eth0): prefixes never contain an address
	// with one.
	ip = ip.Unmap().WithZone("")
	local := nat64Local.Contains(ip)
	if local && !p.AllowPrivate {
		return refused("%s is a local-use NAT64 address; Trail only streams to public addresses unless the operator allows private ones (--streams-allow-private)", ip.String())
	}
	for _, v4 := range embedded(ip) {
		if local && !unicast(v4) {
			continue // not how this network embeds IPv4 addresses
		}
		if r := p.check(v4); r != nil {
			return refused("%v (%s carries the IPv4 address %s)", r, ip.String(), v4.String())
		}
	}
	if r := p.check(ip); r != nil {
		return r
	}
	return nil
}

// check is Check of one address; its refusal is a *RefusedError.
func (p Policy) check(ip netip.Addr) *RefusedError {
	for _, m := range metadata {
		if ip == m {
			return refused("%s is a cloud metadata address", ip.String())
		}
	}
	switch {
	case !ip.IsValid():
		return refused("not an IP address")
	case !unicast(ip):
		return refused("%s is not a unicast address", ip.String())
	case linkLocal4.Contains(ip), linkLocal6.Contains(ip):
		if p.AllowLinkLocal {
			return nil
		}
		return refused("%s is a link-local address; Trail only streams to public addresses unless the operator allows link-local ones (%s)", ip.String(), "--streams-allow-link-local")
	case ip.IsLoopback():
		if p.AllowLoopback || p.AllowPrivate {
			return nil
		}
		return refused("%s is a loopback address; Trail only streams to public addresses unless the operator allows loopback ones (%s)", ip.String(), "--streams-allow-private")
	case ip.IsPrivate(), shared.Contains(ip), ietf.Contains(ip):
		if p.AllowPrivate {
			return nil
		}
		return refused("%s is a private address; Trail only streams to public addresses unless the operator allows private ones (%s)", ip.String(), "--streams-allow-private")
	}
	return nil
}

// checkHost refuses a literal IP address (or "localhost") that the policy
// refuses, for a clear answer when a stream is configured; names are only
// checked when dialed.
func (p Policy) checkHost(host string) error {
	if ip, err := netip.ParseAddr(host); err == nil {
		return p.Check(ip)
	}
	if host == "localhost" || len(host) > 10 && host[len(host)-10:] == ".localhost" {
		return p.Check(netip.MustParseAddr("127.0.0.1"))
	}
	return nil
}

// insecureOK reports whether plain http:// (and syslog without TLS) may be
// used: only toward addresses the operator vouches for.
func (p Policy) insecureOK() bool { return p.AllowLoopback || p.AllowPrivate || p.AllowLinkLocal }

// Timeouts of every network call.
const (
	dialTimeout     = 10 * time.Second
	tlsTimeout      = 10 * time.Second
	responseTimeout = 30 * time.Second
	// sendTimeout bounds one whole Send (connect, upload, answer).
	sendTimeout = 60 * time.Second
)

// Dialer returns a dialer that checks every address it connects to — after
// name resolution, on the very address of the socket — against the policy.
func (p Policy) Dialer() *net.Dialer {
	return &net.Dialer{
		Timeout:   dialTimeout,
		KeepAlive: 30 * time.Second,
		Control: func(network, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return fmt.Errorf("%w: %s", ErrRefusedAddress, address)
			}
			ip, err := netip.ParseAddr(host)
			if err != nil {
				return fmt.Errorf("%w: %s", ErrRefusedAddress, address)
			}
			return p.Check(ip)
		},
	}
}

// HTTPClient returns the client destinations use: guarded dials, no proxy
// (a proxy would dial on Trail's behalf, unchecked), no redirects, and
// timeouts on every step.
func (p Policy) HTTPClient() *http.Client {
	d := p.Dialer()
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		TLSHandshakeTimeout:   tlsTimeout,
		ResponseHeaderTimeout: responseTimeout,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   8,
		ForceAttemptHTTP2:     true,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
	}
	return &http.Client{
		Transport: tr,
		Timeout:   sendTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// dialRefused reports whether err is the guard refusing an address.
func dialRefused(err error) bool { return errors.Is(err, ErrRefusedAddress) }

// guardedDial dials address over TCP with the policy's dialer.
func (p Policy) guardedDial(ctx context.Context, address string) (net.Conn, error) {
	return p.Dialer().DialContext(ctx, "tcp", address)
}
