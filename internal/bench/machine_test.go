package bench

import (
	"strings"
	"testing"
	"time"
)

func TestParseStolen(t *testing.T) {
	for _, tc := range []struct {
		name, stat string
		want       time.Duration
		ok         bool
	}{
		{"two cores", "cpu  1255981 7474 360051 1002082 38616 0 34990 68975 0 0\ncpu0 627990 3737 180025 501041 19308 0 17495 34487 0 0\n", 689750 * time.Millisecond, true},
		{"no steal yet", "cpu  10 0 5 100 0 0 0 0 0 0\n", 0, true},
		{"aggregate after other lines", "intr 12\ncpu  1 2 3 4 5 6 7 250\n", 2500 * time.Millisecond, true},
		{"kernel without the column", "cpu  1 2 3 4 5 6 7\n", 0, false},
		{"not a number", "cpu  1 2 3 4 5 6 7 x\n", 0, false},
		{"negative", "cpu  1 2 3 4 5 6 7 -3\n", 0, false},
		{"no cpu line", "cpu0 1 2 3 4 5 6 7 8\nintr 1\n", 0, false},
		{"empty", "", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseStolen(strings.NewReader(tc.stat))
			if got != tc.want || ok != tc.ok {
				t.Errorf("parseStolen = %v, %v; want %v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestMachineInTable(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    *Machine
		want string
	}{
		{"quiet", &Machine{StolenSeconds: 0.02, StolenShare: 0.001, Cores: 2}, "0.02s of CPU lent to other guests by the hypervisor (0.1 % of 2 cores)"},
		{"noisy", &Machine{StolenSeconds: 6, StolenShare: 0.3, Cores: 2}, "not comparable with quieter runs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			r := &Report{Mode: "ingest", Machine: tc.m}
			if err := r.WriteTable(&b); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(b.String(), tc.want) {
				t.Errorf("table:\n%s\nwant it to hold %q", b.String(), tc.want)
			}
			if tc.name == "quiet" && strings.Contains(b.String(), "not comparable") {
				t.Errorf("a quiet run is called not comparable:\n%s", b.String())
			}
		})
	}
}
