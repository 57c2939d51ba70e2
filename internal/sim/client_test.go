package sim

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/proto"

	"github.com/vppctl/vpp/proto/vppv1"
)

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// server is a minimal ingest: it decodes frames, records every reading and
// acks the highest contiguous seq per device after each frame.
type server struct {
	t  *testing.T
	ts *httptest.Server

	// dropAfter, when > 0, closes each of the first dropConns connections
	// after it received that many frames, acking nothing of the last
	// withhold frames before it goes.
	dropAfter, dropConns, withhold int
	// stall, when > 0, makes each of the first dropConns connections ack
	// nothing and close after that long.
	stall  time.Duration
	noAcks bool

	mu       sync.Mutex
	conns    int
	received int                        // readings received, duplicates included
	seen     map[string]map[uint64]bool // device → seqs received
	last     map[string]*vppv1.Reading  // device → reading with the highest seq
	contig   map[string]uint64          // device → highest contiguous seq
	errs     []string
}

func newServer(t *testing.T, configure func(*server)) *server {
	srv := &server{
		t:      t,
		seen:   map[string]map[uint64]bool{},
		last:   map[string]*vppv1.Reading{},
		contig: map[string]uint64{},
	}
	if configure != nil {
		configure(srv)
	}
	up := websocket.Upgrader{}
	srv.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/telemetry" {
			http.NotFound(w, r)
			return
		}
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		srv.mu.Lock()
		srv.conns++
		connNo := srv.conns
		srv.mu.Unlock()
		stalled := srv.stall > 0 && connNo <= srv.dropConns
		if stalled {
			time.AfterFunc(srv.stall, func() { ws.Close() })
		}
		frames := 0
		for {
			mt, data, err := ws.ReadMessage()
			if err != nil {
				return
			}
			frames++
			if mt != websocket.BinaryMessage {
				srv.fail("text message")
				return
			}
			var f vppv1.Frame
			if err := proto.Unmarshal(data, &f); err != nil {
				srv.fail("decode: " + err.Error())
				return
			}
			dropping := srv.dropAfter > 0 && connNo <= srv.dropConns
			ack := srv.record(&f)
			if dropping && frames > srv.dropAfter-srv.withhold {
				ack = nil // withheld
			}
			if dropping && frames >= srv.dropAfter {
				_ = ws.WriteControl(websocket.CloseMessage,
					websocket.FormatCloseMessage(websocket.CloseGoingAway, "test drop"), time.Now().Add(time.Second))
				return
			}
			if ack != nil && !srv.noAcks && !stalled {
				b, _ := proto.Marshal(&vppv1.Downlink{Body: &vppv1.Downlink_Ack{Ack: ack}})
				if err := ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
					return
				}
			}
		}
	}))
	t.Cleanup(srv.ts.Close)
	return srv
}

func (srv *server) url() string {
	return "ws" + strings.TrimPrefix(srv.ts.URL, "http") + "/v1/telemetry"
}

func (srv *server) fail(msg string) {
	srv.mu.Lock()
	srv.errs = append(srv.errs, msg)
	srv.mu.Unlock()
}

// record stores f's readings and returns the ack for the devices in it.
func (srv *server) record(f *vppv1.Frame) *vppv1.Ack {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	ack := &vppv1.Ack{}
	touched := map[string]bool{}
	for _, r := range f.Readings {
		srv.received++
		id := r.DeviceId
		if r.SiteId == "" || r.SubstationId == "" || r.RegionId == "" || r.Seq == 0 || r.Mode == vppv1.Mode_MODE_UNSPECIFIED {
			srv.errs = append(srv.errs, "invalid reading")
		}
		if srv.seen[id] == nil {
			srv.seen[id] = map[uint64]bool{}
		}
		srv.seen[id][r.Seq] = true
		if l := srv.last[id]; l == nil || r.Seq > l.Seq {
			srv.last[id] = r
		} else if r.Seq == l.Seq && !proto.Equal(r, l) {
			srv.errs = append(srv.errs, "retransmitted reading differs")
		}
		for srv.seen[id][srv.contig[id]+1] {
			srv.contig[id]++
		}
		if !touched[id] {
			touched[id] = true
			defer func() {
				ack.Devices = append(ack.Devices, &vppv1.DeviceAck{DeviceId: id, AckedSeq: srv.contig[id]})
			}()
		}
	}
	return ack
}

// check asserts that the server received, per device, exactly seqs 1..n
// with Σn = total, and that truth equals the sum over the last readings the
// server received.
func (srv *server) check(t *testing.T, truth Truth, total int64) {
	t.Helper()
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.errs) > 0 {
		t.Fatalf("server errors: %v", srv.errs[:min(5, len(srv.errs))])
	}
	var sum int64
	var want FleetTruth
	for id, seqs := range srv.seen {
		n := uint64(len(seqs))
		for s := uint64(1); s <= n; s++ {
			if !seqs[s] {
				t.Fatalf("device %s: seq %d missing of %d", id, s, n)
			}
		}
		sum += int64(n)
		r := srv.last[id]
		want.Devices++
		want.PowerKW += r.PowerKw
		want.EnergyKWh += r.SocPct / 100 * r.CapacityKwh
		want.CapacityKWh += r.CapacityKwh
	}
	if sum != total {
		t.Fatalf("server got %d distinct readings, want %d", sum, total)
	}
	if truth.ReadingsSent != total || truth.Devices != want.Devices || truth.Fleet.Devices != want.Devices {
		t.Fatalf("truth %+v, want %d readings from %d devices", truth, total, want.Devices)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }
	if !near(truth.Fleet.PowerKW, want.PowerKW) || !near(truth.Fleet.EnergyKWh, want.EnergyKWh) || !near(truth.Fleet.CapacityKWh, want.CapacityKWh) {
		t.Fatalf("truth fleet %+v, server's last readings sum to %+v", truth.Fleet, want)
	}
}

func baseConfig(url string) Config {
	return Config{
		URL:           url,
		Devices:       50,
		Rate:          20000,
		Conns:         4,
		Seed:          1,
		FrameInterval: 5 * time.Millisecond,
		DrainTimeout:  10 * time.Second,
		Logger:        discard(),
	}
}

func runSim(t *testing.T, cfg Config) (*Sim, error) {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	return s, s.Run(ctx)
}

func TestRunDeliversExactlyCount(t *testing.T) {
	srv := newServer(t, nil)
	cfg := baseConfig(srv.url())
	cfg.Devices = 7 // Count is not a multiple of Devices
	cfg.Conns = 3
	cfg.Count = 1000
	cfg.Rate = 5000
	s, err := runSim(t, cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	srv.check(t, s.Truth(), 1000)
	st := s.Stats()
	if st.Sent != 1000 || st.Acked != 1000 || st.InFlight != 0 || st.Reconnects != 0 || st.Errors != 0 {
		t.Fatalf("stats %+v", st)
	}
	// 1000 = 7·142 + 6: the first six devices sent 143, the last one 142.
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for i := range 7 {
		want := 142
		if i < 6 {
			want = 143
		}
		if got := len(srv.seen[DeviceID(i)]); got != want {
			t.Errorf("device %d sent %d readings, want %d", i, got, want)
		}
	}
}

func TestRunReconnectsAndRetransmits(t *testing.T) {
	srv := newServer(t, func(s *server) {
		s.dropAfter, s.dropConns, s.withhold = 20, 6, 5
	})
	cfg := baseConfig(srv.url())
	cfg.Count = 20000
	s, err := runSim(t, cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	srv.check(t, s.Truth(), 20000)
	st := s.Stats()
	if st.Reconnects < 1 || st.Retransmitted < 1 || st.Acked != 20000 {
		t.Fatalf("stats %+v: want reconnects and retransmits, all acked", st)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.received <= 20000 {
		t.Fatalf("server received %d readings, want retransmitted ones beyond 20000", srv.received)
	}
}

func TestRunDuplicateFramesLeaveTruthUnchanged(t *testing.T) {
	srv := newServer(t, nil)
	cfg := baseConfig(srv.url())
	cfg.Count = 5000
	cfg.DuplicateFrames = 0.5
	s, err := runSim(t, cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	srv.check(t, s.Truth(), 5000)
	st := s.Stats()
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if st.DuplicateFrames == 0 || srv.received <= 5000 {
		t.Fatalf("no duplicates: stats %+v, server received %d", st, srv.received)
	}
	if st.Reconnects != 0 || st.Retransmitted != 0 {
		t.Fatalf("duplicates without reconnects expected: %+v", st)
	}
}

func TestRunUnackedIsAnError(t *testing.T) {
	srv := newServer(t, func(s *server) { s.noAcks = true })
	cfg := baseConfig(srv.url())
	cfg.Count = 100
	cfg.DrainTimeout = 200 * time.Millisecond
	s, err := runSim(t, cfg)
	if !errors.Is(err, ErrUnacked) {
		t.Fatalf("Run: %v, want ErrUnacked", err)
	}
	if tr := s.Truth(); tr.ReadingsSent != 100 || tr.ReadingsAcked != 0 {
		t.Fatalf("truth %+v", tr)
	}
}

func TestRunBackpressureBoundsInFlight(t *testing.T) {
	srv := newServer(t, func(s *server) { s.noAcks = true })
	cfg := baseConfig(srv.url())
	cfg.Devices = 10
	cfg.Rate = 10000
	cfg.MaxInFlight = 5
	cfg.Duration = 300 * time.Millisecond
	cfg.DrainTimeout = 100 * time.Millisecond
	s, err := runSim(t, cfg)
	if !errors.Is(err, ErrUnacked) {
		t.Fatalf("Run: %v, want ErrUnacked", err)
	}
	if st := s.Stats(); st.Sent != 50 || st.InFlight != 50 {
		t.Fatalf("stats %+v: want 10 devices × 5 in flight, generation paused", st)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for id, seqs := range srv.seen {
		if len(seqs) != 5 || !seqs[5] {
			t.Fatalf("device %s sent seqs %v, want 1..5", id, seqs)
		}
	}
}

func TestRunBackpressureResumesAfterAcks(t *testing.T) {
	// The first connections withhold acks and drop; devices pause at
	// MaxInFlight, then catch up so that Count is still reached exactly.
	srv := newServer(t, func(s *server) {
		s.stall, s.dropConns = 50*time.Millisecond, 4
	})
	cfg := baseConfig(srv.url())
	cfg.Devices = 8
	cfg.Conns = 2
	cfg.MaxInFlight = 3
	cfg.Count = 400
	s, err := runSim(t, cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	srv.check(t, s.Truth(), 400)
}

func TestRunCancel(t *testing.T) {
	srv := newServer(t, nil)
	cfg := baseConfig(srv.url())
	cfg.Rate = 2000
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	err = s.Run(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run: %v, want the context's error", err)
	}
	tr := s.Truth()
	if tr.ReadingsSent == 0 || tr.ReadingsAcked != tr.ReadingsSent {
		t.Fatalf("truth %+v: want readings, all drained", tr)
	}
	srv.check(t, tr, tr.ReadingsSent)
}

func TestRunDialFailureRetries(t *testing.T) {
	srv := newServer(t, nil)
	cfg := baseConfig(srv.url())
	srv.ts.Close() // nothing listens
	cfg.Count = 10
	cfg.DrainTimeout = 300 * time.Millisecond
	s, err := runSim(t, cfg)
	if !errors.Is(err, ErrUnacked) {
		t.Fatalf("Run: %v, want ErrUnacked", err)
	}
	if st := s.Stats(); st.Errors < int64(cfg.Conns) {
		t.Fatalf("stats %+v: want dial errors counted", st)
	}
}

func TestNewValidates(t *testing.T) {
	good := baseConfig("ws://127.0.0.1:1/v1/telemetry")
	for name, mutate := range map[string]func(*Config){
		"scheme":     func(c *Config) { c.URL = "http://x/v1/telemetry" },
		"devices":    func(c *Config) { c.Devices = 0 },
		"rate":       func(c *Config) { c.Rate = 0 },
		"rate NaN":   func(c *Config) { c.Rate = math.NaN() },
		"count":      func(c *Config) { c.Count = -1 },
		"conns":      func(c *Config) { c.Conns = -1 },
		"regions":    func(c *Config) { c.Regions = -1 },
		"time scale": func(c *Config) { c.TimeScale = -1 },
		"duplicates": func(c *Config) { c.DuplicateFrames = 1.5 },
		"in flight":  func(c *Config) { c.MaxInFlight = -1 },
	} {
		c := good
		mutate(&c)
		if _, err := New(c); err == nil {
			t.Errorf("%s: New accepted %+v", name, c)
		}
	}
	s, err := New(Config{URL: good.URL, Devices: 1000, Rate: 10})
	if err != nil {
		t.Fatal(err)
	}
	c := s.Config()
	if c.Conns != 256 || c.Regions != 4 || c.SubstationsPerRegion != 5 || c.SitesPerSubstation != 25 ||
		c.TimeScale != 60 || c.MaxInFlight != 1024 || c.FrameInterval != 50*time.Millisecond || c.Start.IsZero() {
		t.Fatalf("defaults not applied: %+v", c)
	}
	if s, _ := New(Config{URL: good.URL, Devices: 3, Rate: 10, Conns: 8}); s.Config().Conns != 3 {
		t.Fatalf("conns not capped at devices: %d", s.Config().Conns)
	}
}

func TestScheduleSplitsExactly(t *testing.T) {
	s, err := New(Config{URL: "ws://x/", Devices: 13, Rate: 1, Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int64{0, 1, 12, 13, 14, 1000, 1001} {
		var sum uint64
		for i := range 13 {
			sum += s.due(i, n)
		}
		if sum != uint64(n) {
			t.Fatalf("due over devices for %d sums to %d", n, sum)
		}
	}
}

func TestTruthWriteFile(t *testing.T) {
	tr := Truth{ReadingsSent: 3, ReadingsAcked: 2, Devices: 1, Fleet: FleetTruth{Devices: 1, PowerKW: -1.5, EnergyKWh: 4, CapacityKWh: 10}}
	path := filepath.Join(t.TempDir(), "truth.json")
	if err := tr.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got Truth
	if err := json.Unmarshal(b, &got); err != nil || got != tr {
		t.Fatalf("read back %+v (%v), want %+v", got, err, tr)
	}
	if !strings.Contains(string(b), `"power_kw": -1.5`) {
		t.Fatalf("json field names: %s", b)
	}
}
