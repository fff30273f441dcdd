package stream

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// Splunk: HTTP Event Collector, POST <url>/services/collector/event with
// Authorization: Splunk <token>; a batch is HEC event objects one after the
// other, {"time":…,"host":…,"source":…,"sourcetype":"_json","index":…,
// "event":<record>}, at most 1 MB a request (Splunk Cloud's limit).

type splunkSettings struct {
	URL        string `json:"url"` // e.g. https://splunk.example.com:8088
	Index      string `json:"index,omitempty"`
	Source     string `json:"source,omitempty"`     // default "trail"
	SourceType string `json:"sourcetype,omitempty"` // default "_json"
	Host       string `json:"host,omitempty"`
	Token      string `json:"token,omitempty"`
}

func (s *splunkSettings) check(p Policy, errs *errList) {
	if s.URL == "" {
		errs.required("url", "the HTTP Event Collector's base URL, e.g. https://splunk.example.com:8088")
	} else if u := checkURL(p, "url", s.URL, errs); u != nil && strings.Contains(u.Path, "/services/collector") {
		errs.add("url", "invalid", "config.url is the collector's base URL, without /services/collector…; Trail adds the path.")
	}
	if s.Source == "" {
		s.Source = "trail"
	}
	if s.SourceType == "" {
		s.SourceType = "_json"
	}
	if s.Token == "" {
		errs.required("token", "an HTTP Event Collector token")
	}
	for field, v := range map[string]string{"index": s.Index, "source": s.Source, "sourcetype": s.SourceType, "host": s.Host} {
		if len(v) > 200 {
			errs.add(field, "invalid", "config.%s must be at most 200 characters.", field)
		}
	}
}

func (s *splunkSettings) redact() []string {
	var names []string
	redactString(&s.Token, "token", &names)
	return names
}

func (s *splunkSettings) open(e *env) (Destination, error) {
	h := http.Header{}
	h.Set("Authorization", "Splunk "+s.Token)
	h.Set("Content-Type", "application/json")
	return &splunk{env: e, url: strings.TrimSuffix(s.URL, "/") + "/services/collector/event", header: h, s: *s}, nil
}

type splunk struct {
	env    *env
	url    string
	header http.Header
	s      splunkSettings
	size   int // the last body's size, to allocate the next one
}

func (d *splunk) Limits() Limits { return Limits{MaxEvents: 1000, MaxBytes: 900 << 10} }

// SplunkBody is the body of one HEC delivery.
func SplunkBody(dst *bytes.Buffer, batch []Event, index, source, sourcetype, host string) {
	meta := func(k, v string) {
		if v != "" {
			b, _ := json.Marshal(v)
			dst.WriteString(`,"` + k + `":`)
			dst.Write(b)
		}
	}
	for _, ev := range batch {
		t := ev.ReceivedAt()
		dst.WriteString(`{"time":`)
		dst.WriteString(strconv.FormatInt(t.Unix(), 10) + "." + strconv.FormatInt(int64(t.Nanosecond()/1e6)+1000, 10)[1:])
		meta("host", host)
		meta("source", source)
		meta("sourcetype", sourcetype)
		meta("index", index)
		dst.WriteString(`,"event":`)
		dst.Write(ev.Record)
		dst.WriteString("}\n")
	}
}

func (d *splunk) Send(ctx context.Context, batch []Event) error {
	// A new buffer for each request: the transport may still read the
	// last one after it answered.
	buf := bytes.NewBuffer(make([]byte, 0, d.size+d.size/4))
	SplunkBody(buf, batch, d.s.Index, d.s.Source, d.s.SourceType, d.s.Host)
	d.size = buf.Len()
	return post(ctx, d.env, d.url, d.header, buf.Bytes())
}

func (d *splunk) Close() error { return nil }
