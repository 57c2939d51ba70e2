package spool

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vppctl/vpp/internal/buffer"
)

const (
	segmentSuffix = ".seg"
	ackFileName   = "acked"
	lockFileName  = "LOCK"
)

// segmentPath is the file of the segment whose first record is first.
func segmentPath(dir string, first uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%020d%s", first, segmentSuffix))
}

// openDir creates the directory and locks it.
func (s *Spool) openDir() error {
	if err := os.MkdirAll(s.opts.Dir, 0o750); err != nil {
		return fmt.Errorf("spool: create %s: %w", s.opts.Dir, err)
	}
	l, err := lockDir(filepath.Join(s.opts.Dir, lockFileName))
	if err != nil {
		return fmt.Errorf("spool: lock %s (is another ingest using it?): %w", s.opts.Dir, err)
	}
	s.lock = l
	return nil
}

// recover scans the segments: it verifies every record, truncates a torn
// tail of the last segment, stops at corruption inside an earlier one,
// removes empty and fully acknowledged segments, and sets up the state so
// that Next hands out every record at or above the acked watermark.
func (s *Spool) recover(ctx context.Context) error {
	start := time.Now()
	w0 := s.readAckFile()
	des, err := os.ReadDir(s.opts.Dir)
	if err != nil {
		return fmt.Errorf("spool: read %s: %w", s.opts.Dir, err)
	}
	type file struct {
		first uint64
		path  string
	}
	var files []file
	for _, de := range des {
		name := de.Name()
		if !de.Type().IsRegular() || !strings.HasSuffix(name, segmentSuffix) {
			continue
		}
		first, err := strconv.ParseUint(strings.TrimSuffix(name, segmentSuffix), 10, 64)
		if err != nil {
			s.log.Warn("spool: ignoring a file that is not a segment", "file", name)
			continue
		}
		files = append(files, file{first, filepath.Join(s.opts.Dir, name)})
	}
	slices.SortFunc(files, func(a, b file) int { return cmpUint(a.first, b.first) })

	var prevEnd uint64
	var records int
	var bytes int64
	for i, f := range files {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("spool: recover: %w", err)
		}
		seg, n, b := s.scanSegment(f.path, f.first, i == len(files)-1, w0)
		if seg == nil {
			continue
		}
		if seg.first < prevEnd {
			s.log.Error("spool: segment overlaps the previous one; set aside", "segment", seg.path, "first", seg.first, "previous_end", prevEnd)
			s.setAside(seg.path)
			continue
		}
		if seg.end <= w0 {
			if err := os.Remove(seg.path); err != nil {
				s.log.Warn("spool: remove acknowledged segment", "segment", seg.path, "err", err)
			}
			continue
		}
		s.segs = append(s.segs, seg)
		s.disk += seg.size
		prevEnd = seg.end
		records += n
		bytes += b
	}
	s.nextSeq = max(prevEnd, w0)
	s.acked = w0
	if len(s.segs) == 0 {
		s.acked = s.nextSeq
	} else if s.acked < s.segs[0].first {
		s.acked = s.segs[0].first
	}
	s.readSeq = s.acked
	s.flushed, s.durable = s.nextSeq, s.nextSeq
	s.records, s.bytes = records, bytes
	s.ctr.replayed.Store(uint64(records))
	s.ctr.peakDisk.Store(s.disk)
	if records > 0 {
		s.engaged = true
		s.log.Warn("spool engaged: replaying records kafka had not acknowledged before the restart",
			"records", records, "bytes", bytes, "segments", len(s.segs), "from_seq", s.acked, "took", time.Since(start).Round(time.Millisecond))
	} else {
		s.log.Info("spool open", "next_seq", s.nextSeq, "took", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// scanSegment verifies one segment file. It returns nil for a file that
// holds no record (removed or set aside), else the segment, and the number
// and bytes of its records at or above w0.
func (s *Spool) scanSegment(path string, first uint64, last bool, w0 uint64) (*segment, int, int64) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		s.log.Error("spool: cannot open segment; set aside", "segment", path, "err", err)
		s.setAside(path)
		return nil, 0, 0
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		s.log.Error("spool: cannot stat segment; set aside", "segment", path, "err", err)
		s.setAside(path)
		return nil, 0, 0
	}
	size := st.Size()
	if size == 0 {
		s.log.Info("spool: empty segment removed", "segment", path)
		s.remove(path)
		return nil, 0, 0
	}
	var magic [headerLen]byte
	if _, err := io.ReadFull(f, magic[:]); err != nil || string(magic[:]) != segmentMagic {
		if last && size < headerLen {
			s.log.Warn("spool: torn segment header removed", "segment", path, "bytes_dropped", size)
			s.ctr.truncated.Add(size)
			s.remove(path)
		} else {
			s.log.Error("spool: not a spool segment (bad magic); set aside", "segment", path, "bytes", size)
			s.ctr.lost.Add(size)
			s.ctr.corrupt.Add(1)
			s.setAside(path)
		}
		return nil, 0, 0
	}
	rr := newRecordReader(f, headerLen)
	var buf []byte
	var count, above int
	var aboveBytes int64
	for {
		p, frame, err := rr.nextInto(buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			dropped := size - rr.off
			if last {
				if terr := f.Truncate(rr.off); terr != nil {
					s.log.Error("spool: truncate torn tail", "segment", path, "err", terr)
				} else if serr := s.opts.syncFile(f); serr != nil {
					s.log.Warn("spool: sync truncated segment", "segment", path, "err", serr)
				}
				s.ctr.truncated.Add(dropped)
				s.log.Warn("spool: torn record at the tail of the last segment truncated",
					"segment", path, "offset", rr.off, "bytes_dropped", dropped, "records_kept", count, "err", err)
				size = rr.off
			} else {
				s.ctr.lost.Add(dropped)
				s.ctr.corrupt.Add(1)
				s.log.Error("spool: CORRUPT record inside a segment: the rest of this segment is lost; continuing with the next segment",
					"segment", path, "offset", rr.off, "bytes_lost", dropped, "records_kept", count, "err", err)
			}
			break
		}
		buf = p
		if first+uint64(count) >= w0 {
			above++
			aboveBytes += frame
		}
		count++
	}
	if count == 0 {
		s.log.Info("spool: segment without records removed", "segment", path)
		s.remove(path)
		return nil, 0, 0
	}
	return &segment{first: first, end: first + uint64(count), size: size, path: path, sealed: true}, above, aboveBytes
}

func (s *Spool) remove(path string) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn("spool: remove", "file", path, "err", err)
	}
}

// setAside renames a file the spool cannot use, keeping it for inspection.
func (s *Spool) setAside(path string) {
	if err := os.Rename(path, path+".corrupt"); err != nil {
		s.log.Error("spool: set aside", "file", path, "err", err)
	}
}

// readAckFile returns the persisted acked watermark, or 0.
func (s *Spool) readAckFile() uint64 {
	b, err := os.ReadFile(filepath.Join(s.opts.Dir, ackFileName))
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("spool: read acked watermark; replaying every segment", "err", err)
		}
		return 0
	}
	if len(b) != 12 || crc32.Checksum(b[:8], crcTable) != binary.LittleEndian.Uint32(b[8:]) {
		s.log.Warn("spool: acked watermark file invalid; replaying every segment", "bytes", len(b))
		return 0
	}
	return binary.LittleEndian.Uint64(b[:8])
}

// writeAckFile persists w (write to a temporary file, then rename). It is
// not fsynced: losing it only means replaying more records.
func (s *Spool) writeAckFile(w uint64) {
	if s.ackWrote.Load() == w {
		return
	}
	var b [12]byte
	binary.LittleEndian.PutUint64(b[:8], w)
	binary.LittleEndian.PutUint32(b[8:], crc32.Checksum(b[:8], crcTable))
	path := filepath.Join(s.opts.Dir, ackFileName)
	if err := os.WriteFile(path+".tmp", b[:], 0o640); err != nil {
		s.log.Warn("spool: write acked watermark", "err", err)
		return
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		s.log.Warn("spool: write acked watermark", "err", err)
		return
	}
	s.ackWrote.Store(w)
}

// syncDir fsyncs the directory so a new segment's name is durable.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// cursor is the Next goroutine's reader of one segment file.
type cursor struct {
	path string
	f    *os.File
	rr   *recordReader
	seq  uint64 // sequence number of the record at rr's position
}

func (c *cursor) close() {
	if c.f != nil {
		_ = c.f.Close()
	}
	*c = cursor{}
}

// read returns record seq of the segment at path whose first record is
// first, its frame size and (on error) the offset of the failure.
func (c *cursor) read(path string, first, seq uint64, dec *decoder) (*buffer.Record, int64, int64, error) {
	if c.f == nil || c.path != path || c.seq > seq {
		c.close()
		f, err := os.Open(path)
		if err != nil {
			return nil, 0, 0, fmt.Errorf("open segment: %w", err)
		}
		var magic [headerLen]byte
		if _, err := io.ReadFull(f, magic[:]); err != nil || string(magic[:]) != segmentMagic {
			_ = f.Close()
			return nil, 0, 0, fmt.Errorf("segment header: %w", errCorrupt)
		}
		*c = cursor{path: path, f: f, rr: newRecordReader(f, headerLen), seq: first}
	}
	for c.seq < seq {
		if err := c.rr.skip(); err != nil {
			off := c.rr.off
			c.close()
			return nil, 0, off, fmt.Errorf("skip to seq %d: %w", seq, err)
		}
		c.seq++
	}
	p, frame, err := c.rr.next()
	if err != nil {
		off := c.rr.off
		c.close()
		return nil, 0, off, fmt.Errorf("read seq %d: %w", seq, err)
	}
	c.seq++
	r := &buffer.Record{}
	if err := dec.decode(p, &r.Message); err != nil {
		off := c.rr.off - frame
		c.close()
		return nil, 0, off, fmt.Errorf("decode seq %d: %w", seq, err)
	}
	return r, frame, 0, nil
}
