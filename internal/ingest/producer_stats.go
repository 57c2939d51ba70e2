package ingest

import "github.com/vppctl/vpp/internal/hist"

// producerStatser is a Publisher that measures itself (SaramaPublisher).
type producerStatser interface {
	ProducerStats() (hist.Snapshot, uint64)
}

// ProducerStats returns the publisher's produce latency histogram and its
// failed produce attempts; ok is false when the publisher does not measure
// them (test publishers).
func (s *Server) ProducerStats() (latency hist.Snapshot, errors uint64, ok bool) {
	ps, ok := s.pub.(producerStatser)
	if !ok {
		return hist.Snapshot{}, 0, false
	}
	latency, errors = ps.ProducerStats()
	return latency, errors, true
}
