// Package pgtest gives tests a real, throwaway PostgreSQL database.
//
// New returns the URL of a fresh, empty database created for one test and
// dropped when it ends. The databases live on a server that the test binary
// starts on first use (initdb into a temporary directory, loopback only, with
// durability switched off for speed) and that Main stops when the tests are
// done. When TRAIL_TEST_DATABASE is set to a postgres:// URL, the databases
// are created on that server instead and nothing is started.
//
// The server binaries (initdb, pg_ctl, postgres) are looked up in PATH and
// then in /usr/lib/postgresql/*/bin, highest version first. Without them the
// calling test is skipped, or fails when TRAIL_TEST_REQUIRE_ALL is set.
//
// PostgreSQL refuses to run as root. As root, the server runs as the
// "postgres" system user (created by Debian's postgresql package) through
// runuser or setpriv.
//
// If the test binary dies without running Main (SIGKILL, a panic in
// TestMain, a crash of the Go runtime), a watchdog process started beside
// the server notices that the binary is gone, stops the server and removes
// its directory. Should even that fail, a stale server can be left running
// from a trail-pgtest-* directory under the temporary directory; it does not
// get in the way of later runs, which always use a fresh directory and a
// free port, and can be stopped with `pg_ctl stop -D <dir>/pg/data`.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvDatabase names the environment variable that points the tests at an
// existing server: a postgres:// URL whose user may CREATE DATABASE.
const EnvDatabase = "TRAIL_TEST_DATABASE"

// envRequireAll, when set, turns a skip for missing PostgreSQL into a
// failure, so that CI never passes by skipping.
const envRequireAll = "TRAIL_TEST_REQUIRE_ALL"

// shared is the throwaway server of this test binary, started at most once.
var shared struct {
	once sync.Once
	mu   sync.Mutex // guards srv against Main racing a late start
	srv  *server
	// missing is set when PostgreSQL is not available here (skip or fail
	// depending on envRequireAll); err when starting it failed.
	missing string
	err     error
}

// New returns the DSN (postgres://… URL usable by pgx) of a fresh, empty
// database created for this test and dropped at cleanup, on the package's
// shared throwaway server (started on first use) or, when TRAIL_TEST_DATABASE
// is set (a postgres:// URL of a server where the user may CREATE DATABASE),
// on that server.
func New(t testing.TB) string {
	t.Helper()
	return createDatabase(t, adminURL(t))
}

// Main runs the package's tests and then stops the throwaway server, if one
// was started: use as `func TestMain(m *testing.M) { pgtest.Main(m) }`. It
// exits the process with m.Run's code.
func Main(m *testing.M) {
	code := m.Run()
	shared.mu.Lock()
	srv := shared.srv
	shared.srv = nil
	shared.mu.Unlock()
	if srv != nil {
		if err := srv.stop(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		}
	}
	os.Exit(code)
}

// adminURL returns the URL of the server to create test databases on:
// TRAIL_TEST_DATABASE, or the throwaway server (started if need be).
func adminURL(t testing.TB) string {
	t.Helper()
	if dsn := os.Getenv(EnvDatabase); dsn != "" {
		dsn, err := parseEnvURL(dsn)
		if err != nil {
			t.Fatalf("pgtest: %v", err)
		}
		return dsn
	}
	shared.once.Do(func() {
		srv, missing, err := start(false)
		shared.mu.Lock()
		shared.srv, shared.missing, shared.err = srv, missing, err
		shared.mu.Unlock()
	})
	shared.mu.Lock()
	srv, missing, err := shared.srv, shared.missing, shared.err
	shared.mu.Unlock()
	switch {
	case missing != "":
		msg := "pgtest: " + missing + "; install PostgreSQL (as root on Debian: apt-get install postgresql) " +
			"or set " + EnvDatabase + " to the postgres:// URL of a server where the user may CREATE DATABASE"
		if os.Getenv(envRequireAll) != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	case err != nil:
		t.Fatalf("pgtest: starting a throwaway PostgreSQL: %v", err)
	case srv == nil:
		t.Fatal("pgtest: the throwaway PostgreSQL was already stopped (New called after Main's m.Run returned)")
	}
	return srv.url
}

// parseEnvURL checks the value of TRAIL_TEST_DATABASE.
func parseEnvURL(dsn string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
		return "", fmt.Errorf("%s must be a postgres://user@host:port/database URL, got %q", EnvDatabase, redact(dsn))
	}
	return dsn, nil
}

// createDatabase creates a fresh database on the server at admin, registers
// its drop at cleanup, and returns its URL.
func createDatabase(t testing.TB, admin string) string {
	t.Helper()
	name := databaseName(t.Name())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("pgtest: connecting to %s: %v", redact(admin), err)
	}
	defer conn.Close(context.Background())
	// template0: nobody is ever connected to it, so concurrent creates do not
	// fail with "source database is being accessed by other users", and the
	// encoding and collation can be fixed whatever the server's defaults.
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident+
		" TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'"); err != nil {
		t.Fatalf("pgtest: creating database %s on %s: %v", name, redact(admin), err)
	}
	t.Cleanup(func() {
		if err := dropDatabase(admin, name); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("pgtest: parsing %s: %v", redact(admin), err)
	}
	u.Path = "/" + name
	u.RawPath = ""
	return u.String()
}

// dropDatabase drops the database name on the server at admin, closing any
// connections the test left open.
func dropDatabase(admin, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return fmt.Errorf("connecting to %s to drop database %s: %w", redact(admin), name, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("dropping database %s: %w", name, err)
	}
	return nil
}

// databaseName derives a database name from a test name: lower case letters,
// digits and underscores, a random suffix, at most 63 bytes (PostgreSQL's
// identifier limit).
func databaseName(testName string) string {
	var b strings.Builder
	b.WriteString("t_")
	for _, r := range strings.ToLower(testName) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	suffix := make([]byte, 5)
	if _, err := rand.Read(suffix); err != nil {
		panic(fmt.Sprintf("pgtest: reading random bytes: %v", err))
	}
	tail := "_" + hex.EncodeToString(suffix)
	head := b.String()
	if max := 63 - len(tail); len(head) > max {
		head = head[:max]
	}
	return head + tail
}

// redact hides the password in a URL for error messages.
func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "the configured server"
	}
	return u.Redacted()
}

// server is a running throwaway PostgreSQL.
type server struct {
	dir     string   // temporary directory holding everything below
	data    string   // data directory
	logFile string   // server log
	pgCtl   string   // pg_ctl binary
	asUser  []string // command prefix that runs as the unprivileged user, or nil
	url     string   // superuser URL of the "postgres" database
	// watchdog stops the server if this process dies: it waits for EOF on
	// its stdin, whose write end only this process holds.
	watchdog *exec.Cmd
	lifeline *os.File
}

// start initialises and starts a throwaway server. missing explains why
// PostgreSQL cannot run here at all; err reports any other failure.
func start(durable bool) (_ *server, missing string, err error) {
	bin, err := findBinDir()
	if err != nil {
		return nil, err.Error(), nil
	}
	var asUser []string
	var uid, gid = -1, -1
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, "running as root, PostgreSQL refuses to run as root, and there is no \"postgres\" system user to run it as", nil
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		if p, err := exec.LookPath("runuser"); err == nil {
			asUser = []string{p, "-u", "postgres", "--"}
		} else if p, err := exec.LookPath("setpriv"); err == nil {
			asUser = []string{p, "--reuid=" + u.Uid, "--regid=" + u.Gid, "--clear-groups", "--"}
		} else {
			return nil, "running as root, PostgreSQL refuses to run as root, and neither runuser nor setpriv is available to run it as the postgres user", nil
		}
	}

	dir, err := makeDir(asUser)
	if err != nil {
		return nil, "", err
	}
	s := &server{
		dir:     dir,
		data:    filepath.Join(dir, "pg", "data"),
		logFile: filepath.Join(dir, "pg", "postgres.log"),
		pgCtl:   filepath.Join(bin, "pg_ctl"),
		asUser:  asUser,
	}
	defer func() {
		if err != nil {
			_ = s.stop()
		}
	}()
	pgDir := filepath.Join(dir, "pg")
	if err := os.Mkdir(pgDir, 0o700); err != nil {
		return nil, "", fmt.Errorf("creating %s: %w", pgDir, err)
	}
	if uid >= 0 {
		if err := os.Chown(pgDir, uid, gid); err != nil {
			return nil, "", fmt.Errorf("handing %s to the postgres user: %w", pgDir, err)
		}
	}

	if out, err := s.run(filepath.Join(bin, "initdb"), "-D", s.data, "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		return nil, "", fmt.Errorf("initdb: %w\n%s", err, out)
	}
	// Test settings: durability off (unless asked for), room for several pools.
	conf := fmt.Sprintf(`
# pgtest: a throwaway server; its data is removed when it stops.
listen_addresses = '127.0.0.1'
unix_socket_directories = '%s'
max_connections = 200
shared_buffers = 128MB
`, pgDir)
	if !durable {
		conf += `
# Tests only: never use these settings for real data.
fsync = off
# synchronous_commit stays on: tests crash this server and count acknowledged commits
full_page_writes = off
`
	}
	f, err := os.OpenFile(filepath.Join(s.data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return nil, "", fmt.Errorf("opening postgresql.conf: %w", err)
	}
	if _, err := f.WriteString(conf); err != nil {
		f.Close()
		return nil, "", fmt.Errorf("writing postgresql.conf: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, "", fmt.Errorf("writing postgresql.conf: %w", err)
	}

	s.startWatchdog()

	// A free port can be taken by someone else between choosing and binding
	// it; try a few.
	var startErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, "", err
		}
		out, err := s.run(s.pgCtl, "start", "-w", "-t", "60", "-D", s.data, "-l", s.logFile,
			"-o", "-p "+strconv.Itoa(port))
		if err != nil {
			startErr = fmt.Errorf("pg_ctl start on port %d: %w\n%s\n%s", port, err, out, tail(s.logFile))
			continue
		}
		s.url = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
		if err := waitReady(s.url); err != nil {
			return nil, "", fmt.Errorf("%w\n%s", err, tail(s.logFile))
		}
		return s, "", nil
	}
	return nil, "", startErr
}

// Server is a throwaway PostgreSQL server started outside a test, by
// benchmark programs that compare Trail with plain PostgreSQL.
type Server struct{ s *server }

// Start initialises and starts a throwaway server on a loopback port, with
// PostgreSQL's default durability (fsync and full page writes on), so that
// measurements on it are of a server configured for real data. Stop removes
// it.
func Start() (*Server, error) {
	srv, missing, err := start(true)
	if err != nil {
		return nil, err
	}
	if missing != "" {
		return nil, errors.New(missing)
	}
	return &Server{s: srv}, nil
}

// CreateDatabase creates a new empty database and returns its URL.
func (s *Server) CreateDatabase(ctx context.Context, name string) (string, error) {
	conn, err := pgx.Connect(ctx, s.s.url)
	if err != nil {
		return "", fmt.Errorf("connecting to the throwaway server: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("creating database %s: %w", name, err)
	}
	u, err := url.Parse(s.s.url)
	if err != nil {
		return "", err
	}
	u.Path = "/" + name
	return u.String(), nil
}

// Stop stops the server and removes its data.
func (s *Server) Stop() error { return s.s.stop() }

// makeDir creates the server's temporary directory, 0755 so that the
// unprivileged user can reach the subdirectory it is handed.
func makeDir(asUser []string) (string, error) {
	parents := []string{os.TempDir()}
	if asUser != nil && os.TempDir() != "/tmp" {
		parents = append(parents, "/tmp")
	}
	var errs []error
	for _, parent := range parents {
		dir, err := os.MkdirTemp(parent, "trail-pgtest-")
		if err != nil {
			errs = append(errs, fmt.Errorf("creating a directory under %s: %w", parent, err))
			continue
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			os.RemoveAll(dir)
			return "", fmt.Errorf("making %s reachable: %w", dir, err)
		}
		if asUser == nil {
			return dir, nil
		}
		// Every parent must be traversable by the postgres user.
		check := append(append([]string{}, asUser...), "test", "-x", dir)
		if err := exec.Command(check[0], check[1:]...).Run(); err != nil {
			os.RemoveAll(dir)
			errs = append(errs, fmt.Errorf("the postgres user cannot reach %s (is a parent directory private?)", dir))
			continue
		}
		return dir, nil
	}
	return "", errors.Join(errs...)
}

// run runs a server command as the unprivileged user (when root) and
// returns its combined output.
func (s *server) run(name string, args ...string) ([]byte, error) {
	argv := append(append(append([]string{}, s.asUser...), name), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = s.dir // the caller's working directory may be private
	cmd.WaitDelay = 10 * time.Second
	return cmd.CombinedOutput()
}

// startWatchdog starts a process, in its own process group so that a Ctrl-C
// aimed at the tests does not reach it, that stops the server and removes
// its directory once this process has gone (its stdin reaches EOF). Failing
// to start it only loses that protection.
func (s *server) startWatchdog() {
	r, w, err := os.Pipe()
	if err != nil {
		return
	}
	stop := append(append([]string{}, s.asUser...), s.pgCtl, "stop", "-D", s.data, "-m", "immediate", "-w")
	script := `read -r _; dir=$1; shift; "$@" >/dev/null 2>&1; rm -rf "$dir"`
	cmd := exec.Command("/bin/sh", append([]string{"-c", script, "pgtest-watchdog", s.dir}, stop...)...)
	cmd.Stdin = r
	cmd.Dir = s.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return
	}
	r.Close()
	s.watchdog, s.lifeline = cmd, w
}

// stop stops the server at once (its data is thrown away) and removes its
// directory.
func (s *server) stop() error {
	var errs []error
	if _, err := os.Stat(filepath.Join(s.data, "postmaster.pid")); err == nil {
		if out, err := s.run(s.pgCtl, "stop", "-D", s.data, "-m", "immediate", "-w"); err != nil {
			errs = append(errs, fmt.Errorf("pg_ctl stop: %w\n%s", err, out))
		}
	}
	if s.lifeline != nil {
		s.lifeline.Close() // lets the watchdog finish; the server is already down
		done := make(chan struct{})
		go func() { _ = s.watchdog.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
		}
	}
	if err := os.RemoveAll(s.dir); err != nil {
		errs = append(errs, fmt.Errorf("removing %s: %w", s.dir, err))
	}
	return errors.Join(errs...)
}

// waitReady waits until the server at dsn accepts connections.
func waitReady(dsn string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := pgx.Connect(ctx, dsn)
		if err == nil {
			err = conn.Ping(ctx)
			conn.Close(context.Background())
		}
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the server did not accept connections at %s: %w", dsn, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail returns the end of the server log, for error messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	const n = 4000
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return "server log (" + path + "):\n" + string(b)
}

// findBinDir returns the directory holding initdb, pg_ctl and postgres:
// where the initdb in PATH really lives, else the highest version under
// /usr/lib/postgresql.
func findBinDir() (string, error) {
	var candidates []string
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			candidates = append(candidates, filepath.Dir(real))
		}
		candidates = append(candidates, filepath.Dir(p))
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		return versionLess(filepath.Base(filepath.Dir(dirs[j])), filepath.Base(filepath.Dir(dirs[i])))
	})
	candidates = append(candidates, dirs...)
	for _, dir := range candidates {
		if executable(filepath.Join(dir, "initdb")) && executable(filepath.Join(dir, "pg_ctl")) &&
			executable(filepath.Join(dir, "postgres")) {
			return dir, nil
		}
	}
	return "", errors.New("no PostgreSQL server binaries (initdb, pg_ctl, postgres) in PATH or /usr/lib/postgresql/*/bin")
}

// versionLess orders PostgreSQL version directory names ("9.6" < "15").
func versionLess(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) && i < len(pb); i++ {
		x, errx := strconv.Atoi(pa[i])
		y, erry := strconv.Atoi(pb[i])
		if errx != nil || erry != nil {
			return a < b
		}
		if x != y {
			return x < y
		}
	}
	return len(pa) < len(pb)
}

func executable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// Restart crashes the throwaway server (an immediate stop: no checkpoint,
// connections cut, as when the machine under it fails), keeps it down for
// down, and starts it again on the same port with the same data. Tests use it
// to check that the code under test fails fast while the database is gone and
// recovers by itself. It cannot restart a TRAIL_TEST_DATABASE server: the test
// is skipped then.
func Restart(t testing.TB, down time.Duration) {
	t.Helper()
	up := Down(t)
	time.Sleep(down)
	up()
}

// Down crashes the throwaway server as Restart does and returns the
// function that starts it again (and waits until it accepts
// connections), for tests that check what happens while it is down for
// as long as they need. Every test of the process shares the server.
func Down(t testing.TB) (up func()) {
	t.Helper()
	if os.Getenv(EnvDatabase) != "" {
		t.Skipf("%s is set: not stopping a server this test did not start", EnvDatabase)
	}
	shared.mu.Lock()
	s := shared.srv
	shared.mu.Unlock()
	if s == nil {
		t.Fatal("pgtest.Down: no throwaway server is running (call New first)")
	}
	u, err := url.Parse(s.url)
	if err != nil {
		t.Fatalf("pgtest.Down: %v", err)
	}
	if out, err := s.run(s.pgCtl, "stop", "-D", s.data, "-m", "immediate", "-w"); err != nil {
		t.Fatalf("pg_ctl stop: %v\n%s", err, out)
	}
	return func() {
		t.Helper()
		if out, err := s.run(s.pgCtl, "start", "-w", "-t", "60", "-D", s.data, "-l", s.logFile, "-o", "-p "+u.Port()); err != nil {
			t.Fatalf("pg_ctl start: %v\n%s\n%s", err, out, tail(s.logFile))
		}
		if err := waitReady(s.url); err != nil {
			t.Fatalf("pgtest: %v\n%s", err, tail(s.logFile))
		}
	}
}
