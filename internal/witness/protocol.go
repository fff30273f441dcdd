// Package witness implements both sides of the C2SP tlog-witness protocol
// (https://c2sp.org/tlog-witness) with Ed25519 cosignature/v1 signatures
// (https://c2sp.org/tlog-cosignature):
//
//   - Server is a witness: it keeps, per log origin, the newest checkpoint it
//     cosigned (in SQLite), and cosigns a new checkpoint only with a
//     consistency proof from that one. `trail witness` runs it.
//   - Submitter is the log's side: `trail serve --witness` gives it every
//     checkpoint the integrator signs; it sends the newest one per
//     organization to each witness, in the background, and keeps the
//     cosignatures returned, which CosignedStorage appends to the
//     checkpoint notes the API serves and bundles carry.
//
// The request of add-checkpoint is
//
//	old <size the witness last cosigned, or 0>
//	<consistency proof hash, base64>     zero to 63 lines
//	<empty line>
//	<checkpoint note, signed by the log>
//
// and the answer one or more signature lines ("— <name> <base64>"), whose
// signature is an 8-byte big-endian POSIX time followed by an Ed25519
// signature of "cosignature/v1\ntime <time>\n" and the checkpoint body.
// docs/WITNESS.md and docs/VERIFYING.md describe both for operators.
package witness

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/tlog"
)

// maxProofLines is the most consistency proof lines a request may carry.
const maxProofLines = 63

// maxRequest bounds an add-checkpoint request body.
const maxRequest = 64 << 10

// sizeContentType is the Content-Type of a 409 Conflict answer.
const sizeContentType = "text/x.tlog.size"

// addRequest is a parsed add-checkpoint request.
type addRequest struct {
	OldSize int64
	Proof   tlog.TreeProof
	Note    []byte // the checkpoint note, unverified
}

var errMalformed = errors.New("malformed add-checkpoint request")

// formatAddRequest writes an add-checkpoint body.
func formatAddRequest(oldSize int64, proof tlog.TreeProof, note []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "old %d\n", oldSize)
	for _, h := range proof {
		b.WriteString(h.String())
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.Write(note)
	return b.Bytes()
}

// parseAddRequest parses an add-checkpoint body. Errors wrap errMalformed.
func parseAddRequest(body []byte) (addRequest, error) {
	var r addRequest
	head, note, ok := bytes.Cut(body, []byte("\n\n"))
	if !ok {
		return r, fmt.Errorf("%w: no empty line before the checkpoint", errMalformed)
	}
	lines := strings.Split(string(head), "\n")
	size, ok := strings.CutPrefix(lines[0], "old ")
	if !ok {
		return r, fmt.Errorf("%w: the first line must be \"old <size>\"", errMalformed)
	}
	n, err := strconv.ParseInt(size, 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != size {
		return r, fmt.Errorf("%w: old size %q is not a decimal number without leading zeroes", errMalformed, size)
	}
	r.OldSize = n
	if len(lines)-1 > maxProofLines {
		return r, fmt.Errorf("%w: %d consistency proof lines, at most %d allowed", errMalformed, len(lines)-1, maxProofLines)
	}
	for i, l := range lines[1:] {
		h, err := tlog.ParseHash(l)
		if err != nil {
			return r, fmt.Errorf("%w: consistency proof line %d is not a base64 hash", errMalformed, i+1)
		}
		r.Proof = append(r.Proof, h)
	}
	if len(note) == 0 {
		return r, fmt.Errorf("%w: no checkpoint after the empty line", errMalformed)
	}
	r.Note = note
	return r, nil
}

// splitNote returns a signed note's body (through the newline before the
// blank line) and its signature lines.
func splitNote(msg []byte) (body, sigs []byte, err error) {
	i := bytes.LastIndex(msg, []byte("\n\n"))
	if i < 0 || !bytes.HasSuffix(msg, []byte("\n")) {
		return nil, nil, errors.New("not a signed note")
	}
	return msg[:i+1], msg[i+2:], nil
}
