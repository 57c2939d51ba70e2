package ingest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/vppctl/vpp/internal/auth"
	"github.com/vppctl/vpp/internal/buffer"
	"github.com/vppctl/vpp/internal/kafka"
)

// HeaderTruncated is set on a rejected record whose raw bytes were cut to
// fit a Kafka record; its value is the original length in bytes.
const HeaderTruncated = "vpp-truncated"

const (
	// writeWait bounds every write to a connection.
	writeWait = 5 * time.Second
	// closeLinger is how long a closing connection waits for the peer to
	// answer the close frame before the socket is closed.
	closeLinger = 2 * time.Second
	// closeIdle ends the wait early once the peer went quiet (it answered
	// the close frame, or stopped sending).
	closeIdle = 250 * time.Millisecond
	// maxRejectedValue bounds the raw bytes of a rejected record so that it
	// fits Kafka's default 1 MiB message size with its headers.
	maxRejectedValue = 1<<20 - 64<<10
	// maxHeaderDevice bounds the device header of a rejected record.
	maxHeaderDevice = 256
	// maxTrackedID is the longest device ID acks are tracked for; longer
	// ones (already rejected) are not echoed back.
	maxTrackedID = 1 << 10
	// maxCloseReason is the longest close reason RFC 6455 allows.
	maxCloseReason = 123
)

// endKind says why a read loop ended.
type endKind int

const (
	endPeer     endKind = iota // the peer closed, or the network failed
	endProtocol                // a protocol error: close with code
	endShutdown                // the server is shutting down
)

// readEnd is why and how a read loop ended.
type readEnd struct {
	kind   endKind
	code   int
	reason string
	err    error
}

// conn is one device or gateway WebSocket connection.
type conn struct {
	s      *Server
	ws     *websocket.Conn
	id     string
	remote string
	log    connLog
	acks   *ackTracker
	dec    *decoder
	// grant is what the connection's token covers (nil: insecure).
	grant *auth.Grant

	dlMu    sync.Mutex
	stopped bool // reading stopped by shutdown; guarded by dlMu
	// idleUntil is when the connection is cut unless a complete message
	// arrives first (ReadIdleTimeout after the last one); guarded by dlMu.
	idleUntil time.Time
	// expires is when the token expires (zero: never).
	expires time.Time

	// br is gorilla's read buffer (see hijackReader) and rc the raw
	// socket (nil with TLS): between messages the read loop waits for
	// bytes with them (waitReadable).
	br *bufio.Reader
	rc syscall.RawConn
	// step carries a read worker's outcome to the connection's goroutine.
	step chan readStep
	// throttle is how long the connection stops reading after the frame
	// it read last, for the rate limit of the frame's devices; set while
	// the frame is decoded, consumed by pauseReading.
	throttle time.Duration
	// broken is closed (once, by abort) when a write to the socket failed
	// and the socket was closed: it wakes a read loop that is not reading,
	// such as one paused for the rate limit.
	broken    chan struct{}
	breakOnce sync.Once

	// The connection has no writer goroutine: the server's write loop
	// flushes its acks and pings it (see writes.go). wmu serializes those
	// writes with the final acks and the close frame; wstopped (guarded by
	// wmu) ends them.
	wmu      sync.Mutex
	wstopped bool
	// queued is set while the connection waits in the write loop's queue.
	queued atomic.Bool
	// nextPing is when the connection is pinged next (Unix nanoseconds).
	nextPing atomic.Int64

	// held are the hashes of the device IDs this connection entered in
	// the server's holders under its slot (see setpoints.go; slot 0: none
	// yet), at most maxHeldPerConn: once full, a ring whose oldest is at
	// heldNext. dlq are the setpoint messages waiting for its writer.
	heldMu   sync.Mutex
	held     []uint64
	heldNext int
	slot     uint32
	dlqMu    sync.Mutex
	dlq      [][]byte
}

func newConn(s *Server, ws *websocket.Conn, remote string, grant *auth.Grant) *conn {
	id := s.cfg.Instance + "/" + strconv.FormatUint(s.connSeq.Add(1), 10)
	now := time.Now()
	c := &conn{
		s:         s,
		ws:        ws,
		id:        id,
		remote:    remote,
		acks:      newAckTracker(s.cfg.BufferRecords),
		grant:     grant,
		idleUntil: now.Add(s.cfg.ReadIdleTimeout),
	}
	c.log = connLog{c}
	c.nextPing.Store(now.Add(s.cfg.PingInterval).UnixNano())
	c.acks.advanced = func() { s.queueWrite(c) }
	if grant != nil {
		c.expires = grant.Expires
	}
	c.decoder()
	return c
}

// decoder returns the connection's decoder, making it if the connection
// let go of it (pong).
func (c *conn) decoder() *decoder {
	if c.dec == nil {
		c.dec = newDecoder(c.s.cfg.MaxReadingsPerFrame, c.s.lim)
		if c.grant != nil || c.s.limiter != nil {
			c.dec.admit = c.admit
		}
		c.dec.met = c.hold
		c.dec.hash = c.s.idHash
		c.dec.noSites = c.grant == nil
	}
	return c.dec
}

// pong handles a pong, on the goroutine reading the connection: the peer
// is alive, the read deadline moves on. A connection that sent no message
// for a ping interval also lets go of its decoder and the IDs it interned;
// its next message makes a new one.
func (c *conn) pong() {
	c.armRead()
	c.dlMu.Lock()
	last := c.idleUntil.Add(-c.s.cfg.ReadIdleTimeout) // the last message
	c.dlMu.Unlock()
	if time.Since(last) >= c.s.cfg.PingInterval {
		c.dec = nil
	}
}

// connLog logs with the connection's ID and remote address, added to a
// record only when one is logged: a slog.Logger.With per connection would
// hold them, formatted, for the connection's whole life.
type connLog struct{ c *conn }

// Debug logs at slog.LevelDebug.
func (l connLog) Debug(msg string, args ...any) { l.log(slog.LevelDebug, msg, args) }

// Info logs at slog.LevelInfo.
func (l connLog) Info(msg string, args ...any) { l.log(slog.LevelInfo, msg, args) }

// Warn logs at slog.LevelWarn.
func (l connLog) Warn(msg string, args ...any) { l.log(slog.LevelWarn, msg, args) }

func (l connLog) log(level slog.Level, msg string, args []any) {
	lg, ctx := l.c.s.log, context.Background()
	if !lg.Enabled(ctx, level) {
		return
	}
	lg.Log(ctx, level, msg, append([]any{"conn", l.c.id, "remote", l.c.remote}, args...)...)
}

// admit applies the token's grant to a reading whose IDs are valid and
// charges it to its device's rate limit bucket; e is the device's entry in
// the decoder (nil when not interned), which keeps its grant at hand, and
// h the hash of its ID, its key in the rate table (0: hashed here). The
// rate limit never rejects: the longest wait a reading of the frame ran
// into becomes the connection's throttle.
func (c *conn) admit(device, site string, e *devEntry, h uint64, nowMS int64) reason {
	if c.grant != nil && (e == nil || !e.granted || e.site != site) {
		if !c.grant.Allows(device, site) {
			return rDeviceNotAuthorized
		}
		if e != nil {
			e.granted = e.site == site
		}
	}
	if l := c.s.limiter; l != nil {
		if h == 0 {
			h = c.s.idHash(device)
		}
		c.throttle = max(c.throttle, l.reserveHash(h, nowMS))
	}
	return reasonOK
}

// pauseReading waits out the connection's throttle, set by the frame it
// just read, on the connection's goroutine: the connection is not read
// meanwhile, so its devices (their TCP window closes, their acks stop
// once their in-flight limit is reached) slow down to their rate. On a
// gateway's connection the slowest of the frame's devices sets the pause
// for all of them. It returns how the connection ends, and true, when
// shutdown began meanwhile or the socket broke.
func (c *conn) pauseReading() (readEnd, bool) {
	d := c.throttle
	if d <= 0 {
		return readEnd{}, false
	}
	c.throttle = 0
	s := c.s
	s.ctr.throttled.Add(1)
	start := time.Now()
	t := time.NewTimer(d)
	defer func() {
		t.Stop()
		s.ctr.throttledNS.Add(uint64(time.Since(start))) // what was waited, shutdown or a broken peer cutting it short
	}()
	select {
	case <-t.C:
	case <-s.readCtx.Done():
		return readEnd{kind: endShutdown}, true
	case <-c.broken:
		// A write failed and closed the socket: the peer is gone.
		return readEnd{kind: endPeer, err: errPeerGone}, true
	}
	// The pause is not the device's silence: the idle timer and the read
	// deadline start again from now.
	c.touch()
	if !c.armRead() {
		return readEnd{kind: endShutdown}, true
	}
	return readEnd{}, false
}

// errPeerGone ends a connection whose socket broke while it was not read.
var errPeerGone = errors.New("write to the peer failed while reading was paused")

// pongWait is how long a connection may stay silent.
func (c *conn) pongWait() time.Duration { return c.s.cfg.PingInterval * 5 / 2 }

// armRead extends the read deadline, unless reading was stopped.
func (c *conn) armRead() bool {
	c.dlMu.Lock()
	defer c.dlMu.Unlock()
	if c.stopped {
		return false
	}
	dl := time.Now().Add(c.pongWait())
	if c.idleUntil.Before(dl) {
		dl = c.idleUntil
	}
	if !c.expires.IsZero() && c.expires.Before(dl) {
		dl = c.expires
	}
	_ = c.ws.SetReadDeadline(dl)
	return true
}

// touch restarts the idle timer: a complete message arrived.
func (c *conn) touch() {
	c.dlMu.Lock()
	c.idleUntil = time.Now().Add(c.s.cfg.ReadIdleTimeout)
	c.dlMu.Unlock()
}

// timedOut classifies a read deadline that passed: the idle timer, or the
// token's expiry (the peer's silence on pings is neither).
func (c *conn) timedOut(err error) (readEnd, bool) {
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		return readEnd{}, false
	}
	now := time.Now()
	c.dlMu.Lock()
	idle, expired := !now.Before(c.idleUntil), !c.expires.IsZero() && !now.Before(c.expires)
	c.dlMu.Unlock()
	switch {
	case expired:
		c.s.ctr.expClosed.Add(1)
		return readEnd{kind: endProtocol, code: websocket.ClosePolicyViolation,
			reason: "token expired: reconnect with a fresh token", err: err}, true
	case idle:
		c.s.ctr.idleClosed.Add(1)
		return readEnd{kind: endProtocol, code: websocket.ClosePolicyViolation,
			reason: fmt.Sprintf("no message for %s: idle connection closed", c.s.cfg.ReadIdleTimeout), err: err}, true
	}
	return readEnd{}, false
}

// stopReading makes the read loop return now, and keeps it from extending
// its deadline again.
func (c *conn) stopReading() {
	c.dlMu.Lock()
	defer c.dlMu.Unlock()
	c.stopped = true
	_ = c.ws.SetReadDeadline(time.Unix(1, 0))
}

// start prepares the connection for run, on the HTTP handler's goroutine:
// run's loop allocates nothing and calls little (see reads.go).
func (c *conn) start() {
	c.log.Debug("connection open")
	c.rc = rawConnOf(c.ws.NetConn())
	c.step = make(chan readStep)
	c.broken = make(chan struct{})
	c.ws.SetPongHandler(func(string) error {
		c.pong()
		return nil
	})
	c.armRead()
}

// run serves the connection, in its own goroutine, until it ends.
func (c *conn) run() {
	c.end(c.readLoop())
}

// end finishes a connection whose read loop ended: final acks and the
// close frame as the end requires; then the server lets go of it.
func (c *conn) end(end readEnd) {
	defer c.s.unregister(c)
	defer c.releaseHeld()
	c.s.readers.Done()

	switch end.kind {
	case endShutdown:
		// Acks keep flowing while the buffer drains; then the final ones.
		<-c.s.drained
		c.stopWrites()
		if err := c.flushAcks(); err != nil {
			c.log.Debug("final acks", "err", err)
		}
		c.close(websocket.CloseGoingAway, "server shutting down")
	case endProtocol:
		c.stopWrites()
		c.s.ctr.protocolError(end.code)
		c.log.Info("protocol error, closing", "code", end.code, "reason", end.reason)
		c.close(end.code, end.reason)
	default:
		c.stopWrites()
		c.log.Debug("connection closed", "err", end.err)
		_ = c.ws.Close()
	}
}

// abort closes the socket after a failed write and wakes the read loop
// even while it is not reading (see broken).
func (c *conn) abort() {
	_ = c.ws.Close()
	c.breakOnce.Do(func() { close(c.broken) })
}

// stopWrites ends the write loop's writes to the connection, waiting for
// one in progress (at most writeWait).
func (c *conn) stopWrites() {
	c.wmu.Lock()
	c.wstopped = true
	c.wmu.Unlock()
}

// close sends a close frame with code and reason, waits briefly for the
// peer's answer (reading and discarding whatever it still sends, so the
// peer receives the close frame rather than a reset), and closes.
func (c *conn) close(code int, reason string) {
	if len(reason) > maxCloseReason {
		reason = reason[:maxCloseReason]
		for !utf8.ValidString(reason) {
			reason = reason[:len(reason)-1]
		}
	}
	msg := websocket.FormatCloseMessage(code, reason)
	if err := c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(writeWait)); err != nil {
		c.log.Debug("write close", "err", err)
	}
	nc := c.ws.NetConn()
	if cw, ok := nc.(interface{ CloseWrite() error }); ok { // TCP, or TLS (close_notify)
		_ = cw.CloseWrite()
	}
	lingerDiscard(nc)
	_ = c.ws.Close()
}

// lingerDiscard reads and discards what the peer still sends until it
// closes, stays idle for closeIdle, or closeLinger passed.
func lingerDiscard(nc net.Conn) {
	end := time.Now().Add(closeLinger)
	buf := make([]byte, 4<<10)
	for {
		now := time.Now()
		if !now.Before(end) {
			return
		}
		dl := now.Add(closeIdle)
		if dl.After(end) {
			dl = end
		}
		_ = nc.SetReadDeadline(dl)
		if _, err := nc.Read(buf); err != nil {
			return
		}
	}
}

// flushAcks sends the acks that advanced since the last flush. Its
// callers hold wmu, or stopped the write loop's writes: it is the
// connection's only data writer (WriteControl may run beside it).
func (c *conn) flushAcks() error {
	out := c.s.getAckMsgs()
	defer c.s.putAckMsgs(out)
	readings := c.acks.collect(out)
	for i := range out.ends {
		_ = c.ws.SetWriteDeadline(time.Now().Add(writeWait))
		if err := c.ws.WriteMessage(websocket.BinaryMessage, out.msg(i)); err != nil {
			return fmt.Errorf("write ack: %w", err)
		}
	}
	c.s.ctr.acked.Add(readings)
	return nil
}

// getAckMsgs returns an empty ackMsgs from the server's pool: the ack
// writers share them rather than each connection holding its own.
func (s *Server) getAckMsgs() *ackMsgs {
	if m, _ := s.ackMsgs.Get().(*ackMsgs); m != nil {
		return m
	}
	return &ackMsgs{}
}

// putAckMsgs returns m to the pool, unless it grew too large to keep.
func (s *Server) putAckMsgs(m *ackMsgs) {
	if cap(m.buf) > maxPooledScratch {
		return
	}
	m.reset()
	s.ackMsgs.Put(m)
}

// readLoop reads frames until the connection ends. Between messages it
// waits in waitReadable and has a read worker read them (see reads.go);
// its stack stays at the runtime's minimum, so it does little else: the
// worker re-arms the read deadline.
func (c *conn) readLoop() readEnd {
	if c.rc == nil {
		return c.readLoopTLS()
	}
	for {
		if c.s.readCtx.Err() != nil {
			return readEnd{kind: endShutdown}
		}
		if err := c.waitReadable(); err != nil {
			return c.readErr(err)
		}
		if st := c.handOff(); st.stop {
			return st.end
		}
		if end, stop := c.pauseReading(); stop {
			return end
		}
	}
}

// readLoopTLS is readLoop for a connection without a raw socket (TLS): it
// reads in its own goroutine.
func (c *conn) readLoopTLS() readEnd {
	for {
		if !c.armRead() || c.s.readCtx.Err() != nil {
			return readEnd{kind: endShutdown}
		}
		if end, stop := c.readMessage(); stop {
			return end
		}
		if end, stop := c.pauseReading(); stop {
			return end
		}
	}
}

// waitReadable returns once a read would not block: gorilla's buffer
// holds bytes, or the socket does (or has an end or error to report), or
// the read deadline passed. An idle connection waits here, a few frames
// deep, rather than deep in gorilla's frame reader, so that its goroutine's
// stack stays at the runtime's minimum (2 KiB; see reads.go).
func (c *conn) waitReadable() error {
	if c.rc == nil || c.br == nil || c.br.Buffered() > 0 {
		return nil
	}
	return c.rc.Read(readable)
}

// readPayload reads a message of up to maxBytes+1 bytes into a scratch
// buffer of the server's pool and returns a copy of exactly its size: the
// frame's records keep sub-slices of it until they are durable, so it
// cannot go back to a pool, while the scratch buffer (and whatever it grew
// to for a large message) does, instead of io.ReadAll's doublings per
// message.
func (s *Server) readPayload(r io.Reader, maxBytes int64) ([]byte, error) {
	bp, _ := s.frames.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
		*bp = make([]byte, 0, frameScratch)
	}
	buf := (*bp)[:0]
	defer func() {
		if cap(buf) <= maxPooledScratch {
			*bp = buf[:0]
			s.frames.Put(bp)
		}
	}()
	limit := int(min(maxBytes+1, int64(math.MaxInt)))
	for len(buf) < limit {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)] // grow
		}
		n, err := r.Read(buf[len(buf):min(cap(buf), limit)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	data := make([]byte, len(buf))
	copy(data, buf)
	return data, nil
}

func (c *conn) tooBig() readEnd {
	return readEnd{kind: endProtocol, code: websocket.CloseMessageTooBig,
		reason: fmt.Sprintf("message larger than %d bytes", c.s.cfg.MaxFrameBytes)}
}

// readErr classifies a read error.
func (c *conn) readErr(err error) readEnd {
	switch {
	case c.s.readCtx.Err() != nil:
		return readEnd{kind: endShutdown, err: err}
	case errors.Is(err, websocket.ErrReadLimit):
		return c.tooBig()
	}
	if end, ok := c.timedOut(err); ok {
		return end
	}
	return readEnd{kind: endPeer, err: err}
}

// handleFrame decodes, validates and buffers one frame. stop reports that
// the connection must end.
func (c *conn) handleFrame(data []byte) (end readEnd, stop bool) {
	s := c.s
	now := time.Now()
	items, err := c.dec.decode(data, now.UnixMilli())
	if errors.Is(err, errTooManyReadings) {
		s.ctr.rejected[rFrameTooManyReadings].Add(1)
		c.rejectFrame(data, rFrameTooManyReadings, now)
		return readEnd{kind: endProtocol, code: websocket.ClosePolicyViolation,
			reason: fmt.Sprintf("frame has more than %d readings", s.cfg.MaxReadingsPerFrame)}, true
	}
	if err != nil {
		s.ctr.rejected[rFrameUndecodable].Add(1)
		c.rejectFrame(data, rFrameUndecodable, now)
		return readEnd{kind: endProtocol, code: websocket.CloseInvalidFramePayloadData,
			reason: "message is not a valid vpp.v1.Frame: " + err.Error()}, true
	}
	s.ctr.received.Add(uint64(len(items)))
	if err := c.acks.waitRoom(s.readCtx, len(items)); err != nil {
		return readEnd{kind: endShutdown, err: err}, true
	}
	// The frame's records are allocated together: they hold sub-slices of
	// the frame, which stays in memory until the last of them is released
	// anyway.
	recs := make([]buffer.Record, len(items))
	var stamp []byte // formatted once a reading of the frame is rejected
	for i := range items {
		if items[i].reason != reasonOK && stamp == nil {
			stamp = timeStamp(now)
		}
		c.record(&recs[i], &items[i], stamp)
	}
	// Every reading is registered before any is buffered: a buffered
	// record may become durable at once.
	c.acks.addFrame(items, recs)
	if s.frameBuf != nil {
		if err := s.frameBuf.PutBatch(s.readCtx, recs); err != nil {
			return readEnd{kind: endShutdown, err: err}, true
		}
		return readEnd{}, false
	}
	for i := range recs {
		if err := s.buf.Put(s.readCtx, &recs[i]); err != nil {
			return readEnd{kind: endShutdown, err: err}, true
		}
	}
	return readEnd{}, false
}

// tracked reports whether a reading's ack is tracked: it names a device
// (not too long to echo back) and a seq.
func tracked(it *decodedReading) bool {
	return it.device != "" && it.seq > 0 && len(it.device) <= maxTrackedID
}

// timeStamp is the HeaderTime value of a rejected record received at now.
func timeStamp(now time.Time) []byte {
	return now.UTC().AppendFormat(make([]byte, 0, len(time.RFC3339Nano)), time.RFC3339Nano)
}

// record makes rec (a zero Record) the buffer record of a decoded reading:
// valid readings go to the telemetry topic keyed by site, invalid ones to
// the rejected topic keyed by device (or connection) with the reason in the
// headers (stamp is their time). Completing the record (it is durable: in
// Kafka, or fsync'd in a spool) lets the reading's ack advance, once the
// ack tracker registered it (addFrame); the server counts publications
// when Kafka acknowledges them.
func (c *conn) record(rec *buffer.Record, it *decodedReading, stamp []byte) {
	s := c.s
	if it.reason == reasonOK {
		// The key is the site ID as sent: a sub-slice of the frame, like
		// the value.
		rec.Message = buffer.Message{Topic: s.topics.Telemetry(), Key: it.siteKey, Value: it.raw}
		return
	}
	s.ctr.rejected[it.reason].Add(1)
	var key []byte // the connection's ID, unless the device's is usable
	if it.device != "" && len(it.device) <= s.cfg.MaxIDLength {
		key = it.rawDevice // the device ID as sent (it.device's bytes)
	}
	rec.Message = c.rejected(it.raw, it.reason, stamp, it.rawDevice, key)
}

// rejected builds a rejected-topic message with its headers, keyed by key
// (nil: the connection's ID).
func (c *conn) rejected(raw []byte, rs reason, stamp, device, key []byte) buffer.Message {
	hs := make([]buffer.Header, 0, 5)
	hs = append(hs,
		buffer.Header{Key: kafka.HeaderReason, Value: []byte(rs.String())},
		buffer.Header{Key: kafka.HeaderRemote, Value: []byte(c.remote)},
		buffer.Header{Key: kafka.HeaderTime, Value: stamp},
	)
	if len(device) > 0 {
		hs = append(hs, buffer.Header{Key: kafka.HeaderDevice, Value: device[:min(len(device), maxHeaderDevice)]})
	}
	if len(raw) > maxRejectedValue {
		hs = append(hs, buffer.Header{Key: HeaderTruncated, Value: []byte(strconv.Itoa(len(raw)))})
		raw = raw[:maxRejectedValue]
	}
	if key == nil {
		key = []byte(c.id)
	}
	return buffer.Message{Topic: c.s.topics.Rejected(), Key: key, Value: raw, Headers: hs}
}

// rejectFrame writes a whole rejected frame to the rejected topic (best
// effort on shutdown: the frame was never acked).
func (c *conn) rejectFrame(data []byte, rs reason, now time.Time) {
	m := c.rejected(data, rs, timeStamp(now), nil, nil)
	if err := c.s.buf.Put(c.s.readCtx, &buffer.Record{Message: m}); err != nil {
		c.log.Debug("rejected frame not buffered", "reason", rs.String(), "err", err)
	}
}
