package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/vppctl/vpp/internal/auth"
	"github.com/vppctl/vpp/internal/ingest"
	"github.com/vppctl/vpp/proto/vppv1"
)

// Defaults of ConnsConfig.
const (
	DefaultConns           = 18_000
	DefaultConnsReadings   = 3
	DefaultConnsKeepalive  = 30 * time.Second
	DefaultConnsSettle     = 20 * time.Second
	DefaultConnsDialers    = 64
	connsPerSourceAddr     = 5_000 // of the ~28k ephemeral ports of one source address
	connsFDReserve         = 256   // files a process needs besides the connections
	connsIOTimeout         = 10 * time.Second
	connsAttempts          = 3
	connsReadyTimeout      = 60 * time.Second
	connsPreSettle         = 3 * time.Second
	connsClientReadBufSize = 512
)

// ConnsConfig configures a measurement of ingest's memory per connection.
// Start from DefaultConnsConfig and change what differs; a zero Conns,
// Keepalive, Settle or Dialers also takes its default, while Readings is
// used as given (0: none).
type ConnsConfig struct {
	// Exe is the vpp binary run as `broker` and `ingest` (default: this
	// executable).
	Exe string
	// IngestExe, when set, runs ingest from another vpp binary, to compare
	// two builds under the same client and broker.
	IngestExe string
	// Brokers are the Kafka brokers ingest publishes to; empty starts
	// `Exe broker` on a free 127.0.0.1 port.
	Brokers []string
	// Conns is the number of WebSocket connections (default 18,000). This
	// process and ingest each need one file per connection.
	Conns int
	// Readings is the number of readings each connection sends after the
	// handshake, one frame each (default 3; 0 or negative: none), so the
	// server-side decoder, ack tracker and rate limiter hold their state.
	Readings int
	// Keepalive is how often each connection sends an empty frame so that
	// ingest's idle timeout keeps it open (default 30s; ingest's default
	// --read-idle-timeout is 2m). Connections also answer pings.
	Keepalive time.Duration
	// Settle is how long the connections stay open before the measurement
	// (default 20s).
	Settle time.Duration
	// Dialers is the number of connections dialing at a time (default 64).
	Dialers int
	// Auth runs ingest with a token key (--auth-key) and gives every
	// connection a token for its device, instead of --insecure.
	Auth bool
	// Progress receives a line per phase (default: discarded).
	Progress io.Writer
}

// ConnsResult is one measurement: ingest's figures before the connections
// and once they are all open and settled.
type ConnsResult struct {
	// Conns is the number of connections ingest reported open.
	Conns int
	// RSSBefore and RSSAfter are ingest's VmRSS in bytes.
	RSSBefore, RSSAfter int64
	// HeapBefore and HeapAfter are ingest's Go heap in use
	// (go_memstats_heap_inuse_bytes).
	HeapBefore, HeapAfter int64
	// StackBefore and StackAfter are ingest's goroutine stacks
	// (go_memstats_stack_inuse_bytes).
	StackBefore, StackAfter int64
	// FreeBefore and FreeAfter are the Go heap's free pages the runtime
	// keeps rather than returning them to the kernel (heap idle minus
	// released): part of RSS.
	FreeBefore, FreeAfter int64
	// GCGoalAfter is the heap size at which ingest's next GC starts
	// (go_memstats_next_gc_bytes): with GOGC=100, twice the live heap
	// plus the goroutine stacks.
	GCGoalAfter int64
	// GoroutinesBefore and GoroutinesAfter count ingest's goroutines.
	GoroutinesBefore, GoroutinesAfter int64
	// Sent and Acked count the readings the connections sent and ingest
	// acknowledged.
	Sent, Acked uint64
	// Connect is how long opening every connection took.
	Connect time.Duration
}

// PerConn is the growth of ingest's resident memory per connection, in
// bytes.
func (r ConnsResult) PerConn() float64 { return perConn(r.RSSAfter-r.RSSBefore, r.Conns) }

// HeapPerConn is the growth of ingest's Go heap per connection, in bytes.
func (r ConnsResult) HeapPerConn() float64 { return perConn(r.HeapAfter-r.HeapBefore, r.Conns) }

// StackPerConn is the growth of ingest's goroutine stacks per connection,
// in bytes.
func (r ConnsResult) StackPerConn() float64 { return perConn(r.StackAfter-r.StackBefore, r.Conns) }

// GoroutinesPerConn is the growth of ingest's goroutines per connection.
func (r ConnsResult) GoroutinesPerConn() float64 {
	return perConn(r.GoroutinesAfter-r.GoroutinesBefore, r.Conns)
}

func perConn(d int64, n int) float64 {
	if n <= 0 {
		return 0
	}
	return float64(d) / float64(n)
}

// DefaultConnsConfig returns the ConnsConfig of vpp bench conns'
// defaults: DefaultConns connections sending DefaultConnsReadings readings
// each on this executable and an embedded broker.
func DefaultConnsConfig() ConnsConfig {
	return ConnsConfig{
		Conns:     DefaultConns,
		Readings:  DefaultConnsReadings,
		Keepalive: DefaultConnsKeepalive,
		Settle:    DefaultConnsSettle,
		Dialers:   DefaultConnsDialers,
	}
}

func (c *ConnsConfig) defaults() error {
	if c.Exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find the vpp binary: %w", err)
		}
		c.Exe = exe
	}
	if c.IngestExe == "" {
		c.IngestExe = c.Exe
	}
	if c.Conns == 0 {
		c.Conns = DefaultConns
	}
	if c.Conns < 0 {
		return fmt.Errorf("connections: %d must be positive", c.Conns)
	}
	c.Readings = max(c.Readings, 0)
	if c.Keepalive <= 0 {
		c.Keepalive = DefaultConnsKeepalive
	}
	if c.Settle <= 0 {
		c.Settle = DefaultConnsSettle
	}
	if c.Dialers <= 0 {
		c.Dialers = DefaultConnsDialers
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	return nil
}

// Conns measures the memory an ingest process spends per open WebSocket
// connection. It starts `Exe broker` (unless Brokers are given) and
// `IngestExe ingest` as child processes, reads ingest's VmRSS and Go
// memory figures (/proc and /metrics), opens Conns connections from this
// process (spread over the source addresses 127.0.0.2, 127.0.0.3, … so
// that the ephemeral ports of one address suffice), each sending Readings
// readings and then an empty frame every Keepalive, waits until ingest
// reports them all open and every reading acknowledged, lets it settle for
// Settle and reads the figures again. Then it resets the connections
// (SO_LINGER 0: no TIME_WAIT is left behind) and stops the children.
func Conns(ctx context.Context, cfg ConnsConfig) (ConnsResult, error) {
	var res ConnsResult
	if err := cfg.defaults(); err != nil {
		return res, err
	}
	if err := connsFileLimit(cfg.Conns); err != nil {
		return res, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tmp, err := os.MkdirTemp("", "vpp-bench-conns-")
	if err != nil {
		return res, fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(tmp)

	brokers := cfg.Brokers
	if len(brokers) == 0 {
		broker, addr, err := StartBroker(ctx, cfg.Exe)
		if err != nil {
			return res, err
		}
		defer func() { _ = broker.Stop(10 * time.Second) }()
		brokers = []string{addr}
		fmt.Fprintf(cfg.Progress, "broker: %s (vpp broker, pid %d)\n", addr, broker.PID())
	}

	listen, err := freeAddr()
	if err != nil {
		return res, err
	}
	httpAddr, err := freeAddr()
	if err != nil {
		return res, err
	}
	args := []string{"ingest", "--listen", listen, "--http", httpAddr, "--brokers", strings.Join(brokers, ","),
		"--topic-prefix", "bench.conns.",
		"--max-conns", strconv.Itoa(cfg.Conns + 16), "--max-conns-per-ip", strconv.Itoa(cfg.Conns),
		"--status=false", "--log-level", "warn", "--shutdown-timeout", "10s"}
	var key *auth.Key
	if cfg.Auth {
		secret := auth.GenerateHMACSecret()
		if key, err = auth.ParseKey(secret); err != nil {
			return res, fmt.Errorf("token key: %w", err)
		}
		path := filepath.Join(tmp, "token.key")
		if err := os.WriteFile(path, secret, 0o600); err != nil {
			return res, fmt.Errorf("write token key: %w", err)
		}
		args = append(args, "--auth-key", path)
	} else {
		args = append(args, "--insecure")
	}
	ing, err := StartProc(ctx, "ingest", cfg.IngestExe, args...)
	if err != nil {
		return res, err
	}
	ingStopped := false
	defer func() {
		if !ingStopped {
			_ = ing.Stop(30 * time.Second)
		}
	}()
	metricsURL := "http://" + httpAddr + "/metrics"
	if err := waitReady(ctx, "http://"+httpAddr+"/readyz", ing); err != nil {
		return res, err
	}
	fmt.Fprintf(cfg.Progress, "ingest: ws://%s%s (pid %d), metrics on %s\n", listen, ingest.TelemetryPath, ing.PID(), httpAddr)
	if err := connsSleep(ctx, connsPreSettle); err != nil {
		return res, err
	}
	before, err := connsSample(ctx, ing.PID(), metricsURL)
	if err != nil {
		return res, err
	}

	cl := &connsClients{cfg: cfg, host: listen, key: key}
	defer cl.closeAll()
	start := time.Now()
	if err := cl.open(ctx); err != nil {
		return res, err
	}
	if err := connsWaitMetric(ctx, metricsURL, "vpp_ingest_connections", float64(cfg.Conns), ing); err != nil {
		return res, err
	}
	res.Connect = time.Since(start)
	fmt.Fprintf(cfg.Progress, "%d connections open in %v (%d handshakes retried)\n", cfg.Conns, res.Connect.Round(time.Millisecond), cl.retries.Load())
	want := uint64(cfg.Conns) * uint64(cfg.Readings)
	ackDeadline := time.Now().Add(30 * time.Second)
	for cl.acked.Load() < want && time.Now().Before(ackDeadline) {
		if err := connsSleep(ctx, 100*time.Millisecond); err != nil {
			return res, err
		}
	}
	fmt.Fprintf(cfg.Progress, "readings acknowledged: %d of %d; settling for %v\n", cl.acked.Load(), want, cfg.Settle)
	if err := connsSleep(ctx, cfg.Settle); err != nil {
		return res, err
	}
	after, err := connsSample(ctx, ing.PID(), metricsURL)
	if err != nil {
		return res, err
	}
	if done, err := ing.Exited(); done {
		return res, err
	}
	if n := cl.alive.Load(); n != int64(cfg.Conns) {
		return res, fmt.Errorf("%d of %d connections still open at the measurement (ingest closed the others)", n, cfg.Conns)
	}

	res.Conns = int(after.conns)
	res.RSSBefore, res.RSSAfter = before.rss, after.rss
	res.HeapBefore, res.HeapAfter = before.heap, after.heap
	res.StackBefore, res.StackAfter = before.stack, after.stack
	res.FreeBefore, res.FreeAfter = before.free, after.free
	res.GCGoalAfter = after.gcGoal
	res.GoroutinesBefore, res.GoroutinesAfter = before.goroutines, after.goroutines
	res.Sent, res.Acked = cl.sent.Load(), cl.acked.Load()

	// Reset the connections before ingest stops, so its shutdown has none
	// to drain, and wait until it noticed.
	cl.closeAll()
	if err := connsWaitMetric(ctx, metricsURL, "vpp_ingest_connections", 0, ing); err != nil {
		return res, err
	}
	ingStopped = true
	if err := ing.Stop(30 * time.Second); err != nil {
		return res, err
	}
	return res, nil
}

// connsSnapshot is what ingest reports about its memory at one moment.
type connsSnapshot struct {
	rss, heap, stack, free, gcGoal, goroutines, conns int64
}

func connsSample(ctx context.Context, pid int, metricsURL string) (connsSnapshot, error) {
	var s connsSnapshot
	rss, err := procRSS(pid)
	if err != nil {
		return s, err
	}
	m, err := connsScrape(ctx, metricsURL)
	if err != nil {
		return s, err
	}
	s.rss = rss
	s.heap = int64(m["go_memstats_heap_inuse_bytes"])
	s.stack = int64(m["go_memstats_stack_inuse_bytes"])
	s.free = int64(m["go_memstats_heap_idle_bytes"] - m["go_memstats_heap_released_bytes"])
	s.gcGoal = int64(m["go_memstats_next_gc_bytes"])
	s.goroutines = int64(m["go_goroutines"])
	s.conns = int64(m["vpp_ingest_connections"])
	return s, nil
}

// connsScrape returns the unlabelled samples of a Prometheus text
// exposition.
func connsScrape(ctx context.Context, url string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, connsIOTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("metrics request: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || strings.HasPrefix(f[0], "#") || strings.ContainsRune(f[0], '{') {
			continue
		}
		if v, err := strconv.ParseFloat(f[1], 64); err == nil {
			out[f[0]] = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	return out, nil
}

// connsWaitMetric polls the unlabelled metric name until it equals want.
func connsWaitMetric(ctx context.Context, url, name string, want float64, p *Proc) error {
	deadline := time.Now().Add(connsReadyTimeout)
	var got float64
	for {
		m, err := connsScrape(ctx, url)
		if err == nil {
			if got = m[name]; got == want {
				return nil
			}
		}
		if done, err := p.Exited(); done {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("ingest reports %s %v, want %v, after %v", name, got, want, connsReadyTimeout)
		}
		if err := connsSleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

func connsSleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("measurement interrupted: %w", ctx.Err())
	case <-t.C:
		return nil
	}
}

// connsClients are the device side of the measurement: minimal WebSocket
// clients on raw TCP, one goroutine each.
type connsClients struct {
	cfg  ConnsConfig
	host string    // ingest's address
	key  *auth.Key // nil: no tokens

	mu    sync.Mutex
	conns []net.Conn

	alive       atomic.Int64
	retries     atomic.Int64
	sent, acked atomic.Uint64
	wg          sync.WaitGroup
}

// open dials every connection, Dialers at a time, and starts its
// goroutine. It fails on the first connection that cannot be opened.
func (cl *connsClients) open(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(cl.cfg.Dialers, cl.cfg.Conns) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= cl.cfg.Conns {
					return
				}
				if err := cl.dial(ctx, i); err != nil {
					cancel(fmt.Errorf("connection %d of %d: %w", i+1, cl.cfg.Conns, err))
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return nil
}

// dial opens connection i from source address 127.0.0.(2 + i/5000),
// upgrades it (trying up to connsAttempts times: a busy server may let a
// handshake time out), sends its readings and starts its goroutine.
func (cl *connsClients) dial(ctx context.Context, i int) error {
	dev := fmt.Sprintf("bench-conns-%06d", i)
	token := ""
	if cl.key != nil {
		var err error
		if token, err = auth.Issue(cl.key, auth.Claims{Device: dev}, time.Now(), 24*time.Hour); err != nil {
			return fmt.Errorf("token: %w", err)
		}
	}
	src := net.IPv4(127, 0, 0, byte(2+i/connsPerSourceAddr))
	var c *connsClient
	for attempt := 1; ; attempt++ {
		var err error
		if c, err = cl.connect(ctx, src, dev, token); err == nil {
			break
		}
		if attempt == connsAttempts || ctx.Err() != nil {
			return fmt.Errorf("%d attempts: %w", attempt, err)
		}
		cl.retries.Add(1)
		if err := connsSleep(ctx, time.Duration(attempt)*time.Second); err != nil {
			return err
		}
	}
	cl.mu.Lock()
	cl.conns = append(cl.conns, c.nc)
	cl.mu.Unlock()
	site, sub := fmt.Sprintf("bench-site-%03d", i%250), fmt.Sprintf("bench-sub-%02d", i%25)
	for seq := 1; seq <= cl.cfg.Readings; seq++ {
		b, err := proto.Marshal(&vppv1.Frame{Readings: []*vppv1.Reading{connsReading(c.dev, site, sub, uint64(seq))}})
		if err != nil {
			return fmt.Errorf("marshal frame: %w", err)
		}
		if err := c.write(wsBinary, b); err != nil {
			return fmt.Errorf("connection %s: send reading: %w", c.nc.LocalAddr(), err)
		}
		cl.sent.Add(1)
	}
	cl.alive.Add(1)
	cl.wg.Add(1)
	go func() {
		defer cl.wg.Done()
		defer cl.alive.Add(-1)
		c.run(cl.cfg.Keepalive, &cl.acked)
	}()
	return nil
}

// connect dials from src and upgrades the connection; a failed attempt
// is reset.
func (cl *connsClients) connect(ctx context.Context, src net.IP, dev, token string) (*connsClient, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: connsIOTimeout}
	nc, err := d.DialContext(ctx, "tcp", cl.host)
	if err != nil {
		return nil, fmt.Errorf("dial from %s: %w", src, err)
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // close resets: no TIME_WAIT left behind
	}
	c := &connsClient{nc: nc, br: bufio.NewReaderSize(nc, connsClientReadBufSize), dev: dev}
	if err := c.handshake(cl.host, token); err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

// closeAll resets every connection and waits for their goroutines.
func (cl *connsClients) closeAll() {
	cl.mu.Lock()
	conns := cl.conns
	cl.conns = nil
	cl.mu.Unlock()
	for _, nc := range conns {
		_ = nc.Close()
	}
	cl.wg.Wait()
}

// connsReading is a valid reading of dev at site and substation sub,
// timestamped now.
func connsReading(dev, site, sub string, seq uint64) *vppv1.Reading {
	return &vppv1.Reading{
		DeviceId: dev, SiteId: site, SubstationId: sub, RegionId: "bench",
		Seq: seq, TsMs: time.Now().UnixMilli(),
		SocPct: 50, SohPct: 98, PowerKw: 2.5, VoltageV: 400, CurrentA: 6, TemperatureC: 25,
		CapacityKwh: 13.5, MaxChargeKw: 5, MaxDischargeKw: 5, Mode: vppv1.Mode_MODE_DISCHARGING,
	}
}

// WebSocket opcodes (RFC 6455).
const (
	wsContinuation = 0x0
	wsBinary       = 0x2
	wsClose        = 0x8
	wsPing         = 0x9
	wsPong         = 0xa
)

// connsClient is one device connection of the measurement.
type connsClient struct {
	nc    net.Conn
	br    *bufio.Reader
	dev   string
	acked uint64 // highest seq acked
	msg   []byte // binary message being assembled
}

// handshake sends the WebSocket upgrade request and reads the 101.
func (c *connsClient) handshake(host, token string) error {
	var key [16]byte
	_, _ = rand.Read(key[:])
	var b strings.Builder
	b.WriteString("GET " + ingest.TelemetryPath + " HTTP/1.1\r\nHost: " + host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " +
		base64.StdEncoding.EncodeToString(key[:]) + "\r\n")
	if token != "" {
		b.WriteString("Authorization: Bearer " + token + "\r\n")
	}
	b.WriteString("\r\n")
	_ = c.nc.SetDeadline(time.Now().Add(connsIOTimeout))
	defer c.nc.SetDeadline(time.Time{})
	if _, err := io.WriteString(c.nc, b.String()); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return fmt.Errorf("handshake: HTTP %s", resp.Status)
	}
	return nil
}

// write sends one masked frame (clients must mask).
func (c *connsClient) write(op byte, payload []byte) error {
	hdr := make([]byte, 0, 14+len(payload))
	hdr = append(hdr, 0x80|op)
	switch n := len(payload); {
	case n < 126:
		hdr = append(hdr, 0x80|byte(n))
	case n <= 0xffff:
		hdr = append(hdr, 0x80|126)
		hdr = binary.BigEndian.AppendUint16(hdr, uint16(n))
	default:
		hdr = append(hdr, 0x80|127)
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(n))
	}
	mask := mrand.Uint32()
	hdr = binary.BigEndian.AppendUint32(hdr, mask)
	m := hdr[len(hdr)-4:]
	for i, v := range payload {
		hdr = append(hdr, v^m[i&3])
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(connsIOTimeout))
	_, err := c.nc.Write(hdr)
	return err
}

// run reads acks and pings (answered with pongs) until the connection
// ends, and sends an empty frame every keepalive (the first at a random
// point of the first period, so the connections' frames spread out).
func (c *connsClient) run(keepalive time.Duration, acked *atomic.Uint64) {
	next := time.Now().Add(mrand.N(keepalive))
	for {
		if !time.Now().Before(next) {
			if c.write(wsBinary, nil) != nil {
				return
			}
			next = time.Now().Add(keepalive)
		}
		// Wait for the next frame only up to the keepalive, and only
		// between frames: a timeout then loses nothing.
		_ = c.nc.SetReadDeadline(next)
		if _, err := c.br.Peek(1); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		_ = c.nc.SetReadDeadline(time.Now().Add(connsIOTimeout))
		op, fin, payload, err := c.readFrame()
		if err != nil {
			return
		}
		switch op {
		case wsPing:
			if c.write(wsPong, payload) != nil {
				return
			}
		case wsClose:
			return
		case wsBinary, wsContinuation:
			c.msg = append(c.msg, payload...)
			if fin {
				c.ack(acked)
				c.msg = c.msg[:0]
			}
		}
	}
}

// readFrame reads one server frame (unmasked).
func (c *connsClient) readFrame() (op byte, fin bool, payload []byte, err error) {
	var h [8]byte
	if _, err := io.ReadFull(c.br, h[:2]); err != nil {
		return 0, false, nil, err
	}
	fin, op = h[0]&0x80 != 0, h[0]&0x0f
	if h[1]&0x80 != 0 {
		return 0, false, nil, errors.New("masked server frame")
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		if _, err := io.ReadFull(c.br, h[:2]); err != nil {
			return 0, false, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(h[:2]))
	case 127:
		if _, err := io.ReadFull(c.br, h[:8]); err != nil {
			return 0, false, nil, err
		}
		n = binary.BigEndian.Uint64(h[:8])
	}
	if n > 16<<20 {
		return 0, false, nil, fmt.Errorf("server frame of %d bytes", n)
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(c.br, payload); err != nil {
		return 0, false, nil, err
	}
	return op, fin, payload, nil
}

// ack counts the readings a downlink message newly acknowledges.
func (c *connsClient) ack(acked *atomic.Uint64) {
	var d vppv1.Downlink
	if proto.Unmarshal(c.msg, &d) != nil {
		return
	}
	for _, a := range d.GetAck().GetDevices() {
		if a.GetDeviceId() == c.dev && a.GetAckedSeq() > c.acked {
			acked.Add(a.GetAckedSeq() - c.acked)
			c.acked = a.GetAckedSeq()
		}
	}
}
