package ingest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/proto/vppv1"
)

// fleetConns is how many gateway connections the fleet benchmarks spread
// their devices over: vpp sim's default (DefaultMaxConns).
const fleetConns = 256

// fleetFrameReadings is the readings of one frame in the fleet benchmarks.
const fleetFrameReadings = 100

// fleetBench is a server with fleetConns connections carrying a fleet of
// devices, as vpp sim spreads them: device i on connection i mod
// fleetConns, at site i/100. Every frame names the next
// fleetFrameReadings devices of its connection, so a pass over the fleet
// reads every device once, as a fleet whose devices each report every
// few seconds does.
type fleetBench struct {
	s       *Server
	conns   []*conn
	devices int
	// frame is a template frame whose device and site IDs next patches.
	frame []byte
	// devAt and siteAt are the offsets of the digits of each reading's
	// device and site ID in frame.
	devAt, siteAt []int
	// next is the next device index of each connection.
	next []int
	turn int
}

const (
	fleetDevDigits  = 7
	fleetSiteDigits = 6
)

func newFleetBench(tb testing.TB, devices int) *fleetBench {
	tb.Helper()
	s, err := New(Config{
		Kafka:    kafka.Options{Prefix: "bench."},
		Insecure: true,
		// The default rate limit: it runs, and limits no device of the
		// fleet, which reads once per pass.
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, &fakePub{})
	if err != nil {
		tb.Fatal(err)
	}
	fb := &fleetBench{s: s, devices: devices, next: make([]int, fleetConns)}
	for i := range fleetConns {
		fb.conns = append(fb.conns, newConn(s, nil, fmt.Sprintf("192.0.2.1:%d", 1000+i), nil))
		fb.next[i] = i
	}
	nowMS := time.Now().UnixMilli()
	rs := make([]*vppv1.Reading, fleetFrameReadings)
	for i := range rs {
		rs[i] = &vppv1.Reading{
			DeviceId:     fmt.Sprintf("dev-%0*d", fleetDevDigits, 9000000+i),
			SiteId:       fmt.Sprintf("site-%0*d", fleetSiteDigits, 900000+i),
			SubstationId: "sub-1", RegionId: "north",
			Seq: 1, TsMs: nowMS,
			SocPct: 50, SohPct: 98, PowerKw: 2.5, VoltageV: 400, CurrentA: 6, TemperatureC: 25,
			CapacityKwh: 13.5, MaxChargeKw: 5, MaxDischargeKw: 5, Mode: vppv1.Mode_MODE_DISCHARGING,
		}
	}
	fb.frame = marshalFrame(tb, rs...)
	for _, r := range rs {
		fb.devAt = append(fb.devAt, bytes.Index(fb.frame, []byte(r.DeviceId))+len("dev-"))
		fb.siteAt = append(fb.siteAt, bytes.Index(fb.frame, []byte(r.SiteId))+len("site-"))
	}
	return fb
}

// putDigits writes v's last n decimal digits at b.
func putDigits(b []byte, v, n int) {
	for i := n - 1; i >= 0; i-- {
		b[i] = byte('0' + v%10)
		v /= 10
	}
}

// step reads the next frame on the next connection, settles its records
// as Kafka's acknowledgement would and collects the connection's acks.
func (fb *fleetBench) step(ctx context.Context, tb testing.TB, acks *ackMsgs) {
	ci := fb.turn % fleetConns
	fb.turn++
	c := fb.conns[ci]
	for r := range fleetFrameReadings {
		d := fb.next[ci]
		if fb.next[ci] += fleetConns; fb.next[ci] >= fb.devices {
			fb.next[ci] = ci
		}
		putDigits(fb.frame[fb.devAt[r]:], d, fleetDevDigits)
		putDigits(fb.frame[fb.siteAt[r]:], d/100, fleetSiteDigits)
	}
	benchFrame(ctx, tb, fb.s, c, fb.frame, fleetFrameReadings, fb.s.buf.Ack)
	acks.reset()
	c.acks.collect(acks)
}

// BenchmarkIngestFleet measures BenchmarkIngestPath/valid+acks's path
// (decode, validation, rate limit, setpoint holders, records, buffer, ack
// tracker) on the connections of a fleet of 20,000 and of 1,000,000
// devices (see fleetBench), after two passes over the fleet (so that
// every table is as full as it gets): ns/reading must not grow with the
// fleet (the ratio of the two is the check), nor allocations, nor the heap
// the server keeps (B/device: live heap after the passes per device of
// the fleet). Run it with -benchtime=20000x or more: a million devices'
// connections read 10,000 frames a pass, and a table that a fleet
// outgrows shows in all of them.
func BenchmarkIngestFleet(b *testing.B) {
	for _, devices := range []int{20_000, 1_000_000} {
		// Made once for the calls of the sub-benchmark: a pass over a
		// million devices takes seconds.
		var fb *fleetBench
		var held uint64
		b.Run(fmt.Sprintf("devices=%d", devices), func(b *testing.B) {
			ctx := context.Background()
			var acks ackMsgs
			if fb == nil {
				before := heapInUse()
				fb = newFleetBench(b, devices)
				for range 2 * devices / fleetFrameReadings {
					fb.step(ctx, b, &acks)
				}
				held = heapInUse() - before
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				fb.step(ctx, b, &acks)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*fleetFrameReadings), "ns/reading")
			b.ReportMetric(float64(held)/float64(devices), "B/device")
		})
	}
}

// heapInUse is the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestRateTableFleet: a device in debt stays limited while a fleet of
// 20,000 devices within their rates (or a sender of as many made-up IDs)
// passes through a rate table of 1,024 buckets: the buckets given up for
// them are those closest to full, never the debtor's, so it cannot shed
// its debt by sending under other IDs.
func TestRateTableFleet(t *testing.T) {
	s, err := New(Config{
		Kafka: kafka.Options{Prefix: "test."}, Insecure: true,
		DeviceRate: 1, DeviceBurst: 5, DeviceRateTable: 1024,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, &fakePub{})
	if err != nil {
		t.Fatal(err)
	}
	c := newConn(s, nil, "192.0.2.1:1", nil)
	nowMS := time.Now().UnixMilli()
	frame := func(rs ...*vppv1.Reading) {
		for _, r := range rs {
			r.TsMs = nowMS
		}
		if _, stop := c.handleFrame(marshalFrame(t, rs...)); stop {
			t.Fatal("handleFrame stopped the connection")
		}
		for range rs {
			r, err := s.buf.Next(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			s.buf.Ack(r)
		}
		var acks ackMsgs
		c.acks.collect(&acks)
	}
	greedy := make([]*vppv1.Reading, 10)
	for i := range greedy {
		greedy[i] = validReadingOf("greedy", "site-g", uint64(i+1))
	}
	frame(greedy...) // 5 over the burst: 5 s of debt
	if c.throttle < 4*time.Second {
		t.Fatalf("greedy over its burst: throttle %v", c.throttle)
	}
	c.throttle = 0
	for i := range 20_000 / fleetFrameReadings {
		rs := make([]*vppv1.Reading, fleetFrameReadings)
		for j := range rs {
			d := i*fleetFrameReadings + j
			rs[j] = validReadingOf(fmt.Sprintf("dev-%d", d), fmt.Sprintf("site-%d", d/100), 1)
		}
		frame(rs...)
	}
	if c.throttle != 0 {
		t.Fatalf("a device within its rate waits %v", c.throttle)
	}
	frame(validReadingOf("greedy", "site-g", 11))
	if c.throttle < 4*time.Second {
		t.Fatalf("greedy after the fleet passed: throttle %v, want its debt (5 s)", c.throttle)
	}
}

// validReadingOf is a valid reading of device at site.
func validReadingOf(device, site string, seq uint64) *vppv1.Reading {
	return &vppv1.Reading{
		DeviceId: device, SiteId: site, SubstationId: "sub-1", RegionId: "north", Seq: seq,
		SocPct: 50, SohPct: 98, PowerKw: 2.5, VoltageV: 400, CurrentA: 6, TemperatureC: 25,
		CapacityKwh: 13.5, MaxChargeKw: 5, MaxDischargeKw: 5, Mode: vppv1.Mode_MODE_DISCHARGING,
	}
}

// TestDecodeGatewayOfManySites: a gateway of maxInterned devices, each at
// a site of its own (as vpp sim's gateways are), is interned whole: its sites do not push its devices out of the table, so
// its next readings find their entries instead of starting the table over
// and meeting (holding, hashing) every device anew.
func TestDecodeGatewayOfManySites(t *testing.T) {
	d := newDecoder(fleetFrameReadings, DefaultLimits())
	met := 0
	d.met = func(string, uint64) { met++ }
	now := testNow.UnixMilli()
	entries := make(map[string]*devEntry)
	for pass := range 2 {
		for i := 0; i < maxInterned; i += fleetFrameReadings {
			var rs []*vppv1.Reading
			for j := i; j < min(i+fleetFrameReadings, maxInterned); j++ {
				r := validReading()
				r.DeviceId, r.SiteId = fmt.Sprintf("dev-%d", j), fmt.Sprintf("site-%d", j)
				rs = append(rs, r)
			}
			out, err := d.decode(marshalFrame(t, rs...), now)
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range out {
				if it.dev == nil {
					t.Fatalf("pass %d: %s not interned", pass, it.device)
				}
				if e, ok := entries[it.device]; ok && e != it.dev {
					t.Fatalf("pass %d: %s has a new entry", pass, it.device)
				}
				entries[it.device] = it.dev
			}
		}
	}
	if met != maxInterned {
		t.Fatalf("%d devices met in two passes over %d", met, maxInterned)
	}
}

// TestHoldersFollowConnections: a device is held by the connection that
// last carried it; a connection's end releases what it still holds (and
// its slot, which the next connection reuses), not what another took.
func TestHoldersFollowConnections(t *testing.T) {
	s, err := New(Config{Kafka: kafka.Options{Prefix: "test."}, Insecure: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, &fakePub{})
	if err != nil {
		t.Fatal(err)
	}
	a, b := newConn(s, nil, "192.0.2.1:1", nil), newConn(s, nil, "192.0.2.1:2", nil)
	read := func(c *conn, devs ...string) {
		var rs []*vppv1.Reading
		for _, d := range devs {
			r := validReadingOf(d, "site", 1)
			r.TsMs = time.Now().UnixMilli()
			rs = append(rs, r)
		}
		if _, err := c.dec.decode(marshalFrame(t, rs...), time.Now().UnixMilli()); err != nil {
			t.Fatal(err)
		}
	}
	heldBy := func(dev string) *conn { c, _ := s.heldBy(dev); return c }
	read(a, "d1", "d2")
	read(b, "d2", "d3")
	if heldBy("d1") != a || heldBy("d2") != b || heldBy("d3") != b {
		t.Fatal("holders do not follow the last connection")
	}
	a.releaseHeld()
	if heldBy("d1") != nil || heldBy("d2") != b {
		t.Fatal("a's end released the wrong devices")
	}
	c := newConn(s, nil, "192.0.2.1:3", nil)
	read(c, "d4")
	if heldBy("d4") != c || c.slot != 1 || heldBy("d1") != nil {
		t.Fatalf("slot %d: a's slot not reused cleanly", c.slot)
	}
	b.releaseHeld()
	c.releaseHeld()
	if n := s.holders.len(); n != 0 {
		t.Fatalf("%d devices held after every connection ended", n)
	}
}

// TestHoldersBoundedPerConnection: a connection that keeps sending new
// device IDs (made up, or a gateway whose devices come and go) holds at
// most maxHeldPerConn of them, the latest; the table does not grow with
// the IDs it has seen.
func TestHoldersBoundedPerConnection(t *testing.T) {
	s, err := New(Config{Kafka: kafka.Options{Prefix: "test."}, Insecure: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, &fakePub{})
	if err != nil {
		t.Fatal(err)
	}
	c := newConn(s, nil, "192.0.2.1:1", nil)
	const seen = maxHeldPerConn + 1000
	for i := range seen {
		id := fmt.Sprintf("dev-%d", i)
		c.hold(id, s.idHash(id))
	}
	if n := s.holders.len(); n != maxHeldPerConn || len(c.held) != maxHeldPerConn {
		t.Fatalf("%d devices held (%d in the connection's list) after %d seen, want %d", n, len(c.held), seen, maxHeldPerConn)
	}
	if _, ok := s.heldBy("dev-0"); ok {
		t.Fatal("the oldest device still held")
	}
	if h, ok := s.heldBy(fmt.Sprintf("dev-%d", seen-1)); !ok || h != c {
		t.Fatal("the latest device not held")
	}
	c.releaseHeld()
	if n := s.holders.len(); n != 0 {
		t.Fatalf("%d held after the connection ended", n)
	}
}

// TestDecodeGatewayBeyondTheTable: a gateway cycling through twice as many
// devices as a decoder interns keeps the entries of the first maxInterned
// (its readings of them hit, pass after pass) instead of starting the
// tables over at every window of misses, which would allocate entries
// anew for ever; a connection whose devices all changed gets a fresh
// table for them.
func TestDecodeGatewayBeyondTheTable(t *testing.T) {
	d := newDecoder(fleetFrameReadings, DefaultLimits())
	now := testNow.UnixMilli()
	entries := make(map[*devEntry]bool)
	pass := func(from, n int) (hits int) {
		for i := from; i < from+n; i += fleetFrameReadings {
			var rs []*vppv1.Reading
			for j := i; j < min(i+fleetFrameReadings, from+n); j++ {
				r := validReading()
				r.DeviceId = fmt.Sprintf("dev-%d", j)
				rs = append(rs, r)
			}
			out, err := d.decode(marshalFrame(t, rs...), now)
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range out {
				if it.dev != nil {
					if entries[it.dev] {
						hits++
					}
					entries[it.dev] = true
				}
			}
		}
		return hits
	}
	for range 4 {
		pass(0, 2*maxInterned)
	}
	if len(entries) != maxInterned {
		t.Fatalf("%d device entries made for a gateway of %d cycling 4 times, want %d", len(entries), 2*maxInterned, maxInterned)
	}
	// All new devices: after 4·maxInterned misses without a hit, the
	// table follows them.
	hits := 0
	for range 6 {
		hits = pass(1_000_000, 2*maxInterned)
	}
	if hits == 0 {
		t.Fatal("the table did not follow a connection whose devices all changed")
	}
}
