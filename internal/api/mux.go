package api

import (
	"net/http"
	"time"

	"github.com/vppctl/vpp/internal/dispatch"
	"github.com/vppctl/vpp/internal/fleet"
)

// MuxConfig configures NewMux. Only Ready and Guard matter to a process
// that serves no fleet (ingest).
type MuxConfig struct {
	// Fleet, when set, serves the page at /, its event stream at
	// StreamPath and the JSON API under /api/metrics/.
	Fleet fleet.SnapshotSource
	// Changed returns a channel closed when Fleet publishes its next
	// snapshot (reader.Reader.Changed); nil makes the stream poll Fleet.
	Changed func() <-chan struct{}
	// Dispatch, when set, serves the dispatch API under DispatchesPath
	// (reads behind Guard.Token, writes behind Guard.OperatorToken).
	Dispatch *dispatch.Service
	// Metrics, when set, serves /metrics (Prometheus).
	Metrics http.Handler
	// Ready are the readiness checks of /readyz; none means ready while the
	// process runs.
	Ready []ReadyCheck
	// Guard configures the bearer token and CORS origin; the zero value
	// serves GET and HEAD to anyone and sends no CORS headers.
	Guard GuardOptions
	// Now gives device ages and the data age; nil means time.Now.
	Now func() time.Time
}

// NewMux returns the HTTP handler of a vpp process, behind the guard (GET
// and HEAD only, the optional token and CORS origin):
//
//	GET /healthz          liveness (Health)
//	GET /readyz           readiness: every check of Ready (Health)
//	GET /metrics          Prometheus metrics, when Metrics is set
//	GET /                 the live page, when Fleet is set
//	GET /api/stream       the page's event stream, when Fleet is set
//	GET /api/dispatches   the dispatches, when Dispatch is set; also
//	                      POST (create), GET and DELETE (cancel) .../{id}
//	GET /api/metrics/...  the JSON API (FleetHandler), when Fleet is set;
//	                      with Fleet, unknown paths answer a JSON 404
//
// Every command that serves HTTP (aggregate, demo, ingest) builds its
// handler here.
func NewMux(cfg MuxConfig) http.Handler {
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	mux := http.NewServeMux()
	health := Health(cfg.Ready...)
	mux.Handle("GET /healthz", health)
	mux.Handle("GET /readyz", health)
	if cfg.Metrics != nil {
		mux.Handle("/metrics", cfg.Metrics)
	}
	if cfg.Dispatch != nil {
		registerDispatch(mux, cfg.Dispatch, now)
	}
	if cfg.Fleet != nil {
		page, err := NewPage(PageConfig{Source: cfg.Fleet, Changed: cfg.Changed, Now: now})
		if err != nil {
			panic(err) // NewPage fails only without a source, and Fleet is one
		}
		mux.Handle("GET /{$}", page)
		mux.Handle("GET "+StreamPath, page)
		mux.Handle("/", FleetHandler(cfg.Fleet, now))
	}
	return Guard(mux, cfg.Guard)
}
