package sim

import (
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
	"google.golang.org/protobuf/proto"

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

	gen   uint64           // readings generated = seq of the last one
	acked uint64           // highest acknowledged seq
	queue []*vppv1.Reading // unacked readings, seq acked+1 … gen
	last  *vppv1.Reading   // last generated reading (ground truth)

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
	devs       []*device        // devices id, id+Conns, id+2·Conns, …
	outbox     []*vppv1.Reading // generated, not yet written on this connection
	retransmit bool             // next flush resends every unacked reading first
	ready      []*device        // blocked devices that got acks since the last tick
	nextG      int64            // global schedule index up to which devices were visited

	dupRng *rand.Rand // DuplicateFrames choices, deterministic per seed
	frame  vppv1.Frame
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
	for {
		mt, data, err := ws.ReadMessage()
		if err != nil {
			errc <- fmt.Errorf("read: %w", err)
			return
		}
		var dl vppv1.Downlink
		if mt != websocket.BinaryMessage {
			err = fmt.Errorf("unexpected message type %d", mt)
		} else if err = proto.Unmarshal(data, &dl); err != nil {
			err = fmt.Errorf("decode downlink: %w", err)
		}
		if err != nil {
			c.s.errs.Add(1)
			if !warned {
				c.log.Warn("bad downlink message ignored (further ones on this connection are not logged)", "err", err)
				warned = true
			}
			continue
		}
		if ack := dl.GetAck(); ack != nil {
			c.applyAck(ack)
		}
	}
}

// applyAck forgets the readings the ack covers and wakes devices that were
// held back by backpressure.
func (c *conn) applyAck(ack *vppv1.Ack) {
	var n int64
	c.mu.Lock()
	for _, da := range ack.GetDevices() {
		i, ok := c.s.index[da.GetDeviceId()]
		if !ok || i%len(c.s.conns) != c.id {
			continue
		}
		d := c.devs[i/len(c.s.conns)]
		seq := min(da.GetAckedSeq(), d.gen)
		if seq <= d.acked {
			continue
		}
		k := int(seq - d.acked)
		clear(d.queue[:k])
		d.queue = d.queue[k:]
		if len(d.queue) == 0 {
			d.queue = nil
		}
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
	ts := now.UnixMilli()
	var n int64
	c.mu.Lock()
	defer func() {
		c.mu.Unlock()
		c.s.generated.Add(n)
	}()
	for _, d := range c.ready {
		n += c.catchUp(d, g, ts)
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
		n += c.catchUp(c.devs[j/C], g, ts)
		x = round*D + j + 1
	}
	c.nextG = max(c.nextG, g)
}

// catchUp generates device d's readings due when the fleet has g due, as
// far as its queue has room; a device left behind is marked blocked until an
// ack arrives. It returns the number of readings generated. c.mu is held.
func (c *conn) catchUp(d *device, g int64, ts int64) int64 {
	var n int64
	due := c.s.due(d.idx, g)
	for d.gen < due {
		if len(d.queue) >= c.s.cfg.MaxInFlight {
			d.blocked = true
			break
		}
		r := c.s.reading(d, ts)
		d.queue = append(d.queue, r)
		d.last = r
		c.outbox = append(c.outbox, r)
		n++
	}
	return n
}

// reading generates device d's next reading with timestamp ts.
func (s *Sim) reading(d *device, ts int64) *vppv1.Reading {
	// This reading's place in the global schedule gives its simulated time.
	g := int64(d.gen)*int64(s.cfg.Devices) + int64(d.idx)
	simSec := float64(g) / s.cfg.Rate * s.cfg.TimeScale
	h := math.Mod(s.startSecOfDay+simSec, 86400) / 3600
	d.gen++
	r := &vppv1.Reading{
		DeviceId:     d.id,
		SiteId:       d.site,
		SubstationId: d.substation,
		RegionId:     d.region,
		Seq:          d.gen,
		TsMs:         ts,
	}
	d.bat.step(s.dt, h, r)
	return r
}

// flush writes what is pending: after a reconnect every unacked reading in
// seq order, otherwise the readings generated since the last flush.
func (c *conn) flush(ws *websocket.Conn) error {
	c.mu.Lock()
	var out []*vppv1.Reading
	if c.retransmit {
		for _, d := range c.devs {
			out = append(out, d.queue...)
		}
		// Readings generated while disconnected are in the queues too.
		var fresh int
		for _, r := range c.outbox {
			if r.Seq > c.devs[c.s.index[r.DeviceId]/len(c.s.conns)].acked {
				fresh++
			}
		}
		c.s.retransmitted.Add(int64(len(out) - fresh))
		clear(c.outbox)
		c.outbox = c.outbox[:0]
		c.retransmit = false
	} else {
		out = c.outbox
		c.outbox = make([]*vppv1.Reading, 0, cap(out))
	}
	c.mu.Unlock()

	// Readings are immutable once generated; marshal outside the lock.
	for len(out) > 0 {
		k := min(len(out), MaxFrameReadings)
		c.frame.Readings = out[:k]
		b, err := proto.Marshal(&c.frame)
		if err != nil {
			return fmt.Errorf("marshal frame: %w", err)
		}
		copies := 1
		if c.s.cfg.DuplicateFrames > 0 && c.dupRng.Float64() < c.s.cfg.DuplicateFrames {
			copies = 2
		}
		for range copies {
			if err := ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
				return fmt.Errorf("write: %w", err)
			}
			c.s.frames.Add(1)
		}
		if copies == 2 {
			c.s.dupFrames.Add(1)
		}
		out = out[k:]
	}
	c.frame.Readings = nil
	return nil
}
