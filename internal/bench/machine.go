package bench

import (
	"bufio"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Machine is what the machine running the benchmark gave to others during
// a run. On a virtual machine the hypervisor lends its cores to other
// guests now and then (the kernel's "steal" time); a run that lost a
// share of its CPU that way measured less than the machine, and its
// rates compare with no other run's.
type Machine struct {
	// StolenSeconds is the CPU time, summed over every core, that the
	// hypervisor gave to other guests during the run.
	StolenSeconds float64 `json:"stolen_seconds"`
	// StolenShare is StolenSeconds over the run's length times Cores.
	StolenShare float64 `json:"stolen_share"`
	Cores       int     `json:"cores"`
}

// noisyShare is the share of stolen CPU above which a report says that
// its rates compare with no quieter run's.
const noisyShare = 0.05

// machineSpan measures stolen time between startMachine and stop.
type machineSpan struct {
	start time.Duration
	at    time.Time
	ok    bool
}

func startMachine() *machineSpan {
	d, ok := StolenCPU()
	return &machineSpan{start: d, at: time.Now(), ok: ok}
}

// stop returns what was stolen since startMachine; nil where the kernel
// does not say (no /proc/stat, or not Linux).
func (s *machineSpan) stop() *Machine {
	if !s.ok {
		return nil
	}
	d, ok := StolenCPU()
	if !ok || d < s.start {
		return nil
	}
	m := &Machine{StolenSeconds: (d - s.start).Seconds(), Cores: runtime.NumCPU()}
	if elapsed := time.Since(s.at).Seconds(); elapsed > 0 && m.Cores > 0 {
		m.StolenShare = m.StolenSeconds / (elapsed * float64(m.Cores))
	}
	return m
}

// StolenCPU is the CPU time, over every core, that the machine's
// hypervisor has given to other guests since boot; false where the kernel
// does not say.
func StolenCPU() (time.Duration, bool) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	return parseStolen(f)
}

// userHZ is the unit of /proc/stat's times: USER_HZ, 100 on every Linux
// architecture Go supports (proc(5)).
const userHZ = 100

// parseStolen reads the steal column (the eighth number) of the aggregate
// "cpu" line of /proc/stat's format (proc(5)). Kernels before 2.6.11 have
// no such column: false.
func parseStolen(r io.Reader) (time.Duration, bool) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] != "cpu" {
			continue
		}
		if len(f) < 9 {
			return 0, false
		}
		ticks, err := strconv.ParseUint(f[8], 10, 63)
		if err != nil {
			return 0, false
		}
		return time.Duration(ticks) * (time.Second / userHZ), true
	}
	return 0, false
}
