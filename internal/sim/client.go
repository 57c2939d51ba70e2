package sim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	// writeBufferBytes holds a full frame (MaxFrameReadings readings of
	// about 140 bytes each): the WebSocket library writes a message that
	// does not fit its buffer as several fragments, one write call each.
	writeBufferBytes = MaxFrameReadings * 160
)

// device is one simulated battery and its unacked readings. It belongs to
// one conn and is guarded by that conn's mutex.
type device struct {
	idx                          int
	id, site, substation, region string
	bat                          *battery

	gen   uint64         // readings generated = seq of the last one
	acked uint64         // highest acknowledged seq
	queue readingQueue   // unacked readings, serialized, seq acked+1 … gen
	last  *vppv1.Reading // last generated reading (ground truth), reused

	blocked bool // queue full with readings still due; listed in conn.blocked

	fol follower // the setpoint it follows and the outcome it reports
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

	mu     sync.Mutex
	devs   []*device          // devices id, id+Conns, id+2·Conns, …
	byID   map[string]*device // devs by ID, read-only after New
	outbox []pending          // generated, not yet written on this connection
	// outbuf holds the outbox's frame entries, back to back, unless
	// retransmit is set: then flush resends the queues instead, and
	// copying the readings here would be wasted.
	outbuf     []byte
	retransmit bool      // next flush resends every unacked reading first
	ready      []*device // blocked devices that got acks since the last tick
	nextG      int64     // global schedule index up to which devices were visited

	dupRng *rand.Rand // DuplicateFrames choices, deterministic per seed
	frame  []byte     // flush's frame entries (run goroutine only)
	cuts   []int      // flush's frame boundaries in frame (run goroutine only)
}

// pending is a generated reading waiting to be written.
type pending struct {
	d   *device
	seq uint64
	end int // end of its entry in conn.outbuf (when it is there)
}

// devAck is one parsed DeviceAck.
type devAck struct {
	d   *device
	seq uint64
}

// maxKeptFrameBytes is the largest frame buffer flush keeps for the next
// one: a retransmit of a long backlog is not held on to.
const maxKeptFrameBytes = 1 << 20

func newConn(s *Sim, id int) *conn {
	return &conn{
		s:          s,
		id:         id,
		log:        s.log.With("conn", id),
		dupRng:     rand.New(rand.NewPCG(uint64(s.cfg.Seed), 1<<63|uint64(id))),
		retransmit: true, // the first connection sends what is queued by then
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
		// The next connection resends the queues; readings generated
		// until then need not be copied for a flush of their own.
		c.mu.Lock()
		c.retransmit = true
		// The link to ingest dropped: back to local control, and nothing
		// is resumed after the reconnect.
		nowMs := time.Now().UnixMilli()
		for _, d := range c.devs {
			d.fol.end(&c.s.sp, vppv1.SetpointReason_SETPOINT_REASON_HEARTBEAT, nowMs)
		}
		c.mu.Unlock()
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
		WriteBufferSize:  writeBufferBytes,
		// The connections share the buffers: one is held only while a
		// message is written.
		WriteBufferPool: &c.s.writeBufs,
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
	var acks []devAck // applyDownlink's scratch
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
			acks, err = c.applyDownlink(buf.Bytes(), acks[:0])
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
	downlinkAck      = 1 // Downlink.ack
	downlinkSetpoint = 2 // Downlink.setpoint
	ackDevices       = 1 // Ack.devices
	deviceAckID      = 1 // DeviceAck.device_id
	deviceAckSeq     = 2 // DeviceAck.acked_seq
)

// applyDownlink applies the acks of one serialized vpp.v1.Downlink. It
// reads the wire format directly: an ack message carries one entry per
// device, and decoding them into messages would cost an allocation each.
// Unknown fields (a later downlink kind) are skipped. The entries are
// parsed into acks first (returned for reuse) and applied under one lock;
// when the message turns out malformed, the entries before the fault are
// applied all the same.
func (c *conn) applyDownlink(b []byte, acks []devAck) ([]devAck, error) {
	err := wire.Fields(b, func(num protowire.Number, typ protowire.Type, _ uint64, ack []byte) error {
		if num == downlinkSetpoint && typ == protowire.BytesType {
			return c.applySetpoint(ack)
		}
		if num != downlinkAck || typ != protowire.BytesType {
			return nil
		}
		return wire.Fields(ack, func(num protowire.Number, typ protowire.Type, _ uint64, da []byte) error {
			if num != ackDevices || typ != protowire.BytesType {
				return nil
			}
			id, seq, ok := parseDeviceAck(da)
			if !ok {
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
			}
			if d := c.byID[string(id)]; d != nil {
				acks = append(acks, devAck{d, seq})
			}
			return nil
		})
	})
	c.applyAcks(acks)
	clear(acks)
	return acks[:0], err
}

// applySetpoint hands a serialized vpp.v1.Setpoint to the device it names;
// one for a device not on this connection is counted and dropped.
func (c *conn) applySetpoint(b []byte) error {
	var sp vppv1.Setpoint
	if err := proto.Unmarshal(b, &sp); err != nil {
		return fmt.Errorf("setpoint: %w", err)
	}
	d := c.byID[sp.GetDeviceId()]
	if d == nil {
		c.s.sp.unknown.Add(1)
		return nil
	}
	c.mu.Lock()
	d.fol.receive(&c.s.sp, &sp, d.bat.dispatchable(), time.Now().UnixMilli())
	c.mu.Unlock()
	return nil
}

// parseDeviceAck reads a serialized DeviceAck as ingest writes it: the
// device ID (shorter than 128 bytes), then the acked seq, nothing else.
// It reports false for anything else, which then takes the general path.
func parseDeviceAck(b []byte) (id []byte, seq uint64, ok bool) {
	const idTag = deviceAckID<<3 | byte(protowire.BytesType)
	const seqTag = deviceAckSeq<<3 | byte(protowire.VarintType)
	if len(b) < 2 || b[0] != idTag || b[1] >= 0x80 {
		return nil, 0, false
	}
	end := 2 + int(b[1])
	if end >= len(b) || b[end] != seqTag {
		return nil, 0, false
	}
	seq, n := protowire.ConsumeVarint(b[end+1:])
	if n < 0 || end+1+n != len(b) {
		return nil, 0, false
	}
	return b[2:end], seq, true
}

// applyAcks forgets each device's readings up to its acked seq and wakes
// the devices that backpressure held back.
func (c *conn) applyAcks(acks []devAck) {
	if len(acks) == 0 {
		return
	}
	var n int64
	c.mu.Lock()
	for _, a := range acks {
		d := a.d
		seq := min(a.seq, d.gen)
		if seq <= d.acked {
			continue
		}
		k := int(seq - d.acked)
		d.queue.pop(k)
		d.acked = seq
		n += int64(k)
		if d.blocked {
			d.blocked = false
			c.ready = append(c.ready, d)
		}
	}
	c.mu.Unlock()
	c.s.acked.Add(n)
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

	// Schedule order: round after round, this connection's devices in
	// index order (device index j is c.devs[j/C]).
	D := int64(c.s.cfg.Devices)
	C := int64(len(c.s.conns))
	id := int64(c.id)
	for x := c.nextG; x < g; {
		round, i := x/D, x%D
		j := i + ((id-i%C)+C)%C // the first device ≥ i on this connection
		for k := j / C; j < D && round*D+j < g; j, k = j+C, k+1 {
			n += c.catchUp(c.devs[k], g)
		}
		if j < D {
			break // the schedule ends before device j of this round
		}
		x = (round + 1) * D
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
		e := d.queue.push(r)
		if !c.retransmit {
			c.outbuf = append(c.outbuf, e...)
		}
		c.outbox = append(c.outbox, pending{d, r.Seq, len(c.outbuf)})
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
	h := mod(s.startSecOfDay+simSec, 86400) / 3600
	d.gen++
	r := d.last
	if r == nil {
		r = &vppv1.Reading{DeviceId: d.id, SiteId: d.site, SubstationId: d.substation, RegionId: d.region}
		d.last = r
	}
	r.Seq, r.TsMs = d.gen, ts
	// While following a setpoint its command replaces the local
	// controller's in the same battery step, so the truth stays the model's.
	following, cmd := d.fol.command(&s.sp, ts, r.PowerKw)
	if following && !d.bat.dispatchable() {
		d.fol.end(&s.sp, vppv1.SetpointReason_SETPOINT_REASON_NOT_DISPATCHABLE, ts)
		following = false
	}
	clamp := d.bat.stepWith(s.dt, h, r, following, cmd)
	d.fol.report(&s.sp, r, following, r.PowerKw, clamp, ts)
	return r
}

// messageWriter is the part of *websocket.Conn that flush uses.
type messageWriter interface {
	WriteMessage(messageType int, data []byte) error
}

// flush writes what is pending: after a reconnect every unacked reading in
// seq order, otherwise the readings generated since the last flush. A
// frame is the readings' frame entries (each reading as field 1 of
// vpp.v1.Frame), at most MaxFrameReadings of them.
func (c *conn) flush(ws messageWriter) error {
	c.mu.Lock()
	frame, cuts := c.frame[:0], c.cuts[:0]
	if c.retransmit {
		// The queues are copied under the lock: acks pop them meanwhile.
		var total, again int
		for _, d := range c.devs {
			start := len(frame)
			frame = append(frame, d.queue.bytes()...)
			for off := start; off < len(frame); off += entrySize(frame[off:]) {
				if total > 0 && total%MaxFrameReadings == 0 {
					cuts = append(cuts, off)
				}
				total++
			}
		}
		// Readings generated while disconnected are in the queues too.
		for _, p := range c.outbox {
			if p.seq <= p.d.acked {
				again++ // acked meanwhile: not fresh, not resent either
			}
		}
		c.s.retransmitted.Add(int64(total - (len(c.outbox) - again)))
		c.retransmit = false
	} else {
		// The outbox's entries are written as they are; the two buffers
		// take turns.
		frame, c.outbuf = c.outbuf, frame
		for i := MaxFrameReadings; i < len(c.outbox); i += MaxFrameReadings {
			cuts = append(cuts, c.outbox[i-1].end)
		}
	}
	clear(c.outbox)
	c.outbox = c.outbox[:0]
	c.outbuf = c.outbuf[:0]
	c.mu.Unlock()
	if len(frame) > 0 {
		cuts = append(cuts, len(frame))
	}
	defer func() {
		if cap(frame) > maxKeptFrameBytes {
			frame = nil
		}
		c.frame, c.cuts = frame[:0], cuts[:0]
	}()

	start := 0
	for _, end := range cuts {
		f := frame[start:end]
		start = end
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
	}
	return nil
}
