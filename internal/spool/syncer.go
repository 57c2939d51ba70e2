package spool

import (
	"fmt"
	"os"
	"time"
)

// fileWriter is the syncer's view of the segment file it appends to.
type fileWriter struct {
	seg *segment
	f   *os.File
	off int64 // bytes written successfully
}

// syncLoop is the syncer goroutine: it writes what Put queued to the
// segment files, fsyncs per the policy, then calls the records' Done; it
// also removes fully acknowledged segments and persists the acked
// watermark. On Close it writes and fsyncs everything left and returns.
func (s *Spool) syncLoop() {
	defer close(s.syncDone)
	var tickC <-chan time.Time
	if s.opts.Fsync != FsyncAlways {
		t := time.NewTicker(s.opts.FsyncInterval)
		defer t.Stop()
		tickC = t.C
	}
	house := time.NewTicker(ackFileInterval)
	defer house.Stop()
	var w fileWriter
	var unsynced []*entry // written, not yet fsynced (FsyncInterval)
	defer func() {
		if w.f != nil {
			_ = w.f.Close()
		}
	}()
	for {
		s.mu.Lock()
		closing := s.closed
		ch := s.work.Wait()
		hasPend := len(s.pend) > 0
		early := s.pendB >= writeEarlyBytes
		dels := len(s.toDel) > 0
		s.mu.Unlock()
		if closing {
			s.round(&w, true, &unsynced, true)
			s.writeAckFile(s.ackedNow())
			return
		}
		select {
		case <-house.C:
			s.writeAckFile(s.ackedNow())
		default:
		}
		tick := false
		select {
		case <-tickC:
			tick = true
		default:
		}
		var write, sync bool
		switch s.opts.Fsync {
		case FsyncAlways:
			write, sync = hasPend, true
		case FsyncInterval:
			write, sync = tick || early, tick
		case FsyncNever:
			write = (tick && hasPend) || early
		}
		if write || dels {
			s.round(&w, sync, &unsynced, false)
			continue
		}
		select {
		case <-ch:
		case <-tickC:
			s.round(&w, s.opts.Fsync == FsyncInterval, &unsynced, false)
		case <-house.C:
			s.writeAckFile(s.ackedNow())
		}
	}
}

func (s *Spool) ackedNow() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acked
}

// round writes the pending chunks, fsyncs when sync is set (and the policy
// is not FsyncNever, unless closing), calls Done for what became durable
// and removes acknowledged segments.
func (s *Spool) round(w *fileWriter, sync bool, unsynced *[]*entry, closing bool) {
	s.mu.Lock()
	chunks := s.pend
	s.pend = nil
	dels := s.toDel
	s.toDel = nil
	s.mu.Unlock()

	var written int64
	var end uint64
	ok := true
	for _, c := range chunks {
		if !s.writeChunk(w, c, closing) {
			ok = false
			break
		}
		written += int64(len(c.buf))
		end = c.end
		*unsynced = append(*unsynced, c.entries...)
	}
	if !ok {
		// Only on Close: what was not written is not durable and its Done
		// is never called; devices resend those readings.
		var lost int
		for _, c := range chunks {
			lost += len(c.entries)
		}
		s.log.Error("spool: closing with records that could not be written; they were never acked", "records", lost)
	}
	var done []*entry
	synced := false
	if w.f != nil && (sync || closing) && (s.opts.Fsync != FsyncNever || closing) && (len(chunks) > 0 || len(*unsynced) > 0) {
		if err := s.opts.syncFile(w.f); err != nil {
			s.log.Error("spool: fsync failed; records not acknowledged until a later fsync succeeds", "segment", w.seg.path, "err", err)
		} else {
			s.ctr.fsyncs.Add(1)
			synced = true
			done = *unsynced
			*unsynced = nil
		}
	}

	s.mu.Lock()
	if len(chunks) > 0 && ok {
		s.flushed = end
		if synced || s.opts.Fsync == FsyncNever {
			s.durable = end
		}
		for _, c := range chunks {
			if cap(c.buf) <= 4<<20 && len(s.spare) < 4 {
				s.spare = append(s.spare, c.buf[:0])
			}
		}
	} else if synced {
		s.durable = s.flushed
	}
	s.pendB -= written
	s.space.Broadcast()
	s.items.Broadcast()
	s.mu.Unlock()

	for _, e := range done {
		e.finish()
	}
	for _, seg := range dels {
		s.remove(seg.path)
	}
}

// writeChunk appends c to its segment file, creating the file for a new
// segment (after fsyncing and closing the previous one). A failed write is
// undone (the file truncated back) and retried every second; it returns
// false only when the spool closes meanwhile.
func (s *Spool) writeChunk(w *fileWriter, c *chunk, closing bool) bool {
	for attempt := 0; ; attempt++ {
		err := s.tryWrite(w, c)
		if err == nil {
			return true
		}
		s.log.Error("spool: write failed; retrying (Put blocks once the queue is full)", "segment", c.seg.path, "attempt", attempt+1, "err", err)
		if closing || attempt >= 2 && s.isClosed() {
			return false
		}
		time.Sleep(time.Second)
	}
}

func (s *Spool) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Spool) tryWrite(w *fileWriter, c *chunk) error {
	if w.seg != c.seg {
		if w.f != nil {
			if s.opts.Fsync != FsyncNever {
				if err := s.opts.syncFile(w.f); err != nil {
					return fmt.Errorf("fsync sealed segment %s: %w", w.seg.path, err)
				}
				s.ctr.fsyncs.Add(1)
			}
			if err := w.f.Close(); err != nil {
				s.log.Warn("spool: close sealed segment", "segment", w.seg.path, "err", err)
			}
			*w = fileWriter{}
		}
		f, err := os.OpenFile(c.seg.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
		if err != nil {
			return fmt.Errorf("create segment: %w", err)
		}
		if s.opts.Fsync != FsyncNever {
			if err := syncDir(s.opts.Dir); err != nil {
				s.log.Warn("spool: fsync directory", "err", err)
			}
		}
		*w = fileWriter{seg: c.seg, f: f}
	}
	n, err := w.f.Write(c.buf)
	if err != nil {
		if n > 0 {
			if terr := w.f.Truncate(w.off); terr != nil {
				return fmt.Errorf("write %s: %w (and undo: %v)", w.seg.path, err, terr)
			}
			if _, serr := w.f.Seek(w.off, 0); serr != nil {
				return fmt.Errorf("write %s: %w (and seek: %v)", w.seg.path, err, serr)
			}
		}
		return fmt.Errorf("write %s: %w", w.seg.path, err)
	}
	w.off += int64(n)
	return nil
}
