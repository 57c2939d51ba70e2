package sim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/vppctl/vpp/internal/wire"
	"github.com/vppctl/vpp/proto/vppv1"
)

// Client tuning.
const (
	backoffMin       = 100 * time.Millisecond
	backoffMax       = 5 * time.Second
	handshakeTimeout = 10 * time.Second
	closeWait        = time.Second
	maxDownlinkBytes = 16 << 20
)

// device is one simulated battery and its unacked readings. It belongs to
// one conn and is guarded by that conn's mutex.
type device struct {
	idx                          int
	id, site, substation, region string
	bat                          *battery

	gen   uint64         // readings generated = seq of the last one
	acked uint64         // highest acknowledged seq
	queue serializedFIFO // unacked readings, serialized, seq acked+1 … gen
	last  *vppv1.Reading // last generated reading (ground truth), reused

	blocked bool // queue full with readings still due; listed in conn.blocked
}

// newDevice builds device index i of the fleet.
func newDevice(shape Shape, seed int64, i int) *device {
	d := &device{idx: i, bat: newBattery(seed, i)}
	d.id, d.site, d.substation, d.region = shape.Place(i)
	return d
}

// conn is one gateway connection and the devices that share it. The run
// goroutine generates, writes and reconnects; the reader goroutine applies
// acks. Both take mu for device state.
type conn struct {
	s   *Sim
	id  int
	log *slog.Logger

	mu         sync.Mutex
	devs       []*device          // devices id, id+Conns, id+2·Conns, …
	byID       map[string]*device // devs by ID, read-only after New
	outbox     []pending          // generated, not yet written on this connection
	retransmit bool               // next flush resends every unacked reading first
	ready      []*device          // blocked devices that got acks since the last tick
	nextG      int64              // global schedule index up to which devices were visited

	dupRng  *rand.Rand // DuplicateFrames choices, deterministic per seed
	scratch []byte     // marshal buffer of generate (under mu)
	frame   []byte     // frame buffer of flush (run goroutine only)
	out     []pending  // flush's batch (run goroutine only)
}

// pending is a serialized reading waiting to be written.
type pending struct {
	d   *device
	seq uint64
	b   []byte
}

// serializedFIFO holds a device's unacked readings, oldest first, reusing
// its backing array.
type serializedFIFO struct {
	q    [][]byte
	head int
}

func (f *serializedFIFO) len() int      { return len(f.q) - f.head }
func (f *serializedFIFO) push(b []byte) { f.q = append(f.q, b) }

// items returns the queued readings, oldest first (valid until the next
// push or pop).
func (f *serializedFIFO) items() [][]byte { return f.q[f.head:] }

// pop forgets the k oldest readings.
func (f *serializedFIFO) pop(k int) {
	clear(f.q[f.head : f.head+k])
	f.head += k
	switch {
	case f.head == len(f.q):
		f.q, f.head = f.q[:0], 0
	case f.head > cap(f.q)/2:
		n := copy(f.q, f.q[f.head:])
		clear(f.q[n:])
		f.q, f.head = f.q[:n], 0
	}
}

func newConn(s *Sim, id int) *conn {
	return &conn{
		s:      s,
		id:     id,
		log:    s.log.With("conn", id),
		dupRng: rand.New(rand.NewPCG(uint64(s.cfg.Seed), 1<<63|uint64(id))),
	}
}

// run owns the connection until ctx is cancelled: it dials with backoff,
// generates the readings due every FrameInterval and flushes them.
func (c *conn) run(ctx context.Context) {
	tick := time.NewTicker(c.s.cfg.FrameInterval)
	defer tick.Stop()

	type dialResult struct {
		ws  *websocket.Conn
		err error
	}
	dialDone := make(chan dialResult, 1)
	dialing := false
	startDial := func() {
		dialing = true
		go func() {
			ws, err := c.dial(ctx)
			dialDone <- dialResult{ws, err}
		}()
	}

	var (
		ws        *websocket.Conn
		readErr   chan error
		redial    <-chan time.Time
		failures  int  // consecutive failed dials or lost connections
		connected bool // a connection was established before
		stopWatch func() bool
	)
	disconnect := func(err error) {
		stopWatch()
		_ = ws.Close()
		ws, readErr = nil, nil
		c.s.errs.Add(1)
		c.logLost(err)
		failures++
		redial = time.After(backoff(failures))
	}
	startDial()
	for {
		select {
		case <-ctx.Done():
			if ws != nil {
				stopWatch()
				_ = ws.WriteControl(websocket.CloseMessage,
					websocket.FormatCloseMessage(websocket.CloseNormalClosure, "sim done"),
					time.Now().Add(closeWait))
				_ = ws.Close()
			}
			if dialing {
				if r := <-dialDone; r.ws != nil {
					_ = r.ws.Close()
				}
			}
			return

		case r := <-dialDone:
			dialing = false
			if r.err != nil {
				c.s.errs.Add(1)
				lvl := slog.LevelDebug
				if failures == 0 {
					lvl = c.s.dialLog.level(slog.LevelWarn)
				}
				c.log.Log(ctx, lvl, "dial failed, retrying with backoff", "err", r.err, "attempt", failures+1)
				failures++
				redial = time.After(backoff(failures))
				continue
			}
			ws = r.ws
			nc := ws.NetConn()
			// A write blocked by backpressure ends within closeWait of ctx's
			// cancellation, so run can return.
			stopWatch = context.AfterFunc(ctx, func() { _ = nc.SetWriteDeadline(time.Now().Add(closeWait)) })
			if connected {
				c.s.reconnects.Add(1)
				c.log.Log(ctx, c.s.reconnLog.level(slog.LevelInfo), "reconnected", "attempts", failures)
			}
			connected, failures = true, 0
			readErr = make(chan error, 1)
			go c.read(ws, readErr)
			c.mu.Lock()
			c.retransmit = true
			c.mu.Unlock()
			if err := c.flush(ws); err != nil {
				disconnect(err)
			}

		case err := <-readErr:
			disconnect(err)

		case <-redial:
			redial = nil
			startDial()

		case now := <-tick.C:
			c.generate(now)
			if ws != nil {
				if err := c.flush(ws); err != nil {
					disconnect(err)
				}
			}
		}
	}
}

// dial opens the WebSocket.
func (c *conn) dial(ctx context.Context) (*websocket.Conn, error) {
	d := websocket.Dialer{
		Proxy:            http.ProxyFromEnvironment,
		HandshakeTimeout: handshakeTimeout,
		TLSClientConfig:  c.s.cfg.TLS,
	}
	var hdr http.Header
	tok := c.s.cfg.Token
	if c.s.cfg.TokenFunc != nil {
		var err error
		if tok, err = c.s.cfg.TokenFunc(ctx, c.deviceIDs(), c.siteIDs()); err != nil {
			return nil, fmt.Errorf("token for connection %d: %w", c.id, err)
		}
	}
	if tok != "" {
		hdr = http.Header{"Authorization": {"Bearer " + tok}}
	}
	ws, resp, err := d.DialContext(ctx, c.s.cfg.URL, hdr)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial %s: %w (HTTP %s)", redactURL(c.s.cfg.URL), err, resp.Status)
		}
		return nil, fmt.Errorf("dial %s: %w", redactURL(c.s.cfg.URL), err)
	}
	ws.SetReadLimit(maxDownlinkBytes)
	return ws, nil
}

// redactURL drops the query (which may carry ?token=) from a URL for
// logs and errors.
func redactURL(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i] + "?…"
	}
	return u
}

// deviceIDs lists the connection's devices.
func (c *conn) deviceIDs() []string {
	ids := make([]string, len(c.devs))
	for i, d := range c.devs {
		ids[i] = d.id
	}
	return ids
}

// siteIDs lists the distinct sites of the connection's devices.
func (c *conn) siteIDs() []string {
	seen := make(map[string]bool)
	var ids []string
	for _, d := range c.devs {
		if !seen[d.site] {
			seen[d.site] = true
			ids = append(ids, d.site)
		}
	}
	return ids
}

// backoff returns the jittered wait before attempt n (1, 2, …): exponential
// from backoffMin to backoffMax, uniformly within [d/2, d].
func backoff(n int) time.Duration {
	d := backoffMax
	if n < 16 {
		d = min(backoffMax, backoffMin<<(n-1))
	}
	return d/2 + rand.N(d/2+1)
}

// logLimiter lets one event of a kind per second through at its level and
// demotes the rest to debug, so that a fleet of connections losing ingest
// at once logs a line, not hundreds.
type logLimiter struct{ last atomic.Int64 }

// level returns lvl if no event passed within the last second, else debug.
func (l *logLimiter) level(lvl slog.Level) slog.Level {
	now := time.Now().UnixNano()
	last := l.last.Load()
	if now-last >= int64(time.Second) && l.last.CompareAndSwap(last, now) {
		return lvl
	}
	return slog.LevelDebug
}

// logLost logs the end of a connection, with the close code and reason when
// the peer sent them.
func (c *conn) logLost(err error) {
	ctx := context.Background()
	lvl := c.s.lostLog.level(slog.LevelWarn)
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		c.log.Log(ctx, lvl, "connection closed by peer", "code", ce.Code, "reason", ce.Text)
		return
	}
	c.log.Log(ctx, lvl, "connection lost", "err", err)
}

// read applies the downlink messages of ws until it fails; it reports the
// error on errc.
func (c *conn) read(ws *websocket.Conn, errc chan<- error) {
	warned := false
	var buf bytes.Buffer
	for {
		mt, r, err := ws.NextReader()
		if err == nil {
			buf.Reset()
			_, err = buf.ReadFrom(r)
		}
		if err != nil {
			errc <- fmt.Errorf("read: %w", err)
			return
		}
		if mt != websocket.BinaryMessage {
			err = fmt.Errorf("unexpected message type %d", mt)
		} else {
			err = c.applyDownlink(buf.Bytes())
		}
		if err != nil {
			c.s.errs.Add(1)
			if !warned {
				c.log.Warn("bad downlink message ignored (further ones on this connection are not logged)", "err", err)
				warned = true
			}
		}
	}
}

// Field numbers of the downlink contract read by applyDownlink.
const (
	downlinkAck  = 1 // Downlink.ack
	ackDevices   = 1 // Ack.devices
	deviceAckID  = 1 // DeviceAck.device_id
	deviceAckSeq = 2 // DeviceAck.acked_seq
)

// applyDownlink applies the acks of one serialized vpp.v1.Downlink. It
// reads the wire format directly: an ack message carries one entry per
// device, and decoding them into messages would cost an allocation each.
// Unknown fields (a later downlink kind) are skipped.
func (c *conn) applyDownlink(b []byte) error {
	return wire.Fields(b, func(num protowire.Number, typ protowire.Type, _ uint64, ack []byte) error {
		if num != downlinkAck || typ != protowire.BytesType {
			return nil
		}
		return wire.Fields(ack, func(num protowire.Number, typ protowire.Type, _ uint64, da []byte) error {
			if num != ackDevices || typ != protowire.BytesType {
				return nil
			}
			var id []byte
			var seq uint64
			err := wire.Fields(da, func(num protowire.Number, typ protowire.Type, v uint64, s []byte) error {
				switch {
				case num == deviceAckID && typ == protowire.BytesType:
					id = s
				case num == deviceAckSeq && typ == protowire.VarintType:
					seq = v
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("device ack: %w", err)
			}
			c.applyAck(id, seq)
			return nil
		})
	})
}

// applyAck forgets device id's readings up to seq and wakes the device if
// backpressure held it back.
func (c *conn) applyAck(id []byte, seq uint64) {
	d := c.byID[string(id)]
	if d == nil {
		return
	}
	c.mu.Lock()
	seq = min(seq, d.gen)
	if seq <= d.acked {
		c.mu.Unlock()
		return
	}
	k := int(seq - d.acked)
	d.queue.pop(k)
	d.acked = seq
	if d.blocked {
		d.blocked = false
		c.ready = append(c.ready, d)
	}
	c.mu.Unlock()
	c.s.acked.Add(int64(k))
}

// generate creates the readings due at now for this connection's devices:
// first those of devices that were held back and got acks, then the devices
// whose next reading the schedule reached since the last tick.
func (c *conn) generate(now time.Time) {
	if c.s.halted.Load() {
		return
	}
	g := c.s.scheduled(now)
	var n int64
	c.mu.Lock()
	defer func() {
		c.mu.Unlock()
		c.s.generated.Add(n)
	}()
	for _, d := range c.ready {
		n += c.catchUp(d, g)
	}
	clear(c.ready)
	c.ready = c.ready[:0]

	D := int64(c.s.cfg.Devices)
	C := int64(len(c.s.conns))
	id := int64(c.id)
	for x := c.nextG; x < g; {
		round, i := x/D, x%D
		j := i + ((id-i%C)+C)%C // the first device ≥ i on this connection
		if j >= D {
			x = (round + 1) * D
			continue
		}
		if round*D+j >= g {
			break
		}
		n += c.catchUp(c.devs[j/C], g)
		x = round*D + j + 1
	}
	c.nextG = max(c.nextG, g)
}

// catchUp generates device d's readings due when the fleet has g due, as
// far as its queue has room; a device left behind is marked blocked until an
// ack arrives. It returns the number of readings generated. c.mu is held.
func (c *conn) catchUp(d *device, g int64) int64 {
	var n int64
	due := c.s.due(d.idx, g)
	for d.gen < due {
		if d.queue.len() >= c.s.cfg.MaxInFlight {
			d.blocked = true
			break
		}
		r := c.s.next(d)
		var err error
		c.scratch, err = proto.MarshalOptions{}.MarshalAppend(c.scratch[:0], r)
		if err != nil {
			// Not reachable for a reading of numbers and valid IDs; the
			// seq is spent, so ingest and the twin see a gap.
			c.s.errs.Add(1)
			c.log.Error("marshal reading", "device", d.id, "seq", r.Seq, "err", err)
			n++
			continue
		}
		b := append([]byte(nil), c.scratch...)
		d.queue.push(b)
		c.outbox = append(c.outbox, pending{d, r.Seq, b})
		n++
	}
	return n
}

// next advances device d by one reading, written into d.last (reused: the
// result is valid until the next call for d). Its timestamp is the time
// the schedule made it due, not the time it was generated: a reading held
// back by backpressure or a late tick carries its age, so latency measured
// from ts_ms has no coordinated omission.
func (s *Sim) next(d *device) *vppv1.Reading {
	// This reading's place in the global schedule gives its simulated time
	// and its due time.
	g := int64(d.gen)*int64(s.cfg.Devices) + int64(d.idx)
	ts := s.t0ms.Load() + int64(float64(g)*1000/s.cfg.Rate)
	simSec := float64(g) / s.cfg.Rate * s.cfg.TimeScale
	h := math.Mod(s.startSecOfDay+simSec, 86400) / 3600
	d.gen++
	r := d.last
	if r == nil {
		r = &vppv1.Reading{DeviceId: d.id, SiteId: d.site, SubstationId: d.substation, RegionId: d.region}
		d.last = r
	}
	r.Seq, r.TsMs = d.gen, ts
	d.bat.step(s.dt, h, r)
	return r
}

// flush writes what is pending: after a reconnect every unacked reading in
// seq order, otherwise the readings generated since the last flush. A
// frame is the readings' serialized bytes, each as field 1 of vpp.v1.Frame.
func (c *conn) flush(ws *websocket.Conn) error {
	c.mu.Lock()
	out := c.out[:0]
	if c.retransmit {
		var again int
		for _, d := range c.devs {
			for i, b := range d.queue.items() {
				out = append(out, pending{d, d.acked + 1 + uint64(i), b})
			}
		}
		// Readings generated while disconnected are in the queues too.
		for _, p := range c.outbox {
			if p.seq <= p.d.acked {
				again++ // acked meanwhile: not fresh, not resent either
			}
		}
		c.s.retransmitted.Add(int64(len(out) - (len(c.outbox) - again)))
		c.retransmit = false
	} else {
		out = append(out, c.outbox...)
	}
	clear(c.outbox)
	c.outbox = c.outbox[:0]
	c.mu.Unlock()
	batch := out
	defer func() {
		clear(batch)
		c.out = batch[:0]
	}()

	// The bytes are immutable once generated; frame them outside the lock.
	for len(out) > 0 {
		k := min(len(out), MaxFrameReadings)
		f := c.frame[:0]
		for _, p := range out[:k] {
			f = protowire.AppendTag(f, 1, protowire.BytesType)
			f = protowire.AppendBytes(f, p.b)
		}
		c.frame = f
		copies := 1
		if c.s.cfg.DuplicateFrames > 0 && c.dupRng.Float64() < c.s.cfg.DuplicateFrames {
			copies = 2
		}
		for range copies {
			if err := ws.WriteMessage(websocket.BinaryMessage, f); err != nil {
				return fmt.Errorf("write: %w", err)
			}
			c.s.frames.Add(1)
		}
		if copies == 2 {
			c.s.dupFrames.Add(1)
		}
		out = out[k:]
	}
	return nil
}
