package console

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/store"
)

// The integrity page: each organization's newest checkpoint (its tree size,
// root hash, when it was stored, and the keys that signed it) and the
// witnesses' cosignatures of its log.

type integrityData struct {
	Logs   []logIntegrity
	Next   string
	Quorum int
	Error  string
}

type logIntegrity struct {
	Org       store.Organization
	Size      int64
	Root      string
	At        time.Time
	Keys      []string // "name (key id …)" of each signature
	Witnesses []witnessCosig
	Cosigned  int // witnesses whose cosignature covers the newest checkpoint
}

type witnessCosig struct {
	Name    string
	Size    int64
	Current bool // of the newest checkpoint
}

// integrity is GET /console/integrity[?after=…]: org_system's log first,
// then every organization's, 50 a page.
func (c *Console) integrity(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r)
	l := c.cfg.Operations.Ledger
	if l == nil {
		c.messageIn(w, r, http.StatusNotFound, "Page not found", "This console is not connected to the verifiable log.", s)
		return
	}
	after := r.URL.Query().Get("after")
	if after != "" && !strings.HasPrefix(after, "org_") || len(after) > 100 {
		c.render(w, r, http.StatusBadRequest, "integrity", page{Title: "Integrity", Nav: "integrity", Session: s,
			Data: integrityData{Error: "after: not a page of this list"}})
		return
	}
	d := integrityData{Quorum: c.cfg.Operations.Quorum}
	var orgs []store.Organization
	if after == "" {
		orgs = append(orgs, store.Organization{ID: store.SystemOrganizationID, Name: "Trail system (the deployment's own actions)"})
	}
	pg, err := c.cfg.Store.ListOrganizations(r.Context(), store.ListParams{Limit: pageSize, Order: store.OrderAsc, After: after})
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	orgs = append(orgs, pg.Data...)
	if pg.After != "" {
		d.Next = safeURL("/console/integrity", url.Values{"after": {pg.After}})
	}
	for _, o := range orgs {
		li, err := c.logIntegrity(r, l, o)
		if err != nil {
			c.fail(w, r, s, err)
			return
		}
		d.Logs = append(d.Logs, li)
	}
	c.render(w, r, http.StatusOK, "integrity", page{Title: "Integrity", Nav: "integrity", Session: s, Data: d})
}

func (c *Console) logIntegrity(r *http.Request, l Ledger, o store.Organization) (logIntegrity, error) {
	li := logIntegrity{Org: o}
	msg, err := l.LatestCheckpoint(r.Context(), o.ID)
	if errors.Is(err, store.ErrNotFound) {
		return li, nil
	}
	if err != nil {
		return li, err
	}
	body, sigs, _ := bytes.Cut(msg, []byte("\n\n"))
	cp, err := ledger.ParseCheckpointBody(append(body, '\n'))
	if err != nil {
		c.log.Error("a stored checkpoint does not parse", "organization_id", o.ID, "err", err)
		li.Root = "(unreadable: " + err.Error() + ")"
		return li, nil
	}
	li.Size, li.Root, li.Keys = cp.Size, cp.Hash.String(), signers(sigs)
	if cps, err := l.CheckpointsAfter(r.Context(), o.ID, cp.Size-1, 1); err != nil {
		return li, err
	} else if len(cps) == 1 && cps[0].Size == cp.Size {
		li.At = cps[0].CreatedAt
	}
	cosigs, err := l.LatestCosignatures(r.Context(), o.ID)
	if err != nil {
		return li, err
	}
	for _, cs := range cosigs {
		name, _, _ := strings.Cut(cs.Witness, "+")
		wc := witnessCosig{Name: name, Size: cs.Size, Current: cs.Size == cp.Size}
		if wc.Current {
			li.Cosigned++
		}
		li.Witnesses = append(li.Witnesses, wc)
	}
	return li, nil
}

// signers names the keys of a note's signature lines ("— name base64"):
// the name and the key id (the signature's first four bytes).
func signers(sigs []byte) []string {
	var out []string
	for _, line := range strings.Split(string(sigs), "\n") {
		rest, ok := strings.CutPrefix(line, "— ")
		if !ok {
			continue
		}
		name, sig, ok := strings.Cut(rest, " ")
		if !ok {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(sig)
		if err != nil || len(raw) < 4 {
			out = append(out, name)
			continue
		}
		out = append(out, name+" (key id "+hex.EncodeToString(raw[:4])+")")
	}
	return out
}
