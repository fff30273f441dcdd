package portal

import (
	"context"
	"html"
	"strings"
	"testing"
	"time"
)

type fakeWitnesses []WitnessState

func (f fakeWitnesses) WitnessStates(ctx context.Context, org string) ([]WitnessState, error) {
	return f, nil
}
func (f fakeWitnesses) Quorum() int { return 2 }

// The integrity page lists the witnesses, what each last cosigned, and the
// verify command that requires their cosignatures.
func TestIntegrityWitnesses(t *testing.T) {
	for _, tt := range []struct {
		name      string
		witnesses Witnesses
		want      []string
		not       []string
	}{
		{"no witnesses configured", nil, []string{"Latest checkpoint"}, []string{"Witnesses", "--quorum"}},
		{"two witnesses", fakeWitnesses{
			{Name: "w1.example", Key: "w1.example+01020304+BAAA", Size: 1234, At: time.Unix(1_700_000_000, 0).UTC()},
			{Name: "w2.example", Key: "w2.example+05060708+BBBB"},
		}, []string{"Witnesses", "w1.example", "1,234 events", "2023-11-14 22:13:20 UTC", "not yet",
			"--witness w1.example+01020304+BAAA --witness w2.example+05060708+BBBB --quorum 2"}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.p.cfg.Witnesses = tt.witnesses
			e.org("org_a", "Acme")
			c := e.client()
			c.open("org_a")
			res := c.get("/portal/integrity")
			if res.status != 200 {
				t.Fatalf("integrity: %d", res.status)
			}
			res.body = html.UnescapeString(res.body)
			for _, w := range tt.want {
				if !strings.Contains(res.body, w) {
					t.Errorf("page lacks %q", w)
				}
			}
			for _, w := range tt.not {
				if strings.Contains(res.body, w) {
					t.Errorf("page has %q", w)
				}
			}
		})
	}
}
