package ledger

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/tlog"
)

// StateFile is the name, in the data directory, of the file where the
// integrator kept the newest checkpoint it signed for each origin before
// that record moved into the database (HeadStorage). A file found there is
// still read and checked, and copied into the database; without a
// HeadStorage it is still written.
const StateFile = "signed-checkpoints"

const stateHeader = "trail signed-checkpoints v1"

// signedHead is the newest checkpoint signed for one origin.
type signedHead struct {
	Size int64
	Hash tlog.Hash
	// Source names where the head was found, for refusals; empty for the
	// record this deployment keeps.
	Source string
}

// fileSource names the state file as a head's source.
const fileSource = "the signed-checkpoints file in the data directory"

// readStateFile reads origin → newest signed checkpoint. A missing file is an
// empty map (first start).
//
// Format: the header line, then one line per origin, sorted:
// "<origin> <size> <base64 root hash>".
func readStateFile(path string) (map[string]signedHead, error) {
	heads := map[string]signedHead{}
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return heads, nil
	}
	if err != nil {
		return nil, fmt.Errorf("couldn't read %s: %w", path, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if line == 1 {
			if text != stateHeader {
				return nil, fmt.Errorf("%s:1: not a signed-checkpoints file (want %q)", path, stateHeader)
			}
			continue
		}
		f := strings.Split(text, " ")
		if len(f) != 3 {
			return nil, fmt.Errorf("%s:%d: want \"<origin> <size> <root hash>\"", path, line)
		}
		size, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || size < 0 {
			return nil, fmt.Errorf("%s:%d: bad tree size %q", path, line, f[1])
		}
		h, err := tlog.ParseHash(f[2])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: bad root hash %q", path, line, f[2])
		}
		heads[f[0]] = signedHead{Size: size, Hash: h, Source: fileSource}
	}
	if line == 0 {
		return nil, fmt.Errorf("%s is empty", path)
	}
	return heads, nil
}

// writeStateFile replaces the file atomically and durably: a temporary file
// is written and synced, renamed over the old one, and the directory synced.
// If the process dies at any point, the file is either the old one or the
// new one, whole.
func writeStateFile(path string, heads map[string]signedHead) error {
	origins := make([]string, 0, len(heads))
	for o := range heads {
		origins = append(origins, o)
	}
	slices.Sort(origins)
	var b bytes.Buffer
	b.Grow(len(origins)*100 + len(stateHeader) + 1)
	b.WriteString(stateHeader + "\n")
	for _, o := range origins {
		h := heads[o]
		fmt.Fprintf(&b, "%s %d %s\n", o, h.Size, h.Hash)
	}
	dir := filepath.Dir(path)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("couldn't create %s: %w", tmp, err)
	}
	if _, err := f.Write(b.Bytes()); err != nil {
		f.Close()
		return fmt.Errorf("couldn't write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("couldn't sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("couldn't write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("couldn't replace %s: %w", path, err)
	}
	return syncDir(dir)
}
