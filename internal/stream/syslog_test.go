package stream_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/stream"
)

func missing(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv("TRAIL_TEST_REQUIRE_ALL") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// rsyslog is a real rsyslogd (Debian's rsyslog and rsyslog-gnutls packages)
// listening with imtcp on a plain TCP port and a TLS port (gtls driver),
// writing every message it receives to a file.
type rsyslog struct {
	dir, out string
	tcpAddr  string
	tlsAddr  string
	caPEM    string
	log      func() string // what rsyslogd printed so far
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startRsyslog(t *testing.T) *rsyslog {
	bin, err := exec.LookPath("rsyslogd")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/rsyslogd"); serr == nil {
			bin = "/usr/sbin/rsyslogd"
		} else {
			missing(t, "rsyslogd is not installed (Debian: apt-get install rsyslog rsyslog-gnutls); ./scripts/test installs it")
		}
	}
	dir := t.TempDir()
	r := &rsyslog{dir: dir, out: filepath.Join(dir, "received.log"), tcpAddr: freePort(t), tlsAddr: freePort(t)}
	r.caPEM = writeCerts(t, dir)
	work := filepath.Join(dir, "work")
	os.Mkdir(work, 0o700)
	_, tcpPort, _ := net.SplitHostPort(r.tcpAddr)
	_, tlsPort, _ := net.SplitHostPort(r.tlsAddr)
	conf := fmt.Sprintf(`global(workDirectory=%[1]q maxMessageSize="256k"
  defaultNetstreamDriverCAFile=%[2]q defaultNetstreamDriverCertFile=%[3]q defaultNetstreamDriverKeyFile=%[4]q)
module(load="imtcp")
template(name="fields" type="string" string="%%hostname%% %%app-name%% %%msgid%% %%structured-data%% %%msg%%\n")
ruleset(name="received") { action(type="omfile" file=%[5]q template="fields") }
input(type="imtcp" address="127.0.0.1" port=%[6]q ruleset="received")
input(type="imtcp" address="127.0.0.1" port=%[7]q ruleset="received" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
`, work, filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), r.out, tcpPort, tlsPort)
	confPath := filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	r.log = logs.String
	cmd := exec.Command(bin, "-n", "-f", confPath, "-i", filepath.Join(dir, "rsyslogd.pid"))
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting rsyslogd: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	for _, addr := range []string{r.tcpAddr, r.tlsAddr} {
		deadline := time.Now().Add(30 * time.Second)
		for {
			c, err := net.Dial("tcp", addr)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("rsyslogd does not listen on %s: %v\n%s", addr, err, logs.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return r
}

// writeCerts writes a throwaway CA and a server certificate for 127.0.0.1
// into dir, and returns the CA's PEM.
func writeCerts(t *testing.T, dir string) string {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Trail test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	files := map[string][]byte{
		"ca.pem":   caPEM,
		"cert.pem": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		"key.pem":  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return string(caPEM)
}

// received waits until rsyslog wrote n lines, and returns them. The wait
// is generous: on a busy machine rsyslogd may take long to be scheduled.
func (r *rsyslog) received(t *testing.T, n int) []string {
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var lines []string
		if f, err := os.Open(r.out); err == nil {
			sc := bufio.NewScanner(f)
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				lines = append(lines, sc.Text())
			}
			f.Close()
		}
		if len(lines) >= n {
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("rsyslog wrote %d lines in three minutes, want %d; its log:\n%s", len(lines), n, r.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRsyslog(t *testing.T) {
	r := startRsyslog(t)
	c := newCodec(t)
	batch := many(300)
	tcp := openDest(t, c, stream.TypeSyslog, `{"address":"`+r.tcpAddr+`","transport":"tcp","hostname":"trail-test"}`)
	if err := tcp.Send(context.Background(), batch[:150]); err != nil {
		t.Fatalf("Send over TCP: %v", err)
	}
	tlsCfg := fmt.Sprintf(`{"address":%q,"transport":"tls","ca_pem":%q,"hostname":"trail-test"}`, r.tlsAddr, r.caPEM)
	tlsDest := openDest(t, c, stream.TypeSyslog, tlsCfg)
	if err := tlsDest.Send(context.Background(), batch[150:]); err != nil {
		t.Fatalf("Send over TLS: %v", err)
	}
	lines := r.received(t, 300)
	seqs := map[string]bool{}
	for _, l := range lines {
		// hostname app-name msgid structured-data msg
		if !strings.HasPrefix(l, `trail-test trail audit [trail@32473 id="evt_01JTGOLDEN`) {
			t.Fatalf("rsyslog parsed a message as %q", l)
		}
		sd := l[strings.Index(l, "[") : strings.Index(l, "]")+1]
		seqs[sd] = true
		msg := strings.TrimSpace(l[strings.Index(l, "] ")+2:])
		found := false
		for _, ev := range fixed {
			found = found || msg == string(ev.Record)
		}
		if !found {
			t.Fatalf("message is not a record: %q", msg)
		}
	}
	if len(seqs) != 300 {
		t.Errorf("%d distinct messages, want 300", len(seqs))
	}
	// A certificate from another CA is a configuration error.
	other := writeCerts(t, t.TempDir())
	bad := openDest(t, c, stream.TypeSyslog, fmt.Sprintf(`{"address":%q,"transport":"tls","ca_pem":%q}`, r.tlsAddr, other))
	var f *stream.Failure
	if err := bad.Send(context.Background(), fixed); !asFailure(err, &f) || !f.Permanent {
		t.Errorf("Send to a receiver with an untrusted certificate = %v, want a permanent failure", err)
	}
}

// syncBuffer collects a process's output, safe to read while it writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
