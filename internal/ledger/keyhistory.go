package ledger

import (
	"bufio"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// KeyState is where a signing key stands in a log's key history.
type KeyState string

// Key states (docs/VERIFYING.md, "Key history").
const (
	// KeyActive: the log signs every new checkpoint with this key. Two
	// keys are active during a rotation's overlap.
	KeyActive KeyState = "active"
	// KeyRetired: the log no longer signs with this key; checkpoints it
	// signed while active still verify.
	KeyRetired KeyState = "retired"
	// KeyRevoked: the key is compromised; a signature by it proves
	// nothing, and a checkpoint signed by no other key is rejected.
	KeyRevoked KeyState = "revoked"
)

// HistoryKey is one signing key of a log's key history.
type HistoryKey struct {
	VerifierKey string // note format, <name>+<hash>+<key data>
	State       KeyState
	From        time.Time // when the log started signing with it (zero: unknown)
	Until       time.Time // when it stopped (retired or revoked; zero otherwise)
	verifier    note.Verifier
}

// ID names the key as signature lines do: "<name>+<8 hex digits of key hash>".
func (k HistoryKey) ID() string {
	return fmt.Sprintf("%s+%08x", k.verifier.Name(), k.verifier.KeyHash())
}

// KeyHistory is the set of keys a log has signed checkpoints with, each
// with its state and validity period, in the order they were introduced.
type KeyHistory struct {
	Keys []HistoryKey
}

// NewHistoryKey returns a history entry for verifierKey.
func NewHistoryKey(verifierKey string, state KeyState, from, until time.Time) (HistoryKey, error) {
	v, err := note.NewVerifier(verifierKey)
	if err != nil {
		return HistoryKey{}, fmt.Errorf("invalid verifier key %q (want <name>+<hash>+<key data>): %w", verifierKey, err)
	}
	switch state {
	case KeyActive, KeyRetired, KeyRevoked:
	default:
		return HistoryKey{}, fmt.Errorf("key state %q: want active, retired or revoked", state)
	}
	return HistoryKey{VerifierKey: verifierKey, State: state, From: from.UTC(), Until: until.UTC(), verifier: v}, nil
}

// PlainKeys returns a history of verifier keys given without one: every
// key counts as active.
func PlainKeys(verifierKeys ...string) (*KeyHistory, error) {
	h := &KeyHistory{}
	for _, vk := range verifierKeys {
		k, err := NewHistoryKey(vk, KeyActive, time.Time{}, time.Time{})
		if err != nil {
			return nil, err
		}
		if err := h.Add(k); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// Add appends k, or for a key already present keeps the stricter state of
// the two (revoked over retired over active).
func (h *KeyHistory) Add(k HistoryKey) error {
	if k.verifier == nil {
		return errors.New("ledger: HistoryKey not made by NewHistoryKey")
	}
	for i, o := range h.Keys {
		if o.verifier.Name() == k.verifier.Name() && o.verifier.KeyHash() == k.verifier.KeyHash() {
			if o.VerifierKey != k.VerifierKey {
				return fmt.Errorf("keys %s and %s have the same name and key hash", o.VerifierKey, k.VerifierKey)
			}
			if rank(k.State) > rank(o.State) {
				h.Keys[i] = k
			}
			return nil
		}
	}
	h.Keys = append(h.Keys, k)
	return nil
}

func rank(s KeyState) int {
	return slices.Index([]KeyState{KeyActive, KeyRetired, KeyRevoked}, s)
}

// Active returns the active keys, oldest first.
func (h *KeyHistory) Active() []HistoryKey {
	var out []HistoryKey
	for _, k := range h.Keys {
		if k.State == KeyActive {
			out = append(out, k)
		}
	}
	return out
}

// Find returns the key whose verifier key, or ID, is s.
func (h *KeyHistory) Find(s string) (HistoryKey, bool) {
	for _, k := range h.Keys {
		if k.VerifierKey == s || k.ID() == s {
			return k, true
		}
	}
	return HistoryKey{}, false
}

// historyMagic starts the text form of a key history.
const historyMagic = "trail-keys v1"

// String is the text form of the history (docs/VERIFYING.md, "Key
// history"): a first line "trail-keys v1", then one line per key,
// "<verifier key> <state> <from> [<until>]", times in RFC 3339 UTC ("-"
// for a time not known).
func (h *KeyHistory) String() string {
	var b strings.Builder
	b.WriteString(historyMagic + "\n")
	for _, k := range h.Keys {
		fmt.Fprintf(&b, "%s %s %s", k.VerifierKey, k.State, formatTime(k.From))
		if k.State != KeyActive {
			fmt.Fprintf(&b, " %s", formatTime(k.Until))
		}
		b.WriteString("\n")
	}
	return b.String()
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func parseTime(s string) (time.Time, error) {
	if s == "-" {
		return time.Time{}, nil
	}
	return time.Parse(time.RFC3339, s)
}

// IsKeyHistory reports whether text is a key history's text form.
func IsKeyHistory(text string) bool {
	first, _, _ := strings.Cut(strings.TrimLeft(text, "\n"), "\n")
	return strings.TrimSpace(first) == historyMagic
}

// ParseKeyHistory parses the text form String writes. Blank lines and lines
// starting with # are skipped.
func ParseKeyHistory(text string) (*KeyHistory, error) {
	h := &KeyHistory{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 4096), 1<<20)
	n, magic := 0, false
	for sc.Scan() {
		n++
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if !magic {
			if l != historyMagic {
				return nil, fmt.Errorf("line %d: a key history starts with %q", n, historyMagic)
			}
			magic = true
			continue
		}
		f := strings.Fields(l)
		if len(f) < 3 || len(f) > 4 {
			return nil, fmt.Errorf("line %d: want \"<verifier key> <state> <from> [<until>]\"", n)
		}
		from, err := parseTime(f[2])
		if err != nil {
			return nil, fmt.Errorf("line %d: from %q is not an RFC 3339 time or -", n, f[2])
		}
		var until time.Time
		if len(f) == 4 {
			if until, err = parseTime(f[3]); err != nil {
				return nil, fmt.Errorf("line %d: until %q is not an RFC 3339 time or -", n, f[3])
			}
		}
		if KeyState(f[1]) == KeyActive && len(f) == 4 {
			return nil, fmt.Errorf("line %d: an active key has no until time", n)
		}
		k, err := NewHistoryKey(f[0], KeyState(f[1]), from, until)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if err := h.Add(k); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("couldn't read the key history: %w", err)
	}
	if !magic {
		return nil, fmt.Errorf("a key history starts with %q", historyMagic)
	}
	if len(h.Keys) == 0 {
		return nil, errors.New("the key history lists no keys")
	}
	return h, nil
}

// Verifiers returns the verifiers of the keys whose signatures count:
// active and retired ones, never revoked ones.
func (h *KeyHistory) Verifiers() note.Verifiers {
	var vs []note.Verifier
	for _, k := range h.Keys {
		if k.State != KeyRevoked {
			vs = append(vs, k.verifier)
		}
	}
	return note.VerifierList(vs...)
}

// OpenCheckpoint checks that a key of the history that counts (active or
// retired) signed the checkpoint note msg, and parses its body. It returns
// the keys whose signatures verified, in the note's order. A signature by a
// revoked key proves nothing: a note signed only by revoked keys is
// rejected, naming them. Signature lines by keys the history does not list
// (witness cosignatures) are ignored.
func (h *KeyHistory) OpenCheckpoint(msg []byte) (Checkpoint, []HistoryKey, error) {
	if h == nil || len(h.Keys) == 0 {
		return Checkpoint{}, nil, errors.New("no verifier key to check the checkpoint with")
	}
	n, err := note.Open(msg, h.Verifiers())
	if err != nil {
		return Checkpoint{}, nil, h.describe(err)
	}
	var signed []HistoryKey
	for _, s := range n.Sigs {
		for _, k := range h.Keys {
			if k.verifier.Name() == s.Name && k.verifier.KeyHash() == s.Hash {
				signed = append(signed, k)
			}
		}
	}
	c, err := ParseCheckpointBody([]byte(n.Text))
	if err != nil {
		return Checkpoint{}, nil, err
	}
	return c, signed, nil
}

func (h *KeyHistory) describe(err error) error {
	var unverified *note.UnverifiedNoteError
	var invalid *note.InvalidSignatureError
	switch {
	case errors.As(err, &unverified):
		var names, revoked []string
		for _, s := range unverified.Note.UnverifiedSigs {
			id := fmt.Sprintf("%s+%08x", s.Name, s.Hash)
			names = append(names, id)
			if k, ok := h.Find(id); ok && k.State == KeyRevoked {
				revoked = append(revoked, fmt.Sprintf("%s (revoked %s)", id, formatTime(k.Until)))
			}
		}
		if len(revoked) > 0 {
			return fmt.Errorf("checkpoint is signed only by revoked (compromised) key %s, whose signatures prove nothing; fetch a fresh bundle, which ends at a checkpoint of the current key: %w",
				strings.Join(revoked, ", "), err)
		}
		return fmt.Errorf("checkpoint is not signed by key %s (it is signed by %s): %w", h.describeKeys(), strings.Join(names, ", "), err)
	case errors.As(err, &invalid):
		return fmt.Errorf("checkpoint signature by key %s+%08x does not verify: the checkpoint was altered or forged: %w",
			invalid.Name, invalid.Hash, err)
	}
	return fmt.Errorf("%w: %w", ErrMalformedCheckpoint, err)
}

// describeKeys lists the keys that count, for messages.
func (h *KeyHistory) describeKeys() string {
	var ids []string
	for _, k := range h.Keys {
		if k.State != KeyRevoked {
			ids = append(ids, k.ID())
		}
	}
	if len(ids) == 0 {
		return "(none: every key given is revoked)"
	}
	return strings.Join(ids, " or ")
}

// Describe says in words which key this is and where it stands, for
// reports: "<id>", "<id> (retired 2026-…)".
func (k HistoryKey) Describe() string {
	switch k.State {
	case KeyRetired:
		return fmt.Sprintf("%s (retired %s)", k.ID(), formatTime(k.Until))
	case KeyRevoked:
		return fmt.Sprintf("%s (revoked %s)", k.ID(), formatTime(k.Until))
	}
	return k.ID()
}
