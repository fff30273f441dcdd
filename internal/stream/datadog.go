package stream

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
)

// Datadog: HTTP logs intake v2 (POST <site intake>/api/v2/logs, DD-API-KEY),
// a gzipped JSON array of log entries, at most 1,000 entries and 5 MB
// (uncompressed) a request. Each entry's message is the record, which
// Datadog parses as JSON, so the event's fields become log attributes.

// datadogSites maps Datadog sites to their logs intake.
var datadogSites = map[string]string{
	"us1":     "https://http-intake.logs.datadoghq.com",
	"us3":     "https://http-intake.logs.us3.datadoghq.com",
	"us5":     "https://http-intake.logs.us5.datadoghq.com",
	"eu1":     "https://http-intake.logs.datadoghq.eu",
	"ap1":     "https://http-intake.logs.ap1.datadoghq.com",
	"ap2":     "https://http-intake.logs.ap2.datadoghq.com",
	"us1-fed": "https://http-intake.logs.ddog-gov.com",
}

type datadogSettings struct {
	Site string `json:"site,omitempty"` // us1 (default), us3, us5, eu1, ap1, ap2, us1-fed
	// Endpoint replaces the site's intake (a proxy, or a test receiver).
	Endpoint string `json:"endpoint,omitempty"`
	Service  string `json:"service,omitempty"` // default "audit-logs"
	Source   string `json:"source,omitempty"`  // ddsource, default "trail"
	Tags     string `json:"tags,omitempty"`    // ddtags, e.g. "env:prod,team:sec"
	Hostname string `json:"hostname,omitempty"`
	APIKey   string `json:"api_key,omitempty"`
}

func (s *datadogSettings) check(p Policy, errs *errList) {
	if s.Site == "" {
		s.Site = "us1"
	}
	if _, ok := datadogSites[s.Site]; !ok {
		sites := make([]string, 0, len(datadogSites))
		for k := range datadogSites {
			sites = append(sites, k)
		}
		slices.Sort(sites)
		errs.add("site", "invalid", "config.site must be one of %s, not %q.", strings.Join(sites, ", "), truncate(s.Site, 40))
	}
	if s.Endpoint != "" {
		checkURL(p, "endpoint", s.Endpoint, errs)
	}
	if s.Service == "" {
		s.Service = "audit-logs"
	}
	if s.Source == "" {
		s.Source = "trail"
	}
	if s.APIKey == "" {
		errs.required("api_key", "a Datadog API key")
	}
	for field, v := range map[string]string{"service": s.Service, "source": s.Source, "tags": s.Tags, "hostname": s.Hostname} {
		if len(v) > 1000 {
			errs.add(field, "invalid", "config.%s must be at most 1000 characters.", field)
		}
	}
}

func (s *datadogSettings) redact() []string {
	var names []string
	redactString(&s.APIKey, "api_key", &names)
	return names
}

func (s *datadogSettings) open(e *env) (Destination, error) {
	base := datadogSites[s.Site]
	if s.Endpoint != "" {
		base = s.Endpoint
	}
	h := http.Header{}
	h.Set("DD-API-KEY", s.APIKey)
	h.Set("Content-Type", "application/json")
	h.Set("Content-Encoding", "gzip")
	return &datadog{env: e, url: strings.TrimSuffix(base, "/") + "/api/v2/logs", header: h, s: *s}, nil
}

type datadog struct {
	env    *env
	url    string
	header http.Header
	s      datadogSettings
	raw    bytes.Buffer // reused: only its compressed copy is sent
	zw     *gzip.Writer
}

// Room is left under Datadog's 5 MB for the envelope and the escaping of
// the record inside a JSON string.
func (d *datadog) Limits() Limits { return Limits{MaxEvents: 1000, MaxBytes: 3 << 20} }

// DatadogBody is the uncompressed body of one Datadog delivery.
func DatadogBody(dst *bytes.Buffer, batch []Event, service, source, tags, hostname string) {
	enc := json.NewEncoder(dst)
	enc.SetEscapeHTML(false)
	type entry struct {
		Source   string `json:"ddsource"`
		Tags     string `json:"ddtags,omitempty"`
		Hostname string `json:"hostname,omitempty"`
		Service  string `json:"service"`
		Message  string `json:"message"`
	}
	dst.WriteByte('[')
	for i, ev := range batch {
		if i > 0 {
			dst.WriteByte(',')
		}
		_ = enc.Encode(entry{Source: source, Tags: tags, Hostname: hostname, Service: service, Message: string(ev.Record)})
		dst.Truncate(dst.Len() - 1) // Encode's newline
	}
	dst.WriteByte(']')
}

func (d *datadog) Send(ctx context.Context, batch []Event) error {
	d.raw.Reset()
	DatadogBody(&d.raw, batch, d.s.Service, d.s.Source, d.s.Tags, d.s.Hostname)
	// A new buffer for each request: the transport may still read the
	// last one after it answered.
	zbuf := bytes.NewBuffer(make([]byte, 0, d.raw.Len()/4))
	if d.zw == nil {
		d.zw, _ = gzip.NewWriterLevel(zbuf, gzip.BestSpeed)
	} else {
		d.zw.Reset(zbuf)
	}
	d.zw.Write(d.raw.Bytes())
	d.zw.Close()
	return post(ctx, d.env, d.url, d.header, zbuf.Bytes())
}

func (d *datadog) Close() error { return nil }
