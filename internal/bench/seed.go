package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/trailaudit/trail/internal/loadgen"
)

// seedBatch is the events of one seeding request.
const seedBatch = 500

// seed stores n events, spread over the last day, in batches of 500 spread
// over orgs, and returns the generator that made them.
//
// Seeding is the set-up of a run, not its measurement, so it behaves as a
// well-mannered client: a batch Trail refused for now (503 while its
// search index catches up, 429 over a rate limit: nothing of the batch was
// stored) is sent again after the Retry-After Trail asked for. Any other
// failure ends the seeding.
func seed(ctx context.Context, c *Client, runID string, orgs []string, n int64, live *loadgen.Counters) (*Events, error) {
	gen := NewEvents(runID, orgs, 0)
	gen.Spread, gen.End, gen.Total = 24*time.Hour, time.Now().Add(-time.Minute), n
	requests := (n + seedBatch - 1) / seedBatch
	var next atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	for range 4 {
		g.Go(func() error {
			for {
				i := next.Add(1) - 1
				if i >= requests {
					return nil
				}
				if live != nil {
					live.Sent.Add(1)
				}
				err := sendRetrying(gctx, c, gen.Batch(i*seedBatch, int(min(seedBatch, n-i*seedBatch))))
				if live != nil {
					live.Answered.Add(1)
				}
				if err != nil {
					if live != nil {
						live.Failed.Add(1)
					}
					return fmt.Errorf("seeding %d events: batch %d of %d: %w", n, i+1, requests, err)
				}
			}
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return gen, nil
}

// Bounds of the wait before a refused batch is sent again.
const (
	seedRetryDefault = time.Second      // when Trail named no delay
	seedRetryMax     = 30 * time.Second // whatever it named
)

// sendRetrying posts one batch until Trail stores it, waiting out
// refusals (retryable), and fails on anything else.
func sendRetrying(ctx context.Context, c *Client, body []byte) error {
	for {
		req, err := c.Request(http.MethodPost, "/v1/events/batch", nil, body)
		if err != nil {
			return err
		}
		res, err := c.HTTP.Do(req.WithContext(ctx))
		if err != nil {
			return err
		}
		msg, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		res.Body.Close()
		if res.StatusCode/100 == 2 {
			return nil
		}
		wait, ok := retryable(res)
		if !ok {
			return fmt.Errorf("HTTP %d: %s", res.StatusCode, msg)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// retryable says whether res refused a batch for now, and how long to
// wait before sending it again (Retry-After in seconds, bounded).
func retryable(res *http.Response) (time.Duration, bool) {
	if res.StatusCode != http.StatusServiceUnavailable && res.StatusCode != http.StatusTooManyRequests {
		return 0, false
	}
	wait := seedRetryDefault
	if s, err := strconv.Atoi(res.Header.Get("Retry-After")); err == nil && s >= 0 {
		wait = time.Duration(s) * time.Second
	}
	return min(max(wait, 100*time.Millisecond), seedRetryMax), true
}
