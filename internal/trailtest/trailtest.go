// Package trailtest starts real `trail serve` processes for black-box tests:
// the binary is built once per test run, each server gets its own data
// directory and port, and is stopped when the test ends.
package trailtest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var build struct {
	once sync.Once
	path string
	err  error
}

// Binary builds cmd/trail (once per test process) and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		dir, err := os.MkdirTemp("", "trail-bin-")
		if err != nil {
			build.err = err
			return
		}
		build.path = filepath.Join(dir, "trail")
		// -tags trailtest: with the test-only settings
		// (cmd/trail/testknobs.go), which the shipped binary lacks.
		cmd := exec.Command("go", "build", "-tags", "trailtest", "-o", build.path, "./cmd/trail")
		cmd.Dir = moduleRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build ./cmd/trail: %v\n%s", err, out)
		}
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.path
}

var tagged struct {
	mu    sync.Mutex
	paths map[string]string
}

// BinaryWithTags builds cmd/trail with the given build tags (once per test
// process and tag list) and returns its path: a binary with test-only
// additions, such as the trail_upgrade_test tag's extra migration, that no
// release carries.
func BinaryWithTags(t testing.TB, tags string) string {
	t.Helper()
	tagged.mu.Lock()
	defer tagged.mu.Unlock()
	if p, ok := tagged.paths[tags]; ok {
		return p
	}
	dir, err := os.MkdirTemp("", "trail-bin-")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "trail")
	cmd := exec.Command("go", "build", "-tags", tags+",trailtest", "-o", path, "./cmd/trail") // with the test-only settings, as Binary
	cmd.Dir = moduleRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build -tags %s ./cmd/trail: %v\n%s", tags, err, out)
	}
	if tagged.paths == nil {
		tagged.paths = map[string]string{}
	}
	tagged.paths[tags] = path
	return path
}

func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// ModuleRoot is the repository root (for tests that need files in it).
func ModuleRoot() string { return moduleRoot() }

// AdminKey is the bootstrap admin secret every test server starts with.
const AdminKey = "sk_test_admin_0123456789abcdefghijklmnop"

// Server is a running trail serve.
type Server struct {
	URL string
	// MetricsURL is the operator listener's (/metrics, detailed /readyz),
	// "" when the test disabled it.
	MetricsURL string
	Key        string
	Data       string
	cmd        *exec.Cmd
	done       chan error
	logs       *lockedBuffer
}

// Options for Start.
type Options struct {
	Data string   // data directory; default a new t.TempDir()
	Args []string // extra flags
	Env  []string // extra environment
	// Binary is the trail executable to run; default Binary(t).
	Binary string
}

// Start runs trail serve on a free loopback port and waits until it says it
// is listening. The server is stopped (SIGTERM, then SIGKILL) at cleanup.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	bin := opts.Binary
	if bin == "" {
		bin = Binary(t)
	}
	if opts.Data == "" {
		opts.Data = t.TempDir()
	}
	args := []string{"serve", "--data", opts.Data, "--listen", "127.0.0.1:0",
		"--log-format", "json", "--log-level", "warn"}
	if !hasFlag(opts.Args, "metrics-listen") {
		args = append(args, "--metrics-listen", "127.0.0.1:0")
	}
	if !hasFlag(opts.Args, "shutdown-delay") {
		// Tests stop servers often; the few that watch a drain set it.
		args = append(args, "--shutdown-delay", "0s")
	}
	args = append(args, opts.Args...)
	cmd := exec.Command(bin, args...)
	// The bootstrap key comes from the environment, as the docs advise (a
	// flag shows in ps).
	cmd.Env = append(append(os.Environ(), "TRAIL_BOOTSTRAP_KEY="+AdminKey), opts.Env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting trail serve: %v", err)
	}
	s := &Server{Key: AdminKey, Data: opts.Data, cmd: cmd, done: make(chan error, 1), logs: logs}
	urlc := make(chan string, 1)
	metricsc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "Trail metrics on "); ok {
				metricsc <- u
			}
			if u, ok := strings.CutPrefix(sc.Text(), "Trail listening on "); ok {
				urlc <- u
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() { s.Stop(t) })
	select {
	case s.URL = <-urlc:
	case err := <-s.done:
		t.Fatalf("trail serve exited before listening: %v\n%s", err, logs.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("trail serve did not start within 60s\n%s", logs.String())
	}
	select { // printed before the listening line, if at all
	case s.MetricsURL = <-metricsc:
	default:
	}
	return s
}

// hasFlag reports whether args set the flag name (-name, --name, =value).
func hasFlag(args []string, name string) bool {
	for _, a := range args {
		a = strings.TrimLeft(a, "-")
		if a == name || strings.HasPrefix(a, name+"=") {
			return true
		}
	}
	return false
}

// Stop sends SIGTERM and waits for a clean exit (SIGKILL after 30 s).
func (s *Server) Stop(t testing.TB) error {
	if s.cmd.ProcessState != nil {
		return nil
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		s.done <- err
		return err
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		err := <-s.done
		s.done <- err
		t.Errorf("trail serve did not stop within 30s of SIGTERM\n%s", s.logs.String())
		return err
	}
}

// Kill sends SIGKILL (a crash) and waits for the process to be gone.
func (s *Server) Kill() {
	if s.cmd.ProcessState != nil {
		return
	}
	_ = s.cmd.Process.Kill()
	err := <-s.done
	s.done <- err
}

// Signal sends sig to the server's process: SIGSTOP and SIGCONT stall and
// resume it, as a paused VM or a frozen container would.
func (s *Server) Signal(sig os.Signal) error { return s.cmd.Process.Signal(sig) }

// Logs returns what the server wrote to stderr so far.
func (s *Server) Logs() string { return s.logs.String() }

// Context returns a context that ends with the test.
func Context(t testing.TB) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Witness is a running trail witness.
type Witness struct {
	URL         string
	VerifierKey string
	Data        string
	cmd         *exec.Cmd
	done        chan error
	logs        *lockedBuffer
}

// StartWitness runs trail witness on a free loopback port with the given
// extra flags (--log …), and waits until it prints its key and address. It
// is stopped at cleanup.
func StartWitness(t testing.TB, data string, args ...string) *Witness {
	t.Helper()
	if data == "" {
		data = t.TempDir()
	}
	cmd := exec.Command(Binary(t), append([]string{"witness", "--data", data, "--listen", "127.0.0.1:0",
		"--log-format", "json"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	w := &Witness{Data: data, cmd: cmd, done: make(chan error, 1), logs: &lockedBuffer{}}
	cmd.Stderr = w.logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting trail witness: %v", err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if k, ok := strings.CutPrefix(sc.Text(), "Witness verifier key: "); ok {
				w.VerifierKey = k
			}
			if u, ok := strings.CutPrefix(sc.Text(), "Trail witness listening on "); ok {
				w.URL = u
				close(ready)
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	go func() { w.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-w.done:
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
				<-w.done
			}
		}
	})
	select {
	case <-ready:
	case err := <-w.done:
		t.Fatalf("trail witness exited before listening: %v\n%s", err, w.logs.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("trail witness did not start within 60s\n%s", w.logs.String())
	}
	return w
}

// Logs returns what the witness wrote to stderr so far.
func (w *Witness) Logs() string { return w.logs.String() }

// Stop stops the witness with SIGTERM and waits for it to exit, so that
// it can be started again on its data directory and address.
func (w *Witness) Stop(t testing.TB) {
	t.Helper()
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.done:
	case <-time.After(30 * time.Second):
		_ = w.cmd.Process.Kill()
		<-w.done
		t.Fatalf("trail witness did not stop within 30s\n%s", w.logs.String())
	}
}
