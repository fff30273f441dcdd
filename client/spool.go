package client

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The spool keeps published events on local disk until Trail stores them.
//
// Layout of the directory: segment files NNNNNNNNNNNNNNNN.seg, appended to
// by one writer and never rewritten; cursor, where the sender records how
// far Trail has stored and which batch it is sending; spool.id, the
// spool's random name (part of every idempotency key); lock, held while a
// Publisher has the directory.
//
// A segment is a sequence of frames: a 4-byte little-endian length, the
// CRC-32C of the payload, and the payload, one batch item's JSON
// ({"organization_id":…,"event":…}). A frame whose length or checksum is
// wrong ends the segment: it is a torn tail, written when the process or
// the machine stopped in the middle of a write. Under SyncEveryBatch such a
// frame was never acknowledged (Publish returns after the fsync); under the
// other policies it can only hold events acknowledged since the last fsync
// and lost with the machine's cache. Each start writes a new segment, so
// frames after a torn tail are never mixed with new ones.
//
// Each batch is a range [off, end) of one segment, sent with the
// idempotency key trail-spool-<id>-<segment>-<off>-<end>. Before sending,
// the sender records the range in cursor (fsynced under SyncEveryBatch);
// after a crash it sends exactly that range again, with the same key and
// the same bytes, so Trail answers from the first result instead of
// storing the events twice. Trail remembers keys for 24 hours.

const (
	segSuffix    = ".seg"
	frameHeader  = 8
	maxFrame     = 16 << 20
	cursorSlot   = 48
	cursorMagic  = "TSC1"
	spoolIDFile  = "spool.id"
	cursorFile   = "cursor"
	lockFileName = "lock"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// position is the sender's place: segment seg, delivered up to off, and
// the batch [off, end) in flight when end > off.
type position struct {
	seg, off, end int64
}

type spool struct {
	dir  string
	opts PublisherOptions
	log  *slog.Logger
	id   string
	lock *os.File

	cursor    *os.File
	cursorSeq uint64
	pos       position // the sender's, as recorded

	mu         sync.Mutex
	segs       []int64         // existing segments, oldest first; the last is the active one
	limits     map[int64]int64 // valid length of the segments of earlier runs
	active     int64
	activeF    *os.File
	activeSize int64 // bytes written to the active segment (readable by the sender)
	writerDone bool

	liveBytes atomic.Int64
	dirty     atomic.Bool   // written since the last fsync
	notify    chan struct{} // new data or the writer's end, for the sender
	room      chan struct{} // a segment was freed, for the writer
}

func segName(dir string, n int64) string {
	return filepath.Join(dir, fmt.Sprintf("%016d%s", n, segSuffix))
}

// openSpool opens or creates the spool in dir and starts a new active
// segment.
func openSpool(dir string, opts PublisherOptions, log *slog.Logger) (*spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the spool directory: %w", err)
	}
	s := &spool{dir: dir, opts: opts, log: log, limits: map[int64]int64{},
		notify: make(chan struct{}, 1), room: make(chan struct{}, 1)}
	if s.opts.SegmentBytes > s.opts.MaxSpoolBytes/4 {
		s.opts.SegmentBytes = max(s.opts.MaxSpoolBytes/4, 4096)
	}
	lf, err := os.OpenFile(filepath.Join(dir, lockFileName), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the spool's lock: %w", err)
	}
	if err := lockFile(lf); err != nil {
		lf.Close()
		return nil, fmt.Errorf("the spool %s is in use by another publisher: %w", dir, err)
	}
	s.lock = lf
	if err := s.open(); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *spool) open() error {
	id, err := os.ReadFile(filepath.Join(s.dir, spoolIDFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
		var b [8]byte
		_, _ = rand.Read(b[:])
		id = []byte(hex.EncodeToString(b[:]))
		if err := writeFileSync(filepath.Join(s.dir, spoolIDFile), id); err != nil {
			return fmt.Errorf("naming the spool: %w", err)
		}
	case err != nil:
		return fmt.Errorf("reading the spool's name: %w", err)
	}
	s.id = strings.TrimSpace(string(id))

	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("listing the spool: %w", err)
	}
	var live int64
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), segSuffix)
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(name, 10, 64)
		if err != nil {
			continue
		}
		valid, size, err := scanSegment(segName(s.dir, n))
		if err != nil {
			return err
		}
		if valid < size {
			s.log.Warn("trail publisher: a spool segment ends with a torn record; it is ignored",
				"segment", segName(s.dir, n), "valid_bytes", valid, "torn_bytes", size-valid)
		}
		s.segs = append(s.segs, n)
		s.limits[n] = valid
		live += size
	}
	slices.Sort(s.segs)
	s.liveBytes.Store(live)

	if err := s.openCursor(); err != nil {
		return err
	}
	// Start a new segment after the last one.
	s.active = 1
	if len(s.segs) > 0 {
		s.active = s.segs[len(s.segs)-1] + 1
	}
	if err := s.createActive(); err != nil {
		return err
	}
	// The recorded position may name a segment delivered and removed since.
	if len(s.segs) > 0 && s.pos.seg < s.segs[0] {
		s.pos = position{seg: s.segs[0]}
	}
	return nil
}

// scanSegment returns the length of a segment's valid frames and its size.
func scanSegment(path string) (valid, size int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, fmt.Errorf("opening spool segment: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, 0, fmt.Errorf("reading spool segment: %w", err)
	}
	size = st.Size()
	var hdr [frameHeader]byte
	buf := make([]byte, 0, 64<<10)
	for valid+frameHeader <= size {
		if _, err := f.ReadAt(hdr[:], valid); err != nil {
			return 0, 0, fmt.Errorf("reading spool segment %s: %w", path, err)
		}
		n := int64(binary.LittleEndian.Uint32(hdr[:4]))
		if n == 0 || n > maxFrame || valid+frameHeader+n > size {
			break
		}
		buf = slices.Grow(buf[:0], int(n))[:n]
		if _, err := f.ReadAt(buf, valid+frameHeader); err != nil {
			return 0, 0, fmt.Errorf("reading spool segment %s: %w", path, err)
		}
		if crc32.Checksum(buf, castagnoli) != binary.LittleEndian.Uint32(hdr[4:]) {
			break
		}
		valid += frameHeader + n
	}
	return valid, size, nil
}

func writeFileSync(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func (s *spool) createActive() error {
	f, err := os.OpenFile(segName(s.dir, s.active), os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("creating a spool segment: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		f.Close()
		return fmt.Errorf("creating a spool segment: %w", err)
	}
	s.mu.Lock()
	s.activeF, s.activeSize = f, 0
	s.segs = append(s.segs, s.active)
	s.mu.Unlock()
	return nil
}

// openCursor reads the newest valid slot of the cursor file.
func (s *spool) openCursor() error {
	path := filepath.Join(s.dir, cursorFile)
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("opening the spool's cursor: %w", err)
	}
	s.cursor = f
	if errors.Is(statErr, os.ErrNotExist) {
		if err := syncDir(s.dir); err != nil {
			return fmt.Errorf("creating the spool's cursor: %w", err)
		}
	}
	var b [2 * cursorSlot]byte
	n, err := f.ReadAt(b[:], 0)
	if err != nil && err != io.EOF {
		return fmt.Errorf("reading the spool's cursor: %w", err)
	}
	for i := 0; i+cursorSlot <= n; i += cursorSlot {
		slot := b[i : i+cursorSlot]
		if string(slot[:4]) != cursorMagic || crc32.Checksum(slot[:44], castagnoli) != binary.LittleEndian.Uint32(slot[44:]) {
			continue
		}
		seq := binary.LittleEndian.Uint64(slot[4:])
		if seq >= s.cursorSeq {
			s.cursorSeq = seq
			s.pos = position{seg: int64(binary.LittleEndian.Uint64(slot[12:])), off: int64(binary.LittleEndian.Uint64(slot[20:])),
				end: int64(binary.LittleEndian.Uint64(slot[28:]))}
		}
	}
	return nil
}

// saveCursor records p in the older slot and fsyncs it, whatever the
// SyncPolicy: the slot it overwrites is then never the only durable record
// of where the sender is, so a crash at any moment leaves the cursor at a
// position whose batch, sent again, has the same range and key as before.
// These fsyncs are the sender's, never on Publish's path.
func (s *spool) saveCursor(p position) error {
	s.cursorSeq++
	var slot [cursorSlot]byte
	copy(slot[:], cursorMagic)
	binary.LittleEndian.PutUint64(slot[4:], s.cursorSeq)
	binary.LittleEndian.PutUint64(slot[12:], uint64(p.seg))
	binary.LittleEndian.PutUint64(slot[20:], uint64(p.off))
	binary.LittleEndian.PutUint64(slot[28:], uint64(p.end))
	binary.LittleEndian.PutUint32(slot[44:], crc32.Checksum(slot[:44], castagnoli))
	if _, err := s.cursor.WriteAt(slot[:], int64(s.cursorSeq%2)*cursorSlot); err != nil {
		return fmt.Errorf("recording the spool's cursor: %w", err)
	}
	s.pos = p
	if err := s.cursor.Sync(); err != nil {
		return fmt.Errorf("recording the spool's cursor: %w", err)
	}
	return nil
}

func (s *spool) close() error {
	var errs []error
	s.mu.Lock()
	if s.activeF != nil {
		errs = append(errs, s.activeF.Sync(), s.activeF.Close())
		s.activeF = nil
	}
	s.mu.Unlock()
	if s.cursor != nil {
		errs = append(errs, s.cursor.Sync(), s.cursor.Close())
		s.cursor = nil
	}
	if s.lock != nil {
		errs = append(errs, s.lock.Close())
		s.lock = nil
	}
	return errors.Join(errs...)
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// runSpool runs the spool's writer and sender until Close.
func (p *Publisher) runSpool() {
	defer close(p.done)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.spoolWriter()
	}()
	p.spoolSender()
	wg.Wait()
}

// spoolWriter writes what Publish queues to the active segment and answers
// each Publish once its event is written (and fsynced, under
// SyncEveryBatch).
func (p *Publisher) spoolWriter() {
	s := p.spool
	w := &segWriter{p: p, s: s, buf: make([]byte, 0, 1<<20)}
	if p.opts.Sync == SyncInterval {
		// fsync beside the writes, so Publish never waits for it.
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			t := time.NewTicker(p.opts.SyncInterval)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					s.syncActive()
				case <-stop:
					return
				}
			}
		}()
	}
	items := make([]pubItem, 0, 1000)
	take := func(first pubItem) {
		items = append(items[:0], first)
		for len(items) < cap(items) {
			select {
			case it := <-p.in:
				items = append(items, it)
				continue
			default:
			}
			break
		}
		w.process(items)
		clear(items) // drop the events' references
	}
	for {
		select {
		case it := <-p.in:
			take(it)
		case <-p.closing:
			for p.inflight.Load() > 0 {
				time.Sleep(time.Millisecond)
			}
			for {
				select {
				case it := <-p.in:
					take(it)
					continue
				default:
				}
				break
			}
			s.syncActive()
			s.mu.Lock()
			s.writerDone = true
			s.mu.Unlock()
			signal(s.notify)
			return
		}
	}
}

type segWriter struct {
	p       *Publisher
	s       *spool
	buf     []byte
	scratch []byte
	taken   []*waiter
}

// syncActive fsyncs the active segment if it was written since the last
// fsync. The writer may roll the segment meanwhile: a segment is fsynced
// when it is sealed, so a closed file is not an error.
func (s *spool) syncActive() {
	if !s.dirty.Swap(false) {
		return
	}
	s.mu.Lock()
	f := s.activeF
	s.mu.Unlock()
	if f == nil {
		return
	}
	if err := f.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
		s.log.Error("trail publisher: fsync of the spool failed", "err", err)
	}
}

func (w *segWriter) process(items []pubItem) {
	p, s := w.p, w.s
	for i := range items {
		it := &items[i]
		var err error
		w.scratch, err = encodeItem(w.scratch[:0], it)
		if err != nil {
			if it.w.state.CompareAndSwap(0, 1) {
				it.w.ch <- err
			}
			continue
		}
		need := int64(frameHeader + len(w.scratch))
		dropped := false
		for s.liveBytes.Load()+int64(len(w.buf))+need > p.opts.MaxSpoolBytes {
			if p.opts.Full == Drop {
				dropped = true
				break
			}
			if it.w.state.Load() == 2 {
				break
			}
			// Write what is ready, let the sender free a segment.
			w.flush()
			w.roll()
			select {
			case <-s.room:
			case <-time.After(20 * time.Millisecond):
			case <-p.life.Done():
			}
			if p.life.Err() != nil {
				break
			}
		}
		if !it.w.state.CompareAndSwap(0, 1) {
			continue // abandoned by Publish
		}
		if dropped {
			it.w.ch <- ErrDropped
			continue
		}
		if p.life.Err() != nil {
			it.w.ch <- ErrClosed
			continue
		}
		var hdr [frameHeader]byte
		binary.LittleEndian.PutUint32(hdr[:4], uint32(len(w.scratch)))
		binary.LittleEndian.PutUint32(hdr[4:], crc32.Checksum(w.scratch, castagnoli))
		w.buf = append(append(w.buf, hdr[:]...), w.scratch...)
		w.taken = append(w.taken, it.w)
		if len(w.buf) >= 1<<20 {
			w.flush()
		}
	}
	w.flush()
}

// flush writes the buffered frames, fsyncs them under SyncEveryBatch, and
// answers their Publish calls.
func (w *segWriter) flush() {
	if len(w.buf) == 0 {
		return
	}
	p, s := w.p, w.s
	s.mu.Lock()
	full := s.activeSize > 0 && s.activeSize+int64(len(w.buf)) > p.opts.SegmentBytes
	s.mu.Unlock()
	if full {
		w.roll()
	}
	_, err := s.activeF.Write(w.buf)
	if err == nil && p.opts.Sync == SyncEveryBatch {
		err = s.activeF.Sync()
	}
	if err != nil {
		err = fmt.Errorf("writing to the spool: %w", err)
		p.log.Error("trail publisher: "+err.Error(), "events", len(w.taken))
		// The segment may end with part of the write: start another.
		w.roll()
	} else {
		if p.opts.Sync != SyncEveryBatch {
			s.dirty.Store(true)
		}
		s.mu.Lock()
		s.activeSize += int64(len(w.buf))
		s.mu.Unlock()
		s.liveBytes.Add(int64(len(w.buf)))
		signal(s.notify)
	}
	for _, wt := range w.taken {
		wt.ch <- err
	}
	w.buf, w.taken = w.buf[:0], w.taken[:0]
}

// roll seals the active segment (when it holds anything) and starts the
// next one.
func (w *segWriter) roll() {
	s := w.s
	s.mu.Lock()
	empty := s.activeSize == 0
	s.mu.Unlock()
	if empty {
		return
	}
	if err := s.activeF.Sync(); err != nil {
		w.p.log.Error("trail publisher: fsync of the spool failed", "err", err)
	}
	old := s.activeF
	s.mu.Lock()
	s.limits[s.active] = s.activeSize
	s.mu.Unlock()
	s.active++
	if err := s.createActive(); err != nil {
		w.p.log.Error("trail publisher: cannot start a spool segment; writing on in the old one", "err", err)
		s.mu.Lock()
		delete(s.limits, s.active-1)
		s.mu.Unlock()
		s.active--
		return
	}
	old.Close()
	signal(s.notify)
}

// segView is what the sender may read of a segment.
type segView struct {
	exists bool
	limit  int64 // bytes readable
	final  bool  // no more bytes will come
	next   int64 // the next segment, or -1
	active bool
}

func (s *spool) view(n int64) segView {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := segView{next: -1}
	i, found := slices.BinarySearch(s.segs, n)
	if i < len(s.segs) && !found {
		v.next = s.segs[i]
	}
	if found && i+1 < len(s.segs) {
		v.next = s.segs[i+1]
	}
	if !found {
		return v
	}
	v.exists = true
	if lim, ok := s.limits[n]; ok {
		v.limit, v.final = lim, true
	} else {
		v.limit, v.active, v.final = s.activeSize, true, s.writerDone
	}
	return v
}

// remove deletes a delivered segment.
func (s *spool) remove(n int64) {
	path := segName(s.dir, n)
	st, err := os.Stat(path)
	if err == nil {
		err = os.Remove(path)
	}
	if err != nil {
		s.log.Error("trail publisher: cannot remove a delivered spool segment", "segment", path, "err", err)
		return
	}
	s.liveBytes.Add(-st.Size())
	s.mu.Lock()
	s.segs = slices.DeleteFunc(s.segs, func(x int64) bool { return x == n })
	delete(s.limits, n)
	s.mu.Unlock()
	signal(s.room)
}

// spoolSender delivers the spool's frames in order, one batch at a time.
func (p *Publisher) spoolSender() {
	s := p.spool
	var (
		f       *os.File
		fseg    int64 = -1
		buf           = make([]byte, p.opts.BatchBytes+frameHeader)
		recs    [][]byte
		waiting time.Time // when the current partial batch was first seen
		timer   = time.NewTimer(time.Hour)
	)
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	for p.life.Err() == nil {
		pos := s.pos
		v := s.view(pos.seg)
		if !v.exists {
			if v.next < 0 {
				return // nothing left at all (cannot happen: the active segment exists)
			}
			if err := s.saveCursor(position{seg: v.next}); err != nil {
				p.log.Error("trail publisher: " + err.Error())
			}
			continue
		}
		if fseg != pos.seg {
			if f != nil {
				f.Close()
			}
			var err error
			if f, err = os.Open(segName(s.dir, pos.seg)); err != nil {
				p.log.Error("trail publisher: cannot read a spool segment; retrying", "err", err)
				p.sleep(time.Second)
				continue
			}
			fseg = pos.seg
		}
		limit := v.limit
		inflight := pos.end > pos.off
		if inflight {
			limit = min(pos.end, limit)
		}
		var end int64
		var err error
		recs, end, buf, err = readFrames(f, pos.off, limit, p.opts.BatchSize, buf, recs[:0])
		if err != nil {
			p.log.Error("trail publisher: cannot read the spool; retrying", "err", err)
			p.sleep(time.Second)
			continue
		}
		if inflight && end != pos.end {
			// The batch recorded before a crash is not all there (the
			// machine lost what was not fsynced): send what is.
			p.log.Warn("trail publisher: the batch in flight at the last stop is incomplete in the spool", "segment", pos.seg)
			inflight = false
		}
		if len(recs) == 0 {
			if v.final {
				if v.active {
					return // the writer is done and everything is delivered
				}
				if v.next >= 0 {
					if err := s.saveCursor(position{seg: v.next}); err != nil {
						p.log.Error("trail publisher: " + err.Error())
					}
					f.Close()
					f, fseg = nil, -1
					s.remove(pos.seg)
					continue
				}
			}
			select {
			case <-s.notify:
			case <-p.life.Done():
			}
			continue
		}
		if !inflight && len(recs) < p.opts.BatchSize && !v.final && !p.closed.Load() {
			if waiting.IsZero() {
				waiting = time.Now()
			}
			if left := p.opts.FlushInterval - time.Since(waiting); left > 0 {
				timer.Reset(left)
				select {
				case <-s.notify:
				case <-timer.C:
				case <-p.life.Done():
				}
				timer.Stop()
				continue
			}
		}
		waiting = time.Time{}
		if !inflight {
			if err := s.saveCursor(position{seg: pos.seg, off: pos.off, end: end}); err != nil {
				p.log.Error("trail publisher: "+err.Error()+"; retrying", "segment", pos.seg)
				p.sleep(time.Second)
				continue
			}
		}
		key := fmt.Sprintf("trail-spool-%s-%d-%d-%d", s.id, pos.seg, pos.off, end)
		if err := p.deliver(recs, key); err != nil {
			return // stopped
		}
		if err := s.saveCursor(position{seg: pos.seg, off: end, end: end}); err != nil {
			p.log.Error("trail publisher: " + err.Error())
		}
	}
}

func (p *Publisher) sleep(d time.Duration) {
	select {
	case <-time.After(d):
	case <-p.life.Done():
	}
}

// readFrames reads up to max frames of f from off, not past limit. It
// returns their payloads (slices of buf, which it may grow) and where they
// end. A frame that is cut or fails its checksum ends the read.
func readFrames(f *os.File, off, limit int64, max int, buf []byte, recs [][]byte) ([][]byte, int64, []byte, error) {
	end := off
	if off >= limit {
		return recs, end, buf, nil
	}
	n := int(min(int64(cap(buf)), limit-off))
	buf = buf[:n]
	if _, err := f.ReadAt(buf, off); err != nil && err != io.EOF {
		return recs, end, buf, fmt.Errorf("reading a spool segment: %w", err)
	}
	i := 0
	for len(recs) < max && i+frameHeader <= n {
		l := int(binary.LittleEndian.Uint32(buf[i:]))
		if l == 0 || l > maxFrame {
			break
		}
		if i+frameHeader+l > n {
			if i == 0 && int64(frameHeader+l) <= limit-off {
				// One frame larger than the buffer: grow it and read again.
				buf = make([]byte, frameHeader+l)
				return readFrames(f, off, limit, max, buf, recs)
			}
			break
		}
		payload := buf[i+frameHeader : i+frameHeader+l]
		if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(buf[i+4:]) {
			break
		}
		recs = append(recs, payload)
		i += frameHeader + l
	}
	return recs, off + int64(i), buf, nil
}
