package main

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/trailtest"
)

// The first admin key is printed only to a terminal. Anywhere else (a
// container's log) it goes to a 0600 file in the data directory, and only
// the file's path is logged. A key chosen with TRAIL_BOOTSTRAP_KEY is never
// echoed. Each case runs a real `trail serve` on its first start.
func TestBootstrapKeyOutput(t *testing.T) {
	if testing.Short() {
		t.Skip("starts trail serve")
	}
	if _, err := exec.LookPath("script"); err != nil {
		t.Fatalf("the terminal case needs script(1) from util-linux: %v", err)
	}
	const chosen = "sk_test_chosen_0123456789abcdefghij"
	tests := []struct {
		name     string
		terminal bool   // stdout is a pseudo-terminal (through script(1))
		env      string // extra environment
		wantOut  string // on stdout
		wantFile bool   // the key is in <data>/bootstrap-admin-key
	}{
		{name: "pipe", wantOut: "written to ", wantFile: true},
		{name: "terminal", terminal: true, wantOut: "Admin API key (shown only now; keep it safe): sk_"},
		{name: "environment", env: "TRAIL_BOOTSTRAP_KEY=" + chosen, wantOut: "from TRAIL_BOOTSTRAP_KEY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := t.TempDir()
			args := []string{trailtest.Binary(t), "serve", "--data", data, "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--log-format", "json", "--shutdown-delay", "0s"}
			var cmd *exec.Cmd
			if tt.terminal {
				cmd = exec.Command("script", "-qfec", strings.Join(args, " "), "/dev/null")
			} else {
				cmd = exec.Command(args[0], args[1:]...)
			}
			cmd.Env = os.Environ()
			if tt.env != "" {
				cmd.Env = append(cmd.Env, tt.env)
			}
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr syncBuf
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
				cmd.Wait()
			})
			var out syncBuf
			url := make(chan string, 1)
			go func() {
				sc := bufio.NewScanner(stdout)
				for sc.Scan() {
					line := strings.TrimSpace(sc.Text())
					if u, ok := strings.CutPrefix(line, "Trail listening on "); ok {
						url <- u
						continue
					}
					out.Write([]byte(line + "\n"))
				}
				io.Copy(io.Discard, stdout)
			}()
			var base string
			select {
			case base = <-url:
			case <-time.After(60 * time.Second):
				t.Fatalf("trail serve did not start\n%s", stderr.String())
			}
			printed := out.String()
			if !strings.Contains(printed, tt.wantOut) {
				t.Errorf("stdout %q lacks %q", printed, tt.wantOut)
			}
			keyFile := filepath.Join(data, "bootstrap-admin-key")
			raw, err := os.ReadFile(keyFile)
			key := strings.TrimSpace(string(raw))
			switch {
			case tt.wantFile && err != nil:
				t.Fatalf("no key file: %v", err)
			case !tt.wantFile && err == nil:
				t.Errorf("a key file was written: %q", raw)
			case tt.terminal:
				key = regexp.MustCompile(`sk_\w+`).FindString(printed)
			case tt.env != "":
				key = chosen
			}
			if tt.wantFile {
				if fi, _ := os.Stat(keyFile); fi.Mode().Perm() != 0o600 {
					t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
				}
				if strings.Contains(printed, key) || strings.Contains(stderr.String(), key) {
					t.Errorf("the key was printed or logged although stdout is no terminal:\n%s\n%s", printed, stderr.String())
				}
				if !strings.Contains(stderr.String(), keyFile) || !strings.Contains(printed, keyFile) {
					t.Errorf("the key file's path %s is neither logged nor printed:\n%s\n%s", keyFile, printed, stderr.String())
				}
			}
			if tt.env != "" && strings.Contains(printed+stderr.String(), chosen) {
				t.Errorf("the chosen key was echoed")
			}
			// Whichever way it was handed over, the key works.
			req, _ := http.NewRequest("GET", base+"/organizations", nil)
			req.Header.Set("Authorization", "Bearer "+key)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Errorf("GET /organizations with the first admin key %q: %d", key, res.StatusCode)
			}
		})
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
