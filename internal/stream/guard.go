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
type Policy struct {
	// AllowLoopback allows 127.0.0.0/8 and ::1 (tests, a local relay).
	AllowLoopback bool
	// AllowPrivate allows loopback, private (RFC 1918, fc00::/7),
	// link-local and shared (100.64.0.0/10) addresses: for an operator
	// whose SIEM is on an internal network. Cloud metadata endpoints stay
	// refused even then.
	AllowPrivate bool
}

// ErrRefusedAddress is returned (wrapped) when a destination resolves to an
// address the Policy refuses.
var ErrRefusedAddress = errors.New("destination address refused")

// metadata are cloud instance metadata endpoints, refused whatever the
// policy: AWS/GCP/Azure/OpenStack (169.254.169.254), AWS IPv6, Alibaba,
// Azure's wire server.
var metadata = []netip.Addr{
	netip.MustParseAddr("169.254.169.254"),
	netip.MustParseAddr("fd00:ec2::254"),
	netip.MustParseAddr("100.100.100.200"),
	netip.MustParseAddr("168.63.129.16"),
}

var (
	shared   = netip.MustParsePrefix("100.64.0.0/10")
	ietf     = netip.MustParsePrefix("192.0.0.0/24")
	reserved = netip.MustParsePrefix("240.0.0.0/4")
)

// Check reports whether ip may be dialed.
func (p Policy) Check(ip netip.Addr) error {
	ip = ip.Unmap()
	refuse := func(kind string) error {
		return fmt.Errorf("%w: %s is a %s address; Trail only streams to public addresses unless the operator allows private ones (--streams-allow-private)", ErrRefusedAddress, ip, kind)
	}
	for _, m := range metadata {
		if ip == m {
			return fmt.Errorf("%w: %s is a cloud metadata address", ErrRefusedAddress, ip)
		}
	}
	switch {
	case !ip.IsValid():
		return fmt.Errorf("%w: not an IP address", ErrRefusedAddress)
	case ip.IsUnspecified(), ip.IsMulticast(), ip.IsInterfaceLocalMulticast(), reserved.Contains(ip),
		ip == netip.MustParseAddr("255.255.255.255"):
		return refuse("non-unicast")
	case ip.IsLoopback():
		if p.AllowLoopback || p.AllowPrivate {
			return nil
		}
		return refuse("loopback")
	case ip.IsPrivate(), ip.IsLinkLocalUnicast(), shared.Contains(ip), ietf.Contains(ip):
		if p.AllowPrivate {
			return nil
		}
		return refuse("private or link-local")
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
func (p Policy) insecureOK() bool { return p.AllowLoopback || p.AllowPrivate }

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
