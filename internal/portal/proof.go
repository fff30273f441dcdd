package portal

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/store"
)

type verifier struct {
	key string
	v   note.Verifier
}

func newVerifier(vkey string) (verifier, error) {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return verifier{}, fmt.Errorf("portal: verifier key %q: %w", vkey, err)
	}
	return verifier{key: vkey, v: v}, nil
}

// openCheckpoint checks a checkpoint against the deployment's keys.
func (p *Portal) openCheckpoint(msg []byte) (ledger.Checkpoint, error) {
	if p.cfg.Keys != nil {
		c, _, err := p.cfg.Keys().OpenCheckpoint(msg)
		return c, err
	}
	return ledger.ParseCheckpoint(msg, p.verifier.v)
}

// verifierKey is the verifier key shown: the newest active one.
func (p *Portal) verifierKey() string {
	if p.cfg.Keys != nil {
		if active := p.cfg.Keys().Active(); len(active) > 0 {
			return active[len(active)-1].VerifierKey
		}
	}
	return p.verifier.key
}

// Outcomes of an inclusion check.
const (
	proofVerified = "verified" // the record is in the signed tree
	proofPending  = "pending"  // no checkpoint covers it yet
	proofFailed   = "failed"   // the stored record does not match the signed tree
)

type proofView struct {
	Status     string
	Message    string
	Checkpoint string // the signed note
	TreeSize   int64
	RootHash   string // base64, as in the checkpoint
	LeafHash   string // base64
	LeafHex    string
	Path       []string // base64, tlog.RecordProof order
}

// proveInclusion checks, here on the server, that the stored record e is
// leaf e.Seq of the tree in org's newest checkpoint: the checkpoint's
// signature against the verifier key, then the RFC 6962 audit path from
// the record's leaf hash to the signed root. It returns what it found; an
// error only when the check could not be made.
func (p *Portal) proveInclusion(ctx context.Context, org string, e store.StoredEvent) (proofView, error) {
	leaf := tlog.RecordHash(e.Record)
	v := proofView{LeafHash: leaf.String(), LeafHex: hex.EncodeToString(leaf[:])}
	msg, err := p.cfg.Ledger.LatestCheckpoint(ctx, org)
	if errors.Is(err, store.ErrNotFound) {
		v.Status, v.Message = proofPending, "No checkpoint has been signed for this organization's log yet; reload in a second."
		return v, nil
	}
	if err != nil {
		return v, fmt.Errorf("couldn't read the checkpoint of %s: %w", org, err)
	}
	v.Checkpoint = string(msg)
	cp, err := p.openCheckpoint(msg)
	if err != nil || ledger.OrganizationOf(cp.Origin) != org {
		v.Status = proofFailed
		v.Message = "The newest checkpoint of this log does not verify with the deployment's verifier key. Report this to the application's operator."
		return v, nil
	}
	v.TreeSize, v.RootHash = cp.Size, cp.Hash.String()
	if e.Seq >= cp.Size {
		v.Status = proofPending
		v.Message = fmt.Sprintf("This event (seq %d) is newer than the newest checkpoint (%d events); checkpoints follow within about a second, reload to check it.", e.Seq, cp.Size)
		return v, nil
	}
	proof, err := ledger.InclusionProof(ctx, p.cfg.Ledger, org, e.Seq, cp.Size)
	if err != nil {
		return v, fmt.Errorf("couldn't prove seq %d of %s: %w", e.Seq, org, err)
	}
	for _, h := range proof {
		v.Path = append(v.Path, h.String())
	}
	if err := tlog.CheckRecord(proof, cp.Size, cp.Hash, e.Seq, leaf); err != nil {
		v.Status = proofFailed
		v.Message = fmt.Sprintf("The stored record does NOT match leaf %d of the signed tree: it was altered after it was logged. Report this to the application's operator.", e.Seq)
		return v, nil
	}
	v.Status = proofVerified
	v.Message = fmt.Sprintf("This record is leaf %d of the log's signed tree of %d events: its hash and the audit path below lead to the root hash in the checkpoint, whose signature verifies with the deployment's key.", e.Seq, cp.Size)
	return v, nil
}
