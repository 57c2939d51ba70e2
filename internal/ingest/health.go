package ingest

import (
	"context"
	"time"
)

// Ready reports whether the server takes telemetry and can deliver it: it
// listens, its Kafka producer is up, it is not shutting down, and Kafka is
// reachable: the latest publish did not fail, nor did the latest probe
// (see Prober), which the server runs every probeInterval whether or not
// it publishes, so that even an idle server is not ready within 3 s of
// Kafka going away or hanging. When it is not ready, reason says why.
func (s *Server) Ready() (ok bool, reason string) {
	switch {
	case !s.serving.Load():
		if s.ln == nil {
			return false, "not listening"
		}
		return false, "not serving: connecting to kafka or shutting down"
	case s.ctr.kafkaDown.Load():
		if r := s.ctr.publishErr.Load(); r != nil {
			return false, "kafka unreachable: publishing fails, readings are buffered: " + *r
		}
		return false, "kafka unreachable: publishing fails, readings are buffered"
	case s.probeDown.Load():
		if r := s.probeReason.Load(); r != nil {
			return false, "kafka unreachable: " + *r
		}
		return false, "kafka unreachable: no answer to a metadata request"
	}
	return true, ""
}

// probeInterval is how often a server checks that Kafka answers.
const probeInterval = time.Second

// probeLoop probes p every probeInterval until ctx ends, keeping probeDown
// (see Ready) and logging when Kafka goes away and comes back. A probe
// gets probeInterval (at least) to answer.
func (s *Server) probeLoop(ctx context.Context, p Prober) {
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, probeInterval)
		err := p.Probe(pctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			reason := err.Error()
			prev := s.probeReason.Swap(&reason)
			if s.probeDown.CompareAndSwap(false, true) || prev == nil || *prev != reason {
				s.log.Warn("kafka probe failed: not ready", "err", err)
			}
		case s.probeDown.CompareAndSwap(true, false):
			s.probeReason.Store(nil)
			s.log.Info("kafka probe answered: ready again")
		}
	}
}
