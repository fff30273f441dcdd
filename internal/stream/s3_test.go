package stream_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/trailaudit/trail/internal/stream"
)

// TestS3Compatible delivers to an S3-compatible server (gofakes3) with
// path-style addressing: one NDJSON object per batch under YYYY-MM-DD/,
// each PUT with a Content-MD5 that matches its body.
func TestS3Compatible(t *testing.T) {
	backend := s3mem.New()
	if err := backend.CreateBucket("audit-bucket"); err != nil {
		t.Fatal(err)
	}
	fake := gofakes3.New(backend).Server()
	var mu sync.Mutex
	var md5s []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			body, _ := io.ReadAll(r.Body)
			sum := md5.Sum(body)
			if got := r.Header.Get("Content-MD5"); got != base64.StdEncoding.EncodeToString(sum[:]) {
				http.Error(w, "Content-MD5 "+got+" does not match the body", 400)
				return
			}
			mu.Lock()
			md5s = append(md5s, r.Header.Get("Content-MD5"))
			mu.Unlock()
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		fake.ServeHTTP(w, r)
	}))
	defer srv.Close()
	c := newCodec(t)
	cfg := `{"bucket":"audit-bucket","region":"us-east-1","endpoint":"` + srv.URL + `","path_style":true,"prefix":"trail/",
		"access_key_id":"AKIDEXAMPLE","secret_access_key":"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}`
	d := openDest(t, c, stream.TypeS3, cfg)
	if err := d.Send(context.Background(), fixed); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if err := d.Send(context.Background(), many(2000)[3:]); err != nil {
		t.Fatalf("Send: %v", err)
	}
	objs, err := backend.ListBucket("audit-bucket", nil, gofakes3.ListBucketPage{})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range objs.Contents {
		keys = append(keys, o.Key)
	}
	want := stream.S3Key("trail/", fixed)
	if len(keys) != 2 || keys[0] != want || !strings.HasPrefix(keys[1], "trail/2026-11-2") {
		t.Fatalf("objects %v, want 2 starting with %s", keys, want)
	}
	obj, err := backend.GetObject("audit-bucket", want, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(obj.Contents)
	obj.Contents.Close()
	if !bytes.Equal(body, stream.WebhookBody(nil, fixed, true)) {
		t.Errorf("object body is not the batch's NDJSON:\n%s", body)
	}
	if len(md5s) != 2 {
		t.Errorf("%d PUTs carried Content-MD5, want 2", len(md5s))
	}

	// Wrong credentials (gofakes3 checks none) and a missing bucket: the
	// latter is a configuration error, not retried.
	missing := openDest(t, c, stream.TypeS3, strings.Replace(cfg, "audit-bucket", "no-such-bucket", 1))
	var f *stream.Failure
	if err := missing.Send(context.Background(), fixed); !asFailure(err, &f) || !f.Permanent {
		t.Errorf("Send to a missing bucket = %v, want a permanent failure", err)
	}
}

// TestS3VirtualHost addresses the bucket as a host name
// (audit-bucket.s3.test), as AWS does by default; a test transport sends
// every name to the local S3-compatible server, which routes by the Host
// header.
func TestS3VirtualHost(t *testing.T) {
	backend := s3mem.New()
	if err := backend.CreateBucket("audit-bucket"); err != nil {
		t.Fatal(err)
	}
	var hosts []string
	var mu sync.Mutex
	var fake http.Handler
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hosts = append(hosts, r.Host)
		mu.Unlock()
		fake.ServeHTTP(w, r)
	}))
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, srv.Listener.Addr().String())
	}}}
	c := newCodec(t)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	fake = gofakes3.New(backend, gofakes3.WithHostBucketBase("s3.test:"+port)).Server()
	srv.Start()
	set, err := c.Parse(stream.TypeS3, []byte(`{"bucket":"audit-bucket","endpoint":"http://s3.test:`+port+`",
		"access_key_id":"AKIDEXAMPLE","secret_access_key":"secret"}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := c.OpenWithClient(set, client)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Send(context.Background(), fixed); err != nil {
		t.Fatalf("Send: %v", err)
	}
	obj, err := backend.GetObject("audit-bucket", stream.S3Key("", fixed), nil)
	if err != nil {
		t.Fatalf("object not stored under its key: %v", err)
	}
	obj.Contents.Close()
	if len(hosts) != 1 || !strings.HasPrefix(hosts[0], "audit-bucket.s3.test:") {
		t.Errorf("requests went to hosts %v, want audit-bucket.s3.test (virtual-host style)", hosts)
	}
}

// TestS3FailureExcerpt: an S3 endpoint's error answer is quoted as its
// status, error code and a short sanitised excerpt of its message.
func TestS3FailureExcerpt(t *testing.T) {
	long := "internal-secret\r\n\u202e[2J " + strings.Repeat("B", 500)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>%s</Message><RequestId>r</RequestId></Error>`, long)
	}))
	defer srv.Close()
	c := newCodec(t)
	d := openDest(t, c, stream.TypeS3, `{"bucket":"b-1","region":"us-east-1","endpoint":"`+srv.URL+`","path_style":true,"access_key_id":"a","secret_access_key":"b"}`)
	err := d.Send(context.Background(), fixed)
	var f *stream.Failure
	if !asFailure(err, &f) || !f.Permanent {
		t.Fatalf("Send = %v, want a permanent failure", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "answered 403 Forbidden: AccessDenied (internal-secret [2J BBB") || strings.ContainsAny(msg, "\r\n\u202e") ||
		strings.Contains(msg, strings.Repeat("B", 100)) {
		t.Errorf("message %q", msg)
	}
}
