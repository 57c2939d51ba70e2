package ingest

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/proto"

	"github.com/vppctl/vpp/internal/auth"
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
	log    *slog.Logger
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

	stopWriter chan struct{}
	writerDone chan struct{}
}

func newConn(s *Server, ws *websocket.Conn, remote string, grant *auth.Grant) *conn {
	id := s.cfg.Instance + "/" + strconv.FormatUint(s.connSeq.Add(1), 10)
	c := &conn{
		s:          s,
		ws:         ws,
		id:         id,
		remote:     remote,
		log:        s.log.With("conn", id, "remote", remote),
		acks:       newAckTracker(s.cfg.BufferRecords),
		dec:        newDecoder(s.cfg.MaxReadingsPerFrame, s.lim),
		stopWriter: make(chan struct{}),
		writerDone: make(chan struct{}),
		grant:      grant,
		idleUntil:  time.Now().Add(s.cfg.ReadIdleTimeout),
	}
	if grant != nil {
		c.expires = grant.Expires
	}
	if grant != nil || s.limiter != nil {
		c.dec.admit = c.admit
	}
	return c
}

// admit applies the token's grant and the device rate limit to a reading
// whose IDs are valid.
func (c *conn) admit(device, site string, nowMS int64) reason {
	if c.grant != nil && !c.grant.Allows(device, site) {
		return rDeviceNotAuthorized
	}
	if c.s.limiter != nil && !c.s.limiter.allow(device, nowMS) {
		return rRateLimited
	}
	return reasonOK
}

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

// run serves the connection until it ends.
func (c *conn) run() {
	c.log.Debug("connection open")
	c.ws.SetPongHandler(func(string) error {
		c.armRead()
		return nil
	})
	go c.writer()
	end := c.readLoop()
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

// stopWrites stops the writer goroutine and waits for it.
func (c *conn) stopWrites() {
	close(c.stopWriter)
	<-c.writerDone
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

// writer flushes acks every AckInterval and pings every PingInterval. It
// is the connection's only data writer (WriteControl may run beside it).
func (c *conn) writer() {
	defer close(c.writerDone)
	acks := time.NewTicker(c.s.cfg.AckInterval)
	defer acks.Stop()
	ping := time.NewTicker(c.s.cfg.PingInterval)
	defer ping.Stop()
	for {
		select {
		case <-c.stopWriter:
			return
		case <-acks.C:
			if err := c.flushAcks(); err != nil {
				c.log.Debug("write acks", "err", err)
				_ = c.ws.Close() // the read loop notices
				return
			}
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeWait)); err != nil {
				c.log.Debug("write ping", "err", err)
				_ = c.ws.Close()
				return
			}
		}
	}
}

// flushAcks sends the acks that advanced since the last flush.
func (c *conn) flushAcks() error {
	msgs, readings := c.acks.collect()
	for _, m := range msgs {
		b, err := proto.Marshal(m)
		if err != nil {
			return fmt.Errorf("marshal ack: %w", err)
		}
		_ = c.ws.SetWriteDeadline(time.Now().Add(writeWait))
		if err := c.ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
			return fmt.Errorf("write ack: %w", err)
		}
	}
	c.s.ctr.acked.Add(readings)
	return nil
}

// readLoop reads frames until the connection ends.
func (c *conn) readLoop() readEnd {
	maxBytes := c.s.cfg.MaxFrameBytes
	for {
		if !c.armRead() || c.s.readCtx.Err() != nil {
			return readEnd{kind: endShutdown}
		}
		mt, r, err := c.ws.NextReader()
		if err != nil {
			return c.readErr(err)
		}
		if mt != websocket.BinaryMessage {
			return readEnd{kind: endProtocol, code: websocket.CloseUnsupportedData,
				reason: "text messages are not supported: send binary vpp.v1.Frame"}
		}
		// The size limit is enforced here rather than with SetReadLimit:
		// gorilla answers its own limit with a 1009 without a reason.
		data, err := io.ReadAll(io.LimitReader(r, maxBytes+1))
		if err != nil {
			return c.readErr(err)
		}
		if int64(len(data)) > maxBytes {
			return c.tooBig()
		}
		c.s.ctr.frames.Add(1)
		c.touch()
		if end, stop := c.handleFrame(data); stop {
			return end
		}
	}
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
	stamp := []byte(now.UTC().Format(time.RFC3339Nano))
	for i := range items {
		rec := c.record(&items[i], stamp)
		if err := s.buf.Put(s.readCtx, rec); err != nil {
			return readEnd{kind: endShutdown, err: err}, true
		}
	}
	return readEnd{}, false
}

// record turns a decoded reading into a buffer record: valid readings go to
// the telemetry topic keyed by site, invalid ones to the rejected topic
// keyed by device (or connection) with the reason in the headers. Its Done
// (the record is durable: in Kafka, or fsync'd in a spool) lets the
// reading's ack advance; the server counts publications when Kafka
// acknowledges them.
func (c *conn) record(it *decodedReading, stamp []byte) *Record {
	s := c.s
	track := it.device != "" && it.seq > 0 && len(it.device) <= maxTrackedID
	device, seq := it.device, it.seq
	if track {
		c.acks.add(device, seq)
	}
	if it.reason == reasonOK {
		return &Record{
			Message: Message{Topic: s.topics.Telemetry(), Key: []byte(it.site), Value: it.raw},
			Done:    func() { c.acks.complete(device, seq) },
		}
	}
	s.ctr.rejected[it.reason].Add(1)
	key := c.id
	if it.device != "" && len(it.device) <= s.cfg.MaxIDLength {
		key = it.device
	}
	rec := &Record{
		Message: c.rejected(it.raw, it.reason, stamp, it.rawDevice),
	}
	rec.Key = []byte(key)
	if track {
		rec.Done = func() { c.acks.complete(device, seq) }
	}
	return rec
}

// rejected builds a rejected-topic message with its headers.
func (c *conn) rejected(raw []byte, rs reason, stamp, device []byte) Message {
	hs := make([]Header, 0, 5)
	hs = append(hs,
		Header{Key: kafka.HeaderReason, Value: []byte(rs.String())},
		Header{Key: kafka.HeaderRemote, Value: []byte(c.remote)},
		Header{Key: kafka.HeaderTime, Value: stamp},
	)
	if len(device) > 0 {
		hs = append(hs, Header{Key: kafka.HeaderDevice, Value: device[:min(len(device), maxHeaderDevice)]})
	}
	if len(raw) > maxRejectedValue {
		hs = append(hs, Header{Key: HeaderTruncated, Value: []byte(strconv.Itoa(len(raw)))})
		raw = raw[:maxRejectedValue]
	}
	return Message{Topic: c.s.topics.Rejected(), Key: []byte(c.id), Value: raw, Headers: hs}
}

// rejectFrame writes a whole rejected frame to the rejected topic (best
// effort on shutdown: the frame was never acked).
func (c *conn) rejectFrame(data []byte, rs reason, now time.Time) {
	m := c.rejected(data, rs, []byte(now.UTC().Format(time.RFC3339Nano)), nil)
	if err := c.s.buf.Put(c.s.readCtx, &Record{Message: m}); err != nil {
		c.log.Debug("rejected frame not buffered", "reason", rs.String(), "err", err)
	}
}
