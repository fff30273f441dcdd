package loadgen

import (
	"math/rand/v2"
	"slices"
	"time"
)

// DefaultMaxSamples is how many latencies a Samples keeps exactly by default
// (8 MiB): runs of up to a million requests report exact percentiles.
const DefaultMaxSamples = 1 << 20

// Samples collects latencies in bounded memory. Up to its capacity it keeps
// every one, so percentiles are exact; beyond, it keeps a uniform random
// sample of them (reservoir sampling, Vitter's algorithm R), so percentiles
// are estimates while the count, the minimum and the maximum stay exact. It
// is not safe for concurrent use: keep one per goroutine and Merge them.
type Samples struct {
	max    int
	n      int64 // latencies seen
	min    time.Duration
	top    time.Duration
	kept   []time.Duration
	sorted bool
	rng    *rand.Rand
}

// NewSamples returns a Samples that keeps at most max latencies exactly
// (DefaultMaxSamples when max ≤ 0).
func NewSamples(max int) *Samples {
	if max <= 0 {
		max = DefaultMaxSamples
	}
	return &Samples{max: max}
}

// Add records one latency.
func (s *Samples) Add(d time.Duration) {
	if s.max <= 0 {
		s.max = DefaultMaxSamples
	}
	s.n++
	if s.n == 1 || d < s.min {
		s.min = d
	}
	s.top = max(s.top, d)
	s.sorted = false
	if len(s.kept) < s.max {
		s.kept = append(s.kept, d)
		return
	}
	if s.rng == nil {
		s.rng = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	if j := s.rng.Int64N(s.n); j < int64(s.max) {
		s.kept[j] = d
	}
}

// Merge adds the latencies o saw. When either side has dropped some, what
// is kept of each is weighed by how many it saw, so the result is still a
// uniform sample.
func (s *Samples) Merge(o *Samples) {
	if o == nil || o.n == 0 {
		return
	}
	if s.max <= 0 {
		s.max = DefaultMaxSamples
	}
	if s.n == 0 || o.min < s.min {
		s.min = o.min
	}
	s.top = max(s.top, o.top)
	s.sorted = false
	total := s.n + o.n
	if int64(len(s.kept))+int64(len(o.kept)) <= int64(s.max) && s.Exact() && o.Exact() {
		s.kept = append(s.kept, o.kept...)
		s.n = total
		return
	}
	// Take from each side in proportion to the latencies it stands for.
	if s.rng == nil {
		s.rng = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	mine := min(len(s.kept), int(float64(s.max)*float64(s.n)/float64(total)+0.5))
	theirs := min(len(o.kept), s.max-mine)
	s.rng.Shuffle(len(s.kept), func(i, j int) { s.kept[i], s.kept[j] = s.kept[j], s.kept[i] })
	s.kept = s.kept[:mine]
	other := slices.Clone(o.kept)
	s.rng.Shuffle(len(other), func(i, j int) { other[i], other[j] = other[j], other[i] })
	s.kept = append(s.kept, other[:theirs]...)
	s.n = total
}

// Count is the number of latencies added.
func (s *Samples) Count() int64 { return s.n }

// Exact reports whether every latency added was kept, so that percentiles
// are exact rather than estimated from a sample.
func (s *Samples) Exact() bool { return int64(len(s.kept)) == s.n }

// Max is the largest latency added (exact even when sampling).
func (s *Samples) Max() time.Duration { return s.top }

// Min is the smallest latency added (exact even when sampling).
func (s *Samples) Min() time.Duration { return s.min }

// Percentile returns the p-th percentile (0 < p ≤ 100) by the nearest-rank
// method; 100 is the maximum. It is 0 when nothing was added.
func (s *Samples) Percentile(p float64) time.Duration {
	if len(s.kept) == 0 {
		return 0
	}
	if p >= 100 {
		return s.top
	}
	s.sort()
	i := int(float64(len(s.kept))*p/100+0.5) - 1
	return s.kept[min(max(i, 0), len(s.kept)-1)]
}

// Sorted returns the kept latencies in increasing order. The slice is the
// Samples' own: do not change it.
func (s *Samples) Sorted() []time.Duration {
	s.sort()
	return s.kept
}

func (s *Samples) sort() {
	if !s.sorted {
		slices.Sort(s.kept)
		s.sorted = true
	}
}
