package stream_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/trailaudit/trail/internal/keyring"
	"github.com/trailaudit/trail/internal/stream"
)

func TestPolicyCheck(t *testing.T) {
	strict, loop, private := stream.Policy{}, stream.Policy{AllowLoopback: true}, stream.Policy{AllowPrivate: true}
	cases := []struct {
		ip                    string
		strict, loop, private bool // allowed under each policy
	}{
		{"93.184.215.14", true, true, true},
		{"2606:4700::6810:85e5", true, true, true},
		{"127.0.0.1", false, true, true},
		{"127.45.1.2", false, true, true},
		{"::1", false, true, true},
		{"::ffff:127.0.0.1", false, true, true}, // IPv4-mapped
		{"10.1.2.3", false, false, true},
		{"172.16.0.1", false, false, true},
		{"192.168.1.1", false, false, true},
		{"fd12:3456::1", false, false, true},
		{"169.254.10.1", false, false, true},
		{"fe80::1", false, false, true},
		{"100.64.0.1", false, false, true},
		{"169.254.169.254", false, false, false}, // metadata: always refused
		{"::ffff:169.254.169.254", false, false, false},
		{"fd00:ec2::254", false, false, false},
		{"100.100.100.200", false, false, false},
		{"168.63.129.16", false, false, false},
		{"0.0.0.0", false, false, false},
		{"::", false, false, false},
		{"224.0.0.1", false, false, false},
		{"255.255.255.255", false, false, false},
		{"240.0.0.1", false, false, false},
	}
	for _, c := range cases {
		ip := netip.MustParseAddr(c.ip)
		for _, p := range []struct {
			name string
			pol  stream.Policy
			want bool
		}{{"strict", strict, c.strict}, {"loopback", loop, c.loop}, {"private", private, c.private}} {
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
