package ledger

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"strings"

	"golang.org/x/mod/sumdb/tlog"
)

// subsetMagic is the first line of a subset bundle: a bundle of some of a
// log's records (those an export's filter selected), each proven to be in
// the tree of a signed checkpoint.
//
// Format (lines end in "\n"; hashes and hash runs are standard base64):
//
//	trail-subset v1
//	checkpoint <n>
//	<the checkpoint note: exactly n bytes>
//	selection <one line of text saying what was selected>
//	selection-signature <base64>           the log key's signature of the selection (see selectionText)
//	range 0 <checkpoint size>
//	left
//	<record line>                          the selected records of a level-0 group, in seq order
//	leaves <first seq> <count> <base64>    that group's leaf hashes (as in a full bundle)
//	subtrees <first seq> <count> <base64>  count groups of 256 seqs with no selected record,
//	                                       each given by its level-8 subtree hash
//	…
//	proof
//	end <number of record lines>
//
// Every seq of [0, size) is covered, in order, by exactly one leaves line
// or one subtrees hash, so the verifier recomputes the whole tree of the
// checkpoint (with x/mod/sumdb/tlog) and compares its root; each selected
// record must hash to the leaf hash of its seq. A group with selected
// records costs 256 leaf hashes (about 11 KB), a group without one 32 bytes:
// a subset of a log of n records is at most 43 bytes per record plus
// n/8 bytes, however few records are selected.
//
// What it proves: every record in it is in the log at its seq, unaltered,
// under the checkpoint, and that the log's key signed the selection line
// for this checkpoint. What it cannot prove: that the selection is
// complete — nothing in the tree says which other records a filter would
// have matched (their leaf hashes are there, but not their contents).
// Subset bundles of earlier versions have no selection-signature line:
// they verify, and their selection line is reported as unsigned.
const subsetMagic = "trail-subset v1"

// selectionMagic is the first line of the text the log key signs for a
// subset bundle's selection line.
const selectionMagic = "trail-subset-selection v1"

// selectionText is what the selection-signature line signs, as a signed
// note's text: "trail-subset-selection v1", the checkpoint note's text (its
// three lines: origin, size, root hash), then the selection line's text, each
// line ending in a newline. It cannot be taken for a checkpoint (its second
// line is not a tree size), nor moved to another checkpoint.
func selectionText(checkpointText []byte, selection string) string {
	return selectionMagic + "\n" + string(checkpointText) + selection + "\n"
}

// noteText returns a signed note's text: what precedes the blank line,
// with its final newline.
func noteText(msg []byte) ([]byte, bool) {
	i := bytes.Index(msg, []byte("\n\n"))
	if i < 0 {
		return nil, false
	}
	return msg[:i+1], true
}

// SubsetOptions choose what a subset bundle holds.
type SubsetOptions struct {
	// Size selects the checkpoint; 0 means the newest.
	Size int64
	// From excludes records with seq < From from the selection, and they
	// are not read: the caller knows none of them would be selected (the
	// tree still covers them, as subtree hashes).
	From int64
	// UpTo, when > 0, excludes records with seq ≥ UpTo from the selection
	// (the tree still covers the whole checkpoint).
	UpTo int64
	// Selection describes the selection in words (one line), for people.
	Selection string
	// Signer, when set, signs the selection line (selection-signature);
	// it must be a key that signed the checkpoint.
	Signer SelectionSigner
	// Select decides whether a record goes in the bundle; it sees every
	// stored record of [From, min(UpTo, size)) in seq order. record is
	// only valid during the call.
	Select func(seq int64, record []byte) (bool, error)
}

// SubsetInfo describes a written subset bundle.
type SubsetInfo struct {
	Checkpoint Checkpoint
	Read       int64 // records read
	Records    int64 // record lines written
}

// maxSubtreesLine bounds the subtree hashes of one subtrees line.
const maxSubtreesLine = 1024

// WriteSubset writes a subset bundle of org's records that opts.Select
// selects, under a stored checkpoint. Like WriteBundle it streams and does
// not check what it reads. Memory is bounded: one group of records' leaf
// hashes and one line of subtree hashes.
func WriteSubset(ctx context.Context, w io.Writer, s Storage, org string, opts SubsetOptions) (SubsetInfo, error) {
	var info SubsetInfo
	msg, ck, err := storedCheckpoint(ctx, s, org, opts.Size)
	if err != nil {
		return info, err
	}
	info.Checkpoint = ck
	size := ck.Size
	scanTo := size
	if opts.UpTo > 0 {
		scanTo = min(scanTo, opts.UpTo)
	}

	bw := bufio.NewWriterSize(w, 1<<20)
	fmt.Fprintf(bw, "%s\ncheckpoint %d\n", subsetMagic, len(msg))
	bw.Write(msg)
	sel := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, opts.Selection)
	fmt.Fprintf(bw, "selection %s\n", sel)
	if opts.Signer != nil {
		text, ok := noteText(msg)
		if !ok {
			return info, fmt.Errorf("stored checkpoint of %s is not a signed note", org)
		}
		sig, err := opts.Signer.SignText(selectionText(text, sel))
		if err != nil {
			return info, fmt.Errorf("couldn't sign the selection of a subset bundle of %s: %w", org, err)
		}
		fmt.Fprintf(bw, "selection-signature %s\n", sig)
	}
	fmt.Fprintf(bw, "range 0 %d\nleft\n", size)

	sw := subsetWriter{lw: leavesWriter{ctx: ctx, s: s, org: org, w: bw, to: size}, hr: newHashReader(ctx, s, org)}
	err = s.ReadRecords(ctx, org, max(opts.From, 0), scanTo, func(seq int64, record []byte) error {
		info.Read++
		ok, err := opts.Select(seq, record)
		if err != nil || !ok {
			return err
		}
		if err := sw.advance(seq); err != nil {
			return err
		}
		bw.Write(record)
		if err := bw.WriteByte('\n'); err != nil {
			return fmt.Errorf("couldn't write bundle: %w", err)
		}
		sw.touched = true
		info.Records++
		return nil
	})
	if err != nil {
		return info, fmt.Errorf("couldn't write records of %s: %w", org, err)
	}
	if err := sw.advance(size); err != nil {
		return info, err
	}
	if err := sw.flushSubtrees(); err != nil {
		return info, err
	}
	fmt.Fprintf(bw, "proof\nend %d\n", info.Records)
	if err := bw.Flush(); err != nil {
		return info, fmt.Errorf("couldn't write bundle: %w", err)
	}
	return info, nil
}

// subsetWriter closes the groups of a subset bundle as the records go by.
type subsetWriter struct {
	lw      leavesWriter // lw.next: the first seq of the group not closed yet
	hr      *hashReader
	touched bool    // the group at lw.next has records in the bundle
	run     []int64 // stored hash indexes of the subtrees waiting to be written
	runFrom int64
	raw     []byte
	enc     []byte
}

// advance closes every group that ends at or before seq (seq = size closes
// them all): a group with records gets its leaves line, a complete one
// without records joins the current subtrees run, the last partial one
// without records gets a leaves line.
func (sw *subsetWriter) advance(seq int64) error {
	for sw.lw.next < sw.lw.to && (groupEnd(sw.lw.next, sw.lw.to) <= seq || seq >= sw.lw.to) {
		g := sw.lw.next
		end := groupEnd(g, sw.lw.to)
		if sw.touched || end-g < groupSize {
			if err := sw.flushSubtrees(); err != nil {
				return err
			}
			if err := sw.lw.flush(); err != nil {
				return err
			}
			sw.touched = false
			continue
		}
		if len(sw.run) == 0 {
			sw.runFrom = g
		}
		sw.run = append(sw.run, tlog.StoredHashIndex(TileHeight, g/groupSize))
		sw.lw.next = end
		if len(sw.run) == maxSubtreesLine {
			if err := sw.flushSubtrees(); err != nil {
				return err
			}
		}
	}
	if seq < sw.lw.to {
		// A record follows: the groups before it must be written first.
		return sw.flushSubtrees()
	}
	return nil
}

func (sw *subsetWriter) flushSubtrees() error {
	if len(sw.run) == 0 {
		return nil
	}
	hashes, err := sw.hr.ReadHashes(sw.run)
	if err != nil {
		return fmt.Errorf("couldn't read the subtree hashes of seq %d–%d of %s: %w",
			sw.runFrom, sw.runFrom+int64(len(sw.run))*groupSize-1, sw.lw.org, err)
	}
	sw.raw = sw.raw[:0]
	for _, h := range hashes {
		sw.raw = append(sw.raw, h[:]...)
	}
	sw.enc = base64.StdEncoding.AppendEncode(sw.enc[:0], sw.raw)
	fmt.Fprintf(sw.lw.w, "subtrees %d %d ", sw.runFrom, len(sw.run))
	sw.lw.w.Write(sw.enc)
	if err := sw.lw.w.WriteByte('\n'); err != nil {
		return fmt.Errorf("couldn't write bundle: %w", err)
	}
	sw.run = sw.run[:0]
	// The hash reader keeps the tiles it read; subtree hashes are read
	// in increasing order, so older tiles are never needed again.
	clear(sw.hr.tiles)
	return nil
}
