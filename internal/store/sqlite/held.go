package sqlite

import (
	"encoding/binary"

	"github.com/trailaudit/trail/internal/event"
)

// indexFields are the parts of an event the search index is made of: the
// facets (facets.go) come from the action, the actor's id and name and the
// targets' types and ids, and the full text is the draft's search text.
// The indexer, retention and reads of the tail all take them from here, so
// what is inserted, deleted and matched in Go is the same.
type indexFields struct {
	action, actorID, actorName string
	targets                    []targetRef
	text                       string
}

// targetRef is a target as the index sees it.
type targetRef struct{ typ, id string }

// fieldsOf returns d's index fields, the targets appended to targets and
// the text made in text (both reused by the caller).
func fieldsOf(d *event.Draft, targets []targetRef, text []byte) (indexFields, []byte) {
	text = d.AppendSearchText(text[:0])
	for _, t := range d.Targets {
		targets = append(targets, targetRef{t.Type, t.ID})
	}
	return indexFields{action: d.Action, actorID: d.Actor.ID, actorName: d.Actor.Name, targets: targets, text: string(text)}, text
}

// heldFields are an event's index fields in the compact form an event
// waiting for the indexer holds them in: one string, so one allocation
// without pointers for the garbage collector to follow, where the parsed
// draft took a dozen (its strings, targets, metadata maps and their
// values) and about four times its bytes. The draft is dropped once these
// are made (pendingRow.hold).
//
// Layout: the uvarint count of targets, the uvarint lengths of the action,
// the actor's id and name and of each target's type and id, then those
// strings one after another, then the search text to the end.
type heldFields string

// makeHeldFields encodes d's index fields, using buf as scratch.
func makeHeldFields(d *event.Draft, buf []byte) (heldFields, []byte) {
	buf = appendUvarint(buf[:0], len(d.Targets))
	buf = appendUvarint(buf, len(d.Action))
	buf = appendUvarint(buf, len(d.Actor.ID))
	buf = appendUvarint(buf, len(d.Actor.Name))
	for _, t := range d.Targets {
		buf = appendUvarint(buf, len(t.Type))
		buf = appendUvarint(buf, len(t.ID))
	}
	buf = append(buf, d.Action...)
	buf = append(buf, d.Actor.ID...)
	buf = append(buf, d.Actor.Name...)
	for _, t := range d.Targets {
		buf = append(buf, t.Type...)
		buf = append(buf, t.ID...)
	}
	buf = d.AppendSearchText(buf)
	return heldFields(buf), buf
}

// heldReader reads a heldFields from its start.
type heldReader struct {
	s string
	i int
}

func (r *heldReader) uvarint() int {
	n, shift := 0, 0
	for r.i < len(r.s) {
		c := r.s[r.i]
		r.i++
		n |= int(c&0x7f) << shift
		if c < 0x80 {
			break
		}
		shift += 7
	}
	return n
}

// header reads the count of targets and the first three lengths, and
// returns where the targets' lengths start; r is left at the strings.
func (r *heldReader) header() (targets, action, actorID, actorName, lens int) {
	targets = r.uvarint()
	action, actorID, actorName = r.uvarint(), r.uvarint(), r.uvarint()
	lens = r.i
	for range 2 * targets {
		r.uvarint()
	}
	return targets, action, actorID, actorName, lens
}

// fields decodes h, appending its targets to targets; every string is a
// part of h, nothing is copied.
func (h heldFields) fields(targets []targetRef) indexFields {
	r := heldReader{s: string(h)}
	nt, la, lid, lname, lens := r.header()
	at := r.i // the next string
	str := func(n int) string {
		v := r.s[at : at+n]
		at += n
		return v
	}
	f := indexFields{targets: targets}
	f.action, f.actorID, f.actorName = str(la), str(lid), str(lname)
	r.i = lens
	for range nt {
		lt, li := r.uvarint(), r.uvarint()
		f.targets = append(f.targets, targetRef{str(lt), str(li)})
	}
	f.text = r.s[at:]
	return f
}

// action is h's action, decoded alone.
func (h heldFields) action() string {
	r := heldReader{s: string(h)}
	_, la, _, _, _ := r.header()
	return r.s[r.i : r.i+la]
}

// appendUvarint appends n as encoding/binary's uvarint, which heldReader
// reads from a string without copying it.
func appendUvarint(b []byte, n int) []byte { return binary.AppendUvarint(b, uint64(n)) }
