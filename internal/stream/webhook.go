package stream

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
)

// Webhook: an HTTPS POST of each batch, as a JSON array of records
// (Content-Type application/json) or as NDJSON, one record a line
// (application/x-ndjson), signed with HMAC-SHA256:
//
//	Trail-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>
//
// The receiver recomputes the HMAC over the timestamp and the raw body,
// compares in constant time, and refuses timestamps older than a few minutes
// (replays). docs/STREAMS.md has the recipe.

type webhookSettings struct {
	URL     string            `json:"url"`
	Format  string            `json:"format,omitempty"`  // "json" (default) or "ndjson"
	Headers map[string]string `json:"headers,omitempty"` // values are secret (they often carry tokens)
	Secret  string            `json:"secret,omitempty"`  // HMAC key
}

// reservedHeaders cannot be set by a stream's configuration.
var reservedHeaders = map[string]bool{"Content-Type": true, "Content-Length": true, "Content-Encoding": true,
	"Host": true, "Trail-Signature": true, "User-Agent": true, "Transfer-Encoding": true, "Connection": true}

func (s *webhookSettings) check(p Policy, errs *errList) {
	if s.URL == "" {
		errs.required("url", "the https:// URL Trail POSTs batches to")
	} else {
		checkURL(p, "url", s.URL, errs)
	}
	switch s.Format {
	case "":
		s.Format = "json"
	case "json", "ndjson":
	default:
		errs.add("format", "invalid", "config.format must be json or ndjson, not %q.", truncate(s.Format, 40))
	}
	if len(s.Secret) < 16 {
		errs.add("secret", "required", "config.secret is required: at least 16 characters, the key of the Trail-Signature HMAC the receiver checks.")
	}
	if len(s.Headers) > 20 {
		errs.add("headers", "invalid", "config.headers may hold at most 20 headers.")
	}
	for k, v := range s.Headers {
		canon := textproto.CanonicalMIMEHeaderKey(k)
		switch {
		case k == "" || len(k) > 100 || strings.ContainsFunc(k, func(r rune) bool { return r <= ' ' || r >= 0x7f || strings.ContainsRune(`()<>@,;:\"/[]?={}`, r) }):
			errs.add("headers", "invalid", "config.headers: %q is not a valid header name.", truncate(k, 40))
		case reservedHeaders[canon]:
			errs.add("headers", "invalid", "config.headers: %s is set by Trail and cannot be configured.", canon)
		case len(v) > 4096 || strings.ContainsAny(v, "\r\n\x00"):
			errs.add("headers", "invalid", "config.headers: the value of %s must be one line of at most 4096 bytes.", canon)
		}
	}
}

func (s *webhookSettings) redact() []string {
	var names []string
	redactString(&s.Secret, "secret", &names)
	for k, v := range s.Headers {
		if v != "" {
			names = append(names, "headers."+k)
			s.Headers[k] = ""
		}
	}
	return names
}

func (s *webhookSettings) open(e *env) (Destination, error) {
	h := http.Header{}
	for k, v := range s.Headers {
		h.Set(k, v)
	}
	if s.Format == "ndjson" {
		h.Set("Content-Type", "application/x-ndjson")
	} else {
		h.Set("Content-Type", "application/json")
	}
	return &webhook{env: e, url: s.URL, ndjson: s.Format == "ndjson", secret: []byte(s.Secret), header: h}, nil
}

type webhook struct {
	env    *env
	url    string
	ndjson bool
	secret []byte
	header http.Header
	size   int // the last body's size, to allocate the next one
}

func (w *webhook) Limits() Limits { return Limits{MaxEvents: 1000, MaxBytes: 5 << 20} }

// WebhookBody is the body of one webhook delivery.
func WebhookBody(dst []byte, batch []Event, ndjson bool) []byte {
	if ndjson {
		for _, ev := range batch {
			dst = append(dst, ev.Record...)
			dst = append(dst, '\n')
		}
		return dst
	}
	dst = append(dst, '[')
	for i, ev := range batch {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, ev.Record...)
	}
	return append(dst, ']')
}

// Sign returns the Trail-Signature header value for body at unix time ts.
func Sign(secret []byte, ts int64, body []byte) string {
	t := strconv.FormatInt(ts, 10)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(t))
	mac.Write([]byte("."))
	mac.Write(body)
	return "t=" + t + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

func (w *webhook) Send(ctx context.Context, batch []Event) error {
	body := WebhookBody(make([]byte, 0, w.size+w.size/4), batch, w.ndjson)
	w.size = len(body)
	h := w.header.Clone()
	h.Set("Trail-Signature", Sign(w.secret, w.env.now().Unix(), body))
	return post(ctx, w.env, w.url, h, body)
}

func (w *webhook) Close() error { return nil }
