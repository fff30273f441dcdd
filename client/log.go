package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/trailaudit/trail/internal/ledger"
)

// The verifiable log (docs/VERIFYING.md): every organization's events form
// an RFC 6962 Merkle tree whose checkpoints Trail signs. Nothing these calls
// return needs to be trusted: check it against the verifier key, obtained
// out of band or compared with LogKey's answer.

// LogKey answers GET /v1/log/key: the note verifier key checkpoints are
// signed with (no API key needed).
func (c *Client) LogKey(ctx context.Context) (string, error) {
	resp, err := c.send(ctx, request{method: http.MethodGet, path: "/v1/log/key", noAuth: true})
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return "", fmt.Errorf("reading the verifier key: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// LogKeys answers GET /v1/log/keys: the log's key history (every signing
// key, its state and validity period, docs/VERIFYING.md "Key history"), in
// its text form, which VerifyBundle and ParseCheckpoint take in place of a
// verifier key. Compare the keys with ones obtained out of band.
func (c *Client) LogKeys(ctx context.Context) (string, error) {
	resp, err := c.send(ctx, request{method: http.MethodGet, path: "/v1/log/keys", noAuth: true})
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", fmt.Errorf("reading the key history: %w", err)
	}
	if _, err := ledger.ParseKeyHistory(string(b)); err != nil {
		return "", fmt.Errorf("the server's key history: %w", err)
	}
	return string(b), nil
}

// keysOf reads verifierKey: a verifier key, or a key history's text form.
func keysOf(verifierKey string) (*ledger.KeyHistory, error) {
	if ledger.IsKeyHistory(verifierKey) {
		return ledger.ParseKeyHistory(verifierKey)
	}
	return ledger.PlainKeys(strings.TrimSpace(verifierKey))
}

// Checkpoint is a signed tree head of one organization's log.
type Checkpoint struct {
	Origin string
	Size   int64
	Hash   tlog.Hash
	// Note is the signed note as Trail served it (C2SP tlog-checkpoint);
	// keep it to ask later for a consistency proof from it.
	Note []byte
}

// GetCheckpoint answers GET /v1/organizations/{id}/log/checkpoint: the
// newest checkpoint when size is 0, else the one of exactly that size. The
// signature is checked against verifierKey; pass "" to skip the check (the
// note is then only parsed).
func (c *Client) GetCheckpoint(ctx context.Context, orgID string, size int64, verifierKey string) (*Checkpoint, error) {
	q := url.Values{}
	if size > 0 {
		q.Set("size", itoa(size))
	}
	resp, err := c.send(ctx, request{method: http.MethodGet, path: "/v1/organizations/" + seg(orgID) + "/log/checkpoint", query: q})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	msg, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("reading the checkpoint of %s: %w", orgID, err)
	}
	return ParseCheckpoint(msg, verifierKey)
}

// ParseCheckpoint parses a signed checkpoint note, checking its signature
// against verifierKey (a verifier key, or a key history as LogKeys returns
// it) unless it is "".
func ParseCheckpoint(msg []byte, verifierKey string) (*Checkpoint, error) {
	var cp ledger.Checkpoint
	if verifierKey != "" {
		keys, err := keysOf(verifierKey)
		if err != nil {
			return nil, fmt.Errorf("invalid verifier key %q: %w", verifierKey, err)
		}
		if cp, _, err = keys.OpenCheckpoint(msg); err != nil {
			return nil, fmt.Errorf("checking the checkpoint: %w", err)
		}
	} else {
		body, _, ok := strings.Cut(string(msg), "\n\n")
		if !ok {
			return nil, fmt.Errorf("the checkpoint is not a signed note: %w", ledger.ErrMalformedCheckpoint)
		}
		var err error
		if cp, err = ledger.ParseCheckpointBody([]byte(body + "\n")); err != nil {
			return nil, err
		}
	}
	return &Checkpoint{Origin: cp.Origin, Size: cp.Size, Hash: cp.Hash, Note: msg}, nil
}

// InclusionProof proves that the record at Seq is in the tree of TreeSize.
type InclusionProof struct {
	OrganizationID string      `json:"organization_id"`
	Seq            int64       `json:"seq"`
	TreeSize       int64       `json:"tree_size"`
	Proof          []tlog.Hash `json:"proof"`
}

// Verify checks the proof for record (its exact bytes) against cp.
func (p *InclusionProof) Verify(cp *Checkpoint, record []byte) error {
	if cp.Size != p.TreeSize {
		return fmt.Errorf("the proof is for tree size %d, the checkpoint has size %d", p.TreeSize, cp.Size)
	}
	return tlog.CheckRecord(p.Proof, p.TreeSize, cp.Hash, p.Seq, tlog.RecordHash(record))
}

// GetInclusionProof answers GET …/log/proof/inclusion?seq=&size= (size 0:
// the newest checkpoint's).
func (c *Client) GetInclusionProof(ctx context.Context, orgID string, seq, size int64) (*InclusionProof, error) {
	q := url.Values{"seq": {itoa(seq)}}
	if size > 0 {
		q.Set("size", itoa(size))
	}
	var out InclusionProof
	if err := c.do(ctx, http.MethodGet, "/v1/organizations/"+seg(orgID)+"/log/proof/inclusion", q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ConsistencyProof proves that the tree of size To extends the one of
// size From.
type ConsistencyProof struct {
	OrganizationID string      `json:"organization_id"`
	From           int64       `json:"from"`
	To             int64       `json:"to"`
	Proof          []tlog.Hash `json:"proof"`
}

// Verify checks that newer extends older.
func (p *ConsistencyProof) Verify(older, newer *Checkpoint) error {
	if older.Size != p.From || newer.Size != p.To {
		return fmt.Errorf("the proof is from size %d to %d, the checkpoints have sizes %d and %d", p.From, p.To, older.Size, newer.Size)
	}
	return tlog.CheckTree(p.Proof, p.To, newer.Hash, p.From, older.Hash)
}

// GetConsistencyProof answers GET …/log/proof/consistency?from=&to= (to 0:
// the newest checkpoint's size).
func (c *Client) GetConsistencyProof(ctx context.Context, orgID string, from, to int64) (*ConsistencyProof, error) {
	q := url.Values{"from": {itoa(from)}}
	if to > 0 {
		q.Set("to", itoa(to))
	}
	var out ConsistencyProof
	if err := c.do(ctx, http.MethodGet, "/v1/organizations/"+seg(orgID)+"/log/proof/consistency", q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// LogRecords streams the canonical records of seqs [from, to) of an
// organization's log (GET …/log/records; to 0: to the log's end), calling fn
// with each record's bytes (valid only during the call). Records removed by
// retention are absent.
func (c *Client) LogRecords(ctx context.Context, orgID string, from, to int64, fn func(record []byte) error) error {
	q := url.Values{"from": {itoa(from)}}
	if to > 0 {
		q.Set("to", itoa(to))
	}
	resp, err := c.send(ctx, request{method: http.MethodGet, path: "/v1/organizations/" + seg(orgID) + "/log/records", query: q})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 8<<20)
	for sc.Scan() {
		if err := fn(sc.Bytes()); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading the records of %s: %w", orgID, err)
	}
	return nil
}

// BundleOptions choose what a bundle proves: the records [From, To) (To 0:
// up to the checkpoint) against the checkpoint of Size (0: the newest), with,
// when Since is set, the proof that the log only grew since that older
// checkpoint (a note from GetCheckpoint or an earlier bundle).
type BundleOptions struct {
	From, To, Size int64
	Since          []byte
}

// OpenBundle requests the bundle GET …/log/bundle answers and returns its
// body as it arrives, for the caller to read (ledger-format lines) and
// close. PullBundle saves it instead.
func (c *Client) OpenBundle(ctx context.Context, orgID string, o BundleOptions) (io.ReadCloser, error) {
	q := url.Values{}
	if o.From > 0 {
		q.Set("from", itoa(o.From))
	}
	if o.To > 0 {
		q.Set("to", itoa(o.To))
	}
	if o.Size > 0 {
		q.Set("size", itoa(o.Size))
	}
	if o.Since != nil {
		cp, err := ParseCheckpoint(o.Since, "")
		if err != nil {
			return nil, fmt.Errorf("the older checkpoint given: %w", err)
		}
		q.Set("since", itoa(cp.Size))
	}
	resp, err := c.send(ctx, request{method: http.MethodGet, path: "/v1/organizations/" + seg(orgID) + "/log/bundle", query: q})
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// PullBundle writes the bundle GET …/log/bundle answers to w, as `trail log
// pull` saves it; VerifyBundle or `trail verify` checks it offline.
func (c *Client) PullBundle(ctx context.Context, orgID string, o BundleOptions, w io.Writer) error {
	body, err := c.OpenBundle(ctx, orgID, o)
	if err != nil {
		return err
	}
	defer body.Close()
	if _, err := io.Copy(w, body); err != nil {
		return fmt.Errorf("reading the bundle of %s: %w", orgID, err)
	}
	return nil
}

// Problem is one thing verification found wrong: its kind, where (seqs
// Seq–SeqEnd of the log, line Line of the bundle, when they apply), and
// what, in plain words.
type Problem struct {
	Kind        string
	Seq, SeqEnd int64
	Line        int64
	Detail      string
}

// VerifyReport is what verification established about a bundle.
type VerifyReport struct {
	Origin         string
	OrganizationID string
	KeyName        string
	CheckpointSize int64
	From, To       int64 // the seqs the bundle covers
	Records        int64
	// SinceSize is the older checkpoint's size, when one was given.
	SinceSize int64
	// Subset: the bundle is an export's filtered records; Selection is
	// what it says it selected (not provable).
	Subset       bool
	Selection    string
	Problems     []Problem // the first 100
	ProblemCount int64
	// Summary says in plain words what was proven, or what failed.
	Summary string
}

// OK reports whether the bundle verified.
func (r *VerifyReport) OK() bool { return r.ProblemCount == 0 }

// ErrVerificationFailed: the bundle does not prove what it claims; the
// report's Problems say why.
var ErrVerificationFailed = ledger.ErrVerificationFailed

// VerifyBundle checks a bundle (or an export in ndjson format) against
// verifierKey (a verifier key, or a key history as LogKeys returns it) with
// the verifier `trail verify` runs. since, when not nil, is an older
// checkpoint note the bundle must be shown to extend. The error is nil when
// it verified and wraps ErrVerificationFailed when not.
func VerifyBundle(r io.Reader, verifierKey string, since []byte) (*VerifyReport, error) {
	keys, err := keysOf(verifierKey)
	if err != nil {
		return &VerifyReport{}, fmt.Errorf("invalid verifier key %q: %w", verifierKey, err)
	}
	rep, err := ledger.Verify(r, "", ledger.VerifyOptions{Since: since, Keys: keys})
	out := &VerifyReport{Origin: rep.Origin, OrganizationID: rep.OrganizationID, KeyName: rep.KeyName,
		CheckpointSize: rep.CheckpointSize, From: rep.From, To: rep.To, Records: rep.Records,
		Subset: rep.Subset, Selection: rep.Selection, ProblemCount: rep.ProblemCount, Summary: rep.String()}
	if rep.Since {
		out.SinceSize = rep.SinceSize
	}
	for _, p := range rep.Problems {
		out.Problems = append(out.Problems, Problem{Kind: string(p.Kind), Seq: p.Seq, SeqEnd: p.SeqEnd, Line: p.Line, Detail: p.Detail})
	}
	return out, err
}

// PullAndVerify pulls a bundle and verifies it as it arrives, without
// storing it (or while also writing it to save, when save is not nil).
func (c *Client) PullAndVerify(ctx context.Context, orgID string, o BundleOptions, verifierKey string, save io.Writer) (*VerifyReport, error) {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		var w io.Writer = pw
		if save != nil {
			w = io.MultiWriter(pw, save)
		}
		err := c.PullBundle(ctx, orgID, o, w)
		pw.CloseWithError(err)
		done <- err
	}()
	rep, verr := VerifyBundle(pr, verifierKey, o.Since)
	pr.CloseWithError(errors.New("verification stopped reading"))
	if perr := <-done; perr != nil && (verr == nil || !errors.Is(verr, ErrVerificationFailed)) {
		return rep, perr
	}
	return rep, verr
}
