package spool

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/vppctl/vpp/internal/buffer"
)

// On-disk format.
//
// A segment file starts with the 8-byte segmentMagic, followed by records
// framed as
//
//	[length u32 LE][crc32c u32 LE][payload: length bytes]
//
// where the CRC (Castagnoli) covers the payload. A payload is
//
//	uvarint len(topic), topic,
//	uvarint len(key)+1 (0: nil key), key,
//	uvarint len(value)+1 (0: nil value), value,
//	uvarint number of headers, then per header:
//	  uvarint len(key), key, uvarint len(value), value
//
// with every length checked against the bytes that remain.
const (
	segmentMagic = "VPPSPL\x00\x01"
	headerLen    = int64(len(segmentMagic))
	frameHeader  = 8
	// MaxRecordBytes bounds one record's payload on disk; Put refuses a
	// larger record and the reader treats a larger length as corruption.
	MaxRecordBytes = 16 << 20
)

var (
	// errTorn is a record cut short by the end of the data: a partial
	// write at the tail of a segment.
	errTorn = errors.New("torn record")
	// errCorrupt is a record whose length, checksum or payload is invalid.
	errCorrupt = errors.New("corrupt record")
)

// crcTable is the CRC-32C table; it is never written after initialization.
var crcTable = crc32.MakeTable(crc32.Castagnoli)

// appendRecord appends the framed record of m to dst.
func appendRecord(dst []byte, m *buffer.Message) ([]byte, error) {
	start := len(dst)
	dst = append(dst, make([]byte, frameHeader)...)
	dst = binary.AppendUvarint(dst, uint64(len(m.Topic)))
	dst = append(dst, m.Topic...)
	dst = appendNullable(dst, m.Key)
	dst = appendNullable(dst, m.Value)
	dst = binary.AppendUvarint(dst, uint64(len(m.Headers)))
	for _, h := range m.Headers {
		dst = binary.AppendUvarint(dst, uint64(len(h.Key)))
		dst = append(dst, h.Key...)
		dst = binary.AppendUvarint(dst, uint64(len(h.Value)))
		dst = append(dst, h.Value...)
	}
	n := len(dst) - start - frameHeader
	if n > MaxRecordBytes {
		return dst[:start], fmt.Errorf("record of %d bytes exceeds the spool's limit of %d", n, MaxRecordBytes)
	}
	payload := dst[start+frameHeader:]
	binary.LittleEndian.PutUint32(dst[start:], uint32(n))
	binary.LittleEndian.PutUint32(dst[start+4:], crc32.Checksum(payload, crcTable))
	return dst, nil
}

func appendNullable(dst, b []byte) []byte {
	if b == nil {
		return append(dst, 0)
	}
	dst = binary.AppendUvarint(dst, uint64(len(b))+1)
	return append(dst, b...)
}

// decoder turns payloads into messages. It interns topic names, which are
// few, so that a decoded record allocates its bytes and little else.
type decoder struct {
	topics map[string]string
}

// decode parses a payload into m. m's byte slices alias p: the caller
// passes a payload it owns.
func (d *decoder) decode(p []byte, m *buffer.Message) error {
	topic, p, err := readBytes(p)
	if err != nil {
		return fmt.Errorf("topic: %w", err)
	}
	if d.topics == nil {
		d.topics = make(map[string]string)
	}
	t, ok := d.topics[string(topic)]
	if !ok {
		if len(d.topics) >= 64 {
			clear(d.topics)
		}
		t = string(topic)
		d.topics[t] = t
	}
	m.Topic = t
	if m.Key, p, err = readNullable(p); err != nil {
		return fmt.Errorf("key: %w", err)
	}
	if m.Value, p, err = readNullable(p); err != nil {
		return fmt.Errorf("value: %w", err)
	}
	n, k := binary.Uvarint(p)
	if k <= 0 {
		return fmt.Errorf("header count: %w", errCorrupt)
	}
	p = p[k:]
	// Each header takes at least two bytes: a bound before allocating.
	if n > uint64(len(p)/2) {
		return fmt.Errorf("header count %d: %w", n, errCorrupt)
	}
	m.Headers = nil
	if n > 0 {
		m.Headers = make([]buffer.Header, n)
		for i := range m.Headers {
			var hk []byte
			if hk, p, err = readBytes(p); err != nil {
				return fmt.Errorf("header %d key: %w", i, err)
			}
			m.Headers[i].Key = string(hk)
			if m.Headers[i].Value, p, err = readBytes(p); err != nil {
				return fmt.Errorf("header %d value: %w", i, err)
			}
		}
	}
	if len(p) != 0 {
		return fmt.Errorf("%d trailing bytes: %w", len(p), errCorrupt)
	}
	return nil
}

// readBytes reads a uvarint length and that many bytes.
func readBytes(p []byte) (b, rest []byte, err error) {
	n, k := binary.Uvarint(p)
	if k <= 0 || n > uint64(len(p)-k) {
		return nil, nil, errCorrupt
	}
	p = p[k:]
	return p[:n:n], p[n:], nil
}

// readNullable reads a length+1 (0 for nil) and that many bytes.
func readNullable(p []byte) (b, rest []byte, err error) {
	n, k := binary.Uvarint(p)
	if k <= 0 || n > uint64(len(p)-k)+1 {
		return nil, nil, errCorrupt
	}
	p = p[k:]
	if n == 0 {
		return nil, p, nil
	}
	n--
	return p[:n:n], p[n:], nil
}

// recordReader reads framed records from a segment's bytes after the
// magic. off is the offset of the next record from the start of the file.
type recordReader struct {
	r   *bufio.Reader
	off int64
	hdr [frameHeader]byte
	// scratch is reused by skip.
	scratch []byte
}

func newRecordReader(r io.Reader, off int64) *recordReader {
	return &recordReader{r: bufio.NewReaderSize(r, 256<<10), off: off}
}

// next returns the next record's payload in a fresh slice and the size of
// its frame. At a clean end it returns io.EOF; a frame cut short by the end
// of the data returns errTorn, an invalid one errCorrupt (wrapped). On
// error off stays at the start of the bad frame.
func (rr *recordReader) next() ([]byte, int64, error) { return rr.nextInto(nil) }

// nextInto is next reading the payload into buf when it is large enough.
func (rr *recordReader) nextInto(buf []byte) ([]byte, int64, error) {
	n, err := io.ReadFull(rr.r, rr.hdr[:])
	switch {
	case err == io.EOF:
		return nil, 0, io.EOF
	case errors.Is(err, io.ErrUnexpectedEOF):
		return nil, 0, fmt.Errorf("frame header of %d bytes at offset %d: %w", n, rr.off, errTorn)
	case err != nil:
		return nil, 0, fmt.Errorf("read frame header at offset %d: %w", rr.off, err)
	}
	size := binary.LittleEndian.Uint32(rr.hdr[:4])
	sum := binary.LittleEndian.Uint32(rr.hdr[4:])
	if size == 0 || size > MaxRecordBytes {
		return nil, 0, fmt.Errorf("frame length %d at offset %d: %w", size, rr.off, errCorrupt)
	}
	var p []byte
	if cap(buf) >= int(size) {
		p = buf[:size]
	} else {
		p = make([]byte, size)
	}
	if n, err := io.ReadFull(rr.r, p); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || err == io.EOF {
			return nil, 0, fmt.Errorf("payload of %d of %d bytes at offset %d: %w", n, size, rr.off, errTorn)
		}
		return nil, 0, fmt.Errorf("read payload at offset %d: %w", rr.off, err)
	}
	if crc32.Checksum(p, crcTable) != sum {
		return nil, 0, fmt.Errorf("checksum mismatch at offset %d: %w", rr.off, errCorrupt)
	}
	frame := int64(frameHeader) + int64(size)
	rr.off += frame
	return p, frame, nil
}

// skip skips the next record, verifying its framing and checksum.
func (rr *recordReader) skip() error {
	p, _, err := rr.nextInto(rr.scratch)
	if err == nil {
		rr.scratch = p
	}
	return err
}
