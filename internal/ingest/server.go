// Package ingest is vpp's telemetry ingest: a WebSocket server that reads
// binary protobuf frames of battery readings, validates every reading,
// hands valid ones to Kafka's telemetry topic and invalid ones to the
// rejected topic through a bounded buffer, and acknowledges readings to
// their devices once they are durable.
//
// Backpressure: when Kafka slows down, the buffer fills, Buffer.Put blocks,
// the connection's read loop stops reading its socket, TCP windows close and
// devices slow down. Nothing is dropped, and nothing is acked before Kafka
// acknowledged it.
//
// Configuration: DefaultConfig holds every default (the flags of vpp
// ingest are registered from it); start from it and change what differs.
// A zero field that means nothing at zero (a size, a bound, an interval)
// also takes its default, a field whose zero means something
// (PowerTolerance, DeviceRate: none) is used as given.
package ingest

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/proto"

	"github.com/vppctl/vpp/internal/auth"
	"github.com/vppctl/vpp/internal/buffer"
	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/proto/vppv1"
)

// TelemetryPath is the WebSocket endpoint devices connect to.
const TelemetryPath = "/v1/telemetry"

// Per-connection memory. An open connection holds one goroutine on a
// minimum (2 KiB) stack waiting for bytes (see reads.go), gorilla's read
// buffer and its own small state; messages are read by pooled workers into
// pooled scratch space, write buffers come from a pool, and acks and pings
// are written by the server's write loop (see writes.go).
const (
	// readBufferSize is gorilla's per-connection read buffer: frame headers,
	// control frames and a device's small messages are read through it,
	// larger payloads straight into the message's scratch buffer. The
	// server makes it (see hijackReader); gorilla reuses it only above 256
	// bytes, and 288 is the next allocation size class.
	readBufferSize = 288
	// writeBufferSize is the size of the pooled write buffers, held only
	// while a message is being written.
	writeBufferSize = 4 << 10
	// frameScratch is the initial size of a pooled message scratch buffer;
	// maxPooledScratch is the largest that goes back to the pool.
	frameScratch     = 16 << 10
	maxPooledScratch = 256 << 10
)

// Server is the ingest WebSocket server.
type Server struct {
	cfg      Config
	log      *slog.Logger
	lim      Limits
	topics   kafka.Topics
	pub      Publisher
	buf      buffer.Buffer
	frameBuf buffer.BatchPutter // buf, if it stores a frame's records at once
	upgrader websocket.Upgrader
	started  time.Time
	ln       net.Listener
	ctr      counters
	connSeq  atomic.Uint64
	// adm counts connections against MaxConns and MaxConnsPerIP.
	adm *admission
	// limiter is the per-device rate limit (nil: unlimited).
	limiter   *rateLimiter
	refuseLog rateLog
	// serving is true from the moment the publisher is up and the
	// listener serves until shutdown begins (see Ready).
	serving atomic.Bool
	// probeDown is true while the latest probe of Kafka failed (see
	// probeLoop).
	probeDown atomic.Bool
	// probeReason is why the latest probe failed (nil while it answers).
	probeReason atomic.Pointer[string]

	// readCtx ends when shutdown begins: it unblocks read loops waiting
	// in Buffer.Put.
	readCtx    context.Context
	cancelRead context.CancelFunc
	// drained is closed once the buffer drained on shutdown (or the
	// drain timed out): connections then send their final acks.
	drained chan struct{}

	// frames holds the scratch buffers messages are read into.
	frames sync.Pool
	// ackMsgs holds the *ackMsgs acks are encoded into.
	ackMsgs sync.Pool
	// readq hands connections with bytes to read to the read workers;
	// idleReaders counts the workers waiting on it (see reads.go).
	readq       chan *conn
	idleReaders atomic.Int32
	// stopReadWorkers is closed when Serve returns: the idle read workers
	// exit (read loops hand off to them until shutdown ends them).
	stopReadWorkers chan struct{}

	// wqueue holds the connections whose acks advanced (and which were
	// busy writing) for the write loop's next tick; guarded by wmu.
	wmu    sync.Mutex
	wqueue []*conn
	// writers counts the write loop's writer goroutines.
	writers sync.WaitGroup

	// holders maps a device ID's hash to the *conn that holds it
	// (setpoints.go).
	holders holderTable
	// idSeed seeds the hashes of device IDs (idHash).
	idSeed maphash.Seed

	mu       sync.Mutex
	conns    map[*conn]struct{}
	stopping bool
	readers  sync.WaitGroup // read loops
	running  sync.WaitGroup // connection goroutines (conn.run)

	// onPublished is published as a func, made once: every record the
	// pump publishes carries it (see pumped).
	onPublished func(*buffer.Record, error)
}

// New returns a server for cfg. pub nil means a SaramaPublisher for
// cfg.Kafka, created by Serve (which waits for Kafka and ensures the
// topics).
func New(cfg Config, pub Publisher) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	buf := cfg.Buffer
	if buf == nil {
		buf = buffer.NewMemoryBuffer(cfg.BufferRecords, cfg.BufferBytes)
	}
	readCtx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg:    cfg,
		log:    cfg.Logger.With("component", "ingest"),
		lim:    cfg.limits(),
		topics: cfg.Kafka.Topics(),
		pub:    pub,
		buf:    buf,
		upgrader: websocket.Upgrader{
			// 0: gorilla reads through the hijacked reader, which
			// hijackReader makes readBufferSize bytes.
			ReadBufferSize:  0,
			WriteBufferSize: writeBufferSize,
			WriteBufferPool: &sync.Pool{},
			// Devices and gateways are not browsers: there is no
			// cross-site request to guard against.
			CheckOrigin:      func(*http.Request) bool { return true },
			HandshakeTimeout: cfg.HandshakeTimeout,
		},
		adm:             newAdmission(cfg.MaxConns, cfg.MaxConnsPerIP),
		started:         time.Now(),
		readCtx:         readCtx,
		cancelRead:      cancel,
		drained:         make(chan struct{}),
		readq:           make(chan *conn),
		stopReadWorkers: make(chan struct{}),
		conns:           make(map[*conn]struct{}),
	}
	s.frameBuf, _ = buf.(buffer.BatchPutter)
	s.onPublished = s.published
	s.idSeed = maphash.MakeSeed()
	if cfg.DeviceRate > 0 && !math.IsInf(cfg.DeviceRate, 1) {
		s.limiter = newRateLimiterSeed(cfg.DeviceRate, cfg.DeviceBurst, cfg.DeviceRateTable, s.idSeed)
	}
	if cfg.Auth == nil {
		s.log.Warn("device authentication is off (insecure): any client may send readings for any device")
	} else {
		s.log.Info("device authentication on", "key", cfg.Auth.Key().String())
	}
	return s, nil
}

// idHash is the hash of a device ID in the server's tables (the rate
// limiter, the setpoint holders): never 0.
func (s *Server) idHash(id string) uint64 { return max(maphash.String(s.idSeed, id), 1) }

// Listen binds the listening socket; Addr is valid afterwards.
func (s *Server) Listen() error {
	if s.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.Listen, err)
	}
	if s.cfg.TLS != nil {
		ln = tls.NewListener(ln, s.cfg.TLS)
	}
	s.ln = ln
	return nil
}

// Addr is the address the server listens on ("" before Listen).
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// URL is the WebSocket URL devices connect to: wss:// with TLS, else
// ws:// ("" before Listen).
func (s *Server) URL() string {
	if s.ln == nil {
		return ""
	}
	scheme := "ws://"
	if s.cfg.TLS != nil {
		scheme = "wss://"
	}
	return scheme + s.Addr() + TelemetryPath
}

// Serve serves until ctx ends, then shuts down gracefully: it stops
// accepting connections and reading sockets, drains the buffer into Kafka
// (bounded by ShutdownTimeout), sends every connection its final acks,
// closes each with 1001, publishes the final stats and closes the
// producer. It returns nil on a clean shutdown.
func (s *Server) Serve(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	if s.pub == nil {
		pub, err := newSaramaPublisher(ctx, s.cfg.Kafka, s.cfg.Logger)
		if err != nil {
			s.ln.Close()
			s.buf.Close()
			s.cancelRead()
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("start publisher: %w", err)
		}
		s.pub = pub
	}

	pumpCtx, stopPump := context.WithCancel(context.Background())
	defer stopPump()
	pumpDone := make(chan struct{})
	go func() {
		defer close(pumpDone)
		s.pump(pumpCtx)
	}()
	statsCtx, stopStats := context.WithCancel(context.Background())
	defer stopStats()
	statsDone := make(chan struct{})
	go func() {
		defer close(statsDone)
		s.statsLoop(statsCtx)
	}()
	probeCtx, stopProbe := context.WithCancel(context.Background())
	probeDone := make(chan struct{})
	if p, ok := s.pub.(Prober); ok {
		go func() {
			defer close(probeDone)
			s.probeLoop(probeCtx, p)
		}()
	} else {
		close(probeDone)
	}
	defer stopProbe()
	spCtx, stopSetpoints := context.WithCancel(context.Background())
	spDone := make(chan struct{})
	if len(s.cfg.Kafka.Brokers) > 0 && !s.cfg.NoSetpoints {
		r := &SetpointReader{Kafka: s.cfg.Kafka, Deliver: s.DeliverSetpoints, Logger: s.log,
			Errors: func() { s.ctr.spErrors.Add(1) }}
		go func() {
			defer close(spDone)
			if err := r.Run(spCtx); err != nil {
				s.log.Error("setpoint reader stopped: no setpoints reach devices", "err", err)
			}
		}()
	} else {
		close(spDone)
	}
	defer func() {
		stopSetpoints()
		<-spDone
	}()
	s.startReadWorker()
	defer close(s.stopReadWorkers)
	writeCtx, stopWrites := context.WithCancel(context.Background())
	defer stopWrites()
	writesDone := make(chan struct{})
	go func() {
		defer close(writesDone)
		s.writeLoop(writeCtx)
	}()

	mux := http.NewServeMux()
	mux.HandleFunc(TelemetryPath, s.handleTelemetry)
	hs := &http.Server{
		Handler: mux,
		// The TLS handshake and the HTTP request of the WebSocket
		// handshake must arrive within HandshakeTimeout.
		ReadHeaderTimeout: s.cfg.HandshakeTimeout,
		IdleTimeout:       s.cfg.HandshakeTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(s.ln) }()
	s.serving.Store(true)
	s.log.Info("ingest listening", "addr", s.Addr(), "path", TelemetryPath, "instance", s.cfg.Instance)

	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
		err = fmt.Errorf("serve: %w", err)
	}
	stopProbe()
	<-probeDone
	s.shutdown(hs, stopWrites, writesDone, stopStats, statsDone, stopPump, pumpDone)
	return err
}

// shutdown runs the graceful shutdown described at Serve.
func (s *Server) shutdown(hs *http.Server, stopWrites func(), writesDone <-chan struct{}, stopStats func(), statsDone <-chan struct{}, stopPump func(), pumpDone <-chan struct{}) {
	start := time.Now()
	deadline := start.Add(s.cfg.ShutdownTimeout)
	s.log.Info("ingest shutting down", "buffered", s.buf.Len(), "timeout", s.cfg.ShutdownTimeout)

	// Stop accepting: no new connection registers after this.
	s.serving.Store(false)
	s.mu.Lock()
	s.stopping = true
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	hctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_ = hs.Shutdown(hctx) // closes the listener; hijacked conns are ours
	cancel()

	// Stop reading sockets.
	s.cancelRead()
	for _, c := range conns {
		c.stopReading()
	}
	waitTimeout(&s.readers, time.Until(deadline))

	// Drain the buffer into Kafka.
	for s.buf.Len() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := s.buf.Len(); n > 0 {
		s.log.Warn("shutdown timeout: records not yet in Kafka (a durable spool replays them on the next start; from a memory buffer they are lost and, never acked, resent by devices)", "records", n)
	}

	// Final acks and close 1001 on every connection; the write loop kept
	// flushing acks until now.
	close(s.drained)
	waitTimeout(&s.running, time.Until(deadline)+2*closeLinger+writeWait)
	stopWrites()
	<-writesDone

	stopStats()
	<-statsDone
	s.publishFinalStats(max(time.Until(deadline), 2*time.Second))
	stopPump()
	<-pumpDone
	s.closePublisher(max(time.Until(deadline), producerCloseGrace))
	s.buf.Close()
	st := s.Stats()
	s.log.Info("ingest stopped", "took", time.Since(start).Round(time.Millisecond),
		"received", st.Received, "published", st.Published, "rejected", st.RejectedTotal(), "acked", st.Acked)
}

// producerCloseGrace is the least time shutdown gives the producer to
// close, even when the drain used up the shutdown timeout.
const producerCloseGrace = 2 * time.Second

// closePublisher closes the publisher, waiting at most d. A producer
// whose broker is down or hung holds its in-flight records until they
// fail, which may take far longer than the shutdown timeout (sarama's
// Close waits for every one of them); shutdown then goes on without it:
// Kafka has not confirmed those records (it may have written some), so a
// durable spool replays them on the next start (the twins drop the ones
// that land twice by seq), and from a memory buffer they were never acked
// to devices, which resend them.
func (s *Server) closePublisher(d time.Duration) {
	done := make(chan error, 1)
	go func() { done <- s.pub.Close() }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case err := <-done:
		if err != nil {
			s.log.Warn("close producer", "err", err)
		}
	case <-t.C:
		s.log.Warn("kafka producer did not close in time: records in flight to kafka stay unacknowledged (a durable spool replays them on the next start)", "waited", d)
	}
}

// waitTimeout waits for wg at most d.
func waitTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	t := time.NewTimer(max(d, 0))
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// pump moves records from the buffer to the publisher. A failed record
// goes back to the buffer, which retries it after a backoff.
func (s *Server) pump(ctx context.Context) {
	for {
		r, err := s.buf.Next(ctx)
		if err != nil {
			return
		}
		if err := s.publish(ctx, r); err != nil {
			s.buf.Nack(r, err)
			if ctx.Err() != nil {
				return
			}
		}
	}
}

// publish hands r to the publisher; the verdict goes to published.
func (s *Server) publish(ctx context.Context, r *buffer.Record) error {
	r.OnPublished = s.onPublished
	return s.pub.Publish(ctx, &r.Message, (*pumped)(r))
}

// pumped is a record handed to the publisher by its server's pump: its
// own Verdict (its OnPublished is the server's published), so that
// publishing a record allocates no closure.
type pumped buffer.Record

// Published implements Verdict.
func (p *pumped) Published(err error) {
	r := (*buffer.Record)(p)
	r.OnPublished(r, err)
}

// published is the publisher's verdict on one record.
func (s *Server) published(r *buffer.Record, err error) {
	if err != nil {
		if s.ctr.kafkaDown.CompareAndSwap(false, true) {
			reason := err.Error()
			s.ctr.publishErr.Store(&reason)
			s.log.Warn("kafka lost: publishing fails, records stay buffered and are retried", "err", err)
		}
		s.buf.Nack(r, err)
		return
	}
	// Loaded first: a compare-and-swap per record would write the
	// counters' cache line on every verdict.
	if s.ctr.kafkaDown.Load() && s.ctr.kafkaDown.CompareAndSwap(true, false) {
		s.log.Info("kafka back: publishing again", "buffered", s.buf.Len())
	}
	if r.Topic == s.topics.Telemetry() {
		s.ctr.published.Add(1)
	}
	s.buf.Ack(r)
}

// statsLoop publishes IngestStats every StatsInterval.
func (s *Server) statsLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.StatsInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if err := s.publishStats(ctx, now, func(error) {}); err != nil && ctx.Err() == nil {
				s.log.Debug("publish stats", "err", err)
			}
		}
	}
}

// publishStats publishes one IngestStats record directly to the producer
// (not through the buffer, so stats never wait for buffer space): to the
// stats topic (done reports its outcome) and the same record, wrapped in a
// HistoryRecord, to the history topic for sparklines (best effort: its
// outcome is not reported).
func (s *Server) publishStats(ctx context.Context, now time.Time, done func(error)) error {
	st := s.statsProto(now)
	b, err := proto.Marshal(st)
	if err != nil {
		return fmt.Errorf("marshal stats: %w", err)
	}
	hb, err := proto.Marshal(&vppv1.HistoryRecord{Body: &vppv1.HistoryRecord_Ingest{Ingest: st}})
	if err != nil {
		return fmt.Errorf("marshal stats history record: %w", err)
	}
	key := []byte("ingest/" + s.cfg.Instance)
	m := &buffer.Message{Topic: s.topics.Stats(), Key: key, Value: b}
	if err := s.pub.Publish(ctx, m, VerdictFunc(done)); err != nil {
		return fmt.Errorf("publish stats: %w", err)
	}
	hm := &buffer.Message{Topic: s.topics.History(), Key: key, Value: hb}
	if err := s.pub.Publish(ctx, hm, VerdictFunc(func(error) {})); err != nil {
		return fmt.Errorf("publish stats to history: %w", err)
	}
	return nil
}

// publishFinalStats publishes the stats once more and waits up to d for
// Kafka to acknowledge them.
func (s *Server) publishFinalStats(d time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	res := make(chan error, 1)
	if err := s.publishStats(ctx, time.Now(), func(err error) { res <- err }); err != nil {
		s.log.Warn("final stats", "err", err)
		return
	}
	select {
	case err := <-res:
		if err != nil {
			s.log.Warn("final stats", "err", err)
		}
	case <-ctx.Done():
		s.log.Warn("final stats not acknowledged in time")
	}
}

// handleTelemetry admits the handshake (connection limits: 503; the
// bearer token: 401), upgrades to WebSocket and starts the connection's
// goroutine. It returns right after, so that net/http's goroutine and its
// buffers for the request are gone while the connection lives.
func (s *Server) handleTelemetry(w http.ResponseWriter, r *http.Request) {
	ip := remoteIP(r.RemoteAddr)
	if ref, ok := s.adm.acquire(ip); !ok {
		s.refuseBusy(w, r, ref)
		return
	}
	// Once the connection runs, it gives the slot back (unregister).
	running := false
	defer func() {
		if !running {
			s.adm.release(ip)
		}
	}()
	var grant *auth.Grant
	if s.cfg.Auth != nil {
		if grant = s.authenticate(w, r); grant == nil {
			return
		}
	}
	hw := &hijackReader{ResponseWriter: w}
	ws, err := s.upgrader.Upgrade(hw, r, nil)
	if err != nil {
		s.log.Debug("websocket upgrade", "remote", r.RemoteAddr, "err", err)
		return
	}
	c := newConn(s, ws, r.RemoteAddr, grant)
	c.br = hw.br
	if !s.register(c) {
		c.close(websocket.CloseGoingAway, "server shutting down")
		return
	}
	running = true
	c.start()
	go c.run()
}

// hijackReader hands the upgrader, on Hijack, a read buffer of
// readBufferSize bytes that the server keeps a hold of, so that the
// connection can see what gorilla buffered (waitReadable).
type hijackReader struct {
	http.ResponseWriter
	br *bufio.Reader
}

// Hijack implements http.Hijacker.
func (h *hijackReader) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil || brw.Reader.Buffered() > 0 {
		return nc, brw, err // the upgrader refuses a client that sent data early
	}
	h.br = bufio.NewReaderSize(nc, readBufferSize)
	brw.Reader = h.br
	return nc, brw, nil
}

// register adds a connection unless the server is stopping; shutdown then
// waits for its goroutine (running).
func (s *Server) register(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return false
	}
	s.conns[c] = struct{}{}
	s.readers.Add(1)
	s.running.Add(1)
	s.ctr.connections.Add(1)
	return true
}

// unregister lets go of a connection that ended. Its admission slot is
// given back before the connection count drops, so a client that sees one
// connection fewer can connect again.
func (s *Server) unregister(c *conn) {
	s.adm.release(remoteIP(c.remote))
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.ctr.connections.Add(-1)
	s.running.Done()
}
