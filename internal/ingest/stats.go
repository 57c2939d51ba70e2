package ingest

import (
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vppctl/vpp/proto/vppv1"
)

// Stats is a snapshot of a Server's accounting. Counters are cumulative.
type Stats struct {
	// Received counts readings decoded from frames.
	Received uint64
	// Frames counts binary messages read.
	Frames uint64
	// Rejected counts rejected readings (and rejected whole frames, under
	// the frame_* reasons) by reason.
	Rejected map[string]uint64
	// Published counts valid readings Kafka acknowledged.
	Published uint64
	// Acked counts readings acknowledged to their devices.
	Acked uint64
	// Connections is the number of open WebSocket connections now.
	Connections int64
	// ProtocolErrors counts connections closed for a protocol error, by
	// RFC 6455 close code.
	ProtocolErrors map[int]uint64
	// Buffered and BufferedBytes are what the buffer holds now: accepted,
	// not yet acknowledged by Kafka.
	Buffered      int
	BufferedBytes int64
	// BufferCapacity and BufferCapacityBytes are the buffer's bounds.
	BufferCapacity      int
	BufferCapacityBytes int64
	// KafkaDown is true while publishing fails.
	KafkaDown bool
	// Refused counts handshakes refused before the upgrade, by reason
	// (the Refused constants: connection limits 503, tokens 401).
	Refused map[string]uint64
	// IdleClosed counts connections closed (1008) after ReadIdleTimeout
	// without a complete message.
	IdleClosed uint64
	// TokenExpiredClosed counts connections closed (1008) when their
	// token expired.
	TokenExpiredClosed uint64
	// RateTableEntries is the devices whose bucket in the rate limiter is
	// not full now (a full one is as good as none), and RateTableEvicted
	// the buckets not full it gave up for other devices to stay bounded.
	RateTableEntries int
	RateTableEvicted uint64
	// RateLimitedFrames counts the frames after which a connection
	// stopped reading for its devices' rate limit, and RateLimitedWait
	// the time it stopped for in total (the rate limit slows devices
	// down; it rejects nothing).
	RateLimitedFrames uint64
	RateLimitedWait   time.Duration
	// SetpointsDelivered counts the setpoints written to the connections
	// holding their devices, SetpointsNotHeld those for devices no
	// connection here holds (another instance delivers them),
	// SetpointsDropped those dropped for a connection's full queue, and
	// SetpointReaderErrors the sessions of the setpoint reader that failed.
	SetpointsDelivered, SetpointsNotHeld, SetpointsDropped, SetpointReaderErrors uint64
}

// RejectedTotal is the sum of Rejected.
func (s Stats) RejectedTotal() uint64 {
	var n uint64
	for _, v := range s.Rejected {
		n += v
	}
	return n
}

// cacheLine separates the counters written by different goroutines: with
// a whole line between two groups, they never share one, wherever the
// struct starts.
const cacheLine = 64

// counters is the live accounting behind Stats. The counters written on
// the hot paths are grouped by the goroutines that write them and kept on
// cache lines of their own: the read workers count received readings and
// frames, the producer's verdict goroutine counts published readings (and
// reads kafkaDown) per record, the ack writers count acked readings, and
// every such write would otherwise take the line from the other cores.
type counters struct {
	received atomic.Uint64
	frames   atomic.Uint64
	_        [cacheLine]byte

	published atomic.Uint64
	kafkaDown atomic.Bool
	// publishErr is the error that set kafkaDown (written only then).
	publishErr atomic.Pointer[string]
	_          [cacheLine]byte

	acked atomic.Uint64
	_     [cacheLine]byte

	connections atomic.Int64
	rejected    [numReasons]atomic.Uint64
	refused     [numRefusals]atomic.Uint64
	idleClosed  atomic.Uint64
	expClosed   atomic.Uint64
	// throttled counts the pauses of rate-limited connections and
	// throttledNS their length.
	throttled   atomic.Uint64
	throttledNS atomic.Uint64
	// Setpoints written to their devices' connections, skipped because
	// no connection here holds the device, dropped for a full queue; and
	// errors of the setpoint reader.
	spDelivered, spNotHeld, spDropped, spErrors atomic.Uint64

	protoMu   sync.Mutex
	protoErrs map[int]uint64
}

func (c *counters) protocolError(code int) {
	c.protoMu.Lock()
	defer c.protoMu.Unlock()
	if c.protoErrs == nil {
		c.protoErrs = make(map[int]uint64)
	}
	c.protoErrs[code]++
}

// Stats returns a snapshot of the server's accounting.
func (s *Server) Stats() Stats {
	st := Stats{
		Received:    s.ctr.received.Load(),
		Frames:      s.ctr.frames.Load(),
		Published:   s.ctr.published.Load(),
		Acked:       s.ctr.acked.Load(),
		Connections: s.ctr.connections.Load(),
		Rejected:    make(map[string]uint64),
		KafkaDown:   s.ctr.kafkaDown.Load(),
	}
	for i := range s.ctr.rejected {
		if n := s.ctr.rejected[i].Load(); n > 0 {
			st.Rejected[reason(i).String()] = n
		}
	}
	s.ctr.protoMu.Lock()
	st.ProtocolErrors = maps.Clone(s.ctr.protoErrs)
	s.ctr.protoMu.Unlock()
	if st.ProtocolErrors == nil {
		st.ProtocolErrors = make(map[int]uint64)
	}
	st.Refused = make(map[string]uint64)
	for i := range s.ctr.refused {
		if n := s.ctr.refused[i].Load(); n > 0 {
			st.Refused[refusal(i).String()] = n
		}
	}
	st.IdleClosed = s.ctr.idleClosed.Load()
	st.TokenExpiredClosed = s.ctr.expClosed.Load()
	st.RateLimitedFrames = s.ctr.throttled.Load()
	st.RateLimitedWait = time.Duration(s.ctr.throttledNS.Load())
	st.SetpointsDelivered, st.SetpointsNotHeld = s.ctr.spDelivered.Load(), s.ctr.spNotHeld.Load()
	st.SetpointsDropped, st.SetpointReaderErrors = s.ctr.spDropped.Load(), s.ctr.spErrors.Load()
	if s.limiter != nil {
		st.RateTableEntries, st.RateTableEvicted = s.limiter.size(time.Now().UnixMilli())
	}
	st.Buffered = s.buf.Len()
	st.BufferedBytes = s.buf.Bytes()
	st.BufferCapacity, st.BufferCapacityBytes = s.buf.Capacity()
	return st
}

// statsProto renders the stats as the IngestStats record of the stats
// topic.
func (s *Server) statsProto(now time.Time) *vppv1.IngestStats {
	st := s.Stats()
	pe := make(map[int32]uint64, len(st.ProtocolErrors))
	for k, v := range st.ProtocolErrors {
		pe[int32(k)] = v
	}
	return &vppv1.IngestStats{
		Instance:       s.cfg.Instance,
		Received:       st.Received,
		Rejected:       st.Rejected,
		Published:      st.Published,
		Acked:          st.Acked,
		Connections:    st.Connections,
		Frames:         st.Frames,
		ProtocolErrors: pe,
		Buffered:       int64(st.Buffered),
		BufferCapacity: int64(st.BufferCapacity),
		UpdatedMs:      now.UnixMilli(),
		StartedMs:      s.started.UnixMilli(),
		Refused:        st.Refused,
		IdleClosed:     st.IdleClosed,
	}
}
