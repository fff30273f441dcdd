package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/replicate"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/store/sqlite"
)

// restoreCommand is `trail restore`: a data directory from a replica
// (serve --replicate) or a backup file (trail backup), checked against the
// checkpoints published (docs/BACKUP.md).
type restoreCommand struct {
	stdout, stderr io.Writer
}

func (c *restoreCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	data := fs.String("data", envString("TRAIL_DATA", "./trail-data"), "data directory to restore into; it must be empty or not exist [TRAIL_DATA]")
	from := fs.String("from", "", "the replica to restore from: s3://bucket/prefix or file:///path, as given to serve --replicate")
	fromBackup := fs.String("from-backup", "", "a file written by trail backup, to restore instead of a replica")
	check := fs.String("check", "", "with --from-backup: the replica (s3://… or file://…) whose record of published checkpoints the backup is checked against")
	endpoint := fs.String("endpoint", envString("TRAIL_REPLICATE_ENDPOINT", ""), "URL of the S3-compatible server for s3:// URLs; credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY [TRAIL_REPLICATE_ENDPOINT]")
	at := fs.String("timestamp", "", "with --from: restore the state at this time (RFC 3339, e.g. 2026-01-02T15:04:05Z) instead of the newest; refused if that is behind a published checkpoint")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if (*from == "") == (*fromBackup == "") {
		return usagef("give one of --from s3://…|file://… (a replica) or --from-backup FILE")
	}
	if *check != "" && *fromBackup == "" {
		return usagef("--check is for --from-backup; a replica holds its own record of published checkpoints")
	}
	var ts time.Time
	if *at != "" {
		if *fromBackup != "" {
			return usagef("--timestamp is for --from: a backup holds one point in time")
		}
		var err error
		if ts, err = time.Parse(time.RFC3339, *at); err != nil {
			return usagef("--timestamp %q: want RFC 3339, such as 2026-01-02T15:04:05Z", *at)
		}
	}
	recordURL := *from
	if *fromBackup != "" {
		recordURL = *check
	}
	var target replicate.Target
	if recordURL != "" {
		var err error
		if target, err = replicate.ParseTarget(recordURL, *endpoint, os.Getenv); err != nil {
			return usagef("--from/--check: %v", err)
		}
	}
	if err := emptyDir(*data); err != nil {
		return err
	}
	created := !fileExists(*data)
	restored := false
	defer func() {
		if !restored { // leave the directory as it was found
			if created {
				os.RemoveAll(*data)
			} else {
				clearDir(*data)
			}
		}
	}()

	logger := slog.New(slog.DiscardHandler)
	start := time.Now()
	var source string
	if *fromBackup != "" {
		n, err := unpackBackup(*fromBackup, *data)
		if err != nil {
			return err
		}
		source = *fromBackup
		fmt.Fprintf(c.stdout, "Unpacked %s (%s) into %s.\n", *fromBackup, mib(n), *data)
	} else {
		bar := newProgress(c.stderr)
		var barMu sync.Mutex // the restore may read several files at once
		res, err := replicate.Restore(ctx, target, *data, []string{"trail.db"}, replicatedNames(),
			replicate.RestoreOptions{Timestamp: ts, Progress: func(done, total int64) {
				barMu.Lock()
				defer barMu.Unlock()
				pct := int64(100)
				if total > 0 {
					pct = min(100, done*100/total)
				}
				bar.update("restoring from %s: %s of %s (%d%%)", target, mib(done), mib(total), pct)
			}}, logger)
		bar.clear()
		if err != nil {
			return err
		}
		var read int64
		for _, r := range res {
			read += r.Bytes
		}
		took := time.Since(start)
		source = target.String()
		fmt.Fprintf(c.stdout, "Restored %s from %s in %s (%s/s).\n", strings.Join(restoredNames(res), " and "), target, took.Round(time.Millisecond), mib(int64(float64(read)/max(took.Seconds(), 0.001))))
	}

	var rec replicate.Record
	var haveRecord bool
	if recordURL != "" {
		var err error
		if rec, haveRecord, err = replicate.ReadPublished(ctx, target); err != nil {
			return fmt.Errorf("couldn't read the record of published checkpoints: %w", err)
		}
	}
	res, err := checkRestored(ctx, filepath.Join(*data, "trail.db"), rec)
	if err != nil {
		return err
	}
	if len(res.forks) > 0 {
		return fmt.Errorf("refusing this restore: it would fork history. It lacks what these published checkpoints cover (outsiders may hold them; a server on it would sign a different history):\n  %s\nRestore a newer state (without --timestamp, or a newer backup); %s is left as it was",
			strings.Join(res.forks, "\n  "), *data)
	}
	restored = true
	switch {
	case recordURL == "":
		fmt.Fprintf(c.stdout, "Not checked against published checkpoints (give --check with the replica's URL; witnesses, if configured, check at start).\n")
	case !haveRecord:
		fmt.Fprintf(c.stdout, "%s holds no record of published checkpoints: nothing was published while replicating there.\n", target)
	default:
		fmt.Fprintf(c.stdout, "Checked against the %d checkpoints published up to %s: the restored log extends every one.\n", len(rec.Logs), rec.WrittenAt.Format(time.RFC3339))
	}
	if res.lost > 0 {
		fmt.Fprintf(c.stdout, "LOST: %s events acknowledged after the last replicated point are not in the restored log:\n  %s\n", commas(res.lost), strings.Join(res.lostBy, "\n  "))
		fmt.Fprintf(c.stdout, "That count is exact for events acknowledged before %s; any acknowledged after it cannot be counted.\n", rec.WrittenAt.Format(time.RFC3339Nano))
	} else if haveRecord {
		fmt.Fprintf(c.stdout, "No event acknowledged before %s is lost (events acknowledged after it cannot be counted).\n", rec.WrittenAt.Format(time.RFC3339Nano))
	}
	fmt.Fprintf(c.stdout, "Restored %d logs (%s events) from %s into %s. Start trail serve on it.\n", res.logs, commas(res.events), source, *data)
	return nil
}

func restoredNames(res []replicate.DatabaseRestore) []string {
	var names []string
	for _, r := range res {
		if r.Found {
			names = append(names, fmt.Sprintf("%s (%s)", r.File, mib(r.Bytes)))
		}
	}
	return names
}

// replicatedNames are the base names of replicatedFiles.
func replicatedNames() []string {
	var out []string
	for _, p := range replicatedFiles("") {
		out = append(out, filepath.Base(p))
	}
	return out
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// emptyDir refuses a data directory that holds anything.
func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("couldn't read %s: %w", dir, err)
	}
	if len(entries) > 0 {
		return usagef("%s is not empty (it holds %s): restore into an empty data directory, and move the old one aside first", dir, entries[0].Name())
	}
	return nil
}

func clearDir(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}

// restoreCheck is what checkRestored found.
type restoreCheck struct {
	logs, events int64
	forks        []string // one line per published checkpoint the restore lacks
	lost         int64    // events acknowledged, by the record, that the restore lacks
	lostBy       []string
}

// checkRestored checks the restored database against the record of
// published checkpoints: every log must hold the published checkpoint's
// tree and extend it; events the record counts as acknowledged beyond the
// restored ones are lost.
func checkRestored(ctx context.Context, dbPath string, rec replicate.Record) (restoreCheck, error) {
	var res restoreCheck
	st, err := sqlite.Open(ctx, dbPath, nil)
	if err != nil {
		return res, fmt.Errorf("couldn't open the restored database: %w", err)
	}
	defer st.Close()
	logs, err := st.IntegratedLogs(ctx)
	if err != nil {
		return res, fmt.Errorf("couldn't read the restored logs: %w", err)
	}
	for _, l := range logs {
		res.logs++
		res.events += l.NextSeq
	}
	for _, p := range rec.Logs {
		fork, lost, line, err := checkPublished(ctx, st, p)
		if err != nil {
			return res, err
		}
		if fork != "" {
			res.forks = append(res.forks, fork)
		}
		if lost > 0 {
			res.lost += lost
			res.lostBy = append(res.lostBy, line)
		}
	}
	return res, nil
}

// checkPublished checks one log against its published checkpoint: fork
// says what the restore lacks of it, lost counts the events acknowledged
// (by the record) that it lacks, line names them.
func checkPublished(ctx context.Context, st *sqlite.Store, p replicate.RecordLog) (fork string, lost int64, line string, err error) {
	body, _, ok := bytes.Cut([]byte(p.Checkpoint), []byte("\n\n"))
	if !ok {
		return "", 0, "", fmt.Errorf("the record of published checkpoints holds a malformed checkpoint for %s", p.OrganizationID)
	}
	pub, err := ledger.ParseCheckpointBody(append(body, '\n'))
	if err != nil {
		return "", 0, "", fmt.Errorf("the record of published checkpoints, %s: %w", p.OrganizationID, err)
	}
	s, err := st.LogState(ctx, p.OrganizationID)
	if errors.Is(err, store.ErrNotFound) {
		s, err = ledger.LogState{OrganizationID: p.OrganizationID}, nil
	} else if err != nil {
		return "", 0, "", fmt.Errorf("couldn't read the restored log of %s: %w", p.OrganizationID, err)
	}
	if p.Acknowledged > s.NextSeq {
		lost = p.Acknowledged - s.NextSeq
		line = fmt.Sprintf("%s: %s (seq %d–%d)", p.OrganizationID, commas(lost), s.NextSeq, p.Acknowledged-1)
	}
	if s.IntegratedSize < pub.Size {
		return fmt.Sprintf("%s: checkpoint of size %s published; the restored log's newest covers %s (seq %d–%d missing)",
			p.OrganizationID, commas(pub.Size), commas(s.IntegratedSize), s.IntegratedSize, pub.Size-1), lost, line, nil
	}
	newest, err := st.LatestCheckpoint(ctx, p.OrganizationID)
	if err != nil {
		return "", 0, "", fmt.Errorf("couldn't read the restored checkpoint of %s: %w", p.OrganizationID, err)
	}
	nbody, _, _ := bytes.Cut(newest, []byte("\n\n"))
	ck, err := ledger.ParseCheckpointBody(append(nbody, '\n'))
	if err != nil {
		return "", 0, "", fmt.Errorf("the restored checkpoint of %s: %w", p.OrganizationID, err)
	}
	proof, err := ledger.ConsistencyProof(ctx, st, p.OrganizationID, pub.Size, ck.Size)
	if err != nil {
		return "", 0, "", fmt.Errorf("couldn't prove the restored log of %s consistent with its published checkpoint: %w", p.OrganizationID, err)
	}
	if err := tlog.CheckTree(proof, ck.Size, ck.Hash, pub.Size, pub.Hash); err != nil {
		return fmt.Sprintf("%s: the restored tree of size %s does not extend the published checkpoint of size %s (root %s)",
			p.OrganizationID, commas(ck.Size), commas(pub.Size), pub.Hash), lost, line, nil
	}
	return "", lost, line, nil
}
