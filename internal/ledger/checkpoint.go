package ledger

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Checkpoint is the content of a C2SP tlog-checkpoint
// (https://c2sp.org/tlog-checkpoint): which log, how many records, and the
// RFC 6962 root hash of the tree over them.
type Checkpoint struct {
	Origin string
	Size   int64
	Hash   tlog.Hash
}

// ErrMalformedCheckpoint means a note body is not a tlog-checkpoint.
var ErrMalformedCheckpoint = errors.New("malformed checkpoint")

// Origin returns the checkpoint origin of an organization's log:
// "<prefix>/<organization id>".
func Origin(prefix, org string) string { return prefix + "/" + org }

// OrganizationOf returns the organization id an origin names: the part
// after its last "/".
func OrganizationOf(origin string) string {
	return origin[strings.LastIndexByte(origin, '/')+1:]
}

// checkOriginPrefix reports whether prefix can start an origin: printable
// UTF-8 with no spaces, not ending in "/".
func checkOriginPrefix(prefix string) error {
	if prefix == "" || !printableNoSpace(prefix) || strings.HasSuffix(prefix, "/") {
		return fmt.Errorf("log origin prefix %q must be non-empty printable text without spaces, not ending in /", prefix)
	}
	return nil
}

// checkOrganizationID reports whether an organization id can end an origin.
func checkOrganizationID(org string) error {
	if org == "" || !printableNoSpace(org) || strings.Contains(org, "/") {
		return fmt.Errorf("organization id %q cannot be part of a checkpoint origin (it must be printable, without spaces or /)", org)
	}
	return nil
}

func printableNoSpace(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// FormatCheckpoint returns the note body of c (C2SP tlog-checkpoint):
// "<origin>\n<size>\n<base64 root>\n".
func FormatCheckpoint(c Checkpoint) []byte {
	b := make([]byte, 0, len(c.Origin)+70)
	b = append(b, c.Origin...)
	b = append(b, '\n')
	b = strconv.AppendInt(b, c.Size, 10)
	b = append(b, '\n')
	b = append(b, c.Hash.String()...)
	return append(b, '\n')
}

// ParseCheckpointBody parses a note body per C2SP tlog-checkpoint. Extension
// lines after the root hash are allowed and ignored.
func ParseCheckpointBody(text []byte) (Checkpoint, error) {
	var c Checkpoint
	if !bytes.HasSuffix(text, []byte("\n")) {
		return c, fmt.Errorf("%w: body does not end in a newline", ErrMalformedCheckpoint)
	}
	lines := strings.Split(string(text[:len(text)-1]), "\n")
	if len(lines) < 3 {
		return c, fmt.Errorf("%w: %d lines, want origin, size and root hash", ErrMalformedCheckpoint, len(lines))
	}
	if lines[0] == "" {
		return c, fmt.Errorf("%w: empty origin", ErrMalformedCheckpoint)
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return c, fmt.Errorf("%w: tree size %q is not a decimal number", ErrMalformedCheckpoint, lines[1])
	}
	h, err := tlog.ParseHash(lines[2])
	if err != nil {
		return c, fmt.Errorf("%w: root hash %q is not 32 bytes of base64", ErrMalformedCheckpoint, lines[2])
	}
	for _, l := range lines[3:] {
		if l == "" {
			return c, fmt.Errorf("%w: empty extension line", ErrMalformedCheckpoint)
		}
	}
	return Checkpoint{Origin: lines[0], Size: size, Hash: h}, nil
}

// ParseCheckpoint opens a signed checkpoint note, checks that v signed it,
// and parses its body. The errors say which key signed it when v did not
// (note.UnverifiedNoteError) and when the signature is invalid
// (note.InvalidSignatureError); both are wrapped.
func ParseCheckpoint(msg []byte, v note.Verifier) (Checkpoint, error) {
	if v == nil {
		return Checkpoint{}, errors.New("no verifier key to check the checkpoint with")
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return Checkpoint{}, describeNoteError(err, v)
	}
	c, err := ParseCheckpointBody([]byte(n.Text))
	if err != nil {
		return Checkpoint{}, err
	}
	return c, nil
}

// parseUnverified parses a checkpoint's body without checking any signature
// (for checkpoints Trail itself stored).
func parseUnverified(msg []byte) (Checkpoint, error) {
	n, err := note.Open(msg, nil)
	var unverified *note.UnverifiedNoteError
	if errors.As(err, &unverified) {
		n, err = unverified.Note, nil
	}
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %w", ErrMalformedCheckpoint, err)
	}
	return ParseCheckpointBody([]byte(n.Text))
}

func describeNoteError(err error, v note.Verifier) error {
	var unverified *note.UnverifiedNoteError
	var invalid *note.InvalidSignatureError
	switch {
	case errors.As(err, &unverified):
		var names []string
		for _, s := range unverified.Note.UnverifiedSigs {
			names = append(names, fmt.Sprintf("%s+%08x", s.Name, s.Hash))
		}
		return fmt.Errorf("checkpoint is not signed by key %s+%08x (it is signed by %s): %w",
			v.Name(), v.KeyHash(), strings.Join(names, ", "), err)
	case errors.As(err, &invalid):
		return fmt.Errorf("checkpoint signature by key %s+%08x does not verify: the checkpoint was altered or forged: %w",
			v.Name(), v.KeyHash(), err)
	}
	return fmt.Errorf("%w: %w", ErrMalformedCheckpoint, err)
}
