// Package pipeline runs ingest, one or more aggregators, a fleet reader and
// the HTTP API in one process against one Kafka. `vpp demo` and the
// end-to-end tests use it; production runs each part as its own command.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/vppctl/vpp/internal/aggregate"
	"github.com/vppctl/vpp/internal/api"
	"github.com/vppctl/vpp/internal/auth"
	"github.com/vppctl/vpp/internal/dispatch"
	"github.com/vppctl/vpp/internal/ingest"
	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/internal/metrics"
	"github.com/vppctl/vpp/internal/reader"
)

// Config describes a pipeline.
type Config struct {
	// Kafka is where every part connects; it overrides the Kafka field of
	// Ingest and Aggregate.
	Kafka kafka.Options
	// Ingest configures the ingest server; nil means
	// ingest.DefaultConfig(), what `vpp ingest` runs with. A Config given
	// here is used as it is (start from ingest.DefaultConfig(): the zero
	// Config has no power tolerance and no rate limit); Listen "" means
	// 127.0.0.1:0.
	Ingest *ingest.Config
	// Aggregate configures every aggregator instance; nil means
	// aggregate.DefaultConfig() (the zero Config keeps no SoC reserve).
	Aggregate *aggregate.Config
	// Aggregators is the number of aggregator instances in the group
	// (default 1).
	Aggregators int
	// HTTPAddr serves the JSON API when set ("127.0.0.1:0" for a free port).
	HTTPAddr string
	// Logger receives every part's logs.
	Logger *slog.Logger
	// API guards the HTTP API: an optional bearer token and CORS origin.
	API api.GuardOptions
}

// Pipeline is a running pipeline.
type Pipeline struct {
	ingest  *ingest.Server
	aggs    []*aggregate.Aggregator
	reader  *reader.Reader
	apiAddr string
	// dispatch is the dispatch service of the API; nil without HTTPAddr.
	dispatch *dispatch.Service
	// tokenKey signs device tokens when the pipeline made its own key.
	tokenKey *auth.Key

	wg   sync.WaitGroup
	mu   sync.Mutex
	errs []error
}

// Start creates the topics and starts every part. The parts stop when ctx
// is cancelled; Wait waits for them.
func Start(ctx context.Context, cfg Config) (*Pipeline, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if cfg.Aggregators <= 0 {
		cfg.Aggregators = 1
	}
	if err := kafka.EnsureTopics(ctx, cfg.Kafka); err != nil {
		return nil, fmt.Errorf("ensure topics: %w", err)
	}
	p := &Pipeline{}

	if err := cfg.API.Validate(); err != nil {
		return nil, err
	}
	icfg := ingest.DefaultConfig()
	icfg.Listen = "" // a free port, not the default one
	if cfg.Ingest != nil {
		icfg = *cfg.Ingest
	}
	if icfg.Auth == nil && !icfg.Insecure {
		// Devices authenticate even in one process: an ephemeral key
		// verifies the tokens TokenFunc issues.
		key, err := auth.NewEphemeral()
		if err != nil {
			return nil, err
		}
		p.tokenKey = key
		icfg.Auth = auth.NewVerifier(key, auth.DefaultVerifierOptions())
	}
	icfg.Kafka = cfg.Kafka
	icfg.Kafka.ClientID = "vpp-ingest"
	if icfg.Listen == "" {
		icfg.Listen = "127.0.0.1:0"
	}
	if icfg.Logger == nil {
		icfg.Logger = log.With("part", "ingest")
	}
	srv, err := ingest.New(icfg, nil)
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	if err := srv.Listen(); err != nil {
		return nil, fmt.Errorf("ingest listen: %w", err)
	}
	p.ingest = srv

	for i := range cfg.Aggregators {
		acfg := aggregate.DefaultConfig()
		if cfg.Aggregate != nil {
			acfg = *cfg.Aggregate
		}
		acfg.Kafka = cfg.Kafka
		acfg.Kafka.ClientID = fmt.Sprintf("vpp-aggregate-%d", i)
		if acfg.Logger == nil {
			acfg.Logger = log.With("part", "aggregate", "instance", i)
		}
		a, err := aggregate.New(acfg)
		if err != nil {
			return nil, fmt.Errorf("aggregate %d: %w", i, err)
		}
		p.aggs = append(p.aggs, a)
	}

	ropts := cfg.Kafka
	ropts.ClientID = "vpp-reader"
	r, err := reader.New(ropts, log.With("part", "reader"))
	if err != nil {
		return nil, fmt.Errorf("fleet reader: %w", err)
	}
	p.reader = r

	var ln net.Listener
	var svc *dispatch.Service
	if cfg.HTTPAddr != "" {
		ln, err = net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			return nil, fmt.Errorf("http listen %s: %w", cfg.HTTPAddr, err)
		}
		p.apiAddr = ln.Addr().String()
		dopts := cfg.Kafka
		dopts.ClientID = "vpp-dispatch-api"
		if svc, err = dispatch.Open(dopts, log.With("part", "dispatch")); err != nil {
			_ = ln.Close()
			return nil, err
		}
		svc.Fleet = r
		svc.FleetReady = func() bool { ok, _ := r.Ready(); return ok }
		p.dispatch = svc
	}

	p.goRun("ingest", func() error { return srv.Serve(ctx) })
	for i, a := range p.aggs {
		p.goRun(fmt.Sprintf("aggregate %d", i), func() error { return a.Run(ctx) })
	}
	p.goRun("reader", func() error { return r.Run(ctx) })
	if ln != nil {
		p.goRun("dispatch view", func() error {
			defer svc.Close()
			return svc.View.Run(ctx)
		})
		h := api.NewMux(api.MuxConfig{
			Fleet:    r,
			Changed:  r.Changed,
			Dispatch: svc,
			Metrics: metrics.Handler(
				metrics.NewIngestCollector(srv.Stats).WithProducer(srv.ProducerStats),
				metrics.NewAggregateCollector(p.aggregateStats),
				metrics.NewFleetCollector(r),
			),
			Ready: []api.ReadyCheck{srv.Ready, p.aggregatorsReady, r.Ready},
			Guard: cfg.API,
		})
		p.goRun("http", func() error { return ServeHTTP(ctx, ln, h) })
	}
	return p, nil
}

func (p *Pipeline) goRun(name string, fn func() error) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		if err := fn(); err != nil && !errors.Is(err, context.Canceled) {
			p.mu.Lock()
			p.errs = append(p.errs, fmt.Errorf("%s: %w", name, err))
			p.mu.Unlock()
		}
	}()
}

// aggregateStats sums the stats of every aggregator instance.
func (p *Pipeline) aggregateStats() aggregate.Stats {
	sum := aggregate.Stats{PartitionLag: map[int32]int64{}}
	for _, a := range p.aggs {
		st := a.Stats()
		for k, v := range st.PartitionLag {
			sum.PartitionLag[k] = v
		}
		sum.PublishLatency.Merge(st.PublishLatency)
		sum.Freshness.Merge(st.Freshness)
		sum.Partitions = append(sum.Partitions, st.Partitions...)
		sum.Sites += st.Sites
		sum.Devices += st.Devices
		sum.Consumed += st.Consumed
		sum.Applied += st.Applied
		sum.Duplicates += st.Duplicates
		sum.Gaps += st.Gaps
		sum.Undecodable += st.Undecodable
		sum.Lag += st.Lag
	}
	return sum
}

// aggregatorsReady is ready once every aggregator instance joined and
// restored its partitions.
func (p *Pipeline) aggregatorsReady() (ok bool, reason string) {
	for i, a := range p.aggs {
		if !a.Ready() {
			return false, fmt.Sprintf("aggregator %d joining or restoring its partitions", i)
		}
	}
	return true, ""
}

// IngestURL is the WebSocket URL devices connect to.
func (p *Pipeline) IngestURL() string { return p.ingest.URL() }

// TokenFunc mints device tokens accepted by the pipeline's ingest for a
// connection's sites (valid for an hour; the simulator asks again on every
// reconnect), or returns nil when the pipeline did not make the key
// (Ingest.Auth given, or Ingest.Insecure). Its signature is sim.TokenFunc's.
func (p *Pipeline) TokenFunc() func(ctx context.Context, devices, sites []string) (string, error) {
	if p.tokenKey == nil {
		return nil
	}
	return auth.SiteMinter(p.tokenKey, "pipeline-sim", time.Hour)
}

// APIURL is the base URL of the JSON API ("" when not serving).
func (p *Pipeline) APIURL() string {
	if p.apiAddr == "" {
		return ""
	}
	return "http://" + p.apiAddr
}

// Ingest is the ingest server.
func (p *Pipeline) Ingest() *ingest.Server { return p.ingest }

// Aggregators are the aggregator instances.
func (p *Pipeline) Aggregators() []*aggregate.Aggregator { return p.aggs }

// Reader is the fleet reader behind the API.
func (p *Pipeline) Reader() *reader.Reader { return p.reader }

// Dispatch is the pipeline's dispatch service (the API's), running until
// the pipeline stops; nil without Config.HTTPAddr.
func (p *Pipeline) Dispatch() *dispatch.Service { return p.dispatch }

// Wait waits until every part stopped and returns their errors joined.
func (p *Pipeline) Wait() error {
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	return errors.Join(p.errs...)
}

// ServeHTTP serves h on ln until ctx is done, then shuts the server down,
// giving requests in flight five seconds. Request contexts derive from ctx,
// so long-lived requests (event streams) end when ctx does.
func ServeHTTP(ctx context.Context, ln net.Listener, h http.Handler) error {
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}()
	err := hs.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		<-stopped
		return nil
	}
	return fmt.Errorf("serve http: %w", err)
}
