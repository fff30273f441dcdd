package api

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiter is a token bucket per API key. It forgets keys idle for a while,
// so its memory stays bounded by the keys in recent use.
type limiter struct {
	limit rate.Limit
	burst int

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// idleAfter is how long an unused bucket is kept. It is long enough for any
// bucket to have refilled (burst/rate), so forgetting it grants nothing.
const idleAfter = time.Minute

func newLimiter(perSecond float64, burst int) *limiter {
	if burst <= 0 {
		burst = max(1, int(math.Ceil(perSecond)))
	}
	return &limiter{limit: rate.Limit(perSecond), burst: burst, buckets: map[string]*bucket{}}
}

// allow takes a token for keyID; when there is none it says how many whole
// seconds to wait before retrying.
func (l *limiter) allow(keyID string, now time.Time) (ok bool, retryAfter int) {
	l.mu.Lock()
	b := l.buckets[keyID]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(l.limit, l.burst)}
		l.buckets[keyID] = b
	}
	b.seen = now
	if now.Sub(l.lastSweep) > idleAfter {
		l.lastSweep = now
		for id, o := range l.buckets {
			if now.Sub(o.seen) > idleAfter && (o.lim.TokensAt(now) >= float64(l.burst)) {
				delete(l.buckets, id)
			}
		}
	}
	l.mu.Unlock()

	if b.lim.AllowN(now, 1) {
		return true, 0
	}
	r := b.lim.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	r.CancelAt(now)
	return false, max(1, int(math.Ceil(wait.Seconds())))
}
