// Package spool is vpp's durable ingest spool: a buffer.Buffer that keeps
// every accepted record in an append-only segment log on disk, so that a
// reading can be acknowledged to its device once it is fsynced, before
// Kafka has it, and survives an ingest crash or a Kafka outage.
//
// Records are appended to segment files (named by the sequence number of
// their first record, %020d.seg) as CRC-32C framed records; see record.go
// for the format. A syncer goroutine writes and fsyncs what Put queued
// (group commit) and then calls the records' Done. Next hands records out
// in order: from an in-memory window while the publisher keeps up, read
// back from disk once the backlog outgrew the window. Ack advances a
// watermark (every record below it is in Kafka); a segment whose records
// are all below the watermark is deleted, and the watermark is written to
// the small "acked" file about once a second. After a restart every record
// at or above the persisted watermark is handed out again, in order: a few
// already-published records may be published twice (the twin drops them by
// seq), none that was acknowledged to a device is lost.
package spool

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vppctl/vpp/internal/backoff"
	"github.com/vppctl/vpp/internal/buffer"
	"github.com/vppctl/vpp/internal/queue"
)

// Spool is a durable buffer.Buffer. Create it with Open; it is safe for
// concurrent use (Next by one goroutine, as buffer.Buffer requires).
type Spool struct {
	opts Options
	log  *slog.Logger
	lock io.Closer

	mu      sync.Mutex
	closed  bool
	segs    []*segment        // live segments, oldest first; the last one may be active
	nextSeq uint64            // sequence number of the next Put
	pend    []*chunk          // queued for the syncer
	pendB   int64             // bytes in pend
	spare   [][]byte          // chunk buffers to reuse
	flushed uint64            // records below were written to their files
	durable uint64            // records below were fsynced (or were on disk at Open)
	acked   uint64            // watermark: every record below is in Kafka
	ackHeap queue.SeqHeap     // acked records above the watermark
	toDel   []*segment        // fully acked segments whose files the syncer removes
	disk    int64             // bytes of the live segments, pending writes included
	records int               // held: not yet acknowledged by Kafka
	bytes   int64             // frame bytes of the held records
	window  queue.FIFO[entry] // in memory, not handed out yet: seqs readSeq…
	readSeq uint64            // next sequence number to hand out in order
	inf     map[*buffer.Record]*entry
	held    int64    // memory bytes of window, in-flight and failed records
	failed  []*entry // nacked, waiting for the in-flight ones and a backoff
	retry   []*entry // being handed out again, in sequence order
	retryAt time.Time
	rounds  backoff.Retry // consecutive failed publish rounds (buffer.RetryPolicy)
	engaged bool
	// replayEnd is nextSeq at Open: the records below it that Kafka had
	// not acknowledged before the restart are the replay (see Replaying).
	replayEnd uint64
	space     queue.Notifier // capacity released
	items     queue.Notifier // a record may be available, or in-flight settled
	work      queue.Notifier // work for the syncer

	ctr      counters
	ackWrote atomic.Uint64 // watermark last written to the acked file

	rmu sync.Mutex // guards cur and dec: the Next goroutine's disk reader
	cur cursor
	dec decoder

	syncDone  chan struct{}
	closeOnce sync.Once
}

// counters are cumulative statistics.
type counters struct {
	written   atomic.Uint64
	fsyncs    atomic.Uint64
	replayed  atomic.Uint64
	diskReads atomic.Uint64
	truncated atomic.Int64
	lost      atomic.Int64
	corrupt   atomic.Int64
	peakDisk  atomic.Int64
	retried   atomic.Uint64
}

// segment is one segment file.
type segment struct {
	first  uint64 // sequence number of its first record
	end    uint64 // one past its last record
	size   int64  // bytes, the magic and pending writes included
	path   string
	sealed bool // no more records go to it
}

// chunk is a run of encoded records of one segment, queued for the syncer.
type chunk struct {
	seg     *segment
	buf     []byte
	entries []*entry // whose Done the syncer calls after the fsync
	end     uint64   // one past the last record in it
}

// entry is a record the spool tracks in memory.
type entry struct {
	rec   *buffer.Record // nil once only the disk has it
	seq   uint64
	mem   int64 // rec.Size(), counted in held
	frame int64 // bytes on disk
	// done completes the record (its Done): kept apart from rec, which
	// is dropped once only the disk has the record.
	done  buffer.Completion
	fired atomic.Bool
}

// finish calls the record's Done, once, whoever gets there first: the
// syncer after the fsync or Ack after Kafka.
func (e *entry) finish() {
	if !e.done.Empty() && e.fired.CompareAndSwap(false, true) {
		e.done.Run()
	}
}

// Open opens (creating if needed) the spool in opts.Dir, recovers its
// segments and starts the syncer. Records left from a previous run that
// Kafka had not acknowledged are handed out first by Next.
func Open(ctx context.Context, opts Options) (*Spool, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Spool{
		opts:     opts,
		log:      opts.Logger.With("component", "spool", "dir", opts.Dir),
		inf:      make(map[*buffer.Record]*entry),
		rounds:   backoff.Retry{Policy: buffer.RetryPolicy()},
		syncDone: make(chan struct{}),
	}
	if err := s.openDir(); err != nil {
		return nil, err
	}
	if err := s.recover(ctx); err != nil {
		_ = s.lock.Close()
		return nil, err
	}
	s.replayEnd = s.nextSeq
	s.ackWrote.Store(s.acked)
	go s.syncLoop()
	return s, nil
}

// Put implements buffer.Buffer: it queues r for the syncer and returns; r
// is durable (and its Done called) after the next fsync.
func (s *Spool) Put(ctx context.Context, r *buffer.Record) error {
	flen := frameLen(&r.Message)
	if flen-frameHeader > MaxRecordBytes {
		return fmt.Errorf("spool put: record of %d bytes exceeds %d", flen-frameHeader, MaxRecordBytes)
	}
	size := r.Size()
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return buffer.ErrBufferClosed
		}
		if s.fits(flen, size) {
			err := s.append(r, flen, size)
			s.mu.Unlock()
			return err
		}
		ch := s.space.Wait()
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("spool put: %w", ctx.Err())
		}
	}
}

// fits reports whether a record of flen bytes on disk and size in memory
// may be appended now. s.mu is held.
func (s *Spool) fits(flen, size int64) bool {
	if s.pendB >= maxPendingBytes {
		return false // the disk is behind
	}
	if s.opts.Fsync == FsyncNever {
		// Every record stays in memory until Kafka has it, in order.
		if !s.live() || (s.held > 0 && s.held+size > s.opts.MemoryBytes) {
			return false
		}
	}
	if s.records == 0 {
		return true
	}
	return s.records < s.opts.MaxRecords && s.disk+flen+headerLen <= s.opts.MaxBytes
}

// live reports whether the window holds every record not handed out yet,
// so a new record may join it. s.mu is held.
func (s *Spool) live() bool { return s.readSeq+uint64(s.window.Len()) == s.nextSeq }

// append stores r. s.mu is held.
func (s *Spool) append(r *buffer.Record, flen, size int64) error {
	seg := s.active()
	if seg == nil || (seg.size+flen > s.opts.SegmentBytes && seg.size > headerLen) {
		seg = s.rotate()
	}
	c := s.chunkFor(seg)
	before := len(c.buf)
	var err error
	if c.buf, err = appendRecord(c.buf, &r.Message); err != nil {
		return fmt.Errorf("spool put: %w", err)
	}
	if n := int64(len(c.buf) - before); n != flen {
		return fmt.Errorf("spool put: encoded %d bytes, expected %d", n, flen)
	}
	seq := s.nextSeq
	live := s.live()
	s.nextSeq++
	seg.end = s.nextSeq
	seg.size += flen
	s.disk += flen
	s.pendB += flen
	s.records++
	s.bytes += flen
	c.end = s.nextSeq
	s.ctr.written.Add(1)
	if s.disk > s.ctr.peakDisk.Load() {
		s.ctr.peakDisk.Store(s.disk)
	}
	e := &entry{rec: r, seq: seq, mem: size, frame: flen, done: r.Completion()}
	if s.opts.Fsync != FsyncNever {
		c.entries = append(c.entries, e)
	}
	if live && (s.opts.Fsync == FsyncNever || s.held+size <= s.opts.MemoryBytes) {
		s.window.Push(e)
		s.held += size
		s.items.Broadcast()
	} else {
		e.rec = nil // the disk has it; Next reads it back
		s.engage("memory window full: new records go to disk only")
	}
	if s.opts.Fsync == FsyncAlways || s.pendB >= writeEarlyBytes {
		s.work.Broadcast()
	}
	return nil
}

// active returns the segment new records go to, or nil.
func (s *Spool) active() *segment {
	if n := len(s.segs); n > 0 && !s.segs[n-1].sealed {
		return s.segs[n-1]
	}
	return nil
}

// rotate seals the active segment and starts a new one. s.mu is held.
func (s *Spool) rotate() *segment {
	if a := s.active(); a != nil {
		a.sealed = true
	}
	seg := &segment{first: s.nextSeq, end: s.nextSeq, size: headerLen, path: segmentPath(s.opts.Dir, s.nextSeq)}
	s.segs = append(s.segs, seg)
	s.disk += headerLen
	s.pendB += headerLen
	c := &chunk{seg: seg, buf: append(s.takeBuf(), segmentMagic...), end: s.nextSeq}
	s.pend = append(s.pend, c)
	s.advance() // the sealed segment may be fully acknowledged already
	return seg
}

// chunkFor returns the pending chunk records of seg are appended to.
func (s *Spool) chunkFor(seg *segment) *chunk {
	if n := len(s.pend); n > 0 && s.pend[n-1].seg == seg {
		return s.pend[n-1]
	}
	c := &chunk{seg: seg, buf: s.takeBuf(), end: s.nextSeq}
	s.pend = append(s.pend, c)
	return c
}

func (s *Spool) takeBuf() []byte {
	if n := len(s.spare); n > 0 {
		b := s.spare[n-1]
		s.spare = s.spare[:n-1]
		return b[:0]
	}
	return make([]byte, 0, 64<<10)
}

// Next implements buffer.Buffer. Records come in sequence order; after a
// publish error, Next first waits until every record in flight settled and
// the backoff passed, then hands the failed records out again in sequence
// order before any later record, so a retried record is not overtaken by
// later records handed out after the failure.
func (s *Spool) Next(ctx context.Context) (*buffer.Record, error) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, buffer.ErrBufferClosed
		}
		if len(s.retry) > 0 {
			e := s.retry[0]
			s.retry[0] = nil
			s.retry = s.retry[1:]
			s.handOut(e)
			s.mu.Unlock()
			s.ctr.retried.Add(1)
			return e.rec, nil
		}
		var wake <-chan time.Time
		if len(s.failed) > 0 {
			if len(s.inf) == 0 {
				d := time.Until(s.retryAt)
				if d <= 0 {
					slices.SortFunc(s.failed, func(a, b *entry) int { return cmp.Compare(a.seq, b.seq) })
					s.retry, s.failed = s.failed, nil
					s.mu.Unlock()
					continue
				}
				if timer == nil {
					timer = time.NewTimer(d)
				} else {
					timer.Reset(d)
				}
				wake = timer.C
			}
		} else if e := s.window.Pop(); e != nil {
			s.readSeq = e.seq + 1
			s.handOut(e)
			s.checkDrained()
			s.mu.Unlock()
			return e.rec, nil
		} else if rec, released, err := s.nextFromDisk(ctx); released {
			switch {
			case err != nil:
				return nil, err
			case rec != nil:
				return rec, nil
			}
			continue
		}
		ch := s.items.Wait()
		s.mu.Unlock()
		select {
		case <-ch:
		case <-wake:
		case <-ctx.Done():
			return nil, fmt.Errorf("spool next: %w", ctx.Err())
		}
	}
}

// nextFromDisk reads the record at readSeq back from its segment when it is
// durable and memory allows. When nothing is available it returns with s.mu
// still held and released false; otherwise it released s.mu and returns the
// record, an error, or neither (try again).
func (s *Spool) nextFromDisk(ctx context.Context) (rec *buffer.Record, released bool, err error) {
	seg := s.locate()
	readable := s.durable
	if s.opts.Fsync == FsyncNever {
		readable = s.flushed
	}
	if seg == nil || s.readSeq >= readable || (s.held >= s.opts.MemoryBytes && len(s.inf) > 0) {
		return nil, false, nil
	}
	seq, first, sealed := s.readSeq, seg.first, seg.sealed
	path := seg.path
	s.mu.Unlock()

	s.rmu.Lock()
	rec, frame, off, err := s.cur.read(path, first, seq, &s.dec)
	s.rmu.Unlock()
	s.ctr.diskReads.Add(1)

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, true, buffer.ErrBufferClosed
	}
	if err != nil {
		s.readFailed(seg, seq, sealed, off, err)
		s.mu.Unlock()
		if !sealed {
			// The active segment: maybe transient; try again shortly.
			select {
			case <-time.After(100 * time.Millisecond):
			case <-ctx.Done():
				return nil, true, fmt.Errorf("spool next: %w", ctx.Err())
			}
		}
		return nil, true, nil
	}
	e := &entry{rec: rec, seq: seq, mem: rec.Size(), frame: frame}
	s.readSeq = seq + 1
	s.held += e.mem
	s.handOut(e)
	if s.live() {
		s.space.Broadcast() // FsyncNever Puts wait for the replay to catch up
	}
	s.checkDrained()
	s.mu.Unlock()
	return rec, true, nil
}

// locate moves readSeq over gaps between segments (records lost to
// corruption) and returns the segment holding it, or nil. s.mu is held.
func (s *Spool) locate() *segment {
	for _, seg := range s.segs {
		if seg.end > s.readSeq {
			if s.readSeq < seg.first {
				s.readSeq = seg.first
			}
			return seg
		}
	}
	return nil
}

// readFailed handles a record that cannot be read back: in a sealed
// segment the rest of the segment is given up (logged loudly: these records
// were acknowledged to devices); in the active one the read is retried.
// s.mu is held.
func (s *Spool) readFailed(seg *segment, seq uint64, sealed bool, off int64, err error) {
	if !sealed {
		s.log.Error("spool: cannot read back a record of the active segment; retrying", "segment", seg.path, "seq", seq, "offset", off, "err", err)
		return
	}
	lost := seg.end - seq
	lostBytes := max(seg.size-off, 0)
	s.log.Error("spool: cannot read back records of a segment; the rest of the segment is lost",
		"segment", seg.path, "seq", seq, "offset", off, "records_lost", lost, "bytes_lost", lostBytes, "err", err)
	s.ctr.lost.Add(lostBytes)
	s.ctr.corrupt.Add(1)
	seg.end = seq
	s.records -= int(lost)
	s.bytes = max(s.bytes-lostBytes, 0)
	s.advance()
	s.space.Broadcast()
}

// handOut marks e in flight. s.mu is held.
func (s *Spool) handOut(e *entry) { s.inf[e.rec] = e }

// Ack implements buffer.Buffer: Kafka has r. Its Done is called unless the
// fsync called it already.
func (s *Spool) Ack(r *buffer.Record) {
	s.mu.Lock()
	e := s.inf[r]
	if e == nil {
		s.mu.Unlock()
		return
	}
	delete(s.inf, r)
	s.held -= e.mem
	s.records--
	s.bytes -= e.frame
	s.rounds.Reset()
	s.ackHeap.Push(e.seq)
	s.advance()
	s.space.Broadcast()
	s.items.Broadcast() // the barrier, or a disk read waiting for memory
	s.checkDrained()
	s.mu.Unlock()
	e.finish()
}

// advance moves the acked watermark over the acknowledged records and
// queues the segments entirely below it for deletion. s.mu is held.
func (s *Spool) advance() {
	for {
		for len(s.ackHeap) > 0 && s.ackHeap[0] <= s.acked {
			if s.ackHeap.Pop() == s.acked {
				s.acked++
			}
		}
		moved := false
		for len(s.segs) > 0 && s.segs[0].sealed && s.acked >= s.segs[0].end {
			seg := s.segs[0]
			s.segs[0] = nil
			s.segs = s.segs[1:]
			s.disk -= seg.size
			s.toDel = append(s.toDel, seg)
			moved = true
			if len(s.segs) > 0 && s.acked < s.segs[0].first {
				s.acked = s.segs[0].first // a gap: records lost to corruption
			}
		}
		if !moved {
			break
		}
		s.work.Broadcast()
	}
}

// Nack implements buffer.Buffer: r is handed out again after every record
// in flight settled and a backoff passed, in sequence order with the other
// failed records.
func (s *Spool) Nack(r *buffer.Record, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.inf[r]
	if e == nil {
		return
	}
	delete(s.inf, r)
	if len(s.failed) == 0 {
		s.retryAt = time.Now().Add(s.rounds.Fail())
		if !s.engaged {
			s.engage("publishing to kafka fails: records stay in the spool and are retried")
			s.log.Debug("spool: publish failed", "err", err)
		}
	}
	// Records not handed out again yet go back with it, so none of them
	// overtakes it.
	s.failed = append(s.failed, e)
	s.failed = append(s.failed, s.retry...)
	clear(s.retry)
	s.retry = s.retry[:0]
	s.items.Broadcast()
}

// engage logs once that the spool started to hold a backlog. s.mu is held.
func (s *Spool) engage(why string) {
	if s.engaged {
		return
	}
	s.engaged = true
	s.log.Warn("spool engaged: "+why, "records", s.records, "bytes", s.bytes, "disk_bytes", s.disk)
}

// checkDrained logs once that the backlog is gone: every record was handed
// out and none waits for a retry. s.mu is held.
func (s *Spool) checkDrained() {
	if s.engaged && s.readSeq == s.nextSeq && s.window.Len() == 0 && len(s.failed) == 0 && len(s.retry) == 0 {
		s.engaged = false
		s.log.Info("spool drained: caught up with kafka", "in_flight", len(s.inf), "disk_bytes", s.disk)
	}
}

// Replaying reports whether records found on disk at Open, which Kafka had
// not acknowledged before the restart, are still not all in Kafka. It is
// false once the replay finished and when there was nothing to replay.
func (s *Spool) Replaying() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acked < s.replayEnd
}

// Len implements buffer.Buffer: records held, not yet acknowledged by Kafka.
func (s *Spool) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.records
}

// Bytes implements buffer.Buffer: the on-disk bytes of the held records.
func (s *Spool) Bytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes
}

// Capacity implements buffer.Buffer.
func (s *Spool) Capacity() (int, int64) { return s.opts.MaxRecords, s.opts.MaxBytes }

// Stats is a snapshot of a spool.
type Stats struct {
	// Records and Bytes are held now: not yet acknowledged by Kafka.
	Records int
	Bytes   int64
	// InFlight are records handed out by Next and not yet acked or nacked;
	// Failed wait for a retry.
	InFlight int
	Failed   int
	// MemoryBytes are held in memory (window, in flight, failed).
	MemoryBytes int64
	// Segments and DiskBytes are the live segment files and their size;
	// PeakDiskBytes is the largest DiskBytes since Open.
	Segments      int
	DiskBytes     int64
	PeakDiskBytes int64
	// Written counts records Put; Fsyncs the fsyncs of segment files;
	// DiskReads records read back from disk.
	Written   uint64
	Fsyncs    uint64
	DiskReads uint64
	// Retried counts records handed out again after a publish error.
	Retried uint64
	// Replayed is the number of records found on Open that Kafka had not
	// acknowledged (handed out again).
	Replayed uint64
	// TruncatedBytes were cut from a torn tail at Open; LostBytes are
	// unreadable bytes in the middle of segments (corruption), found in
	// CorruptSegments segments.
	TruncatedBytes  int64
	LostBytes       int64
	CorruptSegments int64
	// Engaged is true while the spool holds a backlog (Kafka slow or down).
	Engaged bool
	// AckedSeq is the watermark: every record below it is in Kafka.
	AckedSeq uint64
	// NextSeq is the sequence number of the next record Put.
	NextSeq uint64
}

// Stats returns a snapshot of the spool's state and counters.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	st := Stats{
		Records:     s.records,
		Bytes:       s.bytes,
		InFlight:    len(s.inf),
		Failed:      len(s.failed) + len(s.retry),
		MemoryBytes: s.held,
		Segments:    len(s.segs),
		DiskBytes:   s.disk,
		Engaged:     s.engaged,
		AckedSeq:    s.acked,
		NextSeq:     s.nextSeq,
	}
	s.mu.Unlock()
	st.PeakDiskBytes = s.ctr.peakDisk.Load()
	st.Written = s.ctr.written.Load()
	st.Fsyncs = s.ctr.fsyncs.Load()
	st.DiskReads = s.ctr.diskReads.Load()
	st.Retried = s.ctr.retried.Load()
	st.Replayed = s.ctr.replayed.Load()
	st.TruncatedBytes = s.ctr.truncated.Load()
	st.LostBytes = s.ctr.lost.Load()
	st.CorruptSegments = s.ctr.corrupt.Load()
	return st
}

// Close implements buffer.Buffer: it wakes blocked Put and Next calls with
// buffer.ErrBufferClosed, writes and fsyncs what was queued (calling those
// records' Done), persists the acked watermark and closes the files.
// Records not acknowledged by Kafka stay on disk and are handed out again
// by the next Open.
func (s *Spool) Close() {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.space.Broadcast()
		s.items.Broadcast()
		s.work.Broadcast()
		s.mu.Unlock()
		<-s.syncDone
		s.rmu.Lock()
		s.cur.close()
		s.rmu.Unlock()
		if err := s.lock.Close(); err != nil {
			s.log.Warn("spool: release lock", "err", err)
		}
		st := s.Stats()
		s.log.Info("spool closed", "records_left", st.Records, "bytes_left", st.Bytes, "segments", st.Segments)
	})
}

// frameLen is the size of m's frame on disk.
func frameLen(m *buffer.Message) int64 {
	n := uvarintLen(uint64(len(m.Topic))) + len(m.Topic) +
		nullableLen(m.Key) + nullableLen(m.Value) + uvarintLen(uint64(len(m.Headers)))
	for _, h := range m.Headers {
		n += uvarintLen(uint64(len(h.Key))) + len(h.Key) + uvarintLen(uint64(len(h.Value))) + len(h.Value)
	}
	return int64(frameHeader + n)
}

func nullableLen(b []byte) int {
	if b == nil {
		return 1
	}
	return uvarintLen(uint64(len(b))+1) + len(b)
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}
