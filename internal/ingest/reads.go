package ingest

import (
	"errors"
	"net"
	"runtime"
	"time"

	"github.com/gorilla/websocket"
)

// Read workers.
//
// A connection's goroutine (conn.run) waits between messages in
// waitReadable, a few frames deep and without allocating, so its stack
// stays at the runtime's minimum of 2 KiB. Reading and handling a message
// needs more, and the runtime shrinks a grown stack only while its
// goroutine uses less than a quarter of it, which a goroutine blocked in a
// read never does: read in the connection's goroutine, every connection
// would keep 4-8 KiB of stack. So when bytes arrive, the goroutine hands
// the connection to a read worker, which handles the pings and pongs at the
// head of the buffer and at most one message, and waits for the worker's
// readStep. A worker is busy with one connection at a time, for as long as
// that message takes (including backpressure, in Buffer.Put); one idle
// worker is always waiting, so a connection never waits for another's
// message. TLS connections (no raw socket) read in their own goroutine.

// maxIdleReadWorkers bounds the read workers kept waiting for work.
func maxIdleReadWorkers() int32 { return int32(2 * runtime.GOMAXPROCS(0)) }

// readStep is a read worker's outcome for the connection: whether it ends,
// and how.
type readStep struct {
	end  readEnd
	stop bool
}

// startReadWorker starts a read worker, counted idle.
func (s *Server) startReadWorker() {
	s.idleReaders.Add(1)
	go s.readWorker()
}

// readWorker reads for connections handed to it until Serve returns
// (stopReadWorkers) or enough workers are idle.
func (s *Server) readWorker() {
	for {
		var c *conn
		select {
		case c = <-s.readq:
		case <-s.stopReadWorkers:
			s.idleReaders.Add(-1)
			return
		}
		if s.idleReaders.Add(-1) == 0 {
			s.startReadWorker() // the next connection does not wait for this one
		}
		c.step <- c.readNext()
		if s.idleReaders.Load() >= maxIdleReadWorkers() {
			return
		}
		s.idleReaders.Add(1)
	}
}

// handOff has a read worker read what arrived on c and waits for its
// outcome. It runs on c's goroutine and allocates nothing. A worker is
// always waiting, or about to (readWorker), until Serve returns; read
// loops end before.
func (c *conn) handOff() readStep {
	c.s.readq <- c
	return <-c.step
}

// readNext reads what arrived on the connection: the pings and pongs
// between messages, then at most one message, which it handles. Then it
// arms the read deadline for the connection's next wait.
func (c *conn) readNext() readStep {
	more, err := c.controlFrames()
	switch {
	case err != nil:
		return readStep{end: c.readErr(err), stop: true}
	case more:
		if end, stop := c.readMessage(); stop {
			return readStep{end: end, stop: true}
		}
	}
	if !c.armRead() {
		return readStep{end: readEnd{kind: endShutdown}, stop: true}
	}
	return readStep{}
}

// readMessage reads one message with gorilla and handles it.
func (c *conn) readMessage() (readEnd, bool) {
	maxBytes := c.s.cfg.MaxFrameBytes
	mt, r, err := c.ws.NextReader()
	if err != nil {
		return c.readErr(err), true
	}
	if mt != websocket.BinaryMessage {
		return readEnd{kind: endProtocol, code: websocket.CloseUnsupportedData,
			reason: "text messages are not supported: send binary vpp.v1.Frame"}, true
	}
	// The size limit is enforced here rather than with SetReadLimit:
	// gorilla answers its own limit with a 1009 without a reason.
	data, err := c.s.readPayload(r, maxBytes)
	if err != nil {
		return c.readErr(err), true
	}
	if int64(len(data)) > maxBytes {
		return c.tooBig(), true
	}
	c.s.ctr.frames.Add(1)
	c.touch()
	c.decoder()
	return c.handleFrame(data)
}

// controlFrames consumes the complete pings and pongs at the head of
// gorilla's read buffer, between messages, as gorilla would: a pong goes
// to the pong handler (pong), a ping is answered with a pong. gorilla's
// NextReader would, after them, go on waiting for a message, holding the
// worker for as long as the device stays quiet. more reports that
// something for gorilla follows: a message, a close frame, a frame gorilla
// refuses or one not complete yet (gorilla then waits for the rest, as it
// does mid-message); !more: nothing is buffered, the connection waits
// again. The socket is readable when it is called (waitReadable), so
// filling the buffer does not block.
func (c *conn) controlFrames() (more bool, err error) {
	for {
		if c.br.Buffered() == 0 {
			if _, err := c.br.Peek(1); err != nil {
				return true, nil // gorilla reports it
			}
		}
		n := c.br.Buffered()
		h, _ := c.br.Peek(min(n, 2))
		if len(h) < 2 {
			return true, nil
		}
		// Only a final (FIN), unfragmented, masked ping or pong with a
		// 7-bit length and no RSV bits is ours.
		op := int(h[0] & 0x0f)
		if h[0]&0xf0 != 0x80 || (op != websocket.PingMessage && op != websocket.PongMessage) || h[1]&0x80 == 0 || h[1]&0x7f > 125 {
			return true, nil
		}
		size := 2 + 4 + int(h[1]&0x7f)
		if n < size {
			return true, nil
		}
		f, _ := c.br.Peek(size)
		var buf [125]byte
		payload := buf[:size-6]
		for i := range payload {
			payload[i] = f[6+i] ^ f[2+i&3]
		}
		_, _ = c.br.Discard(size)
		if op == websocket.PongMessage {
			c.pong()
		} else if err := c.ws.WriteControl(websocket.PongMessage, payload, time.Now().Add(writeWait)); err != nil {
			// As gorilla's ping handler: a pong that cannot go out ends
			// the connection, unless the close frame went out already.
			var ne net.Error
			if !errors.Is(err, websocket.ErrCloseSent) && !(errors.As(err, &ne) && ne.Timeout()) {
				return false, err
			}
		}
		if c.br.Buffered() == 0 {
			return false, nil
		}
	}
}
