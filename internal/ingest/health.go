package ingest

// Ready reports whether the server takes telemetry and can deliver it: it
// listens, its Kafka producer is up, it is not shutting down, and Kafka is
// reachable (the latest publish did not fail). When it is not ready, reason
// says why.
func (s *Server) Ready() (ok bool, reason string) {
	switch {
	case !s.serving.Load():
		if s.ln == nil {
			return false, "not listening"
		}
		return false, "not serving: connecting to kafka or shutting down"
	case s.ctr.kafkaDown.Load():
		return false, "kafka unreachable: publishing fails, readings are buffered"
	}
	return true, ""
}
