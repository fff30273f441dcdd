package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// EmbeddedOptions start a private trail serve for a benchmark.
type EmbeddedOptions struct {
	// Executable is the trail binary to run (`trail serve`).
	Executable string
	// Data is the data directory; "" means a new temporary one, removed
	// by Stop. A given directory is kept.
	Data string
	// Key is the bootstrap admin key; "" means a random one. It only takes
	// effect when the data directory is new.
	Key string
	// Args are extra flags for trail serve.
	Args []string
}

// Embedded is a trail serve process the benchmark started and stops.
type Embedded struct {
	URL        string
	MetricsURL string // the operator listener, where /metrics is
	Key        string
	Data       string

	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
	logs    *tail
	tmp     bool
	peak    int64
	// peakReset: ResetPeakRSS was called, so the exit's resource usage
	// (the peak of the whole life) no longer says anything.
	peakReset bool
}

// StartEmbedded runs `trail serve` on a loopback port of its own and waits
// until it says it is listening.
func StartEmbedded(ctx context.Context, opts EmbeddedOptions) (*Embedded, error) {
	e := &Embedded{Key: opts.Key, Data: opts.Data, done: make(chan struct{}), logs: &tail{max: 16 << 10}}
	if e.Key == "" {
		var b [16]byte
		rand.Read(b[:])
		e.Key = "sk_bench_" + hex.EncodeToString(b[:])
	}
	if e.Data == "" {
		dir, err := os.MkdirTemp("", "trail-bench-")
		if err != nil {
			return nil, fmt.Errorf("couldn't create a data directory for the embedded server: %w", err)
		}
		e.Data, e.tmp = dir, true
	}
	args := append([]string{"serve", "--data", e.Data, "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
		"--log-format", "json", "--log-level", "warn", "--shutdown-delay", "0s"}, opts.Args...) // no load balancer to drain
	e.cmd = exec.Command(opts.Executable, args...)
	e.cmd.Env = append(os.Environ(), "TRAIL_BOOTSTRAP_KEY="+e.Key) // not in ps
	e.cmd.Stderr = e.logs
	detach(e.cmd)
	stdout, err := e.cmd.StdoutPipe()
	if err != nil {
		e.cleanup()
		return nil, fmt.Errorf("couldn't start the embedded server: %w", err)
	}
	if err := e.cmd.Start(); err != nil {
		e.cleanup()
		return nil, fmt.Errorf("couldn't start the embedded server (%s serve): %w", opts.Executable, err)
	}
	urlc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "Trail metrics on "); ok {
				e.MetricsURL = strings.TrimSpace(u) // before the listening line, so before e is returned
			}
			if u, ok := strings.CutPrefix(sc.Text(), "Trail listening on "); ok {
				select {
				case urlc <- strings.TrimSpace(u):
				default:
				}
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	go func() {
		e.waitErr = e.cmd.Wait()
		close(e.done)
	}()
	select {
	case e.URL = <-urlc:
		return e, nil
	case <-e.done:
		e.cleanup()
		return nil, fmt.Errorf("the embedded server exited before listening (%v): %s", e.waitErr, e.logs.String())
	case <-ctx.Done():
		e.Stop()
		return nil, ctx.Err()
	case <-time.After(2 * time.Minute):
		e.Stop()
		return nil, fmt.Errorf("the embedded server did not start listening within 2 minutes: %s", e.logs.String())
	}
}

// PeakRSS is the server's peak resident set size in bytes (VmHWM), read
// from /proc while it runs and from its resource usage once it has exited;
// 0 if neither can be read.
func (e *Embedded) PeakRSS() int64 {
	select {
	case <-e.done:
	default:
		e.peak = max(e.peak, vmHWM(e.cmd.Process.Pid))
	}
	return e.peak
}

// Logs returns the end of what the server wrote to its standard error.
func (e *Embedded) Logs() string { return e.logs.String() }

// Stop sends SIGTERM, waits for the server to exit (SIGKILL after 30 s),
// records its peak RSS and removes a temporary data directory.
func (e *Embedded) Stop() error {
	e.PeakRSS()
	select {
	case <-e.done:
	default:
		_ = e.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-e.done:
		case <-time.After(30 * time.Second):
			_ = e.cmd.Process.Kill()
			<-e.done
		}
	}
	if ps := e.cmd.ProcessState; ps != nil && !e.peakReset {
		e.peak = max(e.peak, maxRSS(ps))
	}
	e.cleanup()
	var ee *exec.ExitError
	if e.waitErr != nil && !errors.As(e.waitErr, &ee) {
		return fmt.Errorf("waiting for the embedded server: %w", e.waitErr)
	}
	if ee != nil && !ee.Exited() {
		return nil // ended by the signal itself
	}
	if e.waitErr != nil {
		return fmt.Errorf("the embedded server exited with %v: %s", e.waitErr, e.logs.String())
	}
	return nil
}

func (e *Embedded) cleanup() {
	if e.tmp {
		os.RemoveAll(e.Data)
		e.tmp = false
	}
}

// vmHWM reads a process's peak resident set size from /proc (0 if it
// cannot).
func vmHWM(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.buf))
}
