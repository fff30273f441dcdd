package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/trailaudit/trail/internal/keyring"
	"github.com/trailaudit/trail/internal/lease"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/stream"
	"github.com/trailaudit/trail/internal/streamadmin"
)

// streamsRunner wires log streams into trail serve: the codec that seals
// their secrets, and the delivery engine, run on one replica at a time.
type streamsRunner struct {
	st     stream.Store
	codec  *stream.Codec
	engine *stream.Engine
	logger *slog.Logger
}

// newStreams prepares log streams over st, delivering to public addresses
// (and private or link-local ones when allowed), sealing secrets under the
// master key's "trail stream secrets v1" key.
func newStreams(st backend, keys *keyring.Keyring, allowPrivate, allowLinkLocal bool, logger *slog.Logger, reg prometheus.Registerer) (*streamsRunner, error) {
	codec := stream.NewCodec(stream.Policy{AllowPrivate: allowPrivate, AllowLinkLocal: allowLinkLocal}, keys.Sealer(stream.SealPurpose))
	logger = logger.With("worker", "streams")
	return &streamsRunner{st: st, codec: codec, logger: logger,
		engine: stream.New(st, codec, stream.Options{}, logger, reg)}, nil
}

// Wake tells the engine new events were committed.
func (r *streamsRunner) Wake() { r.engine.Committed() }

// start runs the engine until ctx ends; the returned channel closes once it
// has stopped. With PostgreSQL one replica delivers every stream at a time
// (the "streams" lease); a replica that dies or stalls hands over within
// the lease's TTL.
func (r *streamsRunner) start(ctx context.Context, pool *pgxpool.Pool, leases lease.Options) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if pool == nil {
			r.engine.Run(ctx)
			return
		}
		lease.Run(ctx, pool, "streams", leases, r.logger, r.engine.Run)
	}()
	return done
}

// manager manages the streams for the API and the Admin Portal, waking
// the engine after each change.
func (r *streamsRunner) manager(st backend) *streamadmin.Manager {
	return streamadmin.New(streamadmin.Config{Store: r.st, Log: st, Records: st, Codec: r.codec, Wake: r.engine.Wake})
}

// streamsCommand is trail streams resume: resume many log streams at once,
// such as every stream a misconfigured server marked invalid.
type streamsCommand struct {
	stdout  io.Writer
	storage storageFlags
}

const streamsUsage = "trail streams resume --all [--org ORG_ID] [--state invalid,error]"

func (c *streamsCommand) Run(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "resume" {
		return usagef("say what to do: %s", streamsUsage)
	}
	fs := flag.NewFlagSet("streams resume", flag.ContinueOnError)
	c.storage.register(fs)
	all := fs.Bool("all", false, "resume every stream in one of the --state states (required: a bulk change is never implied)")
	org := fs.String("org", "", "only the streams of this organization")
	states := fs.String("state", "invalid,error", "comma-separated states to resume: invalid, error, inactive (paused by an administrator)")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if !*all || fs.NArg() != 0 {
		return usagef("%s (one stream: POST /v1/organizations/{id}/log_streams/{stream}/resume)", streamsUsage)
	}
	want := map[string]bool{}
	for _, s := range strings.Split(*states, ",") {
		switch s = strings.TrimSpace(s); s {
		case store.StreamInvalid, store.StreamError, store.StreamInactive:
			want[s] = true
		default:
			return usagef("--state %q: want invalid, error or inactive, comma-separated", s)
		}
	}
	st, err := openStore(ctx, &c.storage)
	if err != nil {
		return err
	}
	defer st.Close()
	var ss store.StreamStore = st
	if *org != "" {
		if _, err := st.Organization(ctx, *org); err != nil {
			return fmt.Errorf("--org %s: %w", *org, err)
		}
	}
	positions, err := ss.StreamPositions(ctx)
	if err != nil {
		return err
	}
	n := 0
	for _, p := range positions {
		if (*org != "" && p.OrganizationID != *org) || !want[p.State] {
			continue
		}
		s, err := ss.Stream(ctx, p.ID)
		if errors.Is(err, store.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return err
		}
		if !want[s.State] {
			continue
		}
		s.State = store.StreamActive
		if err := ss.UpdateStream(ctx, s); errors.Is(err, store.ErrNotFound) {
			continue
		} else if err != nil {
			return fmt.Errorf("couldn't resume stream %s (%d resumed so far): %w", s.ID, n, err)
		}
		if err := recordCLIAction(ctx, st, "trail.log_stream.resumed", s.OrganizationID, cliTarget{Type: "log_stream", ID: s.ID, Name: s.Name}); err != nil {
			return err
		}
		n++
	}
	fmt.Fprintf(c.stdout, "Resumed %d log streams. Delivery goes on from each one's cursor.\n", n)
	return nil
}
