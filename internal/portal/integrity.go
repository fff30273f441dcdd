package portal

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/store"
)

type integrityData struct {
	Org         string
	VerifierKey string
	Checkpoint  string // the signed note; "" before the first
	Size        int64
	RootHash    string
	BaseURL     string
	Witnesses   []WitnessState
	Quorum      int
}

// WitnessState is one witness of the deployment, as the integrity page
// shows it: the largest size of the organization's log it cosigned (0: none
// yet) and when.
type WitnessState struct {
	Name string
	Key  string // its verifier key
	Size int64
	At   time.Time
}

// Witnesses reports the witnesses that cosign an organization's checkpoints.
type Witnesses interface {
	WitnessStates(ctx context.Context, org string) ([]WitnessState, error)
	// Quorum is how many cosignatures each checkpoint should get.
	Quorum() int
}

// integrity is GET /portal/integrity: the newest checkpoint, the verifier
// key, and how to check the whole log with the trail CLI.
func (p *Portal) integrity(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r)
	d := integrityData{Org: s.Org, VerifierKey: p.verifierKey(), BaseURL: p.cfg.BaseURL}
	msg, err := p.cfg.Ledger.LatestCheckpoint(r.Context(), s.Org)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		p.fail(w, r, s, err)
		return
	default:
		d.Checkpoint = string(msg)
		if cp, err := p.openCheckpoint(msg); err == nil {
			d.Size, d.RootHash = cp.Size, cp.Hash.String()
		}
	}
	if p.cfg.Witnesses != nil {
		ws, err := p.cfg.Witnesses.WitnessStates(r.Context(), s.Org)
		if err != nil {
			p.fail(w, r, s, err)
			return
		}
		d.Witnesses, d.Quorum = ws, p.cfg.Witnesses.Quorum()
	}
	p.render(w, r, http.StatusOK, "integrity", page{Title: "Integrity", Nav: "integrity", Session: s, Data: d})
}

// download serves the session organization's verification files: the
// verifier key, the newest checkpoint, and a bundle of the whole log
// (ledger.WriteBundle, as `trail log pull` saves it).
func (p *Portal) download(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r)
	w.Header().Set("Cache-Control", "no-store")
	switch r.PathValue("file") {
	case "trail.vkey":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="trail.vkey"`)
		fmt.Fprintln(w, p.verifierKey())
	case "checkpoint":
		msg, err := p.cfg.Ledger.LatestCheckpoint(r.Context(), s.Org)
		if errors.Is(err, store.ErrNotFound) {
			p.messageWith(w, r, http.StatusNotFound, messageData{Heading: "No checkpoint yet",
				Text: "No checkpoint has been signed for this log yet; try again in a second."}, s)
			return
		}
		if err != nil {
			p.fail(w, r, s, err)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s.checkpoint"`, s.Org))
		_, _ = w.Write(msg)
	case "bundle":
		st, err := p.cfg.Ledger.LogState(r.Context(), s.Org)
		if err != nil {
			p.fail(w, r, s, err)
			return
		}
		if st.IntegratedSize == 0 {
			p.messageWith(w, r, http.StatusNotFound, messageData{Heading: "No checkpoint yet",
				Text: "No checkpoint has been signed for this log yet; try again in a second."}, s)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s.bundle"`, s.Org))
		cw := &startWriter{w: w}
		if _, err := ledger.WriteBundle(r.Context(), cw, p.cfg.Ledger, s.Org, ledger.BundleOptions{}); err != nil {
			if !cw.started {
				p.fail(w, r, s, err)
				return
			}
			p.log.Error("portal bundle download failed", "organization_id", s.Org, "err", err)
			panic(http.ErrAbortHandler) // cut the body short rather than end it cleanly
		}
	default:
		p.messageWith(w, r, http.StatusNotFound, messageData{Heading: "Page not found", Text: "There is no such file."}, s)
	}
}

// startWriter notes whether anything was written, so that an error before
// the first byte can still be a proper error page.
type startWriter struct {
	w       http.ResponseWriter
	started bool
}

func (c *startWriter) Write(b []byte) (int, error) {
	c.started = true
	return c.w.Write(b)
}
