package ledger

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/tlog"
)

// ErrBundleTruncated means the bundle file ends before its end line.
var ErrBundleTruncated = errors.New("the bundle file ends before its end line (it was cut short)")

// FormatError is a bundle line that does not follow the format.
type FormatError struct {
	Line int64
	Msg  string
	Err  error // ErrBundleTruncated or nil
}

func (e *FormatError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("bundle line %d: %s: %v", e.Line, e.Msg, e.Err)
	}
	return fmt.Sprintf("bundle line %d: %s", e.Line, e.Msg)
}

func (e *FormatError) Unwrap() error { return e.Err }

// maxNote bounds the checkpoint note of a bundle.
const maxNote = 64 << 10

// BundleReader reads a bundle as a stream: the header fields are set by
// ReadBundle, the record section comes from Next, and the trailer fields are
// set once Next has returned io.EOF. It never holds more than one line.
type BundleReader struct {
	Note     []byte // the checkpoint note, unverified
	From, To int64
	Left     []tlog.Hash

	// Set once Next has returned io.EOF.
	Proof      tlog.TreeProof
	SinceSize  int64 // 0 when the bundle has no since line
	SinceProof tlog.TreeProof
	Records    int64 // as stated by the end line

	r      *bufio.Reader
	line   int64
	long   []byte // a line longer than r's buffer
	raw    []byte
	leaves []tlog.Hash
	done   bool
}

// Entry is one line of the record section: a record (Record set) or a
// leaves line (Leaves set). Its slices are valid until the next call to Next.
type Entry struct {
	Line   int64
	Record []byte // without the newline
	First  int64  // seq of Leaves[0]
	Leaves []tlog.Hash
}

// ReadBundle reads a bundle's header from r, up to its record section.
func ReadBundle(r io.Reader) (*BundleReader, error) {
	b := &BundleReader{r: bufio.NewReaderSize(r, 1<<20)}
	line, err := b.readLine()
	if err != nil {
		return nil, err
	}
	if string(line) != bundleMagic {
		return nil, b.errorf("not a Trail bundle (the first line is not %q)", bundleMagic)
	}
	line, err = b.readLine()
	if err != nil {
		return nil, err
	}
	n, ok := intAfter(line, "checkpoint ")
	if !ok || n <= 0 || n > maxNote {
		return nil, b.errorf("want \"checkpoint <length>\"")
	}
	b.Note = make([]byte, n)
	if _, err := io.ReadFull(b.r, b.Note); err != nil {
		return nil, &FormatError{Line: b.line + 1, Msg: "checkpoint note", Err: ErrBundleTruncated}
	}
	b.line += int64(bytes.Count(b.Note, []byte("\n")))
	line, err = b.readLine()
	if err != nil {
		return nil, err
	}
	f := strings.Fields(string(line))
	if len(f) != 3 || f[0] != "range" {
		return nil, b.errorf("want \"range <from> <to>\" after the checkpoint note")
	}
	from, err1 := strconv.ParseInt(f[1], 10, 64)
	to, err2 := strconv.ParseInt(f[2], 10, 64)
	if err1 != nil || err2 != nil || from < 0 || from > to {
		return nil, b.errorf("bad range %q", line)
	}
	b.From, b.To = from, to
	line, err = b.readLine()
	if err != nil {
		return nil, err
	}
	if b.Left, err = b.hashLine(line, "left"); err != nil {
		return nil, err
	}
	return b, nil
}

// Next returns the next entry of the record section, or io.EOF once the
// trailer (proof, since and end lines) has been read.
func (b *BundleReader) Next() (Entry, error) {
	if b.done {
		return Entry{}, io.EOF
	}
	line, err := b.readLine()
	if err != nil {
		return Entry{}, err
	}
	switch {
	case bytes.HasPrefix(line, []byte("leaves ")):
		return b.leavesLine(line)
	case string(line) == "proof" || bytes.HasPrefix(line, []byte("proof ")):
		return Entry{}, b.trailer(line)
	}
	return Entry{Line: b.line, Record: line}, nil
}

func (b *BundleReader) leavesLine(line []byte) (Entry, error) {
	// leaves <first> <count> <base64>
	rest := line[len("leaves "):]
	sp1 := bytes.IndexByte(rest, ' ')
	if sp1 < 0 {
		return Entry{}, b.errorf("want \"leaves <first seq> <count> <hashes>\"")
	}
	sp2 := bytes.IndexByte(rest[sp1+1:], ' ')
	if sp2 < 0 {
		return Entry{}, b.errorf("want \"leaves <first seq> <count> <hashes>\"")
	}
	first, err1 := strconv.ParseInt(string(rest[:sp1]), 10, 64)
	count, err2 := strconv.ParseInt(string(rest[sp1+1:sp1+1+sp2]), 10, 64)
	if err1 != nil || err2 != nil || first < 0 || count <= 0 || count > groupSize {
		return Entry{}, b.errorf("bad leaves line header")
	}
	enc := rest[sp1+1+sp2+1:]
	b.raw = b.raw[:0]
	b.raw, err1 = base64.StdEncoding.AppendDecode(b.raw, enc)
	if err1 != nil || int64(len(b.raw)) != count*tlog.HashSize {
		return Entry{}, b.errorf("leaves line does not hold %d base64 hashes", count)
	}
	b.leaves = b.leaves[:0]
	for i := 0; i < len(b.raw); i += tlog.HashSize {
		b.leaves = append(b.leaves, tlog.Hash(b.raw[i:i+tlog.HashSize]))
	}
	return Entry{Line: b.line, First: first, Leaves: b.leaves}, nil
}

func (b *BundleReader) trailer(line []byte) error {
	var err error
	if b.Proof, err = b.hashLine(line, "proof"); err != nil {
		return err
	}
	if line, err = b.readLine(); err != nil {
		return err
	}
	if bytes.HasPrefix(line, []byte("since ")) {
		f := strings.SplitN(string(line), " ", 3)
		size, perr := strconv.ParseInt(f[1], 10, 64)
		if perr != nil || size <= 0 {
			return b.errorf("bad since line")
		}
		b.SinceSize = size
		rest := "since"
		if len(f) == 3 {
			rest += " " + f[2]
		}
		if b.SinceProof, err = b.hashLine([]byte(rest), "since"); err != nil {
			return err
		}
		if line, err = b.readLine(); err != nil {
			return err
		}
	}
	n, ok := intAfter(line, "end ")
	if !ok || n < 0 {
		return b.errorf("want \"end <records>\"")
	}
	b.Records = n
	if _, err := b.r.ReadByte(); err != io.EOF {
		return &FormatError{Line: b.line + 1, Msg: "unexpected data after the end line"}
	}
	b.done = true
	return io.EOF
}

// hashLine parses "<keyword> [<hash> …]".
func (b *BundleReader) hashLine(line []byte, keyword string) ([]tlog.Hash, error) {
	f := strings.Split(string(line), " ")
	if f[0] != keyword {
		return nil, b.errorf("want a %q line", keyword)
	}
	hashes := make([]tlog.Hash, 0, len(f)-1)
	for _, s := range f[1:] {
		h, err := tlog.ParseHash(s)
		if err != nil {
			return nil, b.errorf("bad hash %q on the %s line", s, keyword)
		}
		hashes = append(hashes, h)
	}
	return hashes, nil
}

// readLine returns the next line without its newline; it is valid until the
// next call. A last line without a newline is a truncated file.
func (b *BundleReader) readLine() ([]byte, error) {
	b.line++
	line, err := b.r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		b.long = append(b.long[:0], line...)
		for err == bufio.ErrBufferFull {
			line, err = b.r.ReadSlice('\n')
			b.long = append(b.long, line...)
		}
		line = b.long
	}
	if err != nil {
		if err == io.EOF {
			return nil, &FormatError{Line: b.line, Msg: "end of file", Err: ErrBundleTruncated}
		}
		return nil, fmt.Errorf("couldn't read bundle line %d: %w", b.line, err)
	}
	return line[:len(line)-1], nil
}

func (b *BundleReader) errorf(format string, args ...any) error {
	return &FormatError{Line: b.line, Msg: fmt.Sprintf(format, args...)}
}

func intAfter(line []byte, prefix string) (int64, bool) {
	rest, ok := bytes.CutPrefix(line, []byte(prefix))
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(string(rest), 10, 64)
	return n, err == nil
}
