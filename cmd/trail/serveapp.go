package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/trailaudit/trail/internal/api"
	"github.com/trailaudit/trail/internal/archive"
	"github.com/trailaudit/trail/internal/console"
	"github.com/trailaudit/trail/internal/diskguard"
	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/export"
	"github.com/trailaudit/trail/internal/ingest"
	"github.com/trailaudit/trail/internal/keyring"
	"github.com/trailaudit/trail/internal/lease"
	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/livetail"
	"github.com/trailaudit/trail/internal/logbuf"
	"github.com/trailaudit/trail/internal/retention"
	"github.com/trailaudit/trail/internal/schema"
	"github.com/trailaudit/trail/internal/selfaudit"
	"github.com/trailaudit/trail/internal/store/postgres"
	"github.com/trailaudit/trail/internal/witness"
)

// server is `trail serve` as an application: build makes its parts in
// dependency order, each pushing how it is undone onto a cleanup stack;
// run serves until ctx ends and shuts the parts down in order; close
// undoes what build made, last first, whether or not run was reached.
type server struct {
	c       *serveCommand
	logger  *slog.Logger
	lines   *logbuf.Handler // logger's handler: the access log writes its lines through it
	cleanup []func()

	db         *database
	ln, opsLn  net.Listener
	baseURL    string
	reg        *prometheus.Registry
	leases     lease.Options
	health     *lease.Health
	signer     *deploymentKeys
	keys       *keyring.Keyring
	repl       *replication
	integrator *integratorRunner
	cosigner   *witness.Submitter
	logStorage ledger.Storage
	down       func() []string // the witnesses that do not answer
	guard      *diskguard.Guard
	indexer    *ingest.Indexer
	streams    *streamsRunner
	committer  *ingest.Committer
	sweeper    *retention.Sweeper
	archiver   *archive.Archiver // nil without --archive
	exports    *exportJobs
	tail       *livetail.Hub
	handler    *api.Server
	public     http.Handler // handler, with the operator console

	workers     context.Context // the background workers run until stopWorkers
	stopWorkers context.CancelFunc
	workersDone []<-chan struct{}
}

// onClose pushes f onto the cleanup stack.
func (s *server) onClose(f func()) { s.cleanup = append(s.cleanup, f) }

// close undoes what build made, last first.
func (s *server) close() {
	for i := len(s.cleanup) - 1; i >= 0; i-- {
		s.cleanup[i]()
	}
	s.cleanup = nil
}

// build makes the parts in dependency order; on an error the caller's
// close undoes those made.
func (s *server) build(ctx context.Context) error {
	for _, step := range []func(context.Context) error{
		s.openDatabase,
		s.listen,
		s.bootstrapAndKeys,
		s.startLog,
		s.startWorkers,
		s.buildAPI,
	} {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (s *server) openDatabase(ctx context.Context) error {
	if err := os.MkdirAll(s.c.storage.Data, 0o700); err != nil {
		return fmt.Errorf("couldn't create data directory %s: %w", s.c.storage.Data, err)
	}
	if err := s.c.prepareSchema(ctx, s.logger); err != nil {
		return err
	}
	db, err := openDatabase(ctx, &s.c.storage, s.logger)
	if err != nil {
		return err
	}
	s.db = db
	s.onClose(func() { db.Close() })
	return s.c.requireExplicitOrigin(db.pool != nil, savedOrigin(s.c.storage.Data))
}

// listen opens the public listener and the operator one.
func (s *server) listen(ctx context.Context) error {
	c := s.c
	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		return fmt.Errorf("couldn't listen on %s (is another Trail running? choose another with --listen): %w", c.listen, err)
	}
	s.ln, s.baseURL = ln, "http://"+ln.Addr().String()
	s.onClose(func() { ln.Close() })
	if c.metricsListen != "" {
		if s.opsLn, err = net.Listen("tcp", c.metricsListen); err != nil {
			return fmt.Errorf("couldn't listen on %s for metrics (choose another with --metrics-listen, or disable it with an empty one): %w", c.metricsListen, err)
		}
		s.onClose(func() { s.opsLn.Close() })
	} else if c.pprof {
		return usagef("--pprof needs the operator listener: set --metrics-listen")
	}
	return nil
}

// bootstrapAndKeys creates the first admin key, the metrics registry, and
// loads the signing and master keys, checked against the deployment's.
func (s *server) bootstrapAndKeys(ctx context.Context) error {
	c, st, pool := s.c, s.db.backend, s.db.pool
	if err := c.bootstrap(ctx, st, s.baseURL, s.logger); err != nil {
		return err
	}
	s.reg = prometheus.NewRegistry()
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.reg.MustRegister(buildInfoGauge(readBuildInfo()))
	s.health = lease.NewHealth()
	s.leases = lease.Options{Metrics: lease.NewMetrics(s.reg), Health: s.health}
	if pool != nil {
		s.reg.MustRegister(postgres.NewPoolCollector(pool))
	}
	origin, err := c.originPrefix(s.ln.Addr().String())
	if err != nil {
		return err
	}
	if s.keys, err = c.loadKeyring(); err != nil {
		return err
	}
	// The master and signing keys are the deployment's, recorded in its
	// database (masterkeys.go, signingkeys.go).
	if s.keys, err = checkMasterKeys(ctx, st, s.keys); err != nil {
		return err
	}
	if s.signer, err = c.loadDeploymentKeys(ctx, st, origin, s.keys, s.logger); err != nil {
		return err
	}
	s.reg.MustRegister(s.signer.collectors()...)
	if err := c.checkDeploymentIdentity(ctx, st, pool != nil, origin, s.signer); err != nil {
		return err
	}
	s.integrator = &integratorRunner{st: st, heads: st, signer: s.signer, dataDir: c.storage.Data, prefix: origin,
		explicit: c.logOrigin != "", logger: s.logger.With("worker", "integrator"), reg: s.reg, always: pool == nil}
	return nil
}

// startLog prepares the verifiable log's cosigning, the disk guard, the
// search indexer, log streams and the committer, and starts the committer.
func (s *server) startLog(ctx context.Context) error {
	c, st, logger := s.c, s.db.backend, s.logger
	// With --replicate, outsiders see each log as of its newest checkpoint
	// the replica holds (docs/BACKUP.md). Every server serves the
	// cosignatures stored in the database with the checkpoints, whichever
	// of them received them.
	repl, err := c.replication.newReplication(st, logger.With("worker", "replicate"), s.reg)
	if err != nil {
		return err
	}
	s.repl = repl
	s.logStorage = witness.CosignedFrom(repl.view(st), st)
	// Witnesses cosign checkpoints in the background; a fork they show
	// refuses the organization (docs/WITNESS.md).
	cosigner, err := c.witnesses.start(ctx, c.storage.Data, st, s.integrator.Refuse, logger.With("worker", "witness"), s.reg)
	if err != nil {
		return err
	}
	if cosigner != nil {
		s.cosigner = cosigner
		s.integrator.signed = cosigner.Signed
		s.integrator.checkWitnesses = cosigner.CheckStored
		s.down = cosigner.Down
	}
	if repl != nil {
		s.integrator.signed = repl.hold(s.integrator.signed)
		s.integrator.held = repl.held
	}
	// With SQLite the data directory holds the log: a disk reserve keeps
	// the last megabytes for signing what was acknowledged (package
	// diskguard). The search indexer waits while the disk is short.
	indexerOpts := ingest.IndexerOptions{Gap: indexGap()}
	if s.db.pool == nil && c.diskReserveMiB > 0 {
		s.guard = diskguard.New(c.storage.Data, diskguard.Options{Reserve: c.diskReserveMiB << 20, Debts: s.db.lite}, logger.With("worker", "diskguard"))
		indexerOpts.Hold = s.guard.WaitRoom
		registerDiskGuard(s.reg, s.guard)
	}
	if err := delayIndexer(&indexerOpts, searchIndexDelay()); err != nil {
		return err
	}
	if s.db.indexer != nil {
		s.indexer = ingest.NewIndexer(s.db.indexer, indexerOpts, logger.With("worker", "indexer"), s.reg)
	}
	if s.streams, err = newStreams(st, s.keys, c.streamsAllowPrivate, c.streamsAllowLinkLocal, logger, s.reg); err != nil {
		return err
	}
	s.committer = ingest.New(st, ingest.Options{MinInterval: commitInterval(), Concurrency: c.commitConcurrencyFor(s.db.pool != nil), ByOrganization: true, OnCommit: func() {
		s.streams.Wake()
		if s.indexer != nil {
			s.indexer.Wake()
		}
		s.integrator.Wake()
	}}, logger.With("worker", "committer"), s.reg)
	s.committer.Start()
	return nil
}

// startWorkers starts the background workers: disk guard, indexer,
// integrator, cosigning, retention, stream delivery, partitions, exports.
// They run until stopWorkers, even after ctx ends, so that shutdown can
// drain them in order.
func (s *server) startWorkers(ctx context.Context) error {
	c, st, pool, logger := s.c, s.db.backend, s.db.pool, s.logger
	s.workersCtx(ctx)
	if s.repl != nil {
		if err := s.repl.start(s.workers, s.db.lite, c.storage.Data, s.reg); err != nil {
			return err
		}
		s.onClose(s.repl.close)
	}
	if s.guard != nil {
		go s.guard.Run(s.workers)
	}
	if s.indexer != nil {
		s.indexer.Start(s.workers)
	}
	integrating := make(chan struct{})
	go func() {
		defer close(integrating)
		if pool == nil {
			s.integrator.run(s.workers)
			return
		}
		// With replicas on one PostgreSQL, one of them integrates at a
		// time; another takes over within the lease's TTL of its death
		// or stall, at once after a clean shutdown.
		// Other replicas learn of new records by polling (the integrator
		// looks for work every Interval even unwoken).
		integratorLease := s.leases
		integratorLease.Held = func() { s.integrator.elsewhere.Store(true) }
		lease.Run(s.workers, pool, "integrator", integratorLease, logger.With("worker", "integrator"), s.integrator.run)
	}()
	go expireIdempotencyKeys(s.workers, st, logger)
	go s.signer.run(s.workers)
	cosigning := runSubmitter(s.workers, s.cosigner)
	var err error
	if s.archiver, err = c.archive.newArchiver(st, logger, s.reg); err != nil {
		return err
	}
	var archiver retention.Archiver
	if s.archiver != nil {
		archiver = s.archiver
	}
	sweeper, retentionDone, err := startRetention(s.workers, st, pool, s.leases, &c.retention, archiver, logger, s.reg)
	if err != nil {
		return err
	}
	s.sweeper = sweeper
	streamsDone := s.streams.start(s.workers, pool, s.leases)
	s.workersDone = []<-chan struct{}{integrating, cosigning, retentionDone, streamsDone}
	if s.db.pg != nil {
		go maintainPartitions(s.workers, s.db.pg.EnsurePartitions, logger)
	}
	exportLog := cosignedLog{Reader: s.repl.exportLog(s.db), cosigned: witness.CosignedFrom(s.repl.view(s.db), s.db)}
	if s.exports, err = openExports(ctx, s.db, exportLog, s.signer, &c.storage, c.exportDir, c.exportMaxRate, logger); err != nil {
		return err
	}
	s.onClose(func() { s.exports.close() })
	if err := s.exports.svc.Start(s.workers); err != nil {
		return err
	}
	s.onClose(func() { s.exports.svc.Stop(context.Background()) }) // on early returns; a no-op after the shutdown's Stop
	return nil
}

// buildAPI builds the live tail, the recorder of Trail's own actions, the
// stream manager, the Admin Portal and the API handler over them.
func (s *server) buildAPI(context.Context) error {
	c, st, logger := s.c, s.db.backend, s.logger
	limits := event.DefaultLimits()
	limits.MaxBodyBytes = c.maxBody
	schemas := schema.NewRegistry(st, schema.Options{RequireSchemas: c.requireSchemas, Registerer: s.reg})
	publicURL := c.publicURL
	if publicURL == "" {
		publicURL = s.baseURL
	}
	exportAPI := api.ExportConfig{Service: s.exports.svc, BaseURL: c.publicURL,
		Links: export.NewLinks(s.keys.Key("trail export links v1"))}
	s.tail = livetail.NewHub(st, livetail.Options{Logger: logger})
	if err := s.tail.RegisterMetrics(s.reg); err != nil {
		return err
	}
	submitter := admittedSubmitter{next: s.tail.NotifyingSubmitter(guardedSubmitter(s.committer, s.guard)), admit: s.signer.admit(s.integrator.Admit)}
	// The API and the portal share the stream rules and the recorder of
	// Trail's own actions.
	streamManager := s.streams.manager(st)
	audit := selfaudit.New(submitter, selfaudit.Config{Limits: limits, Logger: logger, TrustProxyHeaders: c.trustProxy})
	privacyConfig, erasing, err := startPrivacy(s.workers, st, submitter, s.keys, s.signer, s.db.pool, s.leases, &c.privacy, logger)
	if err != nil {
		return err
	}
	s.workersDone = append(s.workersDone, erasing)
	deleter, deletionsDone := startDeletions(s.workers, st, s.db.pool, s.leases, s.exports.store, s.exports.svc.Path, s.archiver, audit, logger)
	s.workersDone = append(s.workersDone, deletionsDone)
	lifecycle := api.LifecycleConfig{Store: st, Deleter: deleter}
	if s.archiver != nil {
		lifecycle.Archive, lifecycle.ArchiveDefault, lifecycle.ArchiveLocation = st, c.archive.all, s.archiver.Store().String()
	}
	portalConfig, err := newPortal(s.workers, st, s.signer, s.keys, publicURL, logger, streamManager, audit,
		s.exports.svc, s.logStorage, portalWitnesses(s.cosigner), s.tail, archiveNote(st, s.archiver), c.portal)
	if err != nil {
		return err
	}
	s.handler = api.New(st, submitter, api.Config{
		Audit:             audit,
		Limits:            limits,
		MaxBatchBodyBytes: c.maxBatchBody,
		RateLimit:         c.rateLimit,
		RateBurst:         int(c.rateBurst),
		TrustProxyHeaders: c.trustProxy,
		Logger:            logger,
		AccessLog:         c.accessLog,
		AccessLines:       s.lines,
		Registerer:        s.reg,
		Gatherer:          s.reg,
		Log: api.LogConfig{Storage: s.logStorage, VerifierKey: s.signer.NewestKey(), Refused: s.integrator.Refused,
			Checked: s.integrator.Checked, WitnessesDown: s.down, Keys: s.signer.History, NewestKey: s.signer.NewestKey},
		Retention: api.RetentionConfig{Store: st, DefaultDays: int(c.retention.defaultDays), Changed: s.sweeper.Wake},
		Streams:   api.StreamsConfig{Manager: streamManager},
		Portal:    portalConfig,
		Exports:   exportAPI,
		Schemas:   schemas,
		Tail:      api.TailConfig{Hub: s.tail},
		Privacy:   privacyConfig,
		Lifecycle: lifecycle,
		Unready:   newReadiness(pingOf(st), s.guard, s.health).Unready,
	})
	ops := console.Operations{Retention: st, DefaultDays: int(c.retention.defaultDays), RetentionChanged: s.sweeper.Wake,
		Events: st, Streams: streamManager, Schemas: schemas.Store(), Forget: schemas.Forget,
		Ledger: st, Metrics: s.reg, Leases: st}
	if s.cosigner != nil {
		ops.Quorum = s.cosigner.Quorum()
	}
	if s.guard != nil {
		ops.DiskReserve = c.diskReserveMiB << 20
	}
	if s.public, err = withConsole(s.workers, s.handler, st, s.keys, publicURL, logger, audit, portalConfig.Links, ops, s.tail); err != nil {
		return err
	}
	return nil
}

// workersCtx makes, once, the context the background workers run in:
// they run until stopWorkers, even after ctx ends, so that shutdown can
// drain them in order.
func (s *server) workersCtx(ctx context.Context) context.Context {
	if s.workers == nil {
		s.workers, s.stopWorkers = context.WithCancel(context.WithoutCancel(ctx))
		s.onClose(s.stopWorkers)
	}
	return s.workers
}

// run serves until ctx ends (or a listener fails), then shuts down: stop
// taking requests, let in-flight ones finish (each waits for its batch to
// be durable), then drain the committer, then the background workers.
func (s *server) run(ctx context.Context) error {
	c, logger := s.c, s.logger
	srv := &http.Server{
		Handler:           s.public,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	// Live tails are requests that never finish by themselves: shutting
	// down ends them (their clients reconnect with Last-Event-ID).
	srv.RegisterOnShutdown(s.tail.Close)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(s.ln) }()
	var opsSrv *http.Server
	if s.opsLn != nil {
		opsSrv = &http.Server{
			Handler:           s.handler.OperatorHandler(c.pprof),
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		}
		go func() { serveErr <- opsSrv.Serve(s.opsLn) }()
		logger.Info("serving operator endpoints", "addr", s.opsLn.Addr().String(), "pprof", c.pprof)
		fmt.Fprintf(c.stdout, "Trail metrics on http://%s\n", s.opsLn.Addr().String())
	}
	// No event is acknowledged before the stored logs are checked against
	// the checkpoints this server signed (ledger.Integrator.Admit); until
	// then /readyz answers 503.
	if s.integrator.waitChecked(ctx) == nil {
		s.handler.SetReady(true)
		logger.Info("serving", "addr", s.ln.Addr().String(), "data", c.storage.Data)
		fmt.Fprintf(c.stdout, "Trail listening on %s\n", s.baseURL)
	}

	select {
	case err := <-serveErr:
		return fmt.Errorf("HTTP server stopped: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	drain(s.handler, c.shutdownDelay, logger)
	sctx, cancel := context.WithTimeout(context.Background(), c.shutdownWait)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Warn("in-flight requests did not finish in time", "err", err)
	}
	if opsSrv != nil {
		opsSrv.Close()
	}
	s.committer.Stop()
	// Running exports get what is left of the shutdown timeout; past it
	// they are cancelled and River runs them again after the restart.
	if err := s.exports.svc.Stop(sctx); err != nil {
		logger.Warn("export jobs did not stop in time; they will run again after the restart", "err", err)
	}
	// Sign what the committer stored last while the integrator still runs
	// (and, on PostgreSQL, still holds its lease if it did).
	if err := s.integrator.settle(sctx, settleWait); err != nil {
		logger.Warn("events acknowledged last are signed at the next start", "err", err)
	}
	s.stopWorkers()
	for _, done := range s.workersDone {
		<-done
	}
	if s.indexer != nil {
		s.indexer.Stop()
	}
	logger.Info("stopped")
	return nil
}

// The access log writes its lines through serve's log handler.
var _ api.LineWriter = (*logbuf.Handler)(nil)
