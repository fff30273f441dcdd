package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/trailaudit/trail/internal/access"
	"github.com/trailaudit/trail/internal/ingest"
	"github.com/trailaudit/trail/internal/keyring"
	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/logbuf"
	"github.com/trailaudit/trail/internal/store"
)

type serveCommand struct {
	stdout, stderr io.Writer

	storage        storageFlags
	listen         string
	metricsListen  string // the operator listener: metrics, detailed readiness, pprof
	pprof          bool   // serve net/http/pprof on the operator listener
	bootstrapKey   string
	logFormat      string
	logLevel       string
	accessLog      bool // one INFO line per request answered
	maxBody        int64
	maxBatchBody   int64
	rateLimit      float64
	rateBurst      int64
	trustProxy     bool
	shutdownWait   time.Duration
	shutdownDelay  time.Duration // /readyz answers 503 this long before the listener closes
	checkConfig    bool          // validate the settings and exit
	migrate        bool          // apply pending migrations before serving
	logOrigin      string
	signingKey     string // file holding the note signing key
	masterKey      string // file holding the master key (package keyring)
	diskReserveMiB int64
	retention      retentionFlags
	privacy        privacyFlags

	streamsAllowPrivate bool   // log streams may reach private addresses
	publicURL           string // the URL Admin Portal links point at

	streamsAllowLinkLocal bool // log streams may reach link-local addresses

	requireSchemas bool // refuse events of actions without a schema

	commitConcurrency int64 // group-commit transactions in flight; 0: the backend's default

	exportDir     string  // where export files are kept
	exportMaxRate float64 // events per second one export job reads at most

	witnesses witnessClientFlags // witnesses asked to cosign checkpoints

	replication replicateFlags // --replicate (docs/BACKUP.md)

	archive archiveFlags // --archive (docs/ARCHIVE.md)
	portal  portalFlags  // the Admin Portal's brand and embedding (docs/PORTAL.md)
}

func (c *serveCommand) flags() *flag.FlagSet {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	c.storage.register(fs)
	c.storage.registerMemory(fs)
	setting{fs}.StringVar(&c.listen, "listen", "TRAIL_LISTEN", "127.0.0.1:8080", "address to serve HTTP on")
	setting{fs}.StringVar(&c.metricsListen, "metrics-listen", "TRAIL_METRICS_LISTEN", "127.0.0.1:9464", "address of the operator listener: Prometheus /metrics, /readyz with the organizations it is degraded for, and with --pprof the Go profiler; keep it off the internet (readiness names organizations, a profile shows memory); empty disables it")
	setting{fs}.BoolVar(&c.pprof, "pprof", "TRAIL_PPROF", "serve the Go profiler (net/http/pprof) under /debug/pprof/ on the operator listener")
	setting{fs}.StringVar(&c.bootstrapKey, "bootstrap-key", "TRAIL_BOOTSTRAP_KEY", "", "on first start, create an admin API key with exactly this secret (sk_…); prefer the environment variable, a flag shows in ps")
	setting{fs}.StringVar(&c.logFormat, "log-format", "TRAIL_LOG_FORMAT", "auto", "log format: auto (text on a terminal, else JSON), text or json")
	setting{fs}.StringVar(&c.logLevel, "log-level", "TRAIL_LOG_LEVEL", "info", "log level: debug, info, warn or error")
	fs.BoolVar(&c.accessLog, "access-log", true, "log one INFO line per request answered (route, status, duration, key, organization); 503s are summarised, never one line each; false keeps only warnings and errors [TRAIL_ACCESS_LOG]")
	setting{fs}.Int64Var(&c.maxBody, "max-body-bytes", "TRAIL_MAX_BODY_BYTES", 1<<20, "largest accepted single-event request body")
	setting{fs}.Int64Var(&c.maxBatchBody, "max-batch-body-bytes", "TRAIL_MAX_BATCH_BODY_BYTES", 16<<20, "largest accepted batch request body")
	setting{fs}.Float64Var(&c.rateLimit, "rate-limit", "TRAIL_RATE_LIMIT", 0, "requests per second per API key; 0 means unlimited")
	setting{fs}.Int64Var(&c.rateBurst, "rate-burst", "TRAIL_RATE_BURST", 0, "burst allowed above --rate-limit; 0 means one second's worth")
	setting{fs}.BoolVar(&c.trustProxy, "trust-proxy-headers", "TRAIL_TRUST_PROXY_HEADERS", "take client addresses from X-Forwarded-For (only behind a proxy you run)")
	setting{fs}.StringVar(&c.logOrigin, "log-origin", "TRAIL_LOG_ORIGIN", "", "origin prefix of the signed checkpoints, \"<prefix>/<org id>\"; fixed on first start (default: the listen address)")
	setting{fs}.StringVar(&c.signingKey, "signing-key-file", "TRAIL_SIGNING_KEY_FILE", "", "file holding the checkpoint signing key (note format, PRIVATE+KEY+…): the deployment's first key on a new database; afterwards optional (the keys live in the database, sealed; see trail signing-key), and if given it must be one of the deployment's; default: <data>/signing.key, created on first start. TRAIL_SIGNING_KEY may hold the key itself")
	setting{fs}.BoolVar(&c.requireSchemas, "require-schemas", "TRAIL_REQUIRE_SCHEMAS", "refuse (400) events of actions that have no schema (POST /audit_logs/actions/{action}/schemas)")
	setting{fs}.Int64Var(&c.diskReserveMiB, "disk-reserve-mib", "TRAIL_DISK_RESERVE_MIB", 8, "with SQLite, MiB of disk held in reserve: when the disk is nearly full it is released so acknowledged events are still signed, and ingest answers 503 until space returns; 0 disables")
	setting{fs}.StringVar(&c.masterKey, "master-key-file", "TRAIL_MASTER_KEY_FILE", "", "file holding the master key (base64 of 32 bytes) from which the keys for stored secrets, download links and portal sessions are derived, and during a rotation older keys on further lines (see trail master-key); replicas on one database must share them; default: <data>/master.key, created on first start. TRAIL_MASTER_KEY may hold the keys themselves")
	setting{fs}.StringVar(&c.publicURL, "public-url", "TRAIL_PUBLIC_URL", "", "the URL users reach this server at, e.g. https://trail.example.com; Admin Portal links point there, and an https URL makes its cookies Secure (default: http://<listen address>)")
	setting{fs}.StringVar(&c.exportDir, "export-dir", "TRAIL_EXPORT_DIR", "", "directory for export files, kept 24 hours (default: <data>/exports); with several PostgreSQL replicas it must be one directory they all share")
	setting{fs}.BoolVar(&c.streamsAllowPrivate, "streams-allow-private", "TRAIL_STREAMS_ALLOW_PRIVATE", "let log streams deliver to loopback and private addresses (a SIEM on your own network); link-local and cloud metadata addresses stay refused")
	setting{fs}.BoolVar(&c.streamsAllowLinkLocal, "streams-allow-link-local", "TRAIL_STREAMS_ALLOW_LINK_LOCAL", "let log streams deliver to link-local addresses (169.254.0.0/16, fe80::/10), where cloud credential endpoints live; known metadata addresses stay refused")
	setting{fs}.Int64Var(&c.commitConcurrency, "commit-concurrency", "TRAIL_COMMIT_CONCURRENCY", 0, "with PostgreSQL, how many group-commit transactions one server keeps in flight, each on its own connection (give the pool room: pool_max_conns in the URL, default the larger of 4 and the CPUs) and with its own queue of organizations; 0 means the default ("+strconv.Itoa(postgresCommitConcurrency)+"); SQLite has one writer and always commits one at a time")
	c.retention.register(fs)
	c.privacy.register(fs)
	setting{fs}.Float64Var(&c.exportMaxRate, "export-max-rate", "TRAIL_EXPORT_MAX_RATE", 0, "events per second one export job reads at most, to spare a busy database; 0 means no limit")
	setting{fs}.DurationVar(&c.shutdownWait, "shutdown-timeout", "TRAIL_SHUTDOWN_TIMEOUT", 30*time.Second, "how long to wait for in-flight requests on shutdown")
	setting{fs}.DurationVar(&c.shutdownDelay, "shutdown-delay", "TRAIL_SHUTDOWN_DELAY", 5*time.Second, "on SIGTERM, how long /readyz answers 503 while requests are still served, before the listener closes and in-flight requests drain: give load balancers time to stop sending new ones")
	c.witnesses.register(fs)
	fs.BoolVar(&c.migrate, "migrate", envString("TRAIL_MIGRATE", "") == "true", "apply pending schema migrations (Trail's and River's) before serving, as trail migrate does; without it only a new, empty database is initialised and one with pending migrations is refused [TRAIL_MIGRATE]")
	c.replication.register(fs)
	c.archive.register(fs)
	c.portal.register(fs)
	fs.BoolVar(&c.checkConfig, "check-config", false, "check every setting (flags, TRAIL_… variables and the files they name) and exit: 0 when all are valid, 2 naming the first that is not")
	return fs
}

func (c *serveCommand) Run(ctx context.Context, args []string) error {
	fs := c.flags()
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if err := c.storage.validate(); err != nil {
		return usageError{err}
	}
	if _, err := newMemoryBudget(c.storage.MemoryMiB, c.storage.SQLiteCacheMiB); err != nil {
		return usageError{err}
	}
	if _, err := c.retention.options(); err != nil {
		return usageError{err}
	}
	if c.bootstrapKey != "" && (!strings.HasPrefix(c.bootstrapKey, "sk_") || len(c.bootstrapKey) < 24) {
		return usagef("TRAIL_BOOTSTRAP_KEY (--bootstrap-key) must start with sk_ and be at least 24 characters long")
	}
	// The access log's lines are written out in batches (internal/logbuf);
	// every other line at once.
	lines := logbuf.New(c.stderr, logFlushEvery, logBufferBytes)
	defer lines.Close()
	handler, enc, err := newLogHandler(c.stderr, lines, c.logFormat, c.logLevel)
	if err != nil {
		return usageError{err}
	}
	logHandler := logbuf.NewEncodedHandler(handler, lines, enc)
	logger := slog.New(logHandler)
	if err := c.validate(); err != nil {
		return usageError{err}
	}
	if c.checkConfig {
		fmt.Fprintln(c.stdout, "trail serve: configuration is valid")
		return nil
	}

	// Unless GOMEMLIMIT says otherwise, the Go heap is collected before it
	// outgrows its share of --memory-mib (memory.go), rather than at twice
	// its live size: a burst that holds many parsed events for the indexer
	// then does not double the server's memory (docs/OPERATIONS.md,
	// "Memory").
	if os.Getenv("GOMEMLIMIT") == "" {
		b, err := newMemoryBudget(c.storage.MemoryMiB, c.storage.SQLiteCacheMiB)
		if err != nil {
			return usageError{err}
		}
		debug.SetMemoryLimit(b.goLimit)
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	s := &server{c: c, logger: logger, lines: logHandler}
	defer s.close()
	if err := s.build(ctx); err != nil {
		return err
	}
	return s.run(ctx)
}

// originFile keeps the checkpoint origin prefix chosen on first start: every
// checkpoint of a log must carry the same origin, so moving the server to
// another address must not change it.
const originFile = "log-origin"

// originPrefix returns the origin prefix of this deployment's checkpoints:
// --log-origin when given (and then remembered), else the one remembered
// from the first start, else one derived from the listen address.
func (c *serveCommand) originPrefix(listenAddr string) (string, error) {
	path := filepath.Join(c.storage.Data, originFile)
	saved, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("couldn't read %s: %w", path, err)
	}
	prefix := strings.TrimSpace(string(saved))
	switch {
	case c.logOrigin != "" && prefix != "" && c.logOrigin != prefix:
		return "", usagef("--log-origin %q differs from %q, the origin this data directory's checkpoints already carry (in %s); verifiers treat a new origin as a different log. Remove the file only if no checkpoint was ever handed out", c.logOrigin, prefix, path)
	case c.logOrigin != "":
		prefix = c.logOrigin
	case prefix == "":
		host, port, err := net.SplitHostPort(listenAddr)
		if err != nil {
			return "", fmt.Errorf("couldn't derive a log origin from %q (set --log-origin): %w", listenAddr, err)
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			if host, err = os.Hostname(); err != nil {
				return "", fmt.Errorf("couldn't derive a log origin from the host name (set --log-origin): %w", err)
			}
		}
		prefix = net.JoinHostPort(host, port) + "/trail"
	}
	if string(saved) != prefix+"\n" {
		if err := os.WriteFile(path, []byte(prefix+"\n"), 0o600); err != nil {
			return "", fmt.Errorf("couldn't remember the log origin in %s: %w", path, err)
		}
	}
	return prefix, nil
}

// loadSigner returns the checkpoint signer: the key in TRAIL_SIGNING_KEY,
// else in --signing-key-file, else the data directory's (created on first
// start).
func (c *serveCommand) loadSigner(origin string) (*ledger.Signer, error) {
	if skey := strings.TrimSpace(os.Getenv("TRAIL_SIGNING_KEY")); skey != "" {
		s, err := ledger.NewSignerFromKey(skey)
		if err != nil {
			return nil, usagef("TRAIL_SIGNING_KEY: %v", err)
		}
		return s, nil
	}
	if c.signingKey != "" {
		raw, err := os.ReadFile(c.signingKey)
		if err != nil {
			return nil, fmt.Errorf("couldn't read --signing-key-file: %w", err)
		}
		s, err := ledger.NewSignerFromKey(strings.TrimSpace(string(raw)))
		if err != nil {
			return nil, usagef("--signing-key-file %s: %v", c.signingKey, err)
		}
		return s, nil
	}
	s, err := ledger.LoadOrCreateSigner(c.storage.Data, origin)
	if err != nil {
		return nil, fmt.Errorf("couldn't load the checkpoint signing key: %w", err)
	}
	return s, nil
}

// loadKeyring returns the master key: TRAIL_MASTER_KEY, else
// --master-key-file, else the data directory's (created on first start).
func (c *serveCommand) loadKeyring() (*keyring.Keyring, error) {
	if text := strings.TrimSpace(os.Getenv("TRAIL_MASTER_KEY")); text != "" {
		k, err := keyring.Parse(text)
		if err != nil {
			return nil, usagef("TRAIL_MASTER_KEY: %v", err)
		}
		return k, nil
	}
	if c.masterKey != "" {
		raw, err := os.ReadFile(c.masterKey)
		if err != nil {
			return nil, fmt.Errorf("couldn't read --master-key-file: %w", err)
		}
		k, err := keyring.Parse(string(raw))
		if err != nil {
			return nil, usagef("--master-key-file %s: %v", c.masterKey, err)
		}
		return k, nil
	}
	k, err := keyring.LoadOrCreate(c.storage.Data)
	if err != nil {
		return nil, fmt.Errorf("couldn't load the master key: %w", err)
	}
	return k, nil
}

// checkSigningKey refuses to start with a key other than the one the
// database's checkpoints were signed with: verifiers hold that key, and a
// replica signing with another would publish checkpoints none of them can
// check (typically a replica started without the shared --signing-key-file).
func checkSigningKey(ctx context.Context, st ledger.Storage, signer *ledger.Signer) error {
	note, org, err := anyStoredCheckpoint(ctx, st)
	if err != nil || note == nil {
		return err
	}
	if _, err := ledger.ParseCheckpoint(note, signer.Verifier()); err != nil {
		return fmt.Errorf("the checkpoints in this database were not signed by this server's key %s (checkpoint of %s: %v); start it with the deployment's key (--signing-key-file or TRAIL_SIGNING_KEY) — signing with another key would publish checkpoints that no verifier can check", signer.VerifierKey(), org, err)
	}
	return nil
}

// anyStoredCheckpoint returns the newest checkpoint of one integrated log,
// and its organization; nil when nothing was integrated yet.
func anyStoredCheckpoint(ctx context.Context, st ledger.Storage) (note []byte, org string, err error) {
	logs, err := st.IntegratedLogs(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("couldn't read the integrated logs: %w", err)
	}
	if len(logs) == 0 {
		return nil, "", nil
	}
	org = logs[0].OrganizationID
	note, err = st.LatestCheckpoint(ctx, org)
	if err != nil {
		return nil, "", fmt.Errorf("couldn't read the checkpoint of %s: %w", org, err)
	}
	return note, org, nil
}

// bootstrapKeyFile is where, in the data directory, the first admin key is
// written when standard output is not a terminal.
const bootstrapKeyFile = "bootstrap-admin-key"

// bootstrap creates the first admin key on a database that has none. A
// generated key is printed once on a terminal; anywhere else (a container's
// log, a service manager's journal) it would be kept wherever stdout goes,
// so it is written to a 0600 file in the data directory instead, and only
// that file's path is logged. With PostgreSQL that is the data directory of
// the replica that created it.
func (c *serveCommand) bootstrap(ctx context.Context, st store.Store, baseURL string, logger *slog.Logger) error {
	n, err := st.CountAPIKeys(ctx)
	if err != nil {
		return fmt.Errorf("couldn't check for API keys: %w", err)
	}
	if n > 0 {
		return nil
	}
	secret, hash, prefix := access.Generate()
	if c.bootstrapKey != "" {
		secret = c.bootstrapKey
		hash = access.HashSecret(secret)
		prefix = secret[:min(len(secret), 10)]
	}
	toTerminal := isTerminal(c.stdout)
	keyFile := filepath.Join(c.storage.Data, bootstrapKeyFile)
	if c.bootstrapKey == "" && !toTerminal {
		// Written before the key exists in the database: a key nobody can
		// read back would lock the operator out.
		if err := writeSecretFile(keyFile, secret+"\n"); err != nil {
			return fmt.Errorf("couldn't keep the first admin API key: %w", err)
		}
	}
	now := time.Now()
	key := store.APIKey{ID: access.NewKeyID(now), Name: "bootstrap admin", Hash: hash, Prefix: prefix,
		Scopes: []string{access.ScopeAdmin}, CreatedAt: now}
	if err := st.CreateAPIKey(ctx, key); errors.Is(err, store.ErrConflict) && c.bootstrapKey != "" {
		// Replicas started together: another one created the same key.
		return nil
	} else if err != nil {
		return fmt.Errorf("couldn't create the first admin API key: %w", err)
	}
	if err := recordCLIAction(ctx, st, "trail.api_key.created", store.SystemOrganizationID,
		cliTarget{Type: "api_key", ID: key.ID, Name: key.Name}); err != nil {
		return err
	}
	switch {
	case c.bootstrapKey != "":
		fmt.Fprintf(c.stdout, "Created the admin API key %s from TRAIL_BOOTSTRAP_KEY.\n", key.ID)
	case toTerminal:
		fmt.Fprintf(c.stdout, "Admin API key (shown only now; keep it safe): %s\n", secret)
		fmt.Fprintf(c.stdout, "  try: curl -H 'Authorization: Bearer %s' %s/organizations\n", secret, baseURL)
	default:
		logger.Warn("created the first admin API key and wrote it to a file readable only by this user, since standard output is not a terminal; move it somewhere safe and delete the file",
			"key_id", key.ID, "file", keyFile)
		fmt.Fprintf(c.stdout, "Admin API key %s written to %s (not shown: standard output is not a terminal).\n", key.ID, keyFile)
	}
	return nil
}

// writeSecretFile writes text to a new file only its owner can read,
// replacing any older one, and syncs it.
func writeSecretFile(path, text string) error {
	os.Remove(path) // an older file's mode must not carry over
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("couldn't create %s: %w", path, err)
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return fmt.Errorf("couldn't write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("couldn't sync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("couldn't write %s: %w", path, err)
	}
	return nil
}

// maintainPartitions keeps the events table's time partitions created
// ahead, every few hours (idempotent, so every replica may do it).
func maintainPartitions(ctx context.Context, ensure func(context.Context, time.Time) error, logger *slog.Logger) {
	t := time.NewTicker(6 * time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := ensure(ctx, time.Now()); err != nil && ctx.Err() == nil {
			logger.Error("couldn't create the events table's next partitions; inserts fall into the default partition until this succeeds", "err", err)
		}
	}
}

// expireIdempotencyKeys forgets idempotency keys after their 24 hours.
func expireIdempotencyKeys(ctx context.Context, st store.Store, logger *slog.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if n, err := st.ExpireIdempotencyKeys(ctx, time.Now().Add(-24*time.Hour)); err != nil && !errors.Is(err, context.Canceled) {
			logger.Warn("couldn't expire idempotency keys", "err", err)
		} else if n > 0 {
			logger.Debug("expired idempotency keys", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// How long an access log line may wait in serve's log buffer, and how many
// bytes of them it holds (internal/logbuf).
const (
	logFlushEvery  = 100 * time.Millisecond
	logBufferBytes = 32 << 10
)

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	h, _, err := newLogHandler(w, w, format, level)
	if err != nil {
		return nil, err
	}
	return slog.New(h), nil
}

// newLogHandler returns the handler writing to out in format, and that
// format as a logbuf.Encoding (the access log writes its lines in it
// without the handler); "auto" picks text when w, where out's lines end
// up, is a terminal.
func newLogHandler(w, out io.Writer, format, level string) (slog.Handler, logbuf.Encoding, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, logbuf.Opaque, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv} // no ReplaceAttr, no AddSource: logbuf.NewEncodedHandler
	switch format {
	case "auto":
		if isTerminal(w) {
			return slog.NewTextHandler(out, opts), logbuf.Text, nil
		}
		return slog.NewJSONHandler(out, opts), logbuf.JSON, nil
	case "text":
		return slog.NewTextHandler(out, opts), logbuf.Text, nil
	case "json":
		return slog.NewJSONHandler(out, opts), logbuf.JSON, nil
	}
	return nil, logbuf.Opaque, fmt.Errorf("--log-format %q: use auto, text or json", format)
}

// validate checks the settings that need no database: addresses, URLs,
// limits and the key files named (read, never created).
func (c *serveCommand) validate() error {
	if err := c.witnesses.validate(); err != nil {
		return err
	}
	if err := c.replication.validate(c.storage.postgres()); err != nil {
		return err
	}
	if _, err := c.archive.open(); err != nil {
		return err
	}
	if _, err := c.portal.options(); err != nil {
		return err
	}
	if _, _, err := net.SplitHostPort(c.listen); err != nil {
		return fmt.Errorf("--listen %q: want host:port, such as 127.0.0.1:8080: %w", c.listen, err)
	}
	if c.publicURL != "" {
		u, err := url.Parse(c.publicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("--public-url %q: want an absolute http or https URL, such as https://trail.example.com", c.publicURL)
		}
	}
	for _, n := range []struct {
		name  string
		value int64
	}{{"--max-body-bytes", c.maxBody}, {"--max-batch-body-bytes", c.maxBatchBody}} {
		if n.value <= 0 {
			return fmt.Errorf("%s %d: want a positive number of bytes", n.name, n.value)
		}
	}
	for _, n := range []struct {
		name  string
		value float64
	}{{"--rate-limit", c.rateLimit}, {"--export-max-rate", c.exportMaxRate}} {
		if n.value < 0 || math.IsNaN(n.value) || math.IsInf(n.value, 0) {
			return fmt.Errorf("%s %v: want 0 (no limit) or a positive number", n.name, n.value)
		}
	}
	if c.commitConcurrency < 0 || c.commitConcurrency > maxCommitConcurrency {
		return fmt.Errorf("--commit-concurrency %d: want 0 (the default) or 1 to %d", c.commitConcurrency, maxCommitConcurrency)
	}
	if c.commitConcurrency > 1 && !c.storage.postgres() {
		return fmt.Errorf("--commit-concurrency %d: SQLite has one writer; more than one commit in flight needs PostgreSQL", c.commitConcurrency)
	}
	if c.rateBurst < 0 || c.diskReserveMiB < 0 || c.shutdownWait < 0 || c.shutdownDelay < 0 {
		return fmt.Errorf("--rate-burst, --disk-reserve-mib, --shutdown-timeout and --shutdown-delay cannot be negative")
	}
	for _, f := range []struct{ flag, path string }{{"--signing-key-file", c.signingKey}, {"--master-key-file", c.masterKey}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return fmt.Errorf("%s: %w", f.flag, err)
		}
	}
	return nil
}

// postgresCommitConcurrency is how many group commits a server keeps in
// flight on PostgreSQL by default. More in flight split the same load into
// smaller commits, and each commit costs the database a fixed part
// whatever it carries: where PostgreSQL's CPU is the limit (as on the
// machines docs/PERFORMANCE.md measures, "PostgreSQL: more than one commit
// in flight") more cost CPU per event and gained no throughput, so one is
// the default and more is for a database with cores to spare.
const postgresCommitConcurrency = 1

// maxCommitConcurrency bounds --commit-concurrency: every commit in flight
// holds a pool connection.
const maxCommitConcurrency = 64

// commitConcurrencyFor is how many group commits the committer keeps in
// flight: one on SQLite (one writer), the flag's or the default on
// PostgreSQL.
func (c *serveCommand) commitConcurrencyFor(postgres bool) int {
	switch {
	case !postgres:
		return 1
	case c.commitConcurrency > 0:
		return int(c.commitConcurrency)
	}
	return postgresCommitConcurrency
}

// delayIndexer makes the search indexer wait d (a Go duration) before each
// batch, when d is set: a fault-injection aid, undocumented in -h, with
// which tests show that no read depends on the indexer having caught up.
func delayIndexer(opts *ingest.IndexerOptions, d string) error {
	if d == "" {
		return nil
	}
	delay, err := time.ParseDuration(d)
	if err != nil || delay < 0 {
		return fmt.Errorf("TRAIL_SEARCH_INDEX_DELAY=%q: want a duration such as 2s", d)
	}
	hold := opts.Hold
	opts.Hold = func(ctx context.Context) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		if hold != nil {
			return hold(ctx)
		}
		return nil
	}
	return nil
}
