package ledger

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/trailaudit/trail/internal/storeerr"
)

// errRefused means the log is refused; the reason was logged and is in
// Integrator.Refused.
var errRefused = errors.New("log refused")

// startupChecks checks, before the first pass, every log that the state file
// or the database has signed checkpoints for, until every check has come to
// a conclusion (a database outage is waited out), so that Admit knows every
// refused log before the first event is acknowledged. It returns false if
// the integrator stops first.
func (i *Integrator) startupChecks(ctx context.Context) bool {
	backoff := min(time.Second, 10*i.opts.Interval)
	for {
		err := i.startupCheckOnce(ctx)
		if err == nil {
			return true
		}
		if ctx.Err() == nil {
			i.logger.Warn("couldn't check the stored trees at startup; events are refused (503) until they are checked; retrying", "err", err)
		}
		if !i.sleep(ctx, backoff) {
			return false
		}
	}
}

// startupCheckOnce checks every log not checked yet; it returns the first
// error that leaves a log unchecked.
func (i *Integrator) startupCheckOnce(ctx context.Context) error {
	if err := i.loadHeads(ctx); err != nil {
		return err
	}
	logs, err := i.storage.IntegratedLogs(ctx)
	if err != nil {
		return fmt.Errorf("couldn't list the integrated logs: %w", err)
	}
	var failed error
	known := map[string]bool{}
	for _, st := range logs {
		known[st.OrganizationID] = true
		if err := i.checkOnce(ctx, st); err != nil && failed == nil {
			failed = err
		}
	}
	other := 0
	for origin := range i.heads {
		org, ok := strings.CutPrefix(origin, i.prefix+"/")
		if !ok || strings.Contains(org, "/") {
			other++
			continue
		}
		if known[org] || i.checked[org] || i.isRefused(org) {
			continue
		}
		st, err := i.storage.LogState(ctx, org)
		if errors.Is(err, storeerr.ErrNotFound) {
			head := i.heads[origin]
			_ = i.refuse(org, fmt.Sprintf(
				"%s checkpoint size %d (root %s) for origin %s, but the database has no organization %s: "+
					"it was probably restored from a backup older than the organization. Restore the newest database; "+
					"Trail signs nothing for this organization until its records are back.",
				head.holder(), head.Size, head.Hash, origin, org),
				"signed_size", head.Size, "signed_root", head.Hash.String())
			continue
		}
		if err != nil {
			if failed == nil {
				failed = fmt.Errorf("couldn't read the log state of %s: %w", org, err)
			}
			continue
		}
		if err := i.checkOnce(ctx, st); err != nil && failed == nil {
			failed = err
		}
	}
	if other > 0 {
		i.logger.Info("signed-checkpoints lists origins with another prefix; they are kept but not checked", "origins", other, "prefix", i.prefix)
	}
	if len(i.heads) == 0 && len(logs) > 0 {
		i.logger.Warn("no record of the checkpoints signed (the database keeps none yet, and there is no signed-checkpoints file) but the database has checkpoints; continuing from the database's own, which are recorded now",
			"file", i.statePath, "logs", len(logs))
	}
	if failed != nil {
		return failed
	}
	if err := i.recordSeeds(ctx); err != nil {
		return err
	}
	return i.publishRefusals(ctx, true)
}

// publishRefusals makes the refusals recorded in a RefusalStorage those of
// this integrator: new ones are recorded, and with all (after every log was
// checked) recorded ones this integrator does not share are cleared — but
// only for logs its state file knows: a replica that never signed for a log
// cannot vouch for it, and leaves another replica's refusal alone.
func (i *Integrator) publishRefusals(ctx context.Context, all bool) error {
	rs, ok := i.storage.(RefusalStorage)
	if !ok {
		return nil
	}
	if i.published == nil {
		stored, err := rs.RefusedLogs(ctx)
		if err != nil {
			return fmt.Errorf("couldn't read the refused logs: %w", err)
		}
		i.published = stored
	}
	refused := i.Refused()
	for org, why := range refused {
		if i.published[org] == why {
			continue
		}
		if err := rs.SetLogRefused(ctx, org, why); err != nil {
			return fmt.Errorf("couldn't record that the log of %s is refused: %w", org, err)
		}
		i.published[org] = why
	}
	if !all {
		return nil
	}
	for org := range i.published {
		if _, ok := refused[org]; ok {
			continue
		}
		if _, known := i.heads[Origin(i.prefix, org)]; !known {
			continue
		}
		if err := rs.SetLogRefused(ctx, org, ""); err != nil {
			return fmt.Errorf("couldn't clear the refusal of the log of %s: %w", org, err)
		}
		delete(i.published, org)
		i.logger.Info("the log is no longer refused: the database holds what this server signed", "org", org)
	}
	return nil
}

// checkOnce checks st unless it was checked or refused already; a refusal
// is a conclusion, not an error.
func (i *Integrator) checkOnce(ctx context.Context, st LogState) error {
	if i.checked[st.OrganizationID] || i.isRefused(st.OrganizationID) {
		return nil
	}
	if err := i.check(ctx, st); err != nil && !errors.Is(err, errRefused) {
		return err
	}
	return nil
}

// check compares the stored tree of one log with the newest checkpoint this
// server signed for it (state file) and with the database's own newest
// checkpoint. It refuses the log when they disagree for good, and returns
// other errors (the log stays unchecked and is checked again later).
func (i *Integrator) check(ctx context.Context, st LogState) error {
	org := st.OrganizationID
	r := newHashReader(ctx, i.storage, org)
	for _, head := range i.headsOf(Origin(i.prefix, org)) {
		switch {
		case st.IntegratedSize >= head.Size:
			h, err := tlog.TreeHash(head.Size, r)
			if err != nil {
				return i.definitive(org, err, fmt.Sprintf("couldn't recompute root at signed size %d", head.Size))
			}
			if h != head.Hash {
				return i.refuseMismatch(st, head, h)
			}
		case st.NextSeq < head.Size:
			return i.refuseMissing(st, head)
		default:
			// The database is behind the record but holds the records
			// (the process died between recording the head and
			// committing): the next pass integrates at least up to
			// head.Size and checks the root before signing.
		}
	}
	if st.IntegratedSize > 0 {
		msg, err := i.storage.LatestCheckpoint(ctx, org)
		if err != nil {
			return i.definitive(org, err, fmt.Sprintf("couldn't read the newest checkpoint of integrated size %d", st.IntegratedSize))
		}
		c, err := parseUnverified(msg)
		if err != nil {
			return i.refuse(org, fmt.Sprintf("the database's newest checkpoint is malformed (%v): it was altered. Restore the database from a backup.", err))
		}
		if c.Size != st.IntegratedSize {
			return i.refuse(org, fmt.Sprintf(
				"the database's newest checkpoint has size %d but its integrated size is %d: checkpoints or log state were altered. Restore the database from a backup.",
				c.Size, st.IntegratedSize), "checkpoint_size", c.Size, "integrated_size", st.IntegratedSize)
		}
		h, err := tlog.TreeHash(c.Size, r)
		if err != nil {
			return i.definitive(org, err, fmt.Sprintf("couldn't recompute root at size %d", c.Size))
		}
		if h != c.Hash {
			return i.refuse(org, fmt.Sprintf(
				"the database's newest checkpoint (size %d, root %s) does not match its stored tiles (root %s): tiles or checkpoints were altered. Restore the database from a backup.",
				c.Size, c.Hash, h), "size", c.Size, "checkpoint_root", c.Hash.String(), "tiles_root", h.String())
		}
		if i.opts.Heads != nil && !i.seeded {
			// A log signed before the record moved into the database
			// (or by a replica whose file stayed in its data directory):
			// its checked newest checkpoint becomes its record.
			origin := Origin(i.prefix, org)
			if head, ok := i.heads[origin]; !ok || head.Size < c.Size {
				i.seeds = append(i.seeds, SignedHead{Origin: origin, Size: c.Size, Hash: c.Hash})
			}
		}
	}
	i.checked[org] = true
	return nil
}

// definitive refuses the log if err shows stored tiles or checkpoints are
// missing or malformed, and otherwise returns err for a later retry.
func (i *Integrator) definitive(org string, err error, doing string) error {
	if errors.Is(err, storeerr.ErrNotFound) || errors.Is(err, errBadTile) {
		return i.refuse(org, fmt.Sprintf("%s: %v. Stored tiles or checkpoints are missing or malformed: restore the database from a backup.", doing, err))
	}
	return fmt.Errorf("%s of %s: %w", doing, org, err)
}

func (i *Integrator) refuseMissing(st LogState, head signedHead) error {
	return i.refuse(st.OrganizationID, fmt.Sprintf(
		"the database holds %d records of this log but %s a checkpoint of size %d (root %s) for origin %s: "+
			"the database is behind what was published, probably restored from an older backup. Restore the newest database; "+
			"Trail signs nothing for this organization until the database holds those records again, because a checkpoint that "+
			"does not extend size %d would contradict the one already published.",
		st.NextSeq, head.holder(), head.Size, head.Hash, Origin(i.prefix, st.OrganizationID), head.Size),
		"records", st.NextSeq, "integrated_size", st.IntegratedSize, "signed_size", head.Size, "signed_root", head.Hash.String(), "source", head.holder())
}

func (i *Integrator) refuseMismatch(st LogState, head signedHead, got tlog.Hash) error {
	return i.refuse(st.OrganizationID, fmt.Sprintf(
		"the database's tree of size %d has root %s but %s root %s for that size (origin %s): "+
			"the database holds another history (restored from a backup and written to since, or records or tiles altered). "+
			"Restore the database this server wrote; Trail signs nothing more for this organization until then.",
		head.Size, got, head.holder(), head.Hash, Origin(i.prefix, st.OrganizationID)),
		"source", head.holder(), "records", st.NextSeq, "integrated_size", st.IntegratedSize, "signed_size", head.Size,
		"signed_root", head.Hash.String(), "database_root", got.String())
}

// refuse marks org refused, says why loudly, and returns errRefused.
func (i *Integrator) refuse(org, reason string, attrs ...any) error {
	i.mu.Lock()
	_, already := i.refused[org]
	i.refused[org] = reason
	i.mu.Unlock()
	delete(i.edges, org)
	if !already {
		i.logger.Error("refusing to sign checkpoints for this organization's log", append([]any{"org", org, "reason", reason}, attrs...)...)
	}
	return fmt.Errorf("%s: %w", org, errRefused)
}

// holder says who holds the head, for refusals: "this deployment signed"
// or "<source> holds".
func (h signedHead) holder() string {
	if h.Source == "" {
		return "this deployment signed"
	}
	return h.Source + " holds"
}

// headsOf returns every head the tree of origin must extend: the recorded
// one first, then those from other sources.
func (i *Integrator) headsOf(origin string) []signedHead {
	var hs []signedHead
	if h, ok := i.heads[origin]; ok {
		hs = append(hs, h)
	}
	return append(hs, i.also[origin]...)
}

// loadHeads, once, reads the heads recorded in the database (Options.Heads)
// and merges those of the state file into them, copying into the database
// those it lacks, then adds the checkpoints outsiders hold (Options.Held).
// An error leaves the heads as they were, for a retry.
func (i *Integrator) loadHeads(ctx context.Context) error {
	if i.headsLoaded {
		return nil
	}
	heads := i.heads // the state file's, read by Start
	also := map[string][]signedHead{}
	if i.opts.Heads != nil {
		stored, err := i.opts.Heads.SignedHeads(ctx)
		if err != nil {
			return fmt.Errorf("couldn't read the checkpoints this deployment signed: %w", err)
		}
		merged := make(map[string]signedHead, len(stored))
		for _, h := range stored {
			merged[h.Origin] = signedHead{Size: h.Size, Hash: h.Hash}
		}
		var copyIn []SignedHead
		for origin, fh := range heads {
			db, ok := merged[origin]
			switch {
			case !ok || fh.Size > db.Size:
				if ok {
					also[origin] = append(also[origin], db)
				}
				merged[origin] = fh
				copyIn = append(copyIn, SignedHead{Origin: origin, Size: fh.Size, Hash: fh.Hash})
			case fh.Size == db.Size && fh.Hash == db.Hash:
			default:
				also[origin] = append(also[origin], fh)
			}
		}
		if len(copyIn) > 0 {
			if err := i.opts.Heads.RecordSignedHeads(ctx, copyIn); err != nil {
				return fmt.Errorf("couldn't copy the signed-checkpoints file into the database: %w", err)
			}
			for _, h := range copyIn {
				mh := merged[h.Origin]
				mh.Source = "" // recorded by this deployment now
				merged[h.Origin] = mh
			}
			i.logger.Info("copied the checkpoints recorded in the signed-checkpoints file into the database; the file is still read while it exists",
				"file", i.statePath, "origins", len(copyIn))
		}
		heads = merged
	}
	if i.opts.Held != nil {
		source, held, err := i.opts.Held(ctx)
		if err != nil {
			i.logger.Warn("couldn't read the checkpoints published before; the stored logs are not checked against them", "err", err)
		}
		for _, h := range held {
			sh := signedHead{Size: h.Size, Hash: h.Hash, Source: source}
			cur, ok := heads[h.Origin]
			switch {
			case !ok || h.Size > cur.Size:
				if ok {
					also[h.Origin] = append(also[h.Origin], cur)
				}
				heads[h.Origin] = sh
			case h.Size == cur.Size && h.Hash == cur.Hash:
			default:
				also[h.Origin] = append(also[h.Origin], sh)
			}
		}
	}
	i.heads, i.also, i.headsLoaded = heads, also, true
	return nil
}

// recordSeeds records in the database the checked newest checkpoints of
// the logs it had no head for (startupCheckOnce), once.
func (i *Integrator) recordSeeds(ctx context.Context) error {
	if i.opts.Heads == nil || i.seeded {
		return nil
	}
	if len(i.seeds) > 0 {
		if err := i.opts.Heads.RecordSignedHeads(ctx, i.seeds); err != nil {
			return fmt.Errorf("couldn't record the newest checkpoints of %d logs as signed: %w", len(i.seeds), err)
		}
		for _, h := range i.seeds {
			if cur, ok := i.heads[h.Origin]; !ok || cur.Size < h.Size {
				i.heads[h.Origin] = signedHead{Size: h.Size, Hash: h.Hash}
			}
		}
	}
	i.seeds, i.seeded = nil, true
	return nil
}
