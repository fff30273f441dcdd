package main

import (
	"context"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/trailaudit/trail/internal/api"
	"github.com/trailaudit/trail/internal/keyring"
	"github.com/trailaudit/trail/internal/lease"
	"github.com/trailaudit/trail/internal/stream"
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
func (r *streamsRunner) Wake() { r.engine.Wake() }

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

// apiConfig is the API's view of log streams.
func (r *streamsRunner) apiConfig(st backend) api.StreamsConfig {
	return api.StreamsConfig{Store: r.st, Records: st, Codec: r.codec, Wake: r.engine.Wake}
}
