package ingest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/proto"

	"github.com/vppctl/vpp/internal/auth"
	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/internal/kafka/kafkatest"
	"github.com/vppctl/vpp/internal/sim"
	"github.com/vppctl/vpp/proto/vppv1"
)

// hostileSite is the site the hostile client's token covers.
const hostileSite = "hostile-site"

// logBuffer is a goroutine-safe log sink.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// vmRSS returns this process's resident set size in KiB.
func vmRSS(t testing.TB) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	return -1
}

// dialTok opens a WebSocket with a bearer token from local (nil: any).
// dialReset dials like dialTok from local, with sockets that reset on close
// (SO_LINGER 0) instead of lingering in TIME_WAIT.
func dialReset(url, tok string, local net.Addr) (*websocket.Conn, *http.Response, error) {
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	d.NetDial = func(network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{LocalAddr: local, Timeout: 10 * time.Second}).Dial(network, addr)
		if err != nil {
			return nil, err
		}
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		return c, nil
	}
	return d.Dial(url, http.Header{"Authorization": {"Bearer " + tok}})
}

func dialTok(t testing.TB, url, tok string, local net.Addr) (*websocket.Conn, *http.Response, error) {
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	if local != nil {
		d.NetDial = func(network, addr string) (net.Conn, error) {
			return (&net.Dialer{LocalAddr: local, Timeout: 5 * time.Second}).Dial(network, addr)
		}
	}
	var h http.Header
	if tok != "" {
		h = http.Header{"Authorization": {"Bearer " + tok}}
	}
	return d.Dial(url, h)
}

// hostileReading is a valid reading of dev at the hostile site.
func hostileReading(dev string, seq uint64) *vppv1.Reading { return reading(dev, hostileSite, seq) }

// TestHostileClients runs a real ingest on 127.0.0.1 against Kafka (the
// embedded broker, or VPP_TEST_BROKERS) with device tokens and tight
// limits, throws bad input and abusive clients at it one case at a time,
// and checks each outcome (close code, HTTP status, rejection reason) and
// its counter, while a well-behaved simulator on other connections gets
// every reading acked and the totals stay exact.
func TestHostileClients(t *testing.T) {
	if testing.Short() {
		t.Skip("embedded broker")
	}
	opts := kafkatest.Options(t, 3)
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	key, err := auth.NewHMACKey(secret)
	if err != nil {
		t.Fatal(err)
	}
	const (
		idle       = 3 * time.Second
		perIP      = 100
		floodConns = 10_000
		burst      = 50
		maxFrame   = 256 << 10
	)
	logs := &logBuffer{}
	srv := startServer(t, Config{
		Kafka:               opts,
		Auth:                auth.NewVerifier(key, auth.VerifierOptions{}),
		MaxFrameBytes:       maxFrame,
		MaxReadingsPerFrame: 1000,
		MaxConnsPerIP:       perIP,
		ReadIdleTimeout:     idle,
		DeviceRate:          100,
		DeviceBurst:         burst,
		Logger:              slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}, nil)

	// The well-behaved simulator: 20 devices on 4 sites over 2
	// connections, 20 readings/s each, tokens minted per connection.
	const simCount = 2400
	s, err := sim.New(sim.Config{
		URL: srv.url, TokenFunc: auth.SiteMinter(key, "sim", time.Hour),
		Devices: 20, Rate: 400, Count: simCount, Conns: 2, Seed: 9,
		Regions: 1, SubstationsPerRegion: 1, SitesPerSubstation: 4,
		DrainTimeout: 30 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	simDone := make(chan error, 1)
	go func() { simDone <- s.Run(ctx) }()

	hostileTok, err := auth.Issue(key, auth.Claims{Site: hostileSite}, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	expiredTok, err := auth.Issue(key, auth.Claims{Site: hostileSite}, time.Now().Add(-2*time.Hour), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := auth.NewHMACKey(bytes.Repeat([]byte("x"), 32))
	forgedTok, _ := auth.Issue(other, auth.Claims{Site: hostileSite}, time.Now(), time.Hour)
	const secretMarker = "hunter2-SECRET-MARKER-do-not-log"

	var hostileValid atomic.Uint64 // valid hostile readings: they reach the telemetry topic
	sendFrame := func(t *testing.T, b []byte) *client {
		t.Helper()
		ws, _, err := dialTok(t, srv.url, hostileTok, nil)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		c := wrapClient(t, ws)
		_ = ws.WriteMessage(websocket.BinaryMessage, b)
		return c
	}
	// rejectCase sends one frame of readings; want is the reason of each
	// (or "" for valid); the connection stays open and gets its acks.
	rejectCase := func(ackDev string, ackSeq uint64, rs []*vppv1.Reading, patch func([]byte) []byte) func(t *testing.T) {
		return func(t *testing.T) {
			b := marshalFrame(t, rs...)
			if patch != nil {
				b = patch(b)
			}
			c := sendFrame(t, b)
			if ackDev != "" {
				c.waitAck(ackDev, ackSeq)
			}
		}
	}
	mut := func(dev string, f func(r *vppv1.Reading)) []*vppv1.Reading {
		r := hostileReading(dev, 1)
		f(r)
		return []*vppv1.Reading{r}
	}
	closeCase := func(code int, text string, send func(ws *websocket.Conn)) func(t *testing.T) {
		return func(t *testing.T) {
			ws, _, err := dialTok(t, srv.url, hostileTok, nil)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			c := wrapClient(t, ws)
			start := time.Now()
			send(ws)
			ce := c.waitClose()
			if ce.Code != code || !strings.Contains(ce.Text, text) {
				t.Fatalf("close %d %q, want %d with %q", ce.Code, ce.Text, code, text)
			}
			t.Logf("closed %d %q after %s", ce.Code, ce.Text, time.Since(start).Round(time.Millisecond))
		}
	}
	httpCase := func(status int, tok, bodyHas string) func(t *testing.T) {
		return func(t *testing.T) {
			ws, resp, err := dialTok(t, srv.url, tok, nil)
			if err == nil {
				ws.Close()
				t.Fatal("handshake succeeded")
			}
			if resp == nil || resp.StatusCode != status {
				t.Fatalf("handshake: %v %v, want HTTP %d", err, resp, status)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.Header.Get("WWW-Authenticate") == "" || !strings.Contains(string(body), bodyHas) {
				t.Fatalf("401 without challenge or reason: %q %q", resp.Header.Get("WWW-Authenticate"), body)
			}
		}
	}
	huge := make([]*vppv1.Reading, 100_000)
	for i := range huge {
		huge[i] = &vppv1.Reading{}
	}
	flood := make([]*vppv1.Reading, 200)
	for i := range flood {
		flood[i] = hostileReading("h-flood", uint64(i+1))
	}

	type want struct {
		reason   string // rejected-topic reason and Stats.Rejected key
		rejected uint64 // its increase
		// throttled: a connection paused for the rate limit.
		throttled bool
		code      int    // protocol error close code counted
		refused   string // Stats.Refused key
		idle      bool
	}
	cases := []struct {
		name string
		run  func(t *testing.T)
		want want
	}{
		{"text frame", closeCase(1003, "text", func(ws *websocket.Conn) { _ = ws.WriteMessage(websocket.TextMessage, []byte("hi")) }),
			want{code: 1003}},
		{"garbage bytes", closeCase(1007, "vpp.v1.Frame", func(ws *websocket.Conn) {
			_ = ws.WriteMessage(websocket.BinaryMessage, []byte{0xff, 0xfe, 0xfd, 0x00, 0x13})
		}), want{code: 1007, reason: ReasonFrameUndecodable, rejected: 1}},
		{"truncated protobuf", closeCase(1007, "vpp.v1.Frame", func(ws *websocket.Conn) {
			b := marshalFrame(t, hostileReading("h-trunc", 1), hostileReading("h-trunc", 2))
			_ = ws.WriteMessage(websocket.BinaryMessage, b[:len(b)-7])
		}), want{code: 1007, reason: ReasonFrameUndecodable, rejected: 1}},
		{"frame over the limit", closeCase(1009, "bytes", func(ws *websocket.Conn) {
			_ = ws.WriteMessage(websocket.BinaryMessage, make([]byte, maxFrame+1))
		}), want{code: 1009}},
		{"100k readings in one frame", closeCase(1008, "more than 1000 readings", func(ws *websocket.Conn) {
			_ = ws.WriteMessage(websocket.BinaryMessage, marshalFrame(t, huge...))
		}), want{code: 1008, reason: ReasonFrameTooManyReadings, rejected: 1}},
		{"NaN and Inf", rejectCase("h-nan", 2, []*vppv1.Reading{
			func() *vppv1.Reading { r := hostileReading("h-nan", 1); r.PowerKw = math.NaN(); return r }(),
			func() *vppv1.Reading { r := hostileReading("h-nan", 2); r.TemperatureC = math.Inf(1); return r }(),
		}, nil), want{reason: ReasonNotFinite, rejected: 2}},
		{"SoC 150", rejectCase("h-soc", 1, mut("h-soc", func(r *vppv1.Reading) { r.SocPct = 150 }), nil),
			want{reason: ReasonSoCOutOfRange, rejected: 1}},
		{"negative capacity", rejectCase("h-cap", 1, mut("h-cap", func(r *vppv1.Reading) { r.CapacityKwh = -13.5 }), nil),
			want{reason: ReasonCapacityNotPositive, rejected: 1}},
		{"timestamp a year ahead", rejectCase("h-ts", 1, mut("h-ts", func(r *vppv1.Reading) {
			r.TsMs = time.Now().AddDate(1, 0, 0).UnixMilli()
		}), nil), want{reason: ReasonTSTooFarAhead, rejected: 1}},
		{"empty device ID", rejectCase("", 0, mut("", func(*vppv1.Reading) {}), nil),
			want{reason: ReasonDeviceIDMissing, rejected: 1}},
		{"10 kB device ID", rejectCase("", 0, mut(strings.Repeat("d", 10_000), func(*vppv1.Reading) {}), nil),
			want{reason: ReasonDeviceIDTooLong, rejected: 1}},
		{"invalid UTF-8", rejectCase("", 0, mut("h-utfXX", func(*vppv1.Reading) {}), func(b []byte) []byte {
			return bytes.Replace(b, []byte("h-utfXX"), []byte("h-utf\xff\xfe"), 1)
		}), want{reason: ReasonIDInvalidUTF8, rejected: 1}},
		{"device the token does not cover", func(t *testing.T) {
			// The uncovered reading is rejected, the rest of the frame accepted.
			rejectCase("h-mixed", 2, []*vppv1.Reading{
				hostileReading("h-mixed", 1), reading("stranger", "someone-elses-site", 1), hostileReading("h-mixed", 2),
			}, nil)(t)
			hostileValid.Add(2)
		}, want{reason: ReasonDeviceNotAuthorized, rejected: 1}},
		{"no token", httpCase(401, "", "token required"), want{refused: RefusedTokenMissing}},
		{"expired token", httpCase(401, expiredTok, "expired"), want{refused: RefusedTokenExpired}},
		{"forged token", httpCase(401, forgedTok, "invalid"), want{refused: RefusedTokenInvalid}},
		{"garbage token", httpCase(401, secretMarker, "invalid"), want{refused: RefusedTokenInvalid}},
		{"flood over the rate limit", func(t *testing.T) {
			// Slowed down, not rejected: every reading is acked, and the
			// connection stops reading for the flood's excess.
			before := srv.Stats()
			rejectCase("h-flood", 200, flood, nil)(t)
			hostileValid.Add(200)
			st := srv.Stats()
			if n := st.RejectedTotal() - before.RejectedTotal(); n != 0 {
				t.Errorf("flood of 200 readings, burst %d: %d rejected, want 0", burst, n)
			}
			t.Logf("flood of 200 readings, burst %d: connection paused %v", burst, (st.RateLimitedWait - before.RateLimitedWait).Round(time.Millisecond))
		}, want{throttled: true}},
		{"connection that sends nothing", closeCase(1008, "idle", func(*websocket.Conn) {}),
			want{code: 1008, idle: true}},
		{"idle connections from one address", func(t *testing.T) {
			// 10,000 connections from 127.0.0.2, 32 dialing at a time: perIP
			// are upgraded and held (each sends an empty frame every second,
			// so the idle timeout does not free its slot), the rest get 503
			// before the upgrade. The client resets its sockets on close
			// (linger 0) so 10,000 dials leave no ports in TIME_WAIT.
			local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}
			runtime.GC()
			before := vmRSS(t)
			var (
				mu    sync.Mutex
				open  []*websocket.Conn
				codes = map[int]int{}
				wg    sync.WaitGroup
				keep  sync.WaitGroup
			)
			stop := make(chan struct{})
			hold := func(ws *websocket.Conn) {
				defer keep.Done()
				tk := time.NewTicker(time.Second)
				defer tk.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tk.C:
						if ws.WriteMessage(websocket.BinaryMessage, nil) != nil {
							return
						}
					}
				}
			}
			sem := make(chan struct{}, 32)
			for range floodConns {
				wg.Add(1)
				sem <- struct{}{}
				go func() {
					defer wg.Done()
					defer func() { <-sem }()
					ws, resp, err := dialReset(srv.url, hostileTok, local)
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err == nil:
						open = append(open, ws)
						codes[101]++
						keep.Add(1)
						go hold(ws)
					case resp != nil:
						codes[resp.StatusCode]++
					default:
						codes[-1]++
					}
				}()
			}
			wg.Wait()
			after := vmRSS(t)
			t.Logf("%d connections from 127.0.0.2: %v; VmRSS before %d KiB, with %d open %d KiB (+%d KiB; the test's own clients included)",
				floodConns, codes, before, len(open), after, after-before)
			if codes[101] != perIP || codes[503] != floodConns-perIP {
				t.Errorf("outcomes %v, want %d upgraded and %d × 503", codes, perIP, floodConns-perIP)
			}
			close(stop)
			keep.Wait()
			for _, ws := range open {
				ws.Close()
			}
		}, want{refused: RefusedIPConnLimit}},
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := srv.Stats()
			tc.run(t)
			w := tc.want
			eventually(t, "counters", func() bool {
				st := srv.Stats()
				ok := true
				if w.reason != "" {
					ok = ok && st.Rejected[w.reason]-before.Rejected[w.reason] >= w.rejected
				}
				if w.code != 0 {
					ok = ok && st.ProtocolErrors[w.code] > before.ProtocolErrors[w.code]
				}
				if w.refused != "" {
					ok = ok && st.Refused[w.refused] > before.Refused[w.refused]
				}
				if w.idle {
					ok = ok && st.IdleClosed == before.IdleClosed+1
				}
				if w.throttled {
					ok = ok && st.RateLimitedFrames > before.RateLimitedFrames && st.RateLimitedWait > before.RateLimitedWait
				}
				return ok
			})
			st := srv.Stats()
			if w.reason != "" && st.Rejected[w.reason]-before.Rejected[w.reason] != w.rejected {
				t.Errorf("%s: +%d, want +%d", w.reason, st.Rejected[w.reason]-before.Rejected[w.reason], w.rejected)
			}
			if w.refused == RefusedIPConnLimit && st.Refused[w.refused]-before.Refused[w.refused] != floodConns-perIP {
				t.Errorf("refused %s +%d, want +%d", w.refused, st.Refused[w.refused]-before.Refused[w.refused], floodConns-perIP)
			}
		})
	}

	// The simulator got every reading acked, while all that went on.
	select {
	case err := <-simDone:
		if err != nil {
			t.Fatalf("sim: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("sim did not finish")
	}
	truth := s.Truth()
	if truth.ReadingsSent != simCount || truth.ReadingsAcked != simCount || s.Stats().Reconnects != 0 {
		t.Fatalf("sim sent %d, acked %d (want %d each), reconnects %d", truth.ReadingsSent, truth.ReadingsAcked, simCount, s.Stats().Reconnects)
	}

	// Exact totals: Kafka holds the sim's readings and the valid hostile
	// ones, and every reading received is published or rejected.
	wantPublished := simCount + hostileValid.Load()
	eventually(t, "published", func() bool { return srv.Stats().Published == wantPublished })
	st := srv.Stats()
	frameRejects := st.Rejected[ReasonFrameUndecodable] + st.Rejected[ReasonFrameTooManyReadings]
	if st.Received != st.Published+st.RejectedTotal()-frameRejects {
		t.Errorf("received %d != published %d + rejected readings %d", st.Received, st.Published, st.RejectedTotal()-frameRejects)
	}
	if n := topicRecords(t, opts, opts.Topics().Telemetry()); n != int64(wantPublished) {
		t.Errorf("telemetry topic holds %d records, want %d", n, wantPublished)
	}
	reasons := rejectedReasons(t, opts, st.RejectedTotal())
	for r, n := range st.Rejected {
		if reasons[r] != n {
			t.Errorf("rejected topic has %d × %s, counter %d", reasons[r], r, n)
		}
	}
	t.Logf("stats: received %d published %d rejected %v refused %v protocol errors %v idle closed %d",
		st.Received, st.Published, st.Rejected, st.Refused, st.ProtocolErrors, st.IdleClosed)

	// No secret reaches the log: neither a token nor a garbage bearer value.
	out := logs.String()
	for _, secret := range []string{secretMarker, hostileTok, expiredTok, forgedTok, forgedTok[strings.LastIndex(forgedTok, ".")+1:]} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains a token or secret: %.20s…", secret)
		}
	}
	if !strings.Contains(out, "handshake refused") {
		t.Error("refused handshakes were not logged")
	}
}

// wrapClient is dial's client for a connection opened elsewhere.
func wrapClient(t testing.TB, ws *websocket.Conn) *client {
	c := &client{t: t, ws: ws, acked: map[string]uint64{}, closed: make(chan error, 1)}
	t.Cleanup(func() { ws.Close() })
	go func() {
		for {
			_, b, err := ws.ReadMessage()
			if err != nil {
				c.closed <- err
				return
			}
			var d vppv1.Downlink
			if err := proto.Unmarshal(b, &d); err != nil {
				continue
			}
			c.mu.Lock()
			for _, a := range d.GetAck().GetDevices() {
				c.acked[a.DeviceId] = max(c.acked[a.DeviceId], a.AckedSeq)
			}
			c.mu.Unlock()
		}
	}()
	return c
}

// topicRecords sums the high-water marks of topic's partitions.
func topicRecords(t testing.TB, opts kafka.Options, topic string) int64 {
	t.Helper()
	cl, err := opts.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	parts, err := cl.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, p := range parts {
		hi, err := cl.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		lo, err := cl.GetOffset(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		n += hi - lo
	}
	return n
}

// rejectedReasons reads want records from the rejected topic and counts
// their reason headers.
func rejectedReasons(t testing.TB, opts kafka.Options, want uint64) map[string]uint64 {
	t.Helper()
	topic := opts.Topics().Rejected()
	eventually(t, "rejected records in Kafka", func() bool { return topicRecords(t, opts, topic) == int64(want) })
	cfg, err := opts.SaramaConfig()
	if err != nil {
		t.Fatal(err)
	}
	consumer, err := sarama.NewConsumer(opts.Brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	parts, err := consumer.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, p := range parts {
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		hwm := pc.HighWaterMarkOffset()
		for off := int64(0); off < hwm; off++ {
			select {
			case m := <-pc.Messages():
				for _, h := range m.Headers {
					if string(h.Key) == kafka.HeaderReason {
						out[string(h.Value)]++
					}
				}
			case <-time.After(waitFor):
				t.Fatal(errors.New("rejected topic: read timed out"))
			}
		}
		pc.Close()
	}
	return out
}

// TestAuthQueryToken: a gateway that cannot set headers passes the token
// as ?token=.
func TestAuthQueryToken(t *testing.T) {
	key, _ := auth.NewHMACKey(bytes.Repeat([]byte("k"), 32))
	srv := startServer(t, Config{Auth: auth.NewVerifier(key, auth.VerifierOptions{})}, &fakePub{})
	tok, _ := auth.Issue(key, auth.Claims{Device: "q-dev"}, time.Now(), time.Minute)
	c := dial(t, srv.url+"?token="+tok)
	c.send(reading("q-dev", "any-site", 1), reading("not-mine", "any-site", 1))
	c.waitAck("q-dev", 1)
	eventually(t, "not authorized counted", func() bool { return srv.Stats().Rejected[ReasonDeviceNotAuthorized] == 1 })
}

// TestTokenExpiryClosesConnection: a connection ends (1008) when its token
// expires, so a revoked device is out within one token lifetime.
func TestTokenExpiryClosesConnection(t *testing.T) {
	key, _ := auth.NewHMACKey(bytes.Repeat([]byte("k"), 32))
	srv := startServer(t, Config{Auth: auth.NewVerifier(key, auth.VerifierOptions{Leeway: -1})}, &fakePub{})
	tok, _ := auth.Issue(key, auth.Claims{Device: "e-dev"}, time.Now(), 1500*time.Millisecond)
	ws, _, err := dialTok(t, srv.url, tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := wrapClient(t, ws)
	ce := c.waitClose()
	if ce.Code != websocket.ClosePolicyViolation || !strings.Contains(ce.Text, "token expired") {
		t.Fatalf("close %d %q", ce.Code, ce.Text)
	}
	if srv.Stats().TokenExpiredClosed != 1 {
		t.Fatalf("stats %+v", srv.Stats())
	}
}

// TestConnLimitTotal: past MaxConns, handshakes get 503 before the upgrade
// and the slot comes back when a connection ends.
func TestConnLimitTotal(t *testing.T) {
	srv := startServer(t, Config{MaxConns: 2}, &fakePub{})
	a, b := dial(t, srv.url), dial(t, srv.url)
	// The client sees the upgrade before the server counts the connection.
	eventually(t, "both connections counted", func() bool { return srv.Stats().Connections == 2 })
	_, resp, err := websocket.DefaultDialer.Dial(srv.url, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("third connection: %v %v", err, resp)
	}
	if n := srv.Stats().Refused[RefusedConnLimit]; n != 1 {
		t.Fatalf("refused %d", n)
	}
	a.ws.Close()
	eventually(t, "slot released", func() bool { return srv.Stats().Connections == 1 })
	c := dial(t, srv.url)
	c.send(reading("x", "s", 1))
	c.waitAck("x", 1)
	_ = b
}

// TestSlowlorisCut: a client that trickles one message slower than the
// idle timeout allows is cut, although it keeps sending bytes.
func TestSlowlorisCut(t *testing.T) {
	srv := startServer(t, Config{ReadIdleTimeout: 500 * time.Millisecond}, &fakePub{})
	c := dial(t, srv.url)
	nc := c.ws.NetConn()
	go func() {
		// A masked binary frame announcing 1000 bytes, then its payload
		// a byte every 100 ms.
		if _, err := nc.Write([]byte{0x82, 0x80 | 126, 0x03, 0xe8, 1, 2, 3, 4}); err != nil {
			return
		}
		for range 30 {
			if _, err := nc.Write([]byte{0x0a}); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	ce := c.waitClose()
	if ce.Code != websocket.ClosePolicyViolation || !strings.Contains(ce.Text, "idle") {
		t.Fatalf("close %d %q", ce.Code, ce.Text)
	}
}

// TestRateLimiterBounded: the bucket table stays within its bound under
// many device IDs, and a fresh device never waits.
func TestRateLimiterBounded(t *testing.T) {
	l := newRateLimiter(1, 2, 1024)
	for i := range 100_000 {
		if l.reserve(fmt.Sprintf("dev-%d", i), int64(i)) != 0 {
			t.Fatalf("fresh device %d waits", i)
		}
	}
	// A bucket is full 1 s after its reading: about 1000 devices are
	// tracked at a time, as many as the table holds, so some were given up.
	n, ev := l.size(100_000)
	if n > l.capacity() || l.capacity() != 1024 || ev == 0 {
		t.Fatalf("%d entries of %d, %d evicted", n, l.capacity(), ev)
	}
	if l.reserve("x", 0) != 0 || l.reserve("x", 0) != 0 || l.reserve("x", 0) != time.Second {
		t.Fatal("burst of 2 not enforced")
	}
	if l.reserve("x", 1000) != time.Second || l.reserve("x", 3000) != 0 || l.reserve("x", 3000) != time.Second {
		t.Fatal("refill of 1/s not enforced")
	}
}
