package ledger

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"strconv"

	"golang.org/x/mod/sumdb/tlog"
)

// bundleMagic is the first line of a bundle (format in the package doc).
const bundleMagic = "trail-bundle v1"

// groupSize is how many seqs one leaves line covers at most: one level-0 tile.
const groupSize = 1 << TileHeight

// storedCheckpoint reads org's stored checkpoint of the given size (0: the
// newest) without checking its signature — a bundle carries it for the
// reader to check — but making sure it is one of org's.
func storedCheckpoint(ctx context.Context, s Storage, org string, size int64) ([]byte, Checkpoint, error) {
	var msg []byte
	var err error
	if size > 0 {
		msg, err = s.Checkpoint(ctx, org, size)
	} else {
		msg, err = s.LatestCheckpoint(ctx, org)
	}
	if err != nil {
		return nil, Checkpoint{}, fmt.Errorf("couldn't read checkpoint of %s: %w", org, err)
	}
	ck, err := parseUnverified(msg)
	if err != nil {
		return nil, Checkpoint{}, fmt.Errorf("stored checkpoint of %s: %w", org, err)
	}
	if OrganizationOf(ck.Origin) != org {
		return nil, Checkpoint{}, fmt.Errorf("stored checkpoint of %s is for origin %q", org, ck.Origin)
	}
	return msg, ck, nil
}

// groupEnd returns the end of the leaves group holding seq: the end of its
// level-0 tile, or to.
func groupEnd(seq, to int64) int64 {
	return min(to, (seq/groupSize+1)*groupSize)
}

// BundleOptions choose what a bundle proves. Zero values mean the whole log
// under its newest checkpoint.
type BundleOptions struct {
	// From and To bound the seqs of the records included: [From, To).
	// To = 0 means the checkpoint's size.
	From, To int64
	// Size selects the checkpoint; 0 means the newest.
	Size int64
	// Since, when > 0, adds the consistency proof from the tree of that
	// size (an older checkpoint the reader holds) to the checkpoint's.
	Since int64
}

// BundleInfo describes a written bundle.
type BundleInfo struct {
	Checkpoint Checkpoint
	From, To   int64
	Records    int64 // record lines written
}

// WriteBundle writes a bundle of org's records [From, To) under a stored
// checkpoint. It streams the records from storage and writes them exactly as
// stored; it does not check them (that is Verify's job: a bundle written from
// a tampered database shows the tampering). A seq with no stored record is
// simply absent from the bundle.
func WriteBundle(ctx context.Context, w io.Writer, s Storage, org string, opts BundleOptions) (BundleInfo, error) {
	var info BundleInfo
	msg, ck, err := storedCheckpoint(ctx, s, org, opts.Size)
	if err != nil {
		return info, err
	}
	from, to := opts.From, opts.To
	if to == 0 {
		to = ck.Size
	}
	if from < 0 || from > to || to > ck.Size {
		return info, fmt.Errorf("records [%d, %d) are not within checkpoint size %d: %w", from, to, ck.Size, ErrInvalidRange)
	}
	if opts.Since < 0 || opts.Since > ck.Size {
		return info, fmt.Errorf("older tree size %d is not at most checkpoint size %d: %w", opts.Since, ck.Size, ErrInvalidRange)
	}
	info = BundleInfo{Checkpoint: ck, From: from, To: to}

	// All hashes but the leaves are gathered first, so that a storage
	// problem shows before anything is written.
	r := newHashReader(ctx, s, org)
	left := &captureReader{r: r}
	if _, err := tlog.TreeHash(from, left); err != nil {
		return info, fmt.Errorf("couldn't read the hashes left of seq %d of %s: %w", from, org, err)
	}
	var proof, since tlog.TreeProof
	if to > 0 && to < ck.Size {
		if proof, err = tlog.ProveTree(ck.Size, to, r); err != nil {
			return info, fmt.Errorf("couldn't prove tree size %d of %s consistent with %d: %w", to, org, ck.Size, err)
		}
	}
	if opts.Since > 0 && opts.Since < ck.Size {
		if since, err = tlog.ProveTree(ck.Size, opts.Since, r); err != nil {
			return info, fmt.Errorf("couldn't prove tree size %d of %s consistent with %d: %w", opts.Since, org, ck.Size, err)
		}
	}

	bw := bufio.NewWriterSize(w, 1<<20)
	fmt.Fprintf(bw, "%s\ncheckpoint %d\n", bundleMagic, len(msg))
	bw.Write(msg)
	fmt.Fprintf(bw, "range %d %d\n", from, to)
	writeHashLine(bw, "left", left.hashes)

	lw := leavesWriter{ctx: ctx, s: s, org: org, w: bw, to: to, next: from}
	err = s.ReadRecords(ctx, org, from, to, func(seq int64, record []byte) error {
		// Close every group that ends before this record's.
		for lw.next < to && groupEnd(lw.next, to) <= seq {
			if err := lw.flush(); err != nil {
				return err
			}
		}
		bw.Write(record)
		if err := bw.WriteByte('\n'); err != nil {
			return fmt.Errorf("couldn't write bundle: %w", err)
		}
		info.Records++
		return nil
	})
	if err != nil {
		return info, fmt.Errorf("couldn't write records of %s: %w", org, err)
	}
	for lw.next < to {
		if err := lw.flush(); err != nil {
			return info, err
		}
	}
	writeHashLine(bw, "proof", proof)
	if opts.Since > 0 {
		writeHashLine(bw, "since "+strconv.FormatInt(opts.Since, 10), since)
	}
	fmt.Fprintf(bw, "end %d\n", info.Records)
	if err := bw.Flush(); err != nil {
		return info, fmt.Errorf("couldn't write bundle: %w", err)
	}
	return info, nil
}

func writeHashLine(w *bufio.Writer, keyword string, hashes []tlog.Hash) {
	w.WriteString(keyword)
	for _, h := range hashes {
		w.WriteByte(' ')
		w.WriteString(h.String())
	}
	w.WriteByte('\n')
}

// leavesWriter writes the leaves lines of a bundle, one group at a time,
// from the stored level-0 tiles.
type leavesWriter struct {
	ctx  context.Context
	s    Storage
	org  string
	w    *bufio.Writer
	to   int64
	next int64 // first seq of the next group to write
	raw  []byte
	enc  []byte
}

func (l *leavesWriter) flush() error {
	a, b := l.next, groupEnd(l.next, l.to)
	t := tlog.TileForIndex(TileHeight, tlog.StoredHashIndex(0, b-1))
	data, err := l.s.ReadTiles(l.ctx, l.org, []tlog.Tile{t})
	if err != nil {
		return fmt.Errorf("couldn't read leaf hashes of seq %d–%d of %s: %w", a, b-1, l.org, err)
	}
	t.W = len(data[0]) / tlog.HashSize
	l.raw = l.raw[:0]
	for seq := a; seq < b; seq++ {
		h, err := tlog.HashFromTile(t, data[0], tlog.StoredHashIndex(0, seq))
		if err != nil {
			return fmt.Errorf("couldn't read leaf hash %d of %s: %w", seq, l.org, err)
		}
		l.raw = append(l.raw, h[:]...)
	}
	l.enc = base64.StdEncoding.AppendEncode(l.enc[:0], l.raw)
	fmt.Fprintf(l.w, "leaves %d %d ", a, b-a)
	l.w.Write(l.enc)
	if err := l.w.WriteByte('\n'); err != nil {
		return fmt.Errorf("couldn't write bundle: %w", err)
	}
	l.next = b
	return nil
}
