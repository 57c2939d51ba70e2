package ingest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/vppctl/vpp/internal/auth"
	"github.com/vppctl/vpp/proto/vppv1"
)

// maskedFrame is a client frame (masked, as RFC 6455 requires) of opcode
// op with payload.
func maskedFrame(op byte, payload []byte) []byte {
	b := []byte{0x80 | op}
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xffff:
		b = append(b, 0x80|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	mask := []byte{0x37, 0xfa, 0x21, 0x3d}
	b = append(b, mask...)
	for i, v := range payload {
		b = append(b, v^mask[i&3])
	}
	return b
}

// TestPingsKeepAnswerersAndDropSilentPeers: the write loop pings every
// connection every PingInterval; one that answers stays open however long
// it sends no message (up to ReadIdleTimeout), one that does not answer is
// dropped after 2.5 intervals.
func TestPingsKeepAnswerersAndDropSilentPeers(t *testing.T) {
	const ping = 100 * time.Millisecond
	srv := startServer(t, Config{PingInterval: ping, ReadIdleTimeout: time.Minute}, &fakePub{})

	var pings atomic.Int64
	ws, _, err := websocket.DefaultDialer.Dial(srv.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	ws.SetPingHandler(func(data string) error {
		pings.Add(1)
		return ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	answerer := wrapClient(t, ws)

	silent, _, err := websocket.DefaultDialer.Dial(srv.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	silent.SetPingHandler(func(string) error { return nil }) // no pong
	gone := make(chan error, 1)
	go func() {
		for {
			if _, _, err := silent.ReadMessage(); err != nil {
				gone <- err
				return
			}
		}
	}()
	t.Cleanup(func() { silent.Close() })

	select {
	case <-gone:
	case <-time.After(waitFor):
		t.Fatal("a peer that answers no ping was not dropped")
	}
	// Five pings answered span at least four intervals of silence from the
	// answerer, longer than the 2.5 that drop a silent peer. Polled, not
	// slept: a loaded machine may ping late, never early.
	eventually(t, "5 pings answered", func() bool { return pings.Load() >= 5 })
	answerer.send(reading("p1", "s", 1))
	answerer.waitAck("p1", 1)
	if n := srv.Stats().Connections; n != 1 {
		t.Fatalf("%d connections open, want the answerer's", n)
	}
}

// TestControlFramesBetweenMessages: pings and pongs a client sends between
// messages are handled without holding up the connection: a ping gets its
// pong, and messages after them, in the same TCP segment or later, are
// read; control frames split across segments, or with an invalid form,
// are left to gorilla.
func TestControlFramesBetweenMessages(t *testing.T) {
	srv := startServer(t, Config{}, &fakePub{})
	var pongs atomic.Value
	pongs.Store("")
	ws, _, err := websocket.DefaultDialer.Dial(srv.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	ws.SetPongHandler(func(data string) error {
		pongs.Store(pongs.Load().(string) + data + ";")
		return nil
	})
	c := wrapClient(t, ws)
	nc := ws.NetConn()
	write := func(parts ...[]byte) {
		t.Helper()
		if _, err := nc.Write(bytes.Join(parts, nil)); err != nil {
			t.Fatal(err)
		}
	}
	frame := func(dev string, seq uint64) []byte {
		return maskedFrame(websocket.BinaryMessage, marshalFrame(t, reading(dev, "s", seq)))
	}

	// A ping, a pong and a message in one segment.
	write(maskedFrame(websocket.PingMessage, []byte("one")), maskedFrame(websocket.PongMessage, []byte("x")), frame("c", 1))
	c.waitAck("c", 1)
	eventually(t, "pong one", func() bool { return pongs.Load().(string) == "one;" })

	// A ping alone, then (later) a message.
	write(maskedFrame(websocket.PingMessage, []byte("two")))
	eventually(t, "pong two", func() bool { return pongs.Load().(string) == "one;two;" })
	write(frame("c", 2))
	c.waitAck("c", 2)

	// A ping split over two segments, then a message.
	p := maskedFrame(websocket.PingMessage, []byte("three"))
	write(p[:3])
	time.Sleep(20 * time.Millisecond)
	write(p[3:], frame("c", 3))
	c.waitAck("c", 3)
	eventually(t, "pong three", func() bool { return pongs.Load().(string) == "one;two;three;" })

	// Lone pings on many connections hold no read worker each: gorilla's
	// NextReader would wait for a message after them.
	const n = 20
	others := make([]*websocket.Conn, n)
	got := make(chan struct{}, n)
	for i := range others {
		o, _, err := websocket.DefaultDialer.Dial(srv.url, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { o.Close() })
		o.SetPongHandler(func(string) error { got <- struct{}{}; return nil })
		go func() {
			for {
				if _, _, err := o.ReadMessage(); err != nil {
					return
				}
			}
		}()
		others[i] = o
	}
	eventually(t, "connections", func() bool { return srv.Stats().Connections == n+1 })
	time.Sleep(50 * time.Millisecond)
	before := runtime.NumGoroutine()
	for _, o := range others {
		if err := o.WriteControl(websocket.PingMessage, []byte("p"), time.Now().Add(time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		select {
		case <-got:
		case <-time.After(waitFor):
			t.Fatal("pong missing")
		}
	}
	time.Sleep(50 * time.Millisecond)
	if d := runtime.NumGoroutine() - before; d >= n/2 {
		t.Fatalf("%d more goroutines after %d lone pings: read workers wait for messages", d, n)
	}

	// An unmasked ping is gorilla's to refuse: a protocol error.
	write([]byte{0x89, 0x00})
	ce := c.waitClose()
	if ce.Code != websocket.CloseProtocolError {
		t.Fatalf("close %d %q, want 1002", ce.Code, ce.Text)
	}
}

// TestBusyWriteSkipsOnlyItsConnection: while a write to one connection is
// in progress (its write lock held), the write loop keeps flushing the
// acks of the others, and the busy one gets its acks once it is free.
func TestBusyWriteSkipsOnlyItsConnection(t *testing.T) {
	srv := startServer(t, Config{}, &fakePub{})
	a := dial(t, srv.url)
	eventually(t, "a registered", func() bool { return srv.Stats().Connections == 1 })
	srv.mu.Lock()
	var ca *conn
	for c := range srv.conns {
		ca = c
	}
	srv.mu.Unlock()
	b := dial(t, srv.url)

	ca.wmu.Lock()
	a.send(reading("a", "s", 1))
	b.send(reading("b", "s", 1))
	b.waitAck("b", 1)
	time.Sleep(20 * srv.cfg.AckInterval)
	if got := a.ack("a"); got != 0 {
		ca.wmu.Unlock()
		t.Fatalf("ack a=%d written while its connection was busy", got)
	}
	ca.wmu.Unlock()
	a.waitAck("a", 1)
}

// TestIdleConnectionLetsGoOfItsDecoder: a connection idle for a ping
// interval drops its decoder at the pong and makes a new one, with the
// token's grant, for its next message.
func TestIdleConnectionLetsGoOfItsDecoder(t *testing.T) {
	key, _ := auth.NewHMACKey(bytes.Repeat([]byte("k"), 32))
	const ping = 50 * time.Millisecond
	srv := startServer(t, Config{Auth: auth.NewVerifier(key, auth.VerifierOptions{}), PingInterval: ping}, &fakePub{})
	tok, _ := auth.Issue(key, auth.Claims{Device: "idle-dev"}, time.Now(), time.Minute)
	ws, _, err := dialTok(t, srv.url, tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := wrapClient(t, ws)
	c.send(reading("idle-dev", "s", 1))
	c.waitAck("idle-dev", 1)
	time.Sleep(6 * ping) // pongs (answered by the client's reader) drop the decoder
	c.send(reading("idle-dev", "s", 2), reading("stranger", "s", 1))
	c.waitAck("idle-dev", 2)
	eventually(t, "not authorized counted", func() bool { return srv.Stats().Rejected[ReasonDeviceNotAuthorized] == 1 })
}

// TestLargeFrames: frames larger than the pooled scratch buffers are read
// whole, and one just over the limit is refused with 1009.
func TestLargeFrames(t *testing.T) {
	const maxFrame = 2 << 20
	srv := startServer(t, Config{MaxFrameBytes: maxFrame, BufferRecords: 50_000, DeviceRate: 1e9, DeviceBurst: 1e9}, &fakePub{})
	c := dial(t, srv.url)
	for _, n := range []int{100, 1000, 5000} {
		rs := make([]*vppv1.Reading, n)
		for i := range rs {
			rs[i] = reading(fmt.Sprintf("big-%d", i), "s", uint64(n))
		}
		b := marshalFrame(t, rs...)
		if n == 5000 && len(b) <= maxPooledScratch {
			t.Fatalf("frame of %d bytes does not outgrow the pooled scratch buffers", len(b))
		}
		if err := c.ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
			t.Fatal(err)
		}
		c.waitAck(fmt.Sprintf("big-%d", n-1), uint64(n))
	}
	if err := c.ws.WriteMessage(websocket.BinaryMessage, make([]byte, maxFrame+1)); err != nil {
		t.Fatal(err)
	}
	if ce := c.waitClose(); ce.Code != websocket.CloseMessageTooBig || !strings.Contains(ce.Text, "bytes") {
		t.Fatalf("close %d %q", ce.Code, ce.Text)
	}
}

// TestGrantFollowsTheSite: the decoder remembers that the grant allowed a
// device at a site, and asks the grant again when the device's site
// changes: a device allowed through its site's claim is refused at a site
// the token does not list, while a device listed by ID is allowed anywhere.
func TestGrantFollowsTheSite(t *testing.T) {
	key, _ := auth.NewHMACKey(bytes.Repeat([]byte("k"), 32))
	srv := startServer(t, Config{Auth: auth.NewVerifier(key, auth.VerifierOptions{})}, &fakePub{})
	tok, _ := auth.Issue(key, auth.Claims{Device: "listed", Sites: []string{"home"}}, time.Now(), time.Minute)
	ws, _, err := dialTok(t, srv.url, tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := wrapClient(t, ws)
	c.send(reading("listed", "home", 1), reading("by-site", "home", 1))
	c.waitAck("by-site", 1)
	c.send(reading("by-site", "away", 2), reading("listed", "away", 2))
	c.waitAck("listed", 2)
	eventually(t, "by-site refused away", func() bool { return srv.Stats().Rejected[ReasonDeviceNotAuthorized] == 1 })
	c.send(reading("by-site", "home", 3))
	c.waitAck("by-site", 3)
	if got := srv.Stats().Rejected[ReasonDeviceNotAuthorized]; got != 1 {
		t.Fatalf("not authorized %d, want 1", got)
	}
}
