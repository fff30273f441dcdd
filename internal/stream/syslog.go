package stream

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Syslog: RFC 5424 messages over TCP or TLS (RFC 5425), framed by octet
// counting ("<length> <message>", RFC 5425 §4.3 and RFC 6587 §3.4.1).
// A message is
//
//	<110>1 2026-11-25T18:43:09.709Z trail trail - audit [trail@32473 id="evt_…" organization_id="org_…" seq="7"] {record}
//
// facility 13 (log audit), severity 6 (informational) by default; the
// timestamp is the event's received_at; the structured data repeats the id
// (to drop repeats), organization and seq; the message is the record.
// Syslog has no acknowledgement: a batch counts as delivered once written
// to the connection and flushed, and a connection error resends it whole.
// Receivers must accept messages as large as the largest record (rsyslog:
// $MaxMessageSize, default 8 KiB).

type syslogSettings struct {
	Address    string `json:"address"`             // host:port
	Transport  string `json:"transport,omitempty"` // "tls" (default) or "tcp"
	CAPEM      string `json:"ca_pem,omitempty"`    // PEM CA certificates to trust instead of the system's
	ServerName string `json:"server_name,omitempty"`
	Hostname   string `json:"hostname,omitempty"` // the HOSTNAME field, default "trail"
	AppName    string `json:"app_name,omitempty"` // the APP-NAME field, default "trail"
	Facility   *int   `json:"facility,omitempty"` // 0–23, default 13 (log audit)
}

func (s *syslogSettings) check(p Policy, errs *errList) {
	if s.Address == "" {
		errs.required("address", "the receiver's host:port")
	} else if host, port, err := net.SplitHostPort(s.Address); err != nil || host == "" || port == "" {
		errs.add("address", "invalid", "config.address must be host:port, not %q.", truncate(s.Address, 100))
	} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		errs.add("address", "invalid", "config.address has no valid port (1–65535).")
	} else if err := p.checkHost(host); err != nil {
		errs.add("address", "forbidden_address", "config.address: %v.", err)
	}
	switch s.Transport {
	case "":
		s.Transport = "tls"
	case "tls":
	case "tcp":
		if !p.insecureOK() {
			errs.add("transport", "invalid", "config.transport must be tls: audit events are not sent in clear text (the operator can allow tcp toward private addresses).")
		}
	default:
		errs.add("transport", "invalid", "config.transport must be tls or tcp, not %q.", truncate(s.Transport, 20))
	}
	if s.CAPEM != "" {
		if !x509.NewCertPool().AppendCertsFromPEM([]byte(s.CAPEM)) {
			errs.add("ca_pem", "invalid", "config.ca_pem holds no PEM certificate.")
		}
	}
	if s.Hostname == "" {
		s.Hostname = "trail"
	}
	if s.AppName == "" {
		s.AppName = "trail"
	}
	if !printUSASCII(s.Hostname, 255) {
		errs.add("hostname", "invalid", "config.hostname must be 1–255 printable ASCII characters without spaces.")
	}
	if !printUSASCII(s.AppName, 48) {
		errs.add("app_name", "invalid", "config.app_name must be 1–48 printable ASCII characters without spaces.")
	}
	if s.Facility == nil {
		f := 13
		s.Facility = &f
	} else if *s.Facility < 0 || *s.Facility > 23 {
		errs.add("facility", "invalid", "config.facility must be a syslog facility number from 0 to 23.")
	}
}

func printUSASCII(s string, n int) bool {
	if s == "" || len(s) > n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 33 || s[i] > 126 {
			return false
		}
	}
	return true
}

func (s *syslogSettings) redact() []string { return nil }

func (s *syslogSettings) open(e *env) (Destination, error) {
	d := &syslogDest{env: e, s: *s}
	if s.Transport == "tls" {
		host, _, _ := net.SplitHostPort(s.Address)
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
		if s.ServerName != "" {
			cfg.ServerName = s.ServerName
		}
		if s.CAPEM != "" {
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM([]byte(s.CAPEM))
			cfg.RootCAs = pool
		}
		d.tls = cfg
	}
	return d, nil
}

type syslogDest struct {
	env  *env
	s    syslogSettings
	tls  *tls.Config
	conn net.Conn
	w    *bufio.Writer
	msg  []byte
}

func (d *syslogDest) Limits() Limits { return Limits{MaxEvents: 500, MaxBytes: 1 << 20} }

// SyslogMessage appends the RFC 5424 message of ev (without framing).
func SyslogMessage(dst []byte, ev Event, facility int, hostname, appName string) []byte {
	dst = append(dst, '<')
	dst = strconv.AppendInt(dst, int64(facility*8+6), 10)
	dst = append(dst, ">1 "...)
	ts := ev.ReceivedAt()
	if ts.IsZero() {
		dst = append(dst, '-')
	} else {
		dst = ts.UTC().AppendFormat(dst, "2006-01-02T15:04:05.000Z")
	}
	dst = append(dst, ' ')
	dst = append(dst, hostname...)
	dst = append(dst, ' ')
	dst = append(dst, appName...)
	dst = append(dst, ` - audit [trail@32473 id="`...)
	dst = append(dst, sdEscape(ev.ID())...)
	dst = append(dst, `" organization_id="`...)
	dst = append(dst, sdEscape(ev.OrganizationID)...)
	dst = append(dst, `" seq="`...)
	dst = strconv.AppendInt(dst, ev.Seq, 10)
	dst = append(dst, `"] `...)
	return append(dst, ev.Record...)
}

// sdEscape escapes a structured-data parameter value (RFC 5424 §6.3.3).
func sdEscape(s string) string {
	if !strings.ContainsAny(s, `"\]`) {
		return s
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `]`, `\]`)
	return r.Replace(s)
}

// SyslogFrame appends msg with RFC 5425 octet-counting framing.
func SyslogFrame(dst, msg []byte) []byte {
	dst = strconv.AppendInt(dst, int64(len(msg)), 10)
	dst = append(dst, ' ')
	return append(dst, msg...)
}

func (d *syslogDest) connect(ctx context.Context) error {
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	conn, err := d.env.policy.guardedDial(dctx, d.s.Address)
	if err != nil {
		if dialRefused(err) {
			return &Failure{Permanent: true, Err: err}
		}
		return &Failure{Err: fmt.Errorf("couldn't connect to syslog receiver %s: %w", d.s.Address, err)}
	}
	if d.tls != nil {
		tc := tls.Client(conn, d.tls)
		if err := tc.HandshakeContext(dctx); err != nil {
			conn.Close()
			var verr *tls.CertificateVerificationError
			if errors.As(err, &verr) {
				return &Failure{Permanent: true, Err: fmt.Errorf("syslog receiver %s: TLS certificate not trusted: %w", d.s.Address, err)}
			}
			return &Failure{Err: fmt.Errorf("TLS handshake with syslog receiver %s: %w", d.s.Address, err)}
		}
		conn = tc
	}
	d.conn = conn
	d.w = bufio.NewWriterSize(conn, 64<<10)
	return nil
}

func (d *syslogDest) Send(ctx context.Context, batch []Event) error {
	if d.conn != nil && !d.alive() {
		d.Close()
	}
	if d.conn == nil {
		if err := d.connect(ctx); err != nil {
			return err
		}
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(sendTimeout)
	}
	d.conn.SetWriteDeadline(deadline)
	for _, ev := range batch {
		d.msg = SyslogMessage(d.msg[:0], ev, *d.s.Facility, d.s.Hostname, d.s.AppName)
		var n [20]byte
		d.w.Write(strconv.AppendInt(n[:0], int64(len(d.msg)), 10))
		d.w.WriteByte(' ')
		d.w.Write(d.msg)
	}
	if err := d.w.Flush(); err != nil {
		d.Close()
		return &Failure{Err: fmt.Errorf("couldn't write to syslog receiver %s: %w", d.s.Address, err)}
	}
	return nil
}

// alive reports whether the receiver has not closed the idle connection: a
// write to a connection the peer closed would succeed once and be lost.
func (d *syslogDest) alive() bool {
	var b [1]byte
	d.conn.SetReadDeadline(time.Now().Add(time.Millisecond))
	_, err := d.conn.Read(b[:])
	d.conn.SetReadDeadline(time.Time{})
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (d *syslogDest) Close() error {
	if d.conn == nil {
		return nil
	}
	err := d.conn.Close()
	d.conn, d.w = nil, nil
	return err
}
