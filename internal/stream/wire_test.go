package stream_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/keyring"
	"github.com/trailaudit/trail/internal/stream"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// fixed are three canonical records, as the store keeps them.
var fixed = []stream.Event{
	{OrganizationID: "org_01JTGOLDEN0000000000000001", Seq: 0, Record: []byte(`{"id":"evt_01JTGOLDEN0000000000000001","organization_id":"org_01JTGOLDEN0000000000000001","seq":0,"received_at":"2026-11-25T18:43:09.709Z","action":"user.signed_in","version":1,"occurred_at":"2026-11-25T18:43:09.000Z","actor":{"id":"user_1","type":"user","name":"Ada"},"targets":[{"id":"team_1","type":"team"}],"context":{"location":"203.0.113.7","user_agent":"curl/8"},"metadata":{}}`)},
	{OrganizationID: "org_01JTGOLDEN0000000000000001", Seq: 1, Record: []byte(`{"id":"evt_01JTGOLDEN0000000000000002","organization_id":"org_01JTGOLDEN0000000000000001","seq":1,"received_at":"2026-11-25T18:43:10.001Z","action":"team.renamed","version":1,"occurred_at":"2026-11-25T18:43:10.000Z","actor":{"id":"user_1","type":"user"},"targets":[],"context":{"location":"203.0.113.7"},"metadata":{"quote":"say \"hi\" <b>","n":1.50}}`)},
	{OrganizationID: "org_01JTGOLDEN0000000000000001", Seq: 2, Record: []byte(`{"id":"evt_01JTGOLDEN0000000000000003","organization_id":"org_01JTGOLDEN0000000000000001","seq":2,"received_at":"2026-11-26T00:00:00.000Z","action":"user.signed_out","version":1,"occurred_at":"2026-11-26T00:00:00.000Z","actor":{"id":"user_2","type":"user","name":"Zoë ✓"},"targets":[],"context":{"location":"::1"},"metadata":{}}`)},
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file:\n got: %s\nwant: %s", name, got, want)
	}
}

func TestWireFormats(t *testing.T) {
	var dd, hec bytes.Buffer
	stream.DatadogBody(&dd, fixed, "audit-logs", "trail", "env:test", "")
	stream.SplunkBody(&hec, fixed, "audit", "trail", "_json", "")
	var sys []byte
	for _, ev := range fixed {
		sys = stream.SyslogFrame(sys, stream.SyslogMessage(nil, ev, 13, "trail", "trail"))
	}
	secret := []byte("0123456789abcdef0123")
	body := stream.WebhookBody(nil, fixed, false)
	sig := stream.Sign(secret, 1764096189, body)
	cases := []struct {
		name string
		got  []byte
	}{
		{"webhook.json", body},
		{"webhook.ndjson", stream.WebhookBody(nil, fixed, true)},
		{"webhook.signature", []byte(sig + "\n")},
		{"datadog.json", dd.Bytes()},
		{"splunk.hec", hec.Bytes()},
		{"syslog.rfc5425", sys},
		{"s3.key", []byte(stream.S3Key("audit/", fixed) + "\n")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { golden(t, c.name, c.got) })
	}
	// Each format is valid on its own terms.
	var arr []json.RawMessage
	if err := json.Unmarshal(body, &arr); err != nil || len(arr) != 3 {
		t.Errorf("webhook body is not a JSON array of 3: %v", err)
	}
	var entries []struct{ Message, Service, Ddsource string }
	if err := json.Unmarshal(dd.Bytes(), &entries); err != nil || len(entries) != 3 || entries[1].Message != string(fixed[1].Record) {
		t.Errorf("datadog body: %v, %+v", err, entries)
	}
	dec := json.NewDecoder(&hec)
	for i := 0; ; i++ {
		var e struct {
			Time  float64         `json:"time"`
			Event json.RawMessage `json:"event"`
		}
		if err := dec.Decode(&e); err == io.EOF {
			if i != 3 {
				t.Errorf("splunk body has %d events, want 3", i)
			}
			break
		} else if err != nil {
			t.Fatalf("splunk body: %v", err)
		}
		if !bytes.Equal(e.Event, fixed[i].Record) || e.Time != float64(fixed[i].ReceivedAt().UnixMilli())/1000 {
			t.Errorf("splunk event %d: time %v, event %s", i, e.Time, e.Event)
		}
	}
	if !verifySignature(secret, sig, body, time.Unix(1764096189, 0)) {
		t.Errorf("the verification recipe rejects Trail's own signature")
	}
	if verifySignature(secret, sig, append(body, ' '), time.Unix(1764096189, 0)) {
		t.Errorf("the verification recipe accepts an altered body")
	}
}

// newCodec returns a codec that may reach loopback.
func newCodec(t testing.TB) *stream.Codec {
	keys, err := keyring.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return stream.NewCodec(stream.Policy{AllowLoopback: true}, keys.Sealer(stream.SealPurpose))
}

func openDest(t testing.TB, c *stream.Codec, typ, config string) stream.Destination {
	t.Helper()
	set, err := c.Parse(typ, []byte(config), nil)
	if err != nil {
		t.Fatalf("Parse(%s): %v", config, err)
	}
	d, err := c.Open(set)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// many returns n copies of the fixed records with consecutive seqs.
func many(n int) []stream.Event {
	out := make([]stream.Event, n)
	for i := range out {
		out[i] = fixed[i%3]
		out[i].Seq = int64(i)
	}
	return out
}

func TestDatadogReceiver(t *testing.T) {
	var mu sync.Mutex
	var got []int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v2/logs" || r.Header.Get("DD-API-KEY") != "dd-key-123" || r.Header.Get("Content-Encoding") != "gzip" ||
			r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad request "+r.URL.Path, http.StatusForbidden)
			return
		}
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, "not gzip", 400)
			return
		}
		raw, _ := io.ReadAll(zr)
		var entries []map[string]string
		if err := json.Unmarshal(raw, &entries); err != nil || len(raw) > 5<<20 {
			http.Error(w, "bad body", 400)
			return
		}
		for _, e := range entries {
			if e["service"] != "audit-logs" || e["ddsource"] != "trail" || !json.Valid([]byte(e["message"])) {
				http.Error(w, "bad entry", 400)
				return
			}
		}
		mu.Lock()
		got = append(got, len(entries))
		mu.Unlock()
		w.WriteHeader(202)
	}))
	defer srv.Close()
	c := newCodec(t)
	d := openDest(t, c, stream.TypeDatadog, `{"endpoint":"`+srv.URL+`","api_key":"dd-key-123"}`)
	if l := d.Limits(); l.MaxEvents != 1000 || l.MaxBytes > 5<<20 {
		t.Errorf("datadog limits %+v exceed 1000 entries, 5 MB", l)
	}
	for _, b := range [][]stream.Event{many(1000), many(3)} {
		if err := d.Send(context.Background(), b); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	if len(got) != 2 || got[0] != 1000 || got[1] != 3 {
		t.Errorf("receiver got batches %v, want [1000 3]", got)
	}
	bad := openDest(t, c, stream.TypeDatadog, `{"endpoint":"`+srv.URL+`","api_key":"wrong"}`)
	var f *stream.Failure
	if err := bad.Send(context.Background(), many(1)); !asFailure(err, &f) || !f.Permanent {
		t.Errorf("Send with a refused key = %v, want a permanent failure", err)
	}
}

func TestSplunkReceiver(t *testing.T) {
	var n int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/services/collector/event" {
			http.Error(w, `{"text":"not found","code":404}`, 404)
			return
		}
		if r.Header.Get("Authorization") != "Splunk hec-token" {
			w.WriteHeader(403)
			io.WriteString(w, `{"text":"Invalid token","code":4}`)
			return
		}
		dec := json.NewDecoder(r.Body)
		for {
			var e struct {
				Time       float64         `json:"time"`
				Source     string          `json:"source"`
				SourceType string          `json:"sourcetype"`
				Index      string          `json:"index"`
				Event      json.RawMessage `json:"event"`
			}
			if err := dec.Decode(&e); err == io.EOF {
				break
			} else if err != nil || e.Source != "trail" || e.SourceType != "_json" || e.Index != "audit" || e.Time == 0 {
				w.WriteHeader(400)
				io.WriteString(w, `{"text":"Invalid data format","code":6}`)
				return
			}
			n++
		}
		io.WriteString(w, `{"text":"Success","code":0}`)
	}))
	defer srv.Close()
	c := newCodec(t)
	d := openDest(t, c, stream.TypeSplunk, `{"url":"`+srv.URL+`","token":"hec-token","index":"audit"}`)
	if err := d.Send(context.Background(), many(500)); err != nil {
		t.Fatal(err)
	}
	if n != 500 {
		t.Errorf("HEC received %d events, want 500", n)
	}
	bad := openDest(t, c, stream.TypeSplunk, `{"url":"`+srv.URL+`","token":"nope","index":"audit"}`)
	var f *stream.Failure
	if err := bad.Send(context.Background(), many(1)); !asFailure(err, &f) || !f.Permanent || !strings.Contains(err.Error(), "Invalid token") {
		t.Errorf("Send with a bad token = %v, want a permanent failure quoting the answer", err)
	}
}

func TestWebhookReceiver(t *testing.T) {
	secret := []byte("0123456789abcdef0123")
	var got [][]byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !verifySignature(secret, r.Header.Get("Trail-Signature"), body, time.Now()) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		if r.Header.Get("X-Api-Key") != "custom-123" || r.Header.Get("Content-Type") != "application/x-ndjson" {
			http.Error(w, "missing headers", 400)
			return
		}
		got = append(got, bytes.Split(bytes.TrimSuffix(body, []byte("\n")), []byte("\n"))...)
		w.WriteHeader(200)
	}))
	defer srv.Close()
	c := newCodec(t)
	d := openDest(t, c, stream.TypeWebhook, `{"url":"`+srv.URL+`","format":"ndjson","secret":"0123456789abcdef0123","headers":{"X-Api-Key":"custom-123"}}`)
	if err := d.Send(context.Background(), fixed); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || !bytes.Equal(got[2], fixed[2].Record) {
		t.Errorf("receiver got %q", got)
	}
	wrong := openDest(t, c, stream.TypeWebhook, `{"url":"`+srv.URL+`","format":"ndjson","secret":"another-secret-0000000","headers":{"X-Api-Key":"custom-123"}}`)
	var f *stream.Failure
	if err := wrong.Send(context.Background(), fixed); !asFailure(err, &f) || !f.Permanent {
		t.Errorf("Send signed with another secret = %v, want refused (permanent)", err)
	}
}

func asFailure(err error, f **stream.Failure) bool {
	if err == nil {
		return false
	}
	return errorsAs(err, f)
}
