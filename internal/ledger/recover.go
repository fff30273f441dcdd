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
				"this server signed checkpoint size %d (root %s) for origin %s, but the database has no organization %s: "+
					"it was probably restored from a backup older than the organization. Restore the newest database; "+
					"Trail signs nothing for this organization until its records are back.",
				head.Size, head.Hash, origin, org),
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
		i.logger.Warn("the signed-checkpoints file is missing but the database has checkpoints; continuing from the database's own (if the file was deleted, Trail cannot tell whether the database was rolled back since)",
			"file", i.statePath, "logs", len(logs))
	}
	if failed != nil {
		return failed
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
	if head, ok := i.heads[Origin(i.prefix, org)]; ok {
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
			// The database is behind the file but holds the records (the
			// process died between writing the file and committing): the
			// next pass integrates at least up to head.Size and checks the
			// root before signing.
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
		"the database holds %d records of this log but this server signed a checkpoint of size %d (root %s) for origin %s: "+
			"the database is behind what was published, probably restored from an older backup. Restore the newest database; "+
			"Trail signs nothing for this organization until the database holds those records again, because a checkpoint that "+
			"does not extend size %d would contradict the one already published.",
		st.NextSeq, head.Size, head.Hash, Origin(i.prefix, st.OrganizationID), head.Size),
		"records", st.NextSeq, "integrated_size", st.IntegratedSize, "signed_size", head.Size, "signed_root", head.Hash.String())
}

func (i *Integrator) refuseMismatch(st LogState, head signedHead, got tlog.Hash) error {
	return i.refuse(st.OrganizationID, fmt.Sprintf(
		"the database's tree of size %d has root %s but this server signed root %s for that size (origin %s): "+
			"the database holds another history (restored from a backup and written to since, or records or tiles altered). "+
			"Restore the database this server wrote; Trail signs nothing more for this organization until then.",
		head.Size, got, head.Hash, Origin(i.prefix, st.OrganizationID)),
		"records", st.NextSeq, "integrated_size", st.IntegratedSize, "signed_size", head.Size,
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
