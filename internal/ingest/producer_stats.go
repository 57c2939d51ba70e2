package ingest

import "github.com/vppctl/vpp/internal/latency"

// producerStatser is a Publisher that measures itself (SaramaPublisher).
type producerStatser interface {
	ProducerStats() (latency.Snapshot, uint64)
}

// ProducerStats returns the publisher's produce latency histogram and its
// failed produce attempts; ok is false when the publisher does not measure
// them (test publishers).
func (s *Server) ProducerStats() (lat latency.Snapshot, errors uint64, ok bool) {
	ps, ok := s.pub.(producerStatser)
	if !ok {
		return latency.Snapshot{}, 0, false
	}
	lat, errors = ps.ProducerStats()
	return lat, errors, true
}
