package spool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vppctl/vpp/internal/buffer"
	"github.com/vppctl/vpp/internal/testutil"
)

// logBuf collects log output safely across goroutines.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func testLogger(t testing.TB, buf *logBuf) *slog.Logger {
	var w io.Writer = io.Discard
	if buf != nil {
		w = buf
	}
	if testing.Verbose() {
		w = io.MultiWriter(w, os.Stderr)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func openT(t testing.TB, o Options) *Spool {
	t.Helper()
	if o.Logger == nil {
		o.Logger = testLogger(t, nil)
	}
	s, err := Open(context.Background(), o)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}

// rec makes record i with a recognizable body; done counts Done calls.
func rec(i int, done *atomic.Int64) *buffer.Record {
	r := &buffer.Record{Message: buffer.Message{
		Topic: "t.telemetry",
		Key:   []byte(fmt.Sprintf("site-%d", i%7)),
		Value: []byte(fmt.Sprintf("value-%06d-%s", i, strings.Repeat("x", i%50))),
	}}
	if i%5 == 0 {
		r.Topic = "t.rejected"
		r.Headers = []buffer.Header{{Key: "vpp-reason", Value: []byte("soc")}, {Key: "empty", Value: nil}}
	}
	if i%11 == 0 {
		r.Key = nil
	}
	if done != nil {
		r.Done = func() { done.Add(1) }
	}
	return r
}

func idOf(t testing.TB, r *buffer.Record) int {
	t.Helper()
	var i int
	if _, err := fmt.Sscanf(string(r.Value), "value-%06d-", &i); err != nil {
		t.Fatalf("bad value %q: %v", r.Value, err)
	}
	return i
}

// checkSame fails unless r has the content of record i.
func checkSame(t testing.TB, r *buffer.Record, i int) {
	t.Helper()
	w := rec(i, nil)
	if r.Topic != w.Topic || !bytes.Equal(r.Key, w.Key) || (r.Key == nil) != (w.Key == nil) || !bytes.Equal(r.Value, w.Value) || len(r.Headers) != len(w.Headers) {
		t.Fatalf("record %d: got %q/%q/%q/%v, want %q/%q/%q/%v", i, r.Topic, r.Key, r.Value, r.Headers, w.Topic, w.Key, w.Value, w.Headers)
	}
	for j := range r.Headers {
		if r.Headers[j].Key != w.Headers[j].Key || !bytes.Equal(r.Headers[j].Value, w.Headers[j].Value) {
			t.Fatalf("record %d header %d: %v, want %v", i, j, r.Headers[j], w.Headers[j])
		}
	}
}

func putN(t testing.TB, s *Spool, from, to int, done *atomic.Int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := from; i < to; i++ {
		if err := s.Put(ctx, rec(i, done)); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
}

func next(t testing.TB, s *Spool) *buffer.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := s.Next(ctx)
	if err != nil {
		t.Fatalf("next: %v", err)
	}
	return r
}

// expectNone fails if Next returns a record within d.
func expectNone(t testing.TB, s *Spool, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if r, err := s.Next(ctx); err == nil {
		t.Fatalf("next returned record %q, want none", r.Value)
	}
}

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, 2*time.Millisecond, what, cond)
}

func segFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(m)
	return m
}

func TestPutNextAckInOrder(t *testing.T) {
	for _, pol := range []Fsync{FsyncAlways, FsyncInterval, FsyncNever} {
		t.Run(pol.String(), func(t *testing.T) {
			var done atomic.Int64
			s := openT(t, Options{Dir: t.TempDir(), Fsync: pol, FsyncInterval: 5 * time.Millisecond})
			defer s.Close()
			const n = 2000
			putN(t, s, 0, n, &done)
			if got := s.Len(); got != n {
				t.Fatalf("Len = %d, want %d", got, n)
			}
			for i := range n {
				r := next(t, s)
				checkSame(t, r, i)
				s.Ack(r)
				s.Ack(r) // a second ack is ignored
			}
			eventually(t, "every Done called", func() bool { return done.Load() == n })
			time.Sleep(20 * time.Millisecond)
			if got := done.Load(); got != n {
				t.Fatalf("Done called %d times for %d records", got, n)
			}
			if s.Len() != 0 || s.Bytes() != 0 {
				t.Fatalf("after acking everything Len=%d Bytes=%d", s.Len(), s.Bytes())
			}
			expectNone(t, s, 20*time.Millisecond)
		})
	}
}

func TestSegmentRotationAndDeletion(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, Options{Dir: dir, SegmentBytes: 8 << 10})
	defer s.Close()
	putN(t, s, 0, 1000, nil)
	eventually(t, "written", func() bool { return len(segFiles(t, dir)) == s.Stats().Segments })
	segs := segFiles(t, dir)
	if len(segs) < 5 {
		t.Fatalf("%d segments for ~90 KiB with 8 KiB segments", len(segs))
	}
	if segs[0] != segmentPath(dir, 0) {
		t.Fatalf("first segment %s", segs[0])
	}
	var rs []*buffer.Record
	for range 1000 {
		rs = append(rs, next(t, s))
	}
	// Acks out of order (as from several partitions): the second half
	// first. No segment may go while the first half is unacked.
	for _, r := range rs[500:] {
		s.Ack(r)
	}
	time.Sleep(50 * time.Millisecond)
	if got := len(segFiles(t, dir)); got != len(segs) {
		t.Fatalf("segments deleted before their records were acked: %d → %d", len(segs), got)
	}
	for _, r := range rs[:250] {
		s.Ack(r)
	}
	eventually(t, "the fully acked segments deleted", func() bool {
		n := len(segFiles(t, dir))
		return n < len(segs) && n > 1
	})
	for _, r := range rs[250:500] {
		s.Ack(r)
	}
	eventually(t, "only the active segment left", func() bool { return len(segFiles(t, dir)) == 1 })
	if st := s.Stats(); st.AckedSeq != 1000 || st.Segments != 1 || st.Records != 0 {
		t.Fatalf("stats after acking all: %+v", st)
	}
}

func TestDoneOnlyAfterFsync(t *testing.T) {
	var mu sync.Mutex
	var log []string
	note := func(s string) {
		mu.Lock()
		log = append(log, s)
		mu.Unlock()
	}
	release := make(chan struct{})
	var syncs atomic.Int64
	o := Options{Dir: t.TempDir(), Logger: testLogger(t, nil), syncFile: func(f *os.File) error {
		<-release
		syncs.Add(1)
		note("fsync")
		return f.Sync()
	}}
	s := openT(t, o)
	var dones atomic.Int64
	r := rec(1, nil)
	r.Done = func() { dones.Add(1); note("done") }
	if err := s.Put(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if dones.Load() != 0 {
		t.Fatal("Done called before the fsync")
	}
	close(release)
	eventually(t, "Done after fsync", func() bool { return dones.Load() == 1 })
	mu.Lock()
	if log[len(log)-1] != "done" || !slices.Contains(log, "fsync") || slices.Index(log, "fsync") > slices.Index(log, "done") {
		t.Fatalf("order %v, want fsync before done", log)
	}
	mu.Unlock()
	// Kafka's ack afterwards does not call Done again.
	got := next(t, s)
	s.Ack(got)
	if dones.Load() != 1 {
		t.Fatalf("Done called %d times", dones.Load())
	}
	s.Close()
}

func TestKafkaAckBeforeFsyncCallsDoneOnce(t *testing.T) {
	release := make(chan struct{})
	s := openT(t, Options{Dir: t.TempDir(), syncFile: func(f *os.File) error {
		<-release
		return f.Sync()
	}})
	var dones atomic.Int64
	putN(t, s, 0, 10, &dones)
	for range 10 {
		s.Ack(next(t, s))
	}
	if got := dones.Load(); got != 10 {
		t.Fatalf("Done after Kafka acks = %d, want 10", got)
	}
	close(release)
	time.Sleep(50 * time.Millisecond)
	if got := dones.Load(); got != 10 {
		t.Fatalf("Done called again by the fsync: %d", got)
	}
	s.Close()
}

func TestNeverDoneOnlyOnAck(t *testing.T) {
	s := openT(t, Options{Dir: t.TempDir(), Fsync: FsyncNever, FsyncInterval: time.Millisecond})
	defer s.Close()
	var dones atomic.Int64
	putN(t, s, 0, 5, &dones)
	time.Sleep(30 * time.Millisecond)
	if dones.Load() != 0 {
		t.Fatal("fsync never: Done called before Kafka acked")
	}
	for range 5 {
		s.Ack(next(t, s))
	}
	if dones.Load() != 5 {
		t.Fatalf("Done = %d, want 5", dones.Load())
	}
}

func TestFullSpoolBlocksPut(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, Options{Dir: dir, MaxBytes: 64 << 10})
	defer s.Close()
	var put int
	for ; ; put++ {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := s.Put(ctx, rec(put, nil))
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if put > 10_000 {
			t.Fatal("Put never blocked")
		}
	}
	st := s.Stats()
	if st.DiskBytes > 64<<10 {
		t.Fatalf("disk bytes %d over the bound", st.DiskBytes)
	}
	t.Logf("full after %d records: %+v", put, st)
	// A blocked Put resumes once acks free a segment.
	errc := make(chan error, 1)
	go func() { errc <- s.Put(context.Background(), rec(put, nil)) }()
	select {
	case err := <-errc:
		t.Fatalf("Put returned while full: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	for range put / 2 {
		s.Ack(next(t, s))
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Put still blocked after acks freed space")
	}
	// Nothing was dropped: the rest come out in order.
	for i := put / 2; i <= put; i++ {
		r := next(t, s)
		checkSame(t, r, i)
		s.Ack(r)
	}
}

func TestRestartReplaysUnackedInOrder(t *testing.T) {
	dir := t.TempDir()
	var done atomic.Int64
	s := openT(t, Options{Dir: dir, SegmentBytes: 16 << 10})
	putN(t, s, 0, 1000, &done)
	for range 300 {
		s.Ack(next(t, s))
	}
	for range 100 {
		next(t, s) // in flight when the process stops: not acked
	}
	s.Close()
	if done.Load() != 1000 {
		t.Fatalf("Done %d after Close, want 1000", done.Load())
	}

	s = openT(t, Options{Dir: dir, SegmentBytes: 16 << 10})
	defer s.Close()
	if st := s.Stats(); st.Replayed != 700 || st.Records != 700 {
		t.Fatalf("after restart: %+v, want 700 replayed", st)
	}
	for i := 300; i < 1000; i++ {
		r := next(t, s)
		checkSame(t, r, i)
		if r.Done != nil {
			t.Fatal("replayed record has a Done")
		}
		s.Ack(r)
	}
	// New records continue after the replayed ones.
	putN(t, s, 1000, 1010, nil)
	for i := 1000; i < 1010; i++ {
		checkSame(t, next(t, s), i)
	}
}

// copyDir copies the spool's files as a crash would leave them.
func copyDir(t testing.TB, from, to string) {
	t.Helper()
	des, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		if de.Name() == lockFileName {
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, de.Name()), b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCrashReplaysEverythingUnacked(t *testing.T) {
	dir := t.TempDir()
	var done atomic.Int64
	s := openT(t, Options{Dir: dir, SegmentBytes: 16 << 10})
	defer s.Close()
	putN(t, s, 0, 1000, &done)
	eventually(t, "durable", func() bool { return done.Load() == 1000 })
	var rs []*buffer.Record
	for range 600 {
		rs = append(rs, next(t, s))
	}
	// Acked out of order; 100..199 stay unacked.
	for _, r := range slices.Concat(rs[200:600], rs[:100]) {
		s.Ack(r)
	}
	// The "crash": the files as they are now, without Close.
	crash := t.TempDir()
	copyDir(t, dir, crash)

	s2 := openT(t, Options{Dir: crash, SegmentBytes: 16 << 10})
	defer s2.Close()
	var got []int
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		r, err := s2.Next(ctx)
		cancel()
		if err != nil {
			break
		}
		got = append(got, idOf(t, r))
	}
	if !slices.IsSorted(got) {
		t.Fatal("replay out of order")
	}
	for i := 100; i < 1000; i++ {
		if i >= 200 && i < 600 {
			continue // acked: may or may not be replayed
		}
		if _, ok := slices.BinarySearch(got, i); !ok {
			t.Fatalf("record %d not acked by Kafka but not replayed after the crash", i)
		}
	}
	t.Logf("replayed %d records after the crash (%d were not acked)", len(got), 500)
}

func TestTornTailTruncated(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, Options{Dir: dir})
	putN(t, s, 0, 100, nil)
	s.Close()
	segs := segFiles(t, dir)
	last := segs[len(segs)-1]
	fi, err := os.Stat(last)
	if err != nil {
		t.Fatal(err)
	}
	// Cut the last record in half.
	lastLen := frameLen(&rec(99, nil).Message)
	cut := fi.Size() - lastLen/2
	if err := os.Truncate(last, cut); err != nil {
		t.Fatal(err)
	}
	var logs logBuf
	s = openT(t, Options{Dir: dir, Logger: testLogger(t, &logs)})
	defer s.Close()
	out := logs.String()
	if !strings.Contains(out, "torn record") || !strings.Contains(out, "bytes_dropped="+fmt.Sprint(cut-(fi.Size()-lastLen))) || !strings.Contains(out, filepath.Base(last)) {
		t.Fatalf("truncation not logged with segment, offset and bytes: %s", out)
	}
	if st := s.Stats(); st.Replayed != 99 || st.TruncatedBytes != cut-(fi.Size()-lastLen) {
		t.Fatalf("stats %+v, want 99 replayed", st)
	}
	for i := range 99 {
		checkSame(t, next(t, s), i)
	}
	expectNone(t, s, 20*time.Millisecond)
	if nfi, err := os.Stat(last); err != nil || nfi.Size() != fi.Size()-lastLen {
		t.Fatalf("torn tail not truncated to %d: %v %v", fi.Size()-lastLen, nfi.Size(), err)
	}
	// New records go after the truncated ones.
	putN(t, s, 200, 201, nil)
	checkSame(t, next(t, s), 200)
}

func TestCorruptRecordInEarlierSegment(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, Options{Dir: dir, SegmentBytes: 8 << 10})
	putN(t, s, 0, 300, nil)
	s.Close()
	segs := segFiles(t, dir)
	if len(segs) < 3 {
		t.Fatalf("%d segments", len(segs))
	}
	// Flip a byte in the payload of the 6th record of the first segment.
	b, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	off := headerLen
	for i := range 5 {
		off += frameLen(&rec(i, nil).Message)
	}
	b[off+frameHeader+3] ^= 0xff
	if err := os.WriteFile(segs[0], b, 0o640); err != nil {
		t.Fatal(err)
	}
	// And a bad CRC at the tail of the last segment.
	lb, err := os.ReadFile(segs[len(segs)-1])
	if err != nil {
		t.Fatal(err)
	}
	lb[len(lb)-1] ^= 0xff
	if err := os.WriteFile(segs[len(segs)-1], lb, 0o640); err != nil {
		t.Fatal(err)
	}
	var logs logBuf
	s = openT(t, Options{Dir: dir, SegmentBytes: 8 << 10, Logger: testLogger(t, &logs)})
	defer s.Close()
	out := logs.String()
	if !strings.Contains(out, "level=ERROR") || !strings.Contains(out, "CORRUPT") || !strings.Contains(out, fmt.Sprintf("offset=%d", off)) {
		t.Fatalf("corruption not logged loudly: %s", out)
	}
	if !strings.Contains(out, "torn record") {
		t.Fatalf("bad tail CRC not truncated: %s", out)
	}
	// Records 0..4 of the first segment, then every record of the next
	// segments but the last one.
	var got []int
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		r, err := s.Next(ctx)
		cancel()
		if err != nil {
			break
		}
		got = append(got, idOf(t, r))
		s.Ack(r)
	}
	if !slices.Equal(got[:5], []int{0, 1, 2, 3, 4}) || got[5] <= 5 || got[len(got)-1] != 298 || !slices.IsSorted(got) {
		t.Fatalf("replayed %v", got)
	}
	for i := 5; i < len(got); i++ {
		if i > 5 && got[i] != got[i-1]+1 {
			t.Fatalf("gap inside later segments at %d: %v", i, got)
		}
	}
	if st := s.Stats(); st.CorruptSegments != 1 || st.Records != 0 {
		t.Fatalf("stats %+v", st)
	}
	// The watermark passed the gap: every segment is gone.
	eventually(t, "segments deleted", func() bool { return len(segFiles(t, dir)) == 0 })
}

func TestZeroLengthAndJunkFiles(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, Options{Dir: dir})
	putN(t, s, 0, 10, nil)
	s.Close()
	for _, name := range []string{segmentPath(dir, 5), segmentPath(dir, 1000)} {
		if err := os.WriteFile(name, nil, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("hi"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ackFileName), []byte("garbage"), 0o640); err != nil {
		t.Fatal(err)
	}
	var logs logBuf
	s = openT(t, Options{Dir: dir, Logger: testLogger(t, &logs)})
	defer s.Close()
	if !strings.Contains(logs.String(), "empty segment removed") {
		t.Fatalf("empty segments not logged: %s", logs.String())
	}
	for i := range 10 {
		checkSame(t, next(t, s), i)
	}
	if got := segFiles(t, dir); len(got) != 1 {
		t.Fatalf("segments %v", got)
	}
	// A spool directory holding only an empty file opens too.
	dir2 := t.TempDir()
	if err := os.WriteFile(segmentPath(dir2, 0), nil, 0o640); err != nil {
		t.Fatal(err)
	}
	s2 := openT(t, Options{Dir: dir2})
	putN(t, s2, 0, 1, nil)
	checkSame(t, next(t, s2), 0)
	s2.Close()
}

// TestLockedDirRefused: a spool directory in use is refused to a second
// Open, wherever the OS can lock it.
func TestLockedDirRefused(t *testing.T) {
	if !dirLocking {
		t.Skip("no directory locking on this OS")
	}
	dir := t.TempDir()
	s := openT(t, Options{Dir: dir})
	defer s.Close()
	s2, err := Open(context.Background(), Options{Dir: dir, Logger: testLogger(t, nil)})
	if err == nil {
		s2.Close()
		t.Fatal("a second Open of a spool directory in use succeeded")
	}
	if !strings.Contains(err.Error(), "lock") {
		t.Errorf("error %q does not say the directory is locked", err)
	}
}

func TestNackRetriesInOrderAfterInFlightSettle(t *testing.T) {
	s := openT(t, Options{Dir: t.TempDir()})
	defer s.Close()
	putN(t, s, 0, 10, nil)
	var rs []*buffer.Record
	for range 6 {
		rs = append(rs, next(t, s))
	}
	s.Nack(rs[4], errors.New("boom"))
	s.Nack(rs[2], errors.New("boom"))
	// Records 0, 1, 3, 5 are still in flight: nothing may be handed out.
	expectNone(t, s, 150*time.Millisecond)
	s.Ack(rs[0])
	s.Ack(rs[1])
	s.Ack(rs[3])
	s.Nack(rs[5], errors.New("boom"))
	var got []int
	for range 7 {
		r := next(t, s)
		got = append(got, idOf(t, r))
		s.Ack(r)
	}
	if !slices.Equal(got, []int{2, 4, 5, 6, 7, 8, 9}) {
		t.Fatalf("order after nacks: %v", got)
	}
	if st := s.Stats(); st.Retried != 3 || st.Records != 0 {
		t.Fatalf("stats %+v", st)
	}
	// A failure with nothing else in flight is retried after the backoff.
	putN(t, s, 10, 11, nil)
	r := next(t, s)
	s.Nack(r, errors.New("boom"))
	start := time.Now()
	r = next(t, s)
	if d := time.Since(start); d < buffer.RetryPolicy().Min*9/10 || idOf(t, r) != 10 {
		t.Fatalf("retried record %d after %v, want 10 after about %v", idOf(t, r), d, buffer.RetryPolicy().Min)
	}
}

func TestWindowOverflowReadsFromDisk(t *testing.T) {
	dir := t.TempDir()
	var logs logBuf
	s := openT(t, Options{Dir: dir, MemoryBytes: 8 << 10, SegmentBytes: 16 << 10, Logger: testLogger(t, &logs)})
	defer s.Close()
	var done atomic.Int64
	putN(t, s, 0, 3000, &done)
	eventually(t, "durable", func() bool { return done.Load() == 3000 })
	if !strings.Contains(logs.String(), "spool engaged") {
		t.Fatalf("no 'spool engaged' log: %s", logs.String())
	}
	for i := range 3000 {
		r := next(t, s)
		checkSame(t, r, i)
		s.Ack(r)
		if st := s.Stats(); st.MemoryBytes > 8<<10+1024 {
			t.Fatalf("memory %d over the window", st.MemoryBytes)
		}
	}
	st := s.Stats()
	if st.DiskReads < 2000 {
		t.Fatalf("only %d records read back from disk", st.DiskReads)
	}
	if !strings.Contains(logs.String(), "spool drained") {
		t.Fatalf("no 'spool drained' log: %s", logs.String())
	}
	// Caught up: new records flow through memory again.
	putN(t, s, 3000, 3010, nil)
	for i := 3000; i < 3010; i++ {
		checkSame(t, next(t, s), i)
	}
	if s.Stats().DiskReads != st.DiskReads {
		t.Fatal("records read from disk after catching up")
	}
}

func TestCloseWakesBlocked(t *testing.T) {
	s := openT(t, Options{Dir: t.TempDir()})
	errc := make(chan error, 1)
	go func() {
		_, err := s.Next(context.Background())
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	s.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, buffer.ErrBufferClosed) {
			t.Fatalf("Next after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake Next")
	}
	if err := s.Put(context.Background(), rec(1, nil)); !errors.Is(err, buffer.ErrBufferClosed) {
		t.Fatalf("Put after Close: %v", err)
	}
}

var _ buffer.Buffer = (*Spool)(nil)

func BenchmarkSpoolPut(b *testing.B) {
	for _, pol := range []Fsync{FsyncNever, FsyncAlways} {
		b.Run(pol.String(), func(b *testing.B) {
			s := openT(b, Options{Dir: b.TempDir(), Fsync: pol, MaxBytes: 8 << 30, MaxRecords: 1 << 30, MemoryBytes: 1 << 30})
			defer s.Close()
			// A consumer acks as it goes, as Kafka would.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() {
				for {
					r, err := s.Next(ctx)
					if err != nil {
						return
					}
					s.Ack(r)
				}
			}()
			value := bytes.Repeat([]byte{'v'}, 180) // about one reading
			var done atomic.Int64
			doneFn := func() { done.Add(1) }
			b.ReportAllocs()
			b.SetBytes(int64(len(value)))
			b.ResetTimer()
			for range b.N {
				r := &buffer.Record{Message: buffer.Message{Topic: "vpp.telemetry", Key: []byte("site-0001"), Value: value}, Done: doneFn}
				if err := s.Put(ctx, r); err != nil {
					b.Fatal(err)
				}
			}
			for done.Load() < int64(b.N) && ctx.Err() == nil {
				time.Sleep(100 * time.Microsecond)
			}
			b.StopTimer()
			st := s.Stats()
			b.ReportMetric(float64(st.Fsyncs), "fsyncs")
		})
	}
}
