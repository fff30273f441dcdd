package export

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestLinks(t *testing.T) {
	l := NewLinks([]byte("0123456789abcdef0123456789abcdef"))
	now := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)
	const id = "audit_log_export_01JDEXAMPLE0000000000000000"
	q, err := url.ParseQuery(l.Query(id, now.Add(LinkTTL)))
	if err != nil {
		t.Fatal(err)
	}
	exp, sig := q.Get("expires"), q.Get("signature")
	other := NewLinks([]byte("another key, another deployment!"))
	for _, tc := range []struct {
		name             string
		links            *Links
		id, expires, sig string
		at               time.Time
		want             error
	}{
		{"valid", l, id, exp, sig, now, nil},
		{"valid until the last second", l, id, exp, sig, now.Add(LinkTTL - time.Second), nil},
		{"expired", l, id, exp, sig, now.Add(LinkTTL), ErrLinkExpired},
		{"other export", l, id + "X", exp, sig, now, ErrLinkInvalid},
		{"expiry moved", l, id, exp + "0", sig, now, ErrLinkInvalid},
		{"other key", other, id, exp, sig, now, ErrLinkInvalid},
		{"signature cut", l, id, exp, sig[:len(sig)-2], now, ErrLinkInvalid},
		{"no signature", l, id, exp, "", now, ErrLinkInvalid},
		{"bad expiry", l, id, "soon", sig, now, ErrLinkInvalid},
		{"bad base64", l, id, exp, strings.Repeat("!", 43), now, ErrLinkInvalid},
	} {
		if err := tc.links.Check(tc.id, tc.expires, tc.sig, tc.at); !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Errorf("%s: Check = %v, want %v", tc.name, err, tc.want)
		}
	}
}

// FuzzLinkCheck checks links from outside (the download URL's query): no
// input panics, and only the signature made for this id and expiry passes.
func FuzzLinkCheck(f *testing.F) {
	l := NewLinks([]byte("0123456789abcdef0123456789abcdef"))
	now := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)
	q, _ := url.ParseQuery(l.Query("audit_log_export_1", now.Add(LinkTTL)))
	f.Add("audit_log_export_1", q.Get("expires"), q.Get("signature"))
	f.Add("audit_log_export_1", "-1", "")
	f.Add("", "99999999999999999999", "AAAA")
	f.Fuzz(func(t *testing.T, id, expires, sig string) {
		if err := l.Check(id, expires, sig, now); err == nil {
			want, _ := url.ParseQuery(l.Query(id, time.Unix(mustInt(expires), 0)))
			if want.Get("signature") != sig {
				t.Fatalf("Check accepted a signature it did not make: id %q expires %q sig %q", id, expires, sig)
			}
		}
	})
}

func mustInt(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}
