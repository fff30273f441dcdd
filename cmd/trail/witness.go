package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/trailaudit/trail/internal/witness"
)

// witnessCommand runs a tlog-witness server (docs/WITNESS.md): it cosigns the
// checkpoints of the logs it is configured for, only when each is consistent
// with the last one it cosigned for that log.
type witnessCommand struct {
	stdout, stderr io.Writer
}

// repeatFlag collects every value of a repeated flag, unsplit.
type repeatFlag []string

func (r *repeatFlag) String() string { return strings.Join(*r, "; ") }
func (r *repeatFlag) Set(s string) error {
	*r = append(*r, s)
	return nil
}

const witnessUsage = `Usage: trail witness --data DIR --log "ORIGIN VKEY" [--log …] [--log-file FILE] [--listen ADDR]

Runs a witness (C2SP tlog-witness): POST /add-checkpoint cosigns a log's
checkpoint only with a valid consistency proof from the last checkpoint it
cosigned for that log. Its Ed25519 key is created in --data on first start;
give the printed verifier key to the log's operator (trail serve --witness).

ORIGIN is a checkpoint origin, or PREFIX/* for every origin PREFIX/<id>
(a Trail server has one origin per organization, <log origin>/<org id>);
VKEY is the log's verifier key (trail log key). See docs/WITNESS.md.

`

func (c *witnessCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("witness", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), witnessUsage)
		fs.PrintDefaults()
	}
	listen := setting{fs}.String("listen", "TRAIL_WITNESS_LISTEN", "127.0.0.1:7380", "address to serve HTTP on")
	data := setting{fs}.String("data", "TRAIL_WITNESS_DATA", "trail-witness-data", "directory of the witness key and state (witness.key, witness.db)")
	name := setting{fs}.String("name", "TRAIL_WITNESS_NAME", "", "the witness's key name on first start, e.g. witness.example.com (default: witness.<hostname>)")
	logFile := setting{fs}.String("log-file", "TRAIL_WITNESS_LOG_FILE", "", "file of logs to witness, one \"ORIGIN VKEY\" per line (# comments)")
	logFormat := setting{fs}.String("log-format", "TRAIL_LOG_FORMAT", "auto", "log format: auto, text or json")
	logLevel := setting{fs}.String("log-level", "TRAIL_LOG_LEVEL", "info", "log level: debug, info, warn or error")
	var logs repeatFlag
	fs.Var(&logs, "log", "a log to witness: \"ORIGIN VKEY\" or \"PREFIX/* VKEY\" (repeatable)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	var configs []witness.LogConfig
	for _, l := range logs {
		lc, err := witness.ParseLogConfig(l)
		if err != nil {
			return usagef("--log: %v", err)
		}
		configs = append(configs, lc)
	}
	if *logFile != "" {
		fromFile, err := witness.ReadLogFile(*logFile)
		if err != nil {
			return usagef("--log-file: %v", err)
		}
		configs = append(configs, fromFile...)
	}
	if len(configs) == 0 {
		return usagef("give at least one log to witness: --log \"ORIGIN VKEY\" or --log-file FILE")
	}
	logger, err := newLogger(c.stderr, *logFormat, *logLevel)
	if err != nil {
		return usageError{err}
	}
	keyName := *name
	if keyName == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "localhost"
		}
		keyName = "witness." + host
	}
	signer, err := witness.LoadOrCreateSigner(*data, keyName)
	if err != nil {
		return err
	}
	srv, err := witness.OpenServer(*data, signer, configs, logger)
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("couldn't listen on %s: %w", *listen, err)
	}
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()
	for _, l := range configs {
		o := l.Origin
		if l.Prefix {
			o += "/*"
		}
		logger.Info("witnessing", "origin", o, "log_key", l.Verifier.Name())
	}
	logger.Info("serving", "addr", ln.Addr().String(), "data", *data, "verifier_key", srv.VerifierKey())
	fmt.Fprintf(c.stdout, "Witness verifier key: %s\n", srv.VerifierKey())
	fmt.Fprintf(c.stdout, "Trail witness listening on http://%s\n", ln.Addr().String())
	select {
	case err := <-serveErr:
		return fmt.Errorf("HTTP server stopped: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutting down: %w", err)
	}
	return nil
}
