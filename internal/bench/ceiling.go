package bench

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"time"
)

// CeilingHandler is the no-storage HTTP ceiling: it decodes each request's
// JSON body, as any JSON API must, and answers 200 without storing
// anything. What a server does beyond it is the cost of what it does with
// the event; for single events over HTTP it is the limit that matters.
func CeilingHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"success":true}`))
	})
}

// ServeCeiling serves CeilingHandler on ln until ctx ends.
func ServeCeiling(ctx context.Context, ln net.Listener) error {
	return ServeHandler(ctx, ln, CeilingHandler())
}

// ProcessCPU is a process's user and system CPU time so far (Linux:
// /proc/PID/stat), and false where it is unknown.
func ProcessCPU(pid int) (time.Duration, bool) {
	const ticksPerSecond = 100 // USER_HZ on Linux
	t := cpuTicks(pid)
	if t < 0 {
		return 0, false
	}
	return time.Duration(t) * time.Second / ticksPerSecond, true
}
