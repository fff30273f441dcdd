package stream

import (
	"context"
	"net/http"
	"sync"
)

// OpenWithClient opens a destination whose HTTP requests go through
// client (tests: a transport that sends every host name to a local server).
func (c *Codec) OpenWithClient(s *Settings, client *http.Client) (Destination, error) {
	e := c.env()
	return s.dest.open(&env{policy: e.policy, client: client, now: e.now})
}

// Look makes the engine look at the streams once, as Run does, with its
// workers running until ctx ends.
func (e *Engine) Look(ctx context.Context, wg *sync.WaitGroup) { e.sync(ctx, wg) }

// WakePending reports whether the engine has been woken since it last
// took a wake-up.
func (e *Engine) WakePending() bool { return len(e.wake) > 0 }

// TakeWake takes a pending wake-up, if any, as Run does before it looks.
func (e *Engine) TakeWake() {
	select {
	case <-e.wake:
	default:
	}
}
