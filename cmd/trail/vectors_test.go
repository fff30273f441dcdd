package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/trailtest"
	"github.com/trailaudit/trail/internal/witness"
)

var updateVectors = flag.Bool("update-vectors", false, "regenerate testdata/vectors (then commit them)")

// vectorsDir holds test vectors for third-party verifiers: bundles, their
// tampered variants, and the verdict each must get (testdata/vectors/README.md).
func vectorsDir() string { return filepath.Join(trailtest.ModuleRoot(), "testdata", "vectors") }

// vector is one file and the verdict trail verify gives it.
type vector struct {
	file   string
	args   []string // besides the file and --key trail.vkey
	ok     bool
	stdout string // the verdict must contain this
	key    string // the --key file; default trail.vkey
}

var vectors = []vector{
	{"range.bundle", nil, true, "100 events of org_vectors (seq 200–299) match checkpoint size 600", ""},
	{"range-altered.bundle", nil, false, "altered record: seq 250", ""},
	{"range-deleted.bundle", nil, false, "seq 260 is not in the bundle", ""},
	{"range-swapped.bundle", nil, false, "out of order", ""},
	{"range-duplicated.bundle", nil, false, "VERIFICATION FAILED", ""},
	{"range-truncated.bundle", nil, false, "cut short", ""},
	{"range-size-changed.bundle", nil, false, "VERIFICATION FAILED", ""},
	{"range-signature-changed.bundle", nil, false, "does not verify", ""},
	{"range-leaf-hash-changed.bundle", nil, false, "VERIFICATION FAILED", ""},
	{"since.bundle", []string{"--since", "since-older.checkpoint"}, true, "is consistent with your older checkpoint size 400", ""},
	{"since.bundle", []string{"--since", "since-forked.checkpoint"}, false, "does not extend your older checkpoint size 400", ""},
	{"since-proof-changed.bundle", []string{"--since", "since-older.checkpoint"}, false, "VERIFICATION FAILED", ""},
	{"subset.bundle", nil, true, "10 events of org_vectors are in its log under checkpoint size 600 signed by trail.test, each at its seq, unaltered. The export says it selected (signed with the log key for this checkpoint): export exp_vectors: seqs 0, 10, … 90.", ""},
	{"subset-altered.bundle", nil, false, "altered record", ""},
	{"subset-subtree-changed.bundle", nil, false, "VERIFICATION FAILED", ""},
	// The selection line is signed by the log key for the checkpoint
	// (docs/VERIFYING.md, "Subset bundles"); earlier versions' bundles
	// have no signature and verify, their selection reported unsigned.
	{"subset-selection-edited.bundle", nil, false, "the selection line, or its signature, was altered", ""},
	{"subset-unsigned.bundle", nil, true, "The export says it selected (not signed: a bundle of an earlier version; do not rely on it): export exp_vectors: seqs 0, 10, … 90.", ""},
	// Witness cosignatures on the checkpoint a bundle ends at
	// (docs/VERIFYING.md, "Witnesses").
	{"cosigned.bundle", nil, true, "100 events of org_vectors (seq 500–599) match checkpoint size 600", ""},
	{"cosigned.bundle", []string{"--witness", "witness1.vkey", "--witness", "witness2.vkey", "--quorum", "2"}, true, "Witness quorum met: 2 of 2 required cosignatures.", ""},
	{"cosigned-one.bundle", []string{"--witness", "witness1.vkey", "--witness", "witness2.vkey", "--quorum", "2"}, false, "No cosignature of witness witness2.example on this checkpoint.", ""},
	{"cosigned-one.bundle", []string{"--witness", "witness1.vkey", "--witness", "witness2.vkey", "--quorum", "1"}, true, "Witness quorum met: 1 of 1 required cosignatures.", ""},
	{"cosigned-cosignature-changed.bundle", []string{"--witness", "witness1.vkey", "--witness", "witness2.vkey", "--quorum", "2"}, false, "INVALID cosignature of witness witness2.example", ""},
	{"range.bundle", []string{"--witness", "witness1.vkey", "--quorum", "1"}, false, "No cosignature of witness witness1.example on this checkpoint.", ""},
	// A log whose signing key rotated (docs/VERIFYING.md, "Key history").
	{"rotation-overlap.bundle", nil, true, "none altered, none missing", "rotation-old.vkey"},
	{"rotation-overlap.bundle", nil, true, "none altered, none missing", "rotation-new.vkey"},
	{"rotation-overlap.bundle", nil, true, "Signed by key trail.test+", "rotation-retired.keys"},
	{"rotation-overlap-new-signature-changed.bundle", nil, false, "does not verify", "rotation-retired.keys"},
	{"rotation-new.bundle", nil, false, "is not signed by key", "rotation-old.vkey"},
	{"rotation-new.bundle", nil, true, "none altered, none missing", "rotation-retired.keys"},
	{"rotation-old.bundle", nil, true, "(retired ", "rotation-retired.keys"},
	{"rotation-old.bundle", nil, false, "revoked (compromised) key", "rotation-revoked.keys"},
	{"rotation-new.bundle", nil, true, "none altered, none missing", "rotation-revoked.keys"},
}

// TestVectors: every vector in testdata/vectors gets its verdict from
// trail verify. With -update-vectors it first writes them afresh.
func TestVectors(t *testing.T) {
	dir := vectorsDir()
	if *updateVectors {
		writeVectors(t, dir)
	}
	for _, v := range vectors {
		key := filepath.Join(dir, "trail.vkey")
		if v.key != "" {
			key = filepath.Join(dir, v.key)
		}
		t.Run(v.file+strings.Join(v.args, "_")+v.key, func(t *testing.T) {
			args := []string{"verify", filepath.Join(dir, v.file), "--key", key}
			for _, a := range v.args {
				if strings.HasSuffix(a, ".checkpoint") || strings.HasSuffix(a, ".vkey") {
					a = filepath.Join(dir, a)
				}
				args = append(args, a)
			}
			code, stdout, stderr := runTrail(t, args...)
			if (code == 0) != v.ok || (!v.ok && code != 1) {
				t.Fatalf("exit %d, want ok=%v\nstdout: %s\nstderr: %s", code, v.ok, stdout, stderr)
			}
			if !strings.Contains(stdout, v.stdout) {
				t.Errorf("verdict lacks %q:\n%s", v.stdout, stdout)
			}
		})
	}
}

func writeVectors(t *testing.T, dir string) {
	t.Helper()
	const org = "org_vectors"
	signer := newTestSigner(t)
	l := newTestLog(t, signer, org, 400, 200) // checkpoints of size 400 and 600
	fork := newTestLog(t, signer, org, 400)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("trail.vkey", []byte(signer.VerifierKey()+"\n"))
	rng := l.bundle(t, ledger.BundleOptions{From: 200, To: 300})
	write("range.bundle", rng)
	write("range-altered.bundle", editBundle(rng, func(lines []string) []string {
		i := recordLine(t, lines, 250)
		lines[i] = strings.Replace(lines[i], "user.signed_in", "user.signed_up", 1)
		return lines
	}))
	write("range-deleted.bundle", editBundle(rng, func(lines []string) []string {
		i := recordLine(t, lines, 260)
		return append(lines[:i], lines[i+1:]...)
	}))
	write("range-swapped.bundle", editBundle(rng, func(lines []string) []string {
		i, j := recordLine(t, lines, 270), recordLine(t, lines, 271)
		lines[i], lines[j] = lines[j], lines[i]
		return lines
	}))
	write("range-duplicated.bundle", editBundle(rng, func(lines []string) []string {
		i := recordLine(t, lines, 280)
		return append(lines[:i+1], lines[i:]...)
	}))
	write("range-truncated.bundle", rng[:len(rng)*2/3])
	write("range-size-changed.bundle", replaceInNote(t, rng, func(note []byte) []byte {
		return bytes.Replace(note, []byte("\n600\n"), []byte("\n599\n"), 1)
	}))
	write("range-signature-changed.bundle", replaceInNote(t, rng, func(note []byte) []byte {
		i := bytes.LastIndexByte(note[:len(note)-1], ' ') + 10
		c := note[i]
		note[i] = map[bool]byte{true: 'B', false: 'A'}[c == 'A']
		return note
	}))
	write("range-leaf-hash-changed.bundle", editBundle(rng, func(lines []string) []string {
		for i, line := range lines {
			if strings.HasPrefix(line, "leaves ") {
				f := strings.Fields(line)
				b := []byte(f[3])
				b[10] = map[bool]byte{true: 'B', false: 'A'}[b[10] == 'A']
				f[3] = string(b)
				lines[i] = strings.Join(f, " ")
				break
			}
		}
		return lines
	}))
	since := l.bundle(t, ledger.BundleOptions{From: 400, Since: 400})
	write("since.bundle", since)
	write("since-older.checkpoint", l.checkpoint(t, 400))
	write("since-forked.checkpoint", fork.checkpoint(t, 400))
	write("since-proof-changed.bundle", editBundle(since, func(lines []string) []string {
		for i, line := range lines {
			if strings.HasPrefix(line, "since ") {
				f := strings.Fields(line)
				b := []byte(f[2])
				b[5] = map[bool]byte{true: 'B', false: 'A'}[b[5] == 'A']
				f[2] = string(b)
				lines[i] = strings.Join(f, " ")
			}
		}
		return lines
	}))
	var sub bytes.Buffer
	if _, err := ledger.WriteSubset(context.Background(), &sub, l.st, org, ledger.SubsetOptions{
		Selection: "export exp_vectors: seqs 0, 10, … 90",
		Select:    func(seq int64, record []byte) (bool, error) { return seq%10 == 0 && seq < 100, nil },
		Signer:    signer,
	}); err != nil {
		t.Fatal(err)
	}
	write("subset.bundle", sub.Bytes())
	write("subset-altered.bundle", editBundle(sub.Bytes(), func(lines []string) []string {
		i := recordLine(t, lines, 50)
		lines[i] = strings.Replace(lines[i], "user.signed_in", "user.signed_up", 1)
		return lines
	}))
	write("subset-subtree-changed.bundle", editBundle(sub.Bytes(), func(lines []string) []string {
		for i, line := range lines {
			if strings.HasPrefix(line, "subtrees ") {
				f := strings.Fields(line)
				b := []byte(f[3])
				b[7] = map[bool]byte{true: 'B', false: 'A'}[b[7] == 'A']
				f[3] = string(b)
				lines[i] = strings.Join(f, " ")
				break
			}
		}
		return lines
	}))
	write("subset-selection-edited.bundle", bytes.Replace(sub.Bytes(), []byte("selection export exp_vectors: seqs 0, 10, … 90"),
		[]byte("selection export exp_forged: all events of 2020"), 1))
	write("subset-unsigned.bundle", editBundle(sub.Bytes(), func(lines []string) []string {
		for i, line := range lines {
			if strings.HasPrefix(line, "selection-signature ") {
				return append(lines[:i], lines[i+1:]...)
			}
		}
		t.Fatal("no selection-signature line")
		return nil
	}))

	// Two witnesses cosign the checkpoint of size 600; the bundles read
	// it as trail serve does, with the cosignatures stored so far.
	cosigned := witness.Cosigned(l.st)
	cosignedBundle := func() []byte {
		var buf bytes.Buffer
		if _, err := ledger.WriteBundle(context.Background(), &buf, cosigned, org, ledger.BundleOptions{From: 500}); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	for i, name := range []string{"witness1.example", "witness2.example"} {
		ws := newWitnessSigner(t, name)
		write(fmt.Sprintf("witness%d.vkey", i+1), []byte(ws.Verifier().String()+"\n"))
		line := cosign(t, l.checkpoint(t, 600), ws)
		if err := l.st.StoreCosignatures(context.Background(), []ledger.Cosignature{{OrganizationID: org, Size: 600, Witness: ws.Verifier().String(), Line: line}}, nil); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			write("cosigned-one.bundle", cosignedBundle())
		}
	}
	both := cosignedBundle()
	write("cosigned.bundle", both)
	write("cosigned-cosignature-changed.bundle", replaceInNote(t, both, func(note []byte) []byte {
		i := bytes.LastIndex(note, []byte("— witness2.example ")) + len("— witness2.example ") + 10
		note[i] = map[bool]byte{true: 'B', false: 'A'}[note[i] == 'A']
		return note
	}))
	writeRotationVectors(t, write)
}

// cosign returns the witness's cosignature line of a checkpoint note.
func cosign(t *testing.T, checkpoint []byte, ws *witness.Signer) string {
	t.Helper()
	text, _, ok := bytes.Cut(checkpoint, []byte("\n\n"))
	if !ok {
		t.Fatalf("not a note: %q", checkpoint)
	}
	signed, err := note.Sign(&note.Note{Text: string(text) + "\n"}, ws)
	if err != nil {
		t.Fatal(err)
	}
	_, sig, _ := bytes.Cut(signed, []byte("\n\n"))
	return string(sig)
}

// writeRotationVectors writes the vectors of a log whose signing key
// rotated: whole-log bundles signed by the old key (before), by both (the
// overlap) and by the new key (after the retirement), the two keys, and
// key histories in which the old key is retired or revoked.
func writeRotationVectors(t *testing.T, write func(string, []byte)) {
	t.Helper()
	const org = "org_vectors"
	oldKey, newKey := newTestSigner(t), newTestSigner(t)
	write("rotation-old.vkey", []byte(oldKey.VerifierKey()+"\n"))
	write("rotation-new.vkey", []byte(newKey.VerifierKey()+"\n"))
	for _, state := range []ledger.KeyState{ledger.KeyRetired, ledger.KeyRevoked} {
		now := time.Now().UTC().Truncate(time.Second)
		o, err := ledger.NewHistoryKey(oldKey.VerifierKey(), state, now.Add(-30*24*time.Hour), now)
		if err != nil {
			t.Fatal(err)
		}
		n, err := ledger.NewHistoryKey(newKey.VerifierKey(), ledger.KeyActive, now.Add(-time.Hour), time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		h := &ledger.KeyHistory{Keys: []ledger.HistoryKey{o, n}}
		write("rotation-"+string(state)+".keys", []byte(h.String()))
	}
	overlap := newSignedLog(t, ledger.Signers{oldKey, newKey}, org, 40)
	whole := overlap.bundle(t, ledger.BundleOptions{From: 0})
	write("rotation-overlap.bundle", whole)
	write("rotation-overlap-new-signature-changed.bundle", replaceInNote(t, whole, func(note []byte) []byte {
		// The last signature line is the new key's.
		i := bytes.LastIndexByte(note[:len(note)-1], ' ') + 10
		note[i] = map[bool]byte{true: 'B', false: 'A'}[note[i] == 'A']
		return note
	}))
	write("rotation-old.bundle", newTestLog(t, oldKey, org, 40).bundle(t, ledger.BundleOptions{From: 0}))
	write("rotation-new.bundle", newTestLog(t, newKey, org, 40).bundle(t, ledger.BundleOptions{From: 0}))
}

// replaceInNote edits a bundle's checkpoint note and fixes its length line.
func replaceInNote(t *testing.T, bundle []byte, edit func([]byte) []byte) []byte {
	t.Helper()
	magic, rest, _ := bytes.Cut(bundle, []byte("\n"))
	header, rest, _ := bytes.Cut(rest, []byte("\n"))
	n, err := strconv.Atoi(strings.TrimPrefix(string(header), "checkpoint "))
	if err != nil {
		t.Fatal(err)
	}
	note := edit(bytes.Clone(rest[:n]))
	var out bytes.Buffer
	out.Write(magic)
	out.WriteString("\ncheckpoint ")
	out.WriteString(strconv.Itoa(len(note)))
	out.WriteString("\n")
	out.Write(note)
	out.Write(rest[n:])
	return out.Bytes()
}
