package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trailaudit/trail/internal/export"
	"github.com/trailaudit/trail/internal/keyring"
	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/replicate"
	"github.com/trailaudit/trail/internal/store/sqlite"
)

// replicateFlags are trail serve's replication settings (docs/BACKUP.md).
type replicateFlags struct {
	url      string
	endpoint string
}

func (f *replicateFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.url, "replicate", envString("TRAIL_REPLICATE", ""), "with SQLite, replicate the log, keys and settings continuously to s3://bucket/prefix or file:///path; a checkpoint is published only once the replica holds what it covers (docs/BACKUP.md) [TRAIL_REPLICATE]")
	fs.StringVar(&f.endpoint, "replicate-endpoint", envString("TRAIL_REPLICATE_ENDPOINT", ""), "URL of the S3-compatible server (MinIO, Ceph, R2, …) for --replicate s3://…; credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, the region from AWS_REGION [TRAIL_REPLICATE_ENDPOINT]")
}

// target returns the replica target; ok is false without --replicate.
func (f *replicateFlags) target() (t replicate.Target, ok bool, err error) {
	if f.url == "" {
		if f.endpoint != "" {
			return t, false, errors.New("--replicate-endpoint needs --replicate s3://bucket/prefix")
		}
		return t, false, nil
	}
	t, err = replicate.ParseTarget(f.url, f.endpoint, os.Getenv)
	if err != nil {
		return t, false, fmt.Errorf("--replicate: %w", err)
	}
	return t, true, nil
}

func (f *replicateFlags) validate(postgres bool) error {
	_, ok, err := f.target()
	if err == nil && ok && postgres {
		return errors.New("--replicate is for the embedded SQLite database; back PostgreSQL up with its own tools (docs/BACKUP.md)")
	}
	return err
}

// replicatedFiles are the data directory's small files a restore needs:
// the keys and the log origin. The record of the checkpoints signed is in
// the database (ledger.HeadStorage), replicated with it; a signed-checkpoints
// file left by an older version is not copied.
func replicatedFiles(dataDir string) []string {
	return []string{filepath.Join(dataDir, ledger.SigningKeyFile), filepath.Join(dataDir, keyring.FileName), filepath.Join(dataDir, originFile)}
}

// replication is trail serve's --replicate: the replicator and the gate
// that holds checkpoints back until the replica has what they cover.
type replication struct {
	target replicate.Target
	rep    atomic.Pointer[replicate.Replicator]
	gate   *ledger.PublishGate
	next   func(org string, size int64, checkpoint []byte) // the witness client
	logger *slog.Logger
	stop   context.CancelFunc
	done   chan struct{}

	// found is the record the replica held before this server first
	// wrote it (read by the first call of record): no log's entry is
	// written lower than it was there. A data directory restored from an older copy
	// publishes its older checkpoints first, and the record must not go
	// back with it: the integrator's startup check reads it, and so does
	// a restore (docs/BACKUP.md).
	found map[string]replicate.RecordLog
}

// newReplication returns the replication of --replicate, not started; nil
// without it.
func (f *replicateFlags) newReplication(st ledger.Storage, logger *slog.Logger, reg prometheus.Registerer) (*replication, error) {
	t, ok, err := f.target()
	if err != nil || !ok {
		return nil, err
	}
	r := &replication{target: t, logger: logger, done: make(chan struct{})}
	r.gate = ledger.NewPublishGate(st, r, ledger.GateOptions{Record: r.record, Published: r.published}, logger, reg)
	return r, nil
}

// Sync is the gate's barrier (ledger.Replica).
func (r *replication) Sync(ctx context.Context) error {
	rep := r.rep.Load()
	if rep == nil {
		return errors.New("replication is starting")
	}
	return rep.Sync(ctx)
}

func (r *replication) record(ctx context.Context, logs []ledger.PublishedLog) error {
	// WrittenAt is when the counts were taken: every event acknowledged
	// before it is counted, so a restore's count of lost events is exact
	// up to that instant (docs/BACKUP.md).
	rec := replicate.Record{WrittenAt: time.Now().UTC(), Logs: make([]replicate.RecordLog, len(logs))}
	for _, l := range logs {
		if !l.AcceptedAt.IsZero() && l.AcceptedAt.Before(rec.WrittenAt) {
			rec.WrittenAt = l.AcceptedAt.UTC()
		}
	}
	if r.found == nil {
		old, ok, err := replicate.ReadPublished(ctx, r.target)
		if err != nil {
			return fmt.Errorf("couldn't read the record of published checkpoints before writing it: %w", err)
		}
		r.found = map[string]replicate.RecordLog{}
		if ok {
			for _, l := range old.Logs {
				r.found[l.OrganizationID] = l
			}
		}
	}
	for i, l := range logs {
		rec.Logs[i] = replicate.RecordLog{OrganizationID: l.OrganizationID, Size: l.Size, Checkpoint: string(l.Checkpoint), Acknowledged: l.Accepted}
		if f, ok := r.found[l.OrganizationID]; ok && f.Size > l.Size {
			rec.Logs[i] = f
		}
	}
	return r.rep.Load().WritePublished(ctx, rec)
}

// held returns the checkpoints the replica's record of publication holds
// (ledger.Options.Held): a data directory restored from an older copy than
// the replica is refused for the logs it is behind on.
func (r *replication) held(ctx context.Context) (string, []ledger.SignedHead, error) {
	const source = "the replica's record of published checkpoints (" + replicate.PublishedFile + ")"
	ctx, cancel := context.WithTimeout(ctx, heldReadTimeout)
	defer cancel()
	rec, ok, err := replicate.ReadPublished(ctx, r.target)
	if err != nil || !ok {
		return source, nil, err
	}
	heads := make([]ledger.SignedHead, 0, len(rec.Logs))
	for _, l := range rec.Logs {
		body, _, _ := strings.Cut(l.Checkpoint, "\n\n")
		ck, err := ledger.ParseCheckpointBody([]byte(body + "\n"))
		if err != nil {
			return source, nil, fmt.Errorf("%s/%s: the checkpoint of %s: %w", r.target, replicate.PublishedFile, l.OrganizationID, err)
		}
		heads = append(heads, ledger.SignedHead(ck))
	}
	return source, heads, nil
}

// heldReadTimeout bounds reading the record of published checkpoints at
// startup: a target that does not answer cannot tell, and must not keep
// the integrator from starting for long.
const heldReadTimeout = 30 * time.Second

func (r *replication) published(org string, size int64, checkpoint []byte) {
	if r.next != nil {
		r.next(org, size, checkpoint)
	}
}

// hold puts the gate between the integrator and next (the witness client,
// or nil): it returns what the integrator is to call with each checkpoint.
func (r *replication) hold(next func(org string, size int64, checkpoint []byte)) func(org string, size int64, checkpoint []byte) {
	r.next = next
	return r.gate.Signed
}

// view returns what outsiders may see of st: each log as of its newest
// published checkpoint. Without replication, st itself.
func (r *replication) view(st ledger.Storage) ledger.Storage {
	if r == nil {
		return st
	}
	return r.gate.Storage()
}

// exportLog returns what export jobs read: their bundles end at a
// published checkpoint.
func (r *replication) exportLog(st export.Reader) export.Reader {
	if r == nil {
		return st
	}
	return publishedReader{Reader: st, view: r.gate.Storage()}
}

type publishedReader struct {
	export.Reader
	view ledger.Storage
}

func (p publishedReader) LatestCheckpoint(ctx context.Context, org string) ([]byte, error) {
	return p.view.LatestCheckpoint(ctx, org)
}

func (p publishedReader) Checkpoint(ctx context.Context, org string, size int64) ([]byte, error) {
	return p.view.Checkpoint(ctx, org, size)
}

func (p publishedReader) LogState(ctx context.Context, org string) (ledger.LogState, error) {
	return p.view.LogState(ctx, org)
}

func (p publishedReader) IntegratedLogs(ctx context.Context) ([]ledger.LogState, error) {
	return p.view.IntegratedLogs(ctx)
}

// start begins replicating the log database (the witness cosignatures are
// in it too) and the key files, and publishing checkpoints through the
// gate, until ctx ends; close waits for the last round. lite is the
// embedded database (nil with PostgreSQL, which --replicate refuses). The
// store stops checkpointing the log file itself: Litestream does it.
func (r *replication) start(ctx context.Context, lite *sqlite.Store, dataDir string, reg prometheus.Registerer) error {
	if lite == nil {
		return errors.New("--replicate is for the embedded SQLite database, not PostgreSQL")
	}
	dbs := []string{lite.Path()}
	lite.LeaveCheckpoints()
	rep, err := replicate.Start(ctx, r.target, replicate.Options{Databases: dbs, Files: replicatedFiles(dataDir),
		CheckpointPages: replicateCheckpointPages(), LockWait: replicateLockWait(), RoundGap: replicateRoundGap(),
		CheckpointInRound: replicateCheckpointInRound()}, r.logger, reg)
	if err != nil {
		return err
	}
	r.rep.Store(rep)
	r.logger.Info("replicating", "target", r.target.String(), "databases", len(dbs))
	ctx, r.stop = context.WithCancel(ctx)
	go func() {
		defer close(r.done)
		r.gate.Run(ctx)
	}()
	return nil
}

// close stops the gate, then brings the replica up to date a last time
// and stops replicating.
func (r *replication) close() {
	rep := r.rep.Load()
	if rep == nil {
		return
	}
	r.stop()
	<-r.done
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rep.Close(ctx); err != nil {
		r.logger.Warn("couldn't bring the replica up to date before stopping; it holds what was replicated before", "target", r.target.String(), "err", err)
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
