package portal

import (
	"strings"
	"testing"

	"github.com/trailaudit/trail/internal/store"
)

func TestRowsShowErasuresAndPolicies(t *testing.T) {
	for _, tt := range []struct {
		name, record string
		erased       string
		protected    bool
	}{
		{"tombstone", `{"id":"evt_1","organization_id":"org_a","seq":9,"received_at":"2026-01-02T03:04:05.000Z","action":"trail.erasure.completed","occurred_at":"2026-01-02T03:04:05.000Z","actor":{"id":"key_1","type":"api_key"},"targets":[{"id":"ers_1","type":"erasure"}],"context":{"location":"trail"},"metadata":{"erased_count":4,"erasure_id":"ers_1","seqs":"1-3,7"}}`,
			"4 records erased by request ers_1: seq 1–3, 7.", false},
		{"protected event", `{"id":"evt_2","organization_id":"org_a","seq":10,"received_at":"2026-01-02T03:04:05.000Z","action":"user.signed_in","occurred_at":"2026-01-02T03:04:05.000Z","actor":{"id":"hmac:v1:k:x","type":"user"},"targets":[],"context":{"location":"[redacted]"},"privacy":{"hashed":["actor.id"],"redacted":["context.location"]}}`,
			"", true},
		{"plain event", `{"id":"evt_3","organization_id":"org_a","seq":11,"received_at":"2026-01-02T03:04:05.000Z","action":"user.signed_in","occurred_at":"2026-01-02T03:04:05.000Z","actor":{"id":"u","type":"user"},"targets":[],"context":{"location":"x"}}`,
			"", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, err := (&Portal{}).rows([]store.StoredEvent{{OrganizationID: "org_a", ID: "evt", Record: []byte(tt.record)}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(out[0].Erased, tt.erased) || (tt.erased == "") != (out[0].Erased == "") || out[0].Protected != tt.protected {
				t.Errorf("row says erased %q, protected %v; want %q, %v", out[0].Erased, out[0].Protected, tt.erased, tt.protected)
			}
		})
	}
}
