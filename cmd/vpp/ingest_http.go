package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/vppctl/vpp/internal/api"
	"github.com/vppctl/vpp/internal/ingest"
	"github.com/vppctl/vpp/internal/metrics"
	"github.com/vppctl/vpp/internal/pipeline"
	"github.com/vppctl/vpp/internal/spool"
)

// startIngestHTTP serves the health and metrics endpoints of `vpp ingest
// --http` on addr until ctx ends:
//
//	GET /healthz  liveness: 200 while the process runs
//	GET /readyz   200 while ingest listens, its producer is up, Kafka is
//	              reachable and (with a spool) the replay of what Kafka had
//	              not acknowledged before a restart finished; else 503
//	              {"status":"not ready","reason":"…"}
//	GET /metrics  Prometheus metrics of the ingest accounting
//
// It returns once the listener is bound; wait blocks until the server
// stopped (after ctx ended) and returns its error.
func startIngestHTTP(ctx context.Context, addr string, srv *ingest.Server, sp *spool.Spool) (wait func() error, err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("http listen %s: %w", addr, err)
	}
	checks := []api.ReadyCheck{srv.Ready}
	if sp != nil {
		checks = append(checks, func() (bool, string) {
			if sp.Replaying() {
				return false, "spool replay running: records from before the restart are not all in kafka yet"
			}
			return true, ""
		})
	}
	h := api.NewMux(api.MuxConfig{
		Metrics: metrics.Handler(metrics.NewIngestCollector(srv.Stats).WithProducer(srv.ProducerStats)),
		Ready:   checks,
	})
	slog.Info("serving health and metrics", "addr", ln.Addr().String())
	done := make(chan error, 1)
	go func() { done <- pipeline.ServeHTTP(ctx, ln, h) }()
	return func() error { return <-done }, nil
}
