package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/proto"

	"github.com/vppctl/vpp/internal/buffer"
	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/internal/testutil"
	"github.com/vppctl/vpp/proto/vppv1"
)

const waitFor = 10 * time.Second

// fakePub is a Publisher that completes records at once, or holds them
// until released. Stats records (stats and history topics) are never held.
type fakePub struct {
	mu     sync.Mutex
	hold   bool
	held   []heldMsg
	msgs   []buffer.Message
	closed bool
}

type heldMsg struct {
	m buffer.Message
	v Verdict
}

func (p *fakePub) Publish(_ context.Context, m *buffer.Message, v Verdict) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return errors.New("publish after close")
	}
	if p.hold && !isStatsTopic(m.Topic) {
		p.held = append(p.held, heldMsg{*m, v})
		p.mu.Unlock()
		return nil
	}
	p.msgs = append(p.msgs, *m)
	p.mu.Unlock()
	v.Published(nil)
	return nil
}

// isStatsTopic reports whether records of topic carry ingest stats (the
// stats topic, and the history topic that gets a copy of them).
func isStatsTopic(topic string) bool {
	return strings.HasSuffix(topic, "stats") || strings.HasSuffix(topic, "history")
}

func (p *fakePub) Close() error {
	p.mu.Lock()
	held := p.held
	p.held, p.closed = nil, true
	p.mu.Unlock()
	for _, h := range held {
		h.v.Published(errors.New("producer closed"))
	}
	return nil
}

func (p *fakePub) setHold(h bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hold = h
}

// release completes the held records keep selects (all when nil).
func (p *fakePub) release(keep func(buffer.Message) bool) int {
	p.mu.Lock()
	var out []heldMsg
	rest := p.held[:0]
	for _, h := range p.held {
		if keep == nil || keep(h.m) {
			out = append(out, h)
			p.msgs = append(p.msgs, h.m)
		} else {
			rest = append(rest, h)
		}
	}
	p.held = rest
	p.mu.Unlock()
	for _, h := range out {
		h.v.Published(nil)
	}
	return len(out)
}

func (p *fakePub) heldCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.held)
}

func (p *fakePub) topic(suffix string) []buffer.Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []buffer.Message
	for _, m := range p.msgs {
		if strings.HasSuffix(m.Topic, suffix) {
			out = append(out, m)
		}
	}
	return out
}

func seqOf(t testing.TB, m buffer.Message) uint64 {
	var r vppv1.Reading
	if err := proto.Unmarshal(m.Value, &r); err != nil {
		t.Fatalf("record value is not a Reading: %v", err)
	}
	return r.Seq
}

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, waitFor, 5*time.Millisecond, what, cond)
}

type testServer struct {
	*Server
	url  string
	stop func() error
}

func startServer(t *testing.T, cfg Config, pub Publisher) *testServer {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	if cfg.Kafka.Prefix == "" {
		cfg.Kafka.Prefix = "test."
	}
	if cfg.StatsInterval == 0 {
		cfg.StatsInterval = time.Hour
	}
	if cfg.AckInterval == 0 {
		cfg.AckInterval = 5 * time.Millisecond
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 5 * time.Second
	}
	cfg.Instance = "test"
	if cfg.Auth == nil {
		cfg.Insecure = true
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s, err := New(cfg, pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ctx) }()
	var once sync.Once
	var serveErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case serveErr = <-errc:
			case <-time.After(30 * time.Second):
				serveErr = errors.New("Serve did not return")
			}
		})
		return serveErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &testServer{Server: s, url: "ws://" + s.Addr() + TelemetryPath, stop: stop}
}

// client is a device-side test connection that collects acks.
type client struct {
	t      testing.TB
	ws     *websocket.Conn
	mu     sync.Mutex
	acked  map[string]uint64
	n      int // downlink messages
	sps    []*vppv1.Setpoint
	closed chan error
}

func dial(t testing.TB, url string) *client {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	c := &client{t: t, ws: ws, acked: map[string]uint64{}, closed: make(chan error, 1)}
	t.Cleanup(func() { ws.Close() })
	go func() {
		for {
			mt, b, err := ws.ReadMessage()
			if err != nil {
				c.closed <- err
				return
			}
			var d vppv1.Downlink
			if mt != websocket.BinaryMessage || proto.Unmarshal(b, &d) != nil || d.GetAck() == nil && d.GetSetpoint() == nil {
				c.closed <- fmt.Errorf("unexpected downlink type %d: %x", mt, b)
				return
			}
			c.mu.Lock()
			if sp := d.GetSetpoint(); sp != nil {
				c.sps = append(c.sps, sp)
				c.mu.Unlock()
				continue
			}
			c.n++
			for _, a := range d.GetAck().GetDevices() {
				if a.AckedSeq < c.acked[a.DeviceId] {
					t.Errorf("ack for %s went back from %d to %d", a.DeviceId, c.acked[a.DeviceId], a.AckedSeq)
				}
				c.acked[a.DeviceId] = a.AckedSeq
			}
			c.mu.Unlock()
		}
	}()
	return c
}

func (c *client) send(rs ...*vppv1.Reading) {
	c.t.Helper()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, marshalFrame(c.t, rs...)); err != nil {
		c.t.Fatalf("write frame: %v", err)
	}
}

func (c *client) ack(dev string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.acked[dev]
}

// setpoints returns the setpoints received so far.
func (c *client) setpoints() []*vppv1.Setpoint {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*vppv1.Setpoint(nil), c.sps...)
}

func (c *client) downlinks() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func (c *client) waitAck(dev string, seq uint64) {
	c.t.Helper()
	eventually(c.t, fmt.Sprintf("ack %s=%d", dev, seq), func() bool { return c.ack(dev) >= seq })
	if got := c.ack(dev); got != seq {
		c.t.Fatalf("ack %s = %d, want %d", dev, got, seq)
	}
}

func (c *client) waitClose() *websocket.CloseError {
	c.t.Helper()
	select {
	case err := <-c.closed:
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			c.t.Fatalf("connection ended with %v, want a close frame", err)
		}
		return ce
	case <-time.After(waitFor):
		c.t.Fatal("connection not closed")
	}
	return nil
}

// reading returns a valid reading of dev at site with seq, timestamped now.
func reading(dev, site string, seq uint64) *vppv1.Reading {
	r := validReading()
	r.DeviceId, r.SiteId, r.Seq, r.TsMs = dev, site, seq, time.Now().UnixMilli()
	return r
}

func TestProtocolErrors(t *testing.T) {
	pub := &fakePub{}
	srv := startServer(t, Config{MaxFrameBytes: 1024, MaxReadingsPerFrame: 3}, pub)
	tests := []struct {
		name  string
		send  func(ws *websocket.Conn) error
		code  int
		text  string
		count uint64
	}{
		{"text frame", func(ws *websocket.Conn) error { return ws.WriteMessage(websocket.TextMessage, []byte("hello")) },
			websocket.CloseUnsupportedData, "text", 1},
		{"garbage", func(ws *websocket.Conn) error {
			return ws.WriteMessage(websocket.BinaryMessage, []byte{0xff, 0xff, 0xff})
		},
			websocket.CloseInvalidFramePayloadData, "vpp.v1.Frame", 1},
		{"frame over limit", func(ws *websocket.Conn) error {
			return ws.WriteMessage(websocket.BinaryMessage, make([]byte, 64<<10))
		}, websocket.CloseMessageTooBig, "1024 bytes", 1},
		{"huge frame", func(ws *websocket.Conn) error {
			return ws.WriteMessage(websocket.BinaryMessage, make([]byte, 8<<20))
		}, websocket.CloseMessageTooBig, "1024 bytes", 2},
		{"frame just over limit", func(ws *websocket.Conn) error {
			return ws.WriteMessage(websocket.BinaryMessage, make([]byte, 1025))
		}, websocket.CloseMessageTooBig, "1024 bytes", 3},
		{"too many readings", func(ws *websocket.Conn) error {
			r := reading("x", "s", 1)
			return ws.WriteMessage(websocket.BinaryMessage, marshalFrame(t, r, r, r, r))
		}, websocket.ClosePolicyViolation, "more than 3 readings", 1},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, srv.url)
			// A write may fail once the server's close frame arrived
			// mid-message; the close frame is what counts.
			_ = tt.send(c.ws)
			ce := c.waitClose()
			if ce.Code != tt.code || !strings.Contains(ce.Text, tt.text) {
				t.Fatalf("close %d %q, want %d with a reason containing %q", ce.Code, ce.Text, tt.code, tt.text)
			}
			eventually(t, "protocol error counted", func() bool { return srv.Stats().ProtocolErrors[tt.code] == tt.count })
			// Another connection still works and gets acks.
			c2 := dial(t, srv.url)
			dev := fmt.Sprintf("after-%d", i)
			c2.send(reading(dev, "s", 1), reading(dev, "s", 2))
			c2.waitAck(dev, 2)
		})
	}
	rej := pub.topic("telemetry.rejected")
	var reasons []string
	for _, m := range rej {
		reasons = append(reasons, string(header(m, kafka.HeaderReason)))
		if string(header(m, kafka.HeaderReason)) == ReasonFrameUndecodable && string(m.Value) != "\xff\xff\xff" {
			t.Errorf("undecodable frame recorded as %x", m.Value)
		}
	}
	if strings.Join(reasons, ",") != ReasonFrameUndecodable+","+ReasonFrameTooManyReadings {
		t.Errorf("rejected reasons %v", reasons)
	}
}

func header(m buffer.Message, key string) []byte {
	for _, h := range m.Headers {
		if h.Key == key {
			return h.Value
		}
	}
	return nil
}

func TestShutdownClosesWithFinalAcks(t *testing.T) {
	pub := &fakePub{hold: true}
	srv := startServer(t, Config{}, pub)
	c := dial(t, srv.url)
	c.send(reading("a", "s", 1), reading("a", "s", 2), reading("a", "s", 3))
	eventually(t, "3 records at the publisher", func() bool { return pub.heldCount() == 3 })

	stopped := make(chan error, 1)
	go func() { stopped <- srv.stop() }()
	// Shutdown drains the buffer: Kafka acknowledges while it waits.
	eventually(t, "server stopping", func() bool {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		return srv.stopping
	})
	time.Sleep(20 * time.Millisecond)
	if c.ack("a") != 0 {
		t.Fatal("ack before Kafka acknowledged")
	}
	pub.release(nil)
	ce := c.waitClose()
	if ce.Code != websocket.CloseGoingAway || ce.Text != "server shutting down" {
		t.Fatalf("close %d %q, want 1001 server shutting down", ce.Code, ce.Text)
	}
	if got := c.ack("a"); got != 3 {
		t.Fatalf("final ack a=%d, want 3 before the close frame", got)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Serve returned %v, want nil", err)
	}
	// Final stats were published.
	stats := pub.topic("stats")
	if len(stats) == 0 {
		t.Fatal("no stats published")
	}
	var st vppv1.IngestStats
	if err := proto.Unmarshal(stats[len(stats)-1].Value, &st); err != nil {
		t.Fatal(err)
	}
	if st.Published != 3 || st.Received != 3 || st.Acked != 3 || string(stats[0].Key) != "ingest/test" {
		t.Fatalf("final stats %+v key %q", &st, stats[0].Key)
	}
	// No new connections after shutdown.
	if ws, _, err := websocket.DefaultDialer.Dial(srv.url, nil); err == nil {
		ws.Close()
		t.Fatal("dial succeeded after shutdown")
	}
}

func TestAcksOnlyAfterDurable(t *testing.T) {
	pub := &fakePub{hold: true}
	srv := startServer(t, Config{AckInterval: 5 * time.Millisecond}, pub)
	c := dial(t, srv.url)
	c.send(reading("a", "s", 1), reading("a", "s", 2), reading("a", "s", 3))
	eventually(t, "3 held", func() bool { return pub.heldCount() == 3 })
	time.Sleep(20 * srv.cfg.AckInterval)
	if n := c.downlinks(); n != 0 {
		t.Fatalf("%d downlinks before anything was durable", n)
	}
	// Only seq 1 durable → ack 1.
	pub.release(func(m buffer.Message) bool { return seqOf(t, m) == 1 })
	c.waitAck("a", 1)
	pub.release(nil)
	c.waitAck("a", 3)

	// Out of order within the connection: 5, 3, 4; 5 and 4 durable first.
	c.send(reading("b", "s", 5), reading("b", "s", 3), reading("b", "s", 4))
	eventually(t, "3 held", func() bool { return pub.heldCount() == 3 })
	pub.release(func(m buffer.Message) bool { s := seqOf(t, m); return s == 5 || s == 4 })
	time.Sleep(20 * srv.cfg.AckInterval)
	if got := c.ack("b"); got != 0 {
		t.Fatalf("ack b=%d while seq 3 is not durable", got)
	}
	pub.release(nil)
	c.waitAck("b", 5)
	if st := srv.Stats(); st.Published != 6 || st.Acked != 6 || st.Received != 6 {
		t.Fatalf("stats %+v", st)
	}
}

// watchBuffer records the most records a buffer ever held.
type watchBuffer struct {
	*buffer.MemoryBuffer
	max atomic.Int64
}

func (w *watchBuffer) Put(ctx context.Context, r *buffer.Record) error {
	err := w.MemoryBuffer.Put(ctx, r)
	w.watch()
	return err
}

func (w *watchBuffer) PutBatch(ctx context.Context, rs []buffer.Record) error {
	err := w.MemoryBuffer.PutBatch(ctx, rs)
	w.watch()
	return err
}

// watch records the records held now if they are the most so far.
func (w *watchBuffer) watch() {
	n := int64(w.Len())
	for {
		m := w.max.Load()
		if n <= m || w.max.CompareAndSwap(m, n) {
			break
		}
	}
}

func TestBackpressure(t *testing.T) {
	const (
		capacity  = 10
		devices   = 5
		frames    = 200
		perFrame  = devices
		total     = frames * perFrame
		maxFrames = capacity/perFrame + 1 // buffered + one blocked in Put
	)
	pub := &fakePub{hold: true}
	buf := &watchBuffer{MemoryBuffer: buffer.NewMemoryBuffer(capacity, 1<<30)}
	srv := startServer(t, Config{Buffer: buf, BufferRecords: capacity}, pub)
	c := dial(t, srv.url)
	sent := make(chan error, 1)
	go func() {
		for f := 1; f <= frames; f++ {
			rs := make([]*vppv1.Reading, 0, perFrame)
			for d := range devices {
				rs = append(rs, reading(fmt.Sprintf("d%d", d), fmt.Sprintf("site%d", d%2), uint64(f)))
			}
			if err := c.ws.WriteMessage(websocket.BinaryMessage, marshalFrame(t, rs...)); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	eventually(t, "buffer full", func() bool { return srv.Stats().Buffered == capacity })
	time.Sleep(200 * time.Millisecond)
	st := srv.Stats()
	if st.Frames > maxFrames || st.Received > maxFrames*perFrame || st.Buffered > capacity {
		t.Fatalf("server kept reading while the buffer was full: %+v", st)
	}
	if pub.heldCount() > capacity {
		t.Fatalf("%d records in flight, capacity %d", pub.heldCount(), capacity)
	}

	pub.setHold(false)
	pub.release(nil)
	if err := <-sent; err != nil {
		t.Fatalf("client send: %v", err)
	}
	for d := range devices {
		c.waitAck(fmt.Sprintf("d%d", d), frames)
	}
	if m := buf.max.Load(); m > capacity {
		t.Fatalf("buffer held %d records, bound %d", m, capacity)
	}
	seen := map[string]int{}
	for _, m := range pub.topic("telemetry") {
		var r vppv1.Reading
		if err := proto.Unmarshal(m.Value, &r); err != nil {
			t.Fatal(err)
		}
		if string(m.Key) != r.SiteId {
			t.Fatalf("key %q, site %q", m.Key, r.SiteId)
		}
		seen[fmt.Sprintf("%s/%d", r.DeviceId, r.Seq)]++
	}
	if len(seen) != total {
		t.Fatalf("%d distinct readings published, want %d", len(seen), total)
	}
	for k, n := range seen {
		if n != 1 {
			t.Fatalf("reading %s published %d times", k, n)
		}
	}
	eventually(t, "acked count", func() bool { return srv.Stats().Acked == total })
	if st := srv.Stats(); st.Published != total || st.Buffered != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestMixedFrame(t *testing.T) {
	pub := &fakePub{}
	srv := startServer(t, Config{}, pub)
	c := dial(t, srv.url)
	bad := reading("m1", "site-m", 2)
	bad.SocPct = 150
	noID := reading("", "site-m", 9)
	c.send(reading("m1", "site-m", 1), bad, reading("m1", "site-m", 3), noID)
	c.waitAck("m1", 3)

	tel := pub.topic("telemetry")
	if len(tel) != 2 {
		t.Fatalf("%d telemetry records, want 2", len(tel))
	}
	for _, m := range tel {
		if string(m.Key) != "site-m" || m.Topic != "test.telemetry" {
			t.Errorf("telemetry record topic %s key %q", m.Topic, m.Key)
		}
	}
	rej := pub.topic("telemetry.rejected")
	if len(rej) != 2 {
		t.Fatalf("%d rejected records, want 2", len(rej))
	}
	m := rej[0]
	if string(m.Key) != "m1" || string(header(m, kafka.HeaderReason)) != ReasonSoCOutOfRange ||
		string(header(m, kafka.HeaderDevice)) != "m1" || len(header(m, kafka.HeaderRemote)) == 0 {
		t.Errorf("rejected record key %q headers %v", m.Key, m.Headers)
	}
	if _, err := time.Parse(time.RFC3339Nano, string(header(m, kafka.HeaderTime))); err != nil {
		t.Errorf("time header: %v", err)
	}
	if seqOf(t, m) != 2 {
		t.Errorf("rejected value is not the raw reading")
	}
	if m := rej[1]; !strings.HasPrefix(string(m.Key), "test/") || string(header(m, kafka.HeaderReason)) != ReasonDeviceIDMissing {
		t.Errorf("reading without device: key %q reason %q", m.Key, header(m, kafka.HeaderReason))
	}
	st := srv.Stats()
	if st.Received != 4 || st.Rejected[ReasonSoCOutOfRange] != 1 || st.Rejected[ReasonDeviceIDMissing] != 1 || st.RejectedTotal() != 2 {
		t.Fatalf("stats %+v", st)
	}
	eventually(t, "published 2", func() bool { return srv.Stats().Published == 2 })
}

func TestPublishErrorsAreRetried(t *testing.T) {
	pub := &flakyPub{fakePub: &fakePub{}}
	pub.failures.Store(3)
	srv := startServer(t, Config{}, pub)
	c := dial(t, srv.url)
	c.send(reading("f", "s", 1))
	c.waitAck("f", 1)
	if n := len(pub.topic("telemetry")); n != 1 {
		t.Fatalf("published %d times, want 1", n)
	}
	if pub.failures.Load() > 0 {
		t.Fatal("acked before the failures were used up")
	}
	if srv.Stats().KafkaDown {
		t.Fatal("still marked down after success")
	}
}

// flakyPub fails the first failures publishes.
type flakyPub struct {
	*fakePub
	failures atomic.Int64
}

func (p *flakyPub) Publish(ctx context.Context, m *buffer.Message, v Verdict) error {
	if !isStatsTopic(m.Topic) && p.failures.Add(-1) >= 0 {
		go v.Published(errors.New("kafka: leader not available"))
		return nil
	}
	return p.fakePub.Publish(ctx, m, v)
}
