package access

import (
	"crypto/sha256"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/store"
)

func TestGenerate(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		secret, hash, prefix := Generate()
		if !strings.HasPrefix(secret, "sk_") || len(secret) != 43 {
			t.Fatalf("secret %q: want sk_ and 40 characters", secret)
		}
		if !WellFormedSecret(secret) {
			t.Fatalf("secret %q is not well formed", secret)
		}
		if hash != sha256.Sum256([]byte(secret)) || hash != HashSecret(secret) {
			t.Fatalf("hash of %q is not its SHA-256", secret)
		}
		if prefix != secret[:10] {
			t.Fatalf("prefix %q of %q: want the first 10 characters", prefix, secret)
		}
		if seen[secret] {
			t.Fatalf("secret %q generated twice", secret)
		}
		seen[secret] = true
	}
}

func TestGenerateUsesWholeAlphabet(t *testing.T) {
	counts := map[byte]int{}
	for range 500 {
		s, _, _ := Generate()
		for i := 3; i < len(s); i++ {
			counts[s[i]]++
		}
	}
	if len(counts) != 62 {
		t.Fatalf("20,000 characters used %d distinct symbols, want all 62", len(counts))
	}
}

func TestWellFormedSecret(t *testing.T) {
	good, _, _ := Generate()
	tests := []struct {
		in   string
		want bool
	}{
		{good, true},
		{"sk_" + strings.Repeat("a", 40), true},
		{"", false},
		{"sk_", false},
		{"sk_test_admin_0123456789abcdef", true},  // chosen with --bootstrap-key
		{"sk_" + strings.Repeat("a", 20), false},  // too short
		{"sk_" + strings.Repeat("a", 198), false}, // too long
		{"pk_" + strings.Repeat("a", 40), false},
		{"sk_" + strings.Repeat("a", 39) + " ", false},
		{"sk_" + strings.Repeat("a", 39) + "\"", false},
		{"sk_" + strings.Repeat("é", 20), false},
	}
	for _, tt := range tests {
		if got := WellFormedSecret(tt.in); got != tt.want {
			t.Errorf("WellFormedSecret(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestIDs(t *testing.T) {
	now := time.Date(2026, 11, 25, 18, 43, 9, 0, time.UTC)
	k1, k2 := NewKeyID(now), NewKeyID(now)
	if !strings.HasPrefix(k1, "key_") || len(k1) != 30 || k1 == k2 {
		t.Fatalf("key ids %q, %q: want distinct key_+ULID", k1, k2)
	}
	if k1 >= k2 {
		t.Fatalf("key ids made in one millisecond should sort in creation order: %q, %q", k1, k2)
	}
	o := NewOrganizationID(now)
	if !strings.HasPrefix(o, "org_") || len(o) != 30 {
		t.Fatalf("organization id %q: want org_+ULID", o)
	}
	later := NewOrganizationID(now.Add(time.Second))
	if later <= o {
		t.Fatalf("ids should sort by time: %q then %q", o, later)
	}
}

func TestParseScopes(t *testing.T) {
	tests := []struct {
		in      []string
		want    []string
		wantErr string
	}{
		{in: []string{"events:write"}, want: []string{"events:write"}},
		{in: []string{"admin", "events:read", "events:write", "exports"}, want: []string{"events:write", "events:read", "exports", "admin"}},
		{in: []string{"events:read", "events:read"}, want: []string{"events:read"}},
		{in: nil, wantErr: "at least one scope"},
		{in: []string{}, wantErr: "at least one scope"},
		{in: []string{"events:write", "events:delete"}, wantErr: `unknown scope "events:delete"`},
		{in: []string{"ADMIN"}, wantErr: `unknown scope "ADMIN"`},
		{in: []string{""}, wantErr: `unknown scope ""`},
	}
	for _, tt := range tests {
		got, err := ParseScopes(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrInvalidScopes) {
				t.Errorf("ParseScopes(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("ParseScopes(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestPrincipal(t *testing.T) {
	k := store.APIKey{ID: "key_1", Name: "backend", Scopes: []string{ScopeEventsWrite}, OrganizationID: "org_a"}
	p := FromKey(k)
	if p.ID != "key_1" || p.Name != "backend" || p.OrganizationID != "org_a" {
		t.Fatalf("FromKey = %+v", p)
	}
	admin := Principal{ID: "key_2", Scopes: []string{ScopeAdmin}}
	tests := []struct {
		name  string
		p     Principal
		scope string
		org   string
		can   bool
		sees  bool
	}{
		{"write key writes", p, ScopeEventsWrite, "org_a", true, true},
		{"write key cannot read", p, ScopeEventsRead, "org_a", false, true},
		{"restricted key does not see another org", p, ScopeEventsWrite, "org_b", true, false},
		{"admin implies read", admin, ScopeEventsRead, "org_b", true, true},
		{"admin implies exports", admin, ScopeExports, "org_system", true, true},
		{"admin is admin", admin, ScopeAdmin, "", true, true},
		{"no scopes", Principal{}, ScopeEventsRead, "org_a", false, true},
	}
	for _, tt := range tests {
		if got := tt.p.Can(tt.scope); got != tt.can {
			t.Errorf("%s: Can(%q) = %v, want %v", tt.name, tt.scope, got, tt.can)
		}
		if got := tt.p.CanAccessOrg(tt.org); got != tt.sees {
			t.Errorf("%s: CanAccessOrg(%q) = %v, want %v", tt.name, tt.org, got, tt.sees)
		}
	}
	if !p.Restricted() || admin.Restricted() {
		t.Errorf("Restricted: %v for %+v, %v for %+v", p.Restricted(), p, admin.Restricted(), admin)
	}
}

func TestValidOrganizationID(t *testing.T) {
	for _, tt := range []struct {
		id   string
		want bool
	}{
		{NewOrganizationID(time.Now()), true},
		{"org_01EHZNVPK3SFK441A1RGBFSHRT", true},
		{"org_7ZZZZZZZZZZZZZZZZZZZZZZZZZ", true},
		{"org_8ZZZZZZZZZZZZZZZZZZZZZZZZZ", false}, // past the ULID range
		{"org_01ehznvpk3sfk441a1rgbfshrt", false},
		{"org_01EHZNVPK3SFK441A1RGBFSHRU", false}, // U is not Crockford base32
		{"org_01EHZNVPK3SFK441A1RGBFSHR", false},
		{"org_system", false},
		{"01EHZNVPK3SFK441A1RGBFSHRT", false},
		{"", false},
	} {
		if got := ValidOrganizationID(tt.id); got != tt.want {
			t.Errorf("ValidOrganizationID(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
}
