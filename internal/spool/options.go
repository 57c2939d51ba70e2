package spool

import (
	"fmt"
	"log/slog"
	"os"
	"time"
)

// Fsync is when the spool fsyncs what it wrote, and so when a record
// becomes durable and its Done is called.
type Fsync int

const (
	// FsyncAlways is group commit: a syncer goroutine writes and fsyncs
	// whatever was Put since its last round, back to back, and then calls
	// Done for every record of the round. Put returns once the record is
	// queued; a record is acknowledged to its device within about one fsync
	// of its Put, or when Kafka acknowledged it, whichever comes first.
	FsyncAlways Fsync = iota
	// FsyncInterval writes and fsyncs every FsyncInterval and calls Done
	// after that fsync (or on Kafka's acknowledgement, if it comes first).
	FsyncInterval
	// FsyncNever never fsyncs: records are written to the spool files
	// (replayed after a restart as long as the OS kept them) but Done is
	// called only when Kafka acknowledged the record, as with the memory
	// buffer. Every record then stays in memory until it is in Kafka, so
	// Put blocks once MemoryBytes are held. For benchmarks.
	FsyncNever
)

// String returns the flag spelling of f.
func (f Fsync) String() string {
	switch f {
	case FsyncAlways:
		return "always"
	case FsyncInterval:
		return "interval"
	case FsyncNever:
		return "never"
	}
	return fmt.Sprintf("Fsync(%d)", int(f))
}

// ParseFsync parses "always", "interval" or "never".
func ParseFsync(s string) (Fsync, error) {
	switch s {
	case "always":
		return FsyncAlways, nil
	case "interval":
		return FsyncInterval, nil
	case "never":
		return FsyncNever, nil
	}
	return 0, fmt.Errorf("fsync policy %q: want always, interval or never", s)
}

// Defaults of Options.
const (
	DefaultMaxBytes      = 1 << 30
	DefaultMaxRecords    = 10_000_000
	DefaultSegmentBytes  = 64 << 20
	DefaultMemoryBytes   = 64 << 20
	DefaultFsyncInterval = 50 * time.Millisecond
	// minSegmentBytes is the smallest segment size accepted.
	minSegmentBytes = 4 << 10
	// maxPendingBytes bounds the bytes Put queued that the syncer has not
	// written yet: when the disk falls behind, Put blocks.
	maxPendingBytes = 16 << 20
	// writeEarlyBytes makes the syncer write (without fsync) before its
	// interval tick once that many bytes are pending.
	writeEarlyBytes = 1 << 20
	// ackFileInterval is how often the acked watermark file is rewritten
	// when it changed.
	ackFileInterval = time.Second
)

// Options configure a Spool. Zero fields take the documented defaults.
type Options struct {
	// Dir is the spool directory; it is created if missing. One process
	// at a time may use it (a lock file guards it where the OS supports
	// it).
	Dir string
	// MaxBytes bounds the spool's files on disk (default 1 GiB): Put blocks
	// while the segments not yet fully acknowledged by Kafka take that
	// much. A single record larger than that is admitted into an empty
	// spool.
	MaxBytes int64
	// MaxRecords bounds the records held, not yet acknowledged by Kafka
	// (default 10,000,000).
	MaxRecords int
	// SegmentBytes is the size at which a segment file is closed and a new
	// one started (default 64 MiB, at most MaxBytes/4, at least 4 KiB).
	SegmentBytes int64
	// MemoryBytes bounds the records the spool keeps in memory (default
	// 64 MiB, counted with buffer.Record.Size): the window of records not
	// yet handed out plus those in flight or waiting for a retry. When the
	// window is full new records are only written to disk, and Next reads
	// them back from there.
	MemoryBytes int64
	// Fsync is the durability policy (default FsyncAlways, group commit).
	Fsync Fsync
	// FsyncInterval is the fsync period of FsyncInterval and the write
	// period of FsyncNever (default 50ms).
	FsyncInterval time.Duration
	// Logger receives the spool's logs (default slog.Default()).
	Logger *slog.Logger

	// syncFile replaces (*os.File).Sync in tests.
	syncFile func(*os.File) error
}

// withDefaults validates o and fills in its defaults.
func (o Options) withDefaults() (Options, error) {
	if o.Dir == "" {
		return o, fmt.Errorf("spool: a directory is required")
	}
	if o.MaxBytes < 0 || o.MaxRecords < 0 || o.SegmentBytes < 0 || o.MemoryBytes < 0 || o.FsyncInterval < 0 {
		return o, fmt.Errorf("spool: limits and intervals must not be negative")
	}
	if o.Fsync < FsyncAlways || o.Fsync > FsyncNever {
		return o, fmt.Errorf("spool: unknown fsync policy %d", int(o.Fsync))
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.MaxRecords == 0 {
		o.MaxRecords = DefaultMaxRecords
	}
	if o.SegmentBytes == 0 {
		o.SegmentBytes = DefaultSegmentBytes
	}
	o.SegmentBytes = max(min(o.SegmentBytes, o.MaxBytes/4), minSegmentBytes)
	if o.MemoryBytes == 0 {
		o.MemoryBytes = DefaultMemoryBytes
	}
	if o.FsyncInterval == 0 {
		o.FsyncInterval = DefaultFsyncInterval
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.syncFile == nil {
		o.syncFile = (*os.File).Sync
	}
	return o, nil
}
