package stream_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/trailaudit/trail/internal/keyring"
	"github.com/trailaudit/trail/internal/stream"
)

func TestPolicyCheck(t *testing.T) {
	strict, loop, private := stream.Policy{}, stream.Policy{AllowLoopback: true}, stream.Policy{AllowPrivate: true}
	linkLocal, both := stream.Policy{AllowLinkLocal: true}, stream.Policy{AllowPrivate: true, AllowLinkLocal: true}
	cases := []struct {
		ip                                     string
		strict, loop, private, linkLocal, both bool // allowed under each policy
	}{
		{"93.184.215.14", true, true, true, true, true},
		{"2606:4700::6810:85e5", true, true, true, true, true},
		{"127.0.0.1", false, true, true, false, true},
		{"127.45.1.2", false, true, true, false, true},
		{"::1", false, true, true, false, true},
		{"::ffff:127.0.0.1", false, true, true, false, true}, // IPv4-mapped
		{"10.1.2.3", false, false, true, false, true},
		{"172.16.0.1", false, false, true, false, true},
		{"192.168.1.1", false, false, true, false, true},
		{"fd12:3456::1", false, false, true, false, true},
		{"100.64.0.1", false, false, true, false, true},
		{"192.0.0.8", false, false, true, false, true},
		// Link-local: only with its own flag.
		{"169.254.10.1", false, false, false, true, true},
		{"169.254.170.1", false, false, false, true, true},
		{"fe80::1", false, false, false, true, true},
		{"fe80::1%eth0", false, false, false, true, true},
		{"febf::1", false, false, false, true, true},
		// Metadata and credential endpoints: always refused.
		{"169.254.169.254", false, false, false, false, false},
		{"169.254.170.2", false, false, false, false, false},
		{"169.254.170.23", false, false, false, false, false},
		{"::ffff:169.254.169.254", false, false, false, false, false},
		{"fd00:ec2::254", false, false, false, false, false},
		{"fd00:ec2::23", false, false, false, false, false},
		{"100.100.100.200", false, false, false, false, false},
		{"168.63.129.16", false, false, false, false, false},
		// Not unicast.
		{"0.0.0.0", false, false, false, false, false},
		{"0.1.2.3", false, false, false, false, false},
		{"::", false, false, false, false, false},
		{"224.0.0.1", false, false, false, false, false},
		{"ff02::1", false, false, false, false, false},
		{"255.255.255.255", false, false, false, false, false},
		{"240.0.0.1", false, false, false, false, false},
		// IPv6 carrying IPv4: judged by the IPv4 address.
		{"::127.0.0.1", false, true, true, false, true}, // IPv4-compatible
		{"::10.0.0.1", false, false, true, false, true},
		{"::169.254.169.254", false, false, false, false, false},
		{"::a9fe:a9fe", false, false, false, false, false},
		{"::0.0.0.2", false, false, false, false, false},
		{"::93.184.215.14", true, true, true, true, true},
		{"::ffff:0:127.0.0.1", false, true, true, false, true}, // IPv4-translated
		{"::ffff:0:93.184.215.14", true, true, true, true, true},
		{"64:ff9b::7f00:1", false, true, true, false, true}, // NAT64 well-known
		{"64:ff9b::127.0.0.1", false, true, true, false, true},
		{"64:ff9b::a00:1", false, false, true, false, true},
		{"64:ff9b::c0a8:101", false, false, true, false, true},
		{"64:ff9b::a9fe:a9fe", false, false, false, false, false},
		{"64:ff9b::a9fe:aa02", false, false, false, false, false},
		{"64:ff9b::a9fe:101", false, false, false, true, true},
		{"64:ff9b::5db8:d70e", true, true, true, true, true},
		// NAT64 local-use: a private prefix, and with private addresses
		// allowed, every layout of RFC 6052 is read for link-local ones.
		{"64:ff9b:1::a00:1", false, false, true, false, true},
		{"64:ff9b:1::5db8:d70e", false, false, true, false, true},
		{"64:ff9b:1::a9fe:a9fe", false, false, false, false, false},       // /96 layout: 169.254.169.254
		{"64:ff9b:1:a9fe:a9:fe00::", false, false, false, false, false},   // /48 layout
		{"64:ff9b:1:a9:fe:a9fe::", false, false, false, false, false},     // /56 layout
		{"64:ff9b:1:0:a9:fea9:fe00:0", false, false, false, false, false}, // /64 layout
		{"64:ff9b:1::a9fe:101", false, false, false, false, true},
		{"2002:7f00:1::", false, true, true, false, true}, // 6to4
		{"2002:a9fe:a9fe::1", false, false, false, false, false},
		{"2002:c0a8:101:1::1", false, false, true, false, true},
		{"2002:5db8:d70e::1", true, true, true, true, true},
		{"2001:0:5db8:d70e:0:0:80ff:fffe", false, true, true, false, true},        // Teredo: client ^0x80fffffe = 127.0.0.1
		{"2001:0:5db8:d70e:0:0:f5ff:fffe", false, false, true, false, true},       // client 10.0.0.1
		{"2001:0:5db8:d70e:0:0:5601:5601", false, false, false, false, false},     // client 169.254.169.254
		{"2001:0:a00:1:0:0:a247:28f1", false, false, true, false, true},           // server 10.0.0.1, client public
		{"2001:0:5db8:d70e:0:0:a247:28f1", true, true, true, true, true},          // both public
		{"2001:0:5db8:d70e:8000:f227:3f57:fefe", false, false, true, false, true}, // client 192.168.1.1 (ports, flags set)
	}
	for _, c := range cases {
		ip := netip.MustParseAddr(c.ip)
		for _, p := range []struct {
			name string
			pol  stream.Policy
			want bool
		}{{"strict", strict, c.strict}, {"loopback", loop, c.loop}, {"private", private, c.private},
			{"link-local", linkLocal, c.linkLocal}, {"private+link-local", both, c.both}} {
			err := p.pol.Check(ip)
			if (err == nil) != p.want {
				t.Errorf("%s policy, %s: err = %v, want allowed=%v", p.name, c.ip, err, p.want)
			}
			if err != nil && !errors.Is(err, stream.ErrRefusedAddress) {
				t.Errorf("%s: error %v does not wrap ErrRefusedAddress", c.ip, err)
			}
		}
	}
}

// TestConfigRefusesEmbeddedIPv4: a destination URL or syslog address with
// an IPv6 literal that carries a refused IPv4 address is refused when the
// stream is configured, with the field named.
func TestConfigRefusesEmbeddedIPv4(t *testing.T) {
	keys, _ := keyring.Generate()
	codec := stream.NewCodec(stream.Policy{}, keys.Sealer(stream.SealPurpose))
	hosts := []string{"[64:ff9b::7f00:1]", "[64:ff9b::a9fe:a9fe]", "[64:ff9b:1::a00:1]", "[2002:7f00:1::]",
		"[::127.0.0.1]", "[::ffff:127.0.0.1]", "[2001:0:5db8:d70e:0:0:80ff:fffe]", "[fe80::1%25eth0]", "169.254.170.2"}
	for _, h := range hosts {
		for _, c := range []struct{ typ, config, field string }{
			{stream.TypeWebhook, `{"url":"https://` + h + `/hook","secret":"0123456789abcdef0123"}`, "config.url"},
			{stream.TypeSplunk, `{"url":"https://` + h + `:8088","token":"x"}`, "config.url"},
			{stream.TypeDatadog, `{"endpoint":"https://` + h + `/","api_key":"k"}`, "config.endpoint"},
			{stream.TypeS3, `{"bucket":"b-1","endpoint":"https://` + h + `","access_key_id":"a","secret_access_key":"b"}`, "config.endpoint"},
			{stream.TypeSyslog, `{"address":"` + strings.Replace(h, "%25", "%", 1) + `:6514"}`, "config.address"},
		} {
			_, err := codec.Parse(c.typ, []byte(c.config), nil)
			var ce *stream.ConfigError
			if !errors.As(err, &ce) || len(ce.Errors) != 1 || ce.Errors[0].Field != c.field || ce.Errors[0].Code != "forbidden_address" {
				t.Errorf("%s %s: err = %v, want a refusal of %s", c.typ, c.config, err, c.field)
			}
		}
	}
}

// TestFailureExcerpt: a destination's non-2xx answer comes back as the
// status code with its standard text and a short excerpt of the body on
// one printable line, never the destination's own reason phrase nor more
// of its body.
func TestFailureExcerpt(t *testing.T) {
	body := "\x1b[31mroot:x:0:0\r\nsecret-line-2 \u202e\u200b" + strings.Repeat("A", 500)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hj, ok := w.(http.Hijacker); ok {
			c, buf, _ := hj.Hijack()
			defer c.Close()
			fmt.Fprintf(buf, "HTTP/1.1 400 \x1b]0;reason phrase\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
			buf.Flush()
		}
	}))
	defer srv.Close()
	keys, _ := keyring.Generate()
	codec := stream.NewCodec(stream.Policy{AllowLoopback: true}, keys.Sealer(stream.SealPurpose))
	set, err := codec.Parse(stream.TypeWebhook, []byte(`{"url":"`+srv.URL+`","secret":"0123456789abcdef0123"}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = codec.Test(context.Background(), set, "org_1")
	if err == nil {
		t.Fatal("Test succeeded")
	}
	msg := err.Error()
	host := strings.TrimPrefix(srv.URL, "http://")
	want := host + " answered 400 Bad Request: [31mroot:x:0:0 secret-line-2 " + strings.Repeat("A", 64-len("[31mroot:x:0:0 secret-line-2 ")) + "…"
	if msg != want {
		t.Errorf("message\n%q\nwant\n%q", msg, want)
	}
}

func TestExcerpt(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"", 10, ""},
		{"  plain  ", 10, "plain"},
		{"a\r\n\tb", 10, "a b"},
		{"a\x00\x07\x1b\x7fb", 10, "a b"},
		{"a\u202eb\u200bc\ufeffd", 10, "a b c d"},
		{"a\xffb", 10, "a b"},
		{"abcdef", 3, "abc…"},
		{"abc def", 4, "abc…"},
		{"héllo wörld", 20, "héllo wörld"},
	} {
		if got := stream.Excerpt(c.in, c.n); got != c.want {
			t.Errorf("Excerpt(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}

// TestGuardChecksDialedAddress: a name that resolves to loopback
// ("localhost") passes configuration (names are not resolved then) but the
// dialer refuses the address it would connect to, as it would after a DNS
// rebinding.
func TestGuardChecksDialedAddress(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the guarded client reached a loopback server")
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	if _, err := (stream.Policy{}).Dialer().Dial("tcp", srv.Listener.Addr().String()); !errors.Is(err, stream.ErrRefusedAddress) {
		t.Errorf("Dial(loopback) = %v, want refused", err)
	}
	_, err := (stream.Policy{}).HTTPClient().Get("http://localhost:" + port + "/")
	if !errors.Is(err, stream.ErrRefusedAddress) {
		t.Errorf("GET http://localhost = %v, want refused", err)
	}
	// Through a destination: the refusal is permanent (the stream becomes
	// invalid, no retry loop).
	keys, _ := keyring.Generate()
	lenient := stream.NewCodec(stream.Policy{AllowLoopback: true}, keys.Sealer(stream.SealPurpose))
	strict := stream.NewCodec(stream.Policy{}, keys.Sealer(stream.SealPurpose))
	set, err := lenient.Parse(stream.TypeSplunk, []byte(`{"url":"https://localhost:`+port+`","token":"x"}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := strict.Open(set)
	if err != nil {
		t.Fatal(err)
	}
	var f *stream.Failure
	if err := d.Send(context.Background(), fixed); !errors.As(err, &f) || !f.Permanent || !errors.Is(err, stream.ErrRefusedAddress) {
		t.Errorf("Send to loopback under the strict policy = %v, want a permanent refusal", err)
	}
	// The S3 client dials through the same guard.
	set, err = lenient.Parse(stream.TypeS3, []byte(`{"bucket":"b-1","endpoint":"http://localhost:`+port+`","path_style":true,"access_key_id":"a","secret_access_key":"b"}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if d, err = strict.Open(set); err != nil {
		t.Fatal(err)
	}
	if err := d.Send(context.Background(), fixed); !errors.As(err, &f) || !f.Permanent || !errors.Is(err, stream.ErrRefusedAddress) {
		t.Errorf("S3 Send to loopback under the strict policy = %v, want a permanent refusal", err)
	}
}

// TestDialRefusesEmbeddedIPv4: the dialer refuses IPv6 addresses that carry
// a refused IPv4 address before connecting, as after a DNS answer that
// names one.
func TestDialRefusesEmbeddedIPv4(t *testing.T) {
	for _, addr := range []string{"[64:ff9b::7f00:1]:80", "[64:ff9b::a9fe:a9fe]:80", "[64:ff9b:1::a00:1]:80",
		"[2002:7f00:1::]:80", "[::127.0.0.1]:80", "[2001:0:5db8:d70e:0:0:80ff:fffe]:80", "[fe80::1]:80", "169.254.170.2:80"} {
		_, err := (stream.Policy{}).Dialer().Dial("tcp", addr)
		if !errors.Is(err, stream.ErrRefusedAddress) {
			t.Errorf("Dial(%s) = %v, want refused", addr, err)
		}
	}
}
