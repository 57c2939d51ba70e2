// Package aggregate is the digital twin of the fleet: a Kafka consumer group
// member that folds the telemetry topic into per-device twins and publishes
// them, site by site, to the compacted state topic.
//
// A telemetry partition is the unit of ownership. When partition p is
// assigned, its state is restored from state partition p before any of its
// telemetry is applied; telemetry offsets are marked only after the state
// that reflects them is durable in the state topic (state before offsets);
// when p is revoked, its state is flushed and dropped.
//
// Configuration: DefaultConfig holds every default (the flags of vpp
// aggregate are registered from it); start from it and change what
// differs. A zero field that means nothing at zero (group, intervals) also
// takes its default, a field whose zero means something (ReserveSoCPct: no
// reserve) is used as given.
package aggregate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/internal/latency"
)

// Defaults of Config.
const (
	DefaultGroup           = "vpp-aggregate"
	DefaultOfflineAfter    = 30 * time.Second
	DefaultReserveSoCPct   = 10
	DefaultHeadroomHorizon = 15 * time.Minute
	DefaultFlushInterval   = 100 * time.Millisecond
	DefaultStateInterval   = time.Second
)

const (
	// finalFlushAttempts bounds the retries of the flush when a partition
	// is released.
	finalFlushAttempts = 3
	// retryBackoff is the pause between attempts to restore a partition or
	// to rejoin the group.
	retryBackoff = time.Second
)

// ErrAlreadyRunning is returned by Run when the Aggregator already runs (or
// ran): an Aggregator joins its group once.
var ErrAlreadyRunning = errors.New("aggregator already running")

// Config configures an Aggregator. Start from DefaultConfig and change
// what differs. For convenience New also takes a zero Group, OfflineAfter,
// HeadroomHorizon, FlushInterval or HistoryInterval as its default (none
// of them means anything at zero); ReserveSoCPct is used as given, so 0 is
// no reserve.
type Config struct {
	// Kafka are the brokers, topic prefix and protocol version.
	Kafka kafka.Options
	// Group is the consumer group (default "vpp-aggregate").
	Group string
	// InstanceID turns on static membership (Consumer.Group.InstanceId):
	// a restart within the session timeout keeps the assignment without a
	// rebalance. Empty means dynamic membership.
	InstanceID string
	// OfflineAfter is how long a device may stay silent before it counts as
	// offline (default 30s).
	OfflineAfter time.Duration
	// ReserveSoCPct is the state of charge, percent, that discharge headroom
	// keeps in reserve: 0 to 100 (default 10; 0 is no reserve).
	ReserveSoCPct float64
	// HeadroomHorizon is how long the headroom must be sustainable from the
	// stored energy (default 15m).
	HeadroomHorizon time.Duration
	// FlushInterval is how often dirty sites are published and offsets
	// marked (default 100ms).
	FlushInterval time.Duration
	// StateInterval is the least time between two publications of one
	// site's state: a site that changes more often is written once per
	// interval (its changes held meanwhile), so the state topic, and every
	// reader loading it, carries at most one record per site per interval
	// instead of one per flush. 0 publishes every change at the next flush
	// (the value is used as given; DefaultConfig has DefaultStateInterval).
	// A new owner of a partition re-applies the telemetry of the last
	// interval (see PartitionState.replay_from).
	StateInterval time.Duration
	// HistoryInterval is how often every owned, restored partition
	// publishes a PartitionSample to the history topic (default 1s; a
	// negative value publishes none). A lost sample is logged, never
	// retried, and never holds back state or offsets.
	HistoryInterval time.Duration
	// Heartbeat is the heartbeat timeout of the setpoints the aggregator
	// sends (default 10s): a device that hears no refresh for this long
	// returns to local control. Setpoints are refreshed every third of it.
	Heartbeat time.Duration
	// Logger receives the aggregator's logs (default slog.Default()).
	Logger *slog.Logger
}

// Stats is a snapshot of what an Aggregator owns and has done. Counters are
// those of the partitions it owns now, restored from the state topic, so they
// cover the partitions' whole history, not only this process's lifetime.
type Stats struct {
	// Partitions are the telemetry partitions owned now, sorted.
	Partitions []int32
	// Sites and Devices are the twins held in memory.
	Sites, Devices int
	// Consumed, Applied, Duplicates, Gaps and Undecodable sum the
	// PartitionState counters of the owned partitions.
	Consumed, Applied, Duplicates, Gaps, Undecodable uint64
	// Lag is the sum over owned partitions of high-water mark minus next
	// offset: telemetry records not yet applied. PartitionLag is the same
	// per owned partition.
	Lag          int64
	PartitionLag map[int32]int64
	// PublishLatency times the state flushes (until Kafka acknowledged);
	// Freshness is the time from a reading's timestamp to its twin update.
	// Both cover this process's lifetime.
	PublishLatency latency.Snapshot
	Freshness      latency.Snapshot
}

// Aggregator is one member of the aggregate consumer group. Create it with
// New; Run it once.
type Aggregator struct {
	cfg   Config
	twin  twinConfig
	log   *slog.Logger
	now   func() time.Time
	topic string // telemetry
	state string // state topic

	// publishLatency times each state flush (SendMessages until Kafka
	// acknowledged); freshness is reading timestamp → applied to its twin.
	publishLatency latency.Histogram
	freshness      latency.Histogram

	mu      sync.Mutex
	running bool
	session sarama.ConsumerGroupSession // nil when not joined
	// sessionErr is why the latest group session ended ("" after a join).
	sessionErr string
	parts      map[int32]*partState
}

// DefaultConfig returns the Config with every default and no Kafka
// brokers: set Kafka, then change what differs. The flags of vpp aggregate
// are registered from these values.
func DefaultConfig() Config {
	return Config{
		Group:           DefaultGroup,
		OfflineAfter:    DefaultOfflineAfter,
		ReserveSoCPct:   DefaultReserveSoCPct,
		HeadroomHorizon: DefaultHeadroomHorizon,
		FlushInterval:   DefaultFlushInterval,
		StateInterval:   DefaultStateInterval,
		HistoryInterval: DefaultHistoryInterval,
		Heartbeat:       DefaultHeartbeat,
	}
}

// New validates cfg, fills in the defaults of its zero fields that have no
// meaning at zero (see Config) and returns an Aggregator.
func New(cfg Config) (*Aggregator, error) {
	if len(cfg.Kafka.Brokers) == 0 {
		return nil, errors.New("aggregate: no kafka brokers")
	}
	if _, err := cfg.Kafka.SaramaConfig(); err != nil {
		return nil, fmt.Errorf("aggregate: %w", err)
	}
	if cfg.Group == "" {
		cfg.Group = DefaultGroup
	}
	if cfg.OfflineAfter <= 0 {
		cfg.OfflineAfter = DefaultOfflineAfter
	}
	if !(cfg.ReserveSoCPct >= 0 && cfg.ReserveSoCPct <= 100) {
		return nil, fmt.Errorf("aggregate: reserve SoC %v %%: want 0 to 100", cfg.ReserveSoCPct)
	}
	if cfg.HeadroomHorizon <= 0 {
		cfg.HeadroomHorizon = DefaultHeadroomHorizon
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = DefaultFlushInterval
	}
	if cfg.StateInterval < 0 {
		return nil, fmt.Errorf("aggregate: state interval %v: want >= 0", cfg.StateInterval)
	}
	if cfg.HistoryInterval == 0 {
		cfg.HistoryInterval = DefaultHistoryInterval
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	t := cfg.Kafka.Topics()
	return &Aggregator{
		cfg: cfg,
		twin: twinConfig{offlineAfter: cfg.OfflineAfter, reserve: cfg.ReserveSoCPct, horizon: cfg.HeadroomHorizon,
			holdCaptures: uint32((cfg.StateInterval + cfg.FlushInterval - 1) / cfg.FlushInterval)},
		log:   cfg.Logger.With("component", "aggregate", "group", cfg.Group),
		now:   time.Now,
		topic: t.Telemetry(),
		state: t.State(),
		parts: make(map[int32]*partState),
	}, nil
}

// consumerConfig is the sarama configuration of the group member.
func (a *Aggregator) consumerConfig() (*sarama.Config, error) {
	c, err := a.cfg.Kafka.SaramaConfig()
	if err != nil {
		return nil, err
	}
	c.Consumer.Return.Errors = true
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Offsets.AutoCommit.Enable = true
	c.Consumer.Offsets.AutoCommit.Interval = max(time.Second, a.cfg.FlushInterval)
	c.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyCooperativeSticky()}
	if a.cfg.InstanceID != "" {
		c.Consumer.Group.InstanceId = a.cfg.InstanceID
	}
	return c, nil
}

// producerConfig is the sarama configuration of the state producer.
func (a *Aggregator) producerConfig() (*sarama.Config, error) {
	c, err := a.cfg.Kafka.StateProducerConfig()
	if err != nil {
		return nil, err
	}
	c.Producer.Return.Successes = true
	c.Producer.Return.Errors = true
	c.Producer.Partitioner = sarama.NewManualPartitioner
	if c.ClientID == "vpp" {
		c.ClientID = "vpp-aggregate"
	}
	return c, nil
}

// Run joins the consumer group and applies telemetry until ctx is done. On
// the way out it flushes the state of every owned partition, commits the
// offsets behind it and leaves the group. It returns nil on a clean
// shutdown.
func (a *Aggregator) Run(ctx context.Context) (err error) {
	a.mu.Lock()
	if a.running {
		a.mu.Unlock()
		return ErrAlreadyRunning
	}
	a.running = true
	a.mu.Unlock()

	ccfg, err := a.consumerConfig()
	if err != nil {
		return fmt.Errorf("aggregate: consumer config: %w", err)
	}
	pcfg, err := a.producerConfig()
	if err != nil {
		return fmt.Errorf("aggregate: producer config: %w", err)
	}
	brokers := a.cfg.Kafka.Brokers

	// The restore client reads the state topic; the group closes its own
	// client on Close, so it cannot be shared.
	rcfg, err := a.cfg.Kafka.SaramaConfig()
	if err != nil {
		return fmt.Errorf("aggregate: restore config: %w", err)
	}
	rcfg.Consumer.Return.Errors = true
	// A restore reads up to a known end: do not let the broker hold a fetch
	// for data that is not coming.
	rcfg.Consumer.MaxWaitTime = 50 * time.Millisecond
	rclient, err := sarama.NewClient(brokers, rcfg)
	if err != nil {
		err, _ = a.cfg.Kafka.Explain(strings.Join(brokers, ","), err)
		return fmt.Errorf("aggregate: connect to kafka %v: %w", brokers, err)
	}
	defer closeLogged(a.log, "restore client", rclient)
	if err := a.checkTopics(rclient); err != nil {
		return err
	}
	rconsumer, err := sarama.NewConsumerFromClient(rclient)
	if err != nil {
		return fmt.Errorf("aggregate: state consumer: %w", err)
	}
	defer closeLogged(a.log, "state consumer", rconsumer)

	producer, err := sarama.NewSyncProducer(brokers, pcfg)
	if err != nil {
		return fmt.Errorf("aggregate: state producer: %w", a.cfg.Kafka.ProducerDenied(err))
	}
	defer closeLogged(a.log, "state producer", producer)

	var hist *historySink
	if a.cfg.HistoryInterval > 0 {
		// Sparklines are a convenience: without a history producer the
		// twin still runs.
		if hist, err = newHistorySink(a.cfg.Kafka, a.log); err != nil {
			a.log.Warn("no history samples", "err", err)
			hist = nil
		} else {
			defer closeLogged(a.log, "history producer", hist)
		}
	}

	if err := a.checkGroup(rclient); err != nil {
		return err
	}
	group, err := sarama.NewConsumerGroup(brokers, a.cfg.Group, ccfg)
	if err != nil {
		return fmt.Errorf("aggregate: join group %s: %w", a.cfg.Group, err)
	}
	errsDone := make(chan struct{})
	go func() {
		defer close(errsDone)
		for err := range group.Errors() {
			a.log.Warn("kafka consumer error", "err", err)
		}
	}()

	parts, err := rclient.Partitions(a.topic)
	if err != nil {
		return fmt.Errorf("aggregate: partitions of %s: %w", a.topic, err)
	}
	eng := newEngine(a, producer, int32(len(parts)))
	engCtx, stopEngine := context.WithCancel(ctx)
	engDone := make(chan struct{})
	go func() {
		defer close(engDone)
		eng.run(engCtx)
	}()
	defer func() {
		stopEngine()
		<-engDone
	}()

	h := &handler{a: a, client: rclient, consumer: rconsumer, producer: producer, hist: hist}
	a.log.Info("joining group", "topic", a.topic, "instance", a.cfg.InstanceID)
	for ctx.Err() == nil {
		if err := group.Consume(ctx, []string{a.topic}, h); err != nil {
			if errors.Is(err, sarama.ErrClosedConsumerGroup) {
				break
			}
			if ctx.Err() != nil {
				break
			}
			err = a.cfg.Kafka.GroupDenied(err, a.cfg.Group, a.topic)
			if ae := (*kafka.AuthzError)(nil); !h.joined && errors.As(err, &ae) {
				// Never admitted: an ACL is missing, and waiting does not
				// grant it.
				_ = group.Close()
				<-errsDone
				return fmt.Errorf("aggregate: join group %s: %w", a.cfg.Group, err)
			}
			a.mu.Lock()
			a.sessionErr = err.Error()
			a.mu.Unlock()
			a.log.Warn("consumer group session ended, rejoining", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(retryBackoff):
			}
		}
	}
	if cerr := group.Close(); cerr != nil {
		a.log.Warn("leave group", "err", cerr)
	}
	<-errsDone
	a.log.Info("left group")
	return nil
}

// checkGroup asks a broker once for the group's coordinator: a missing
// group ACL fails the start at once, where the consumer group would retry
// it for many seconds. Any other outcome is left to the group.
func (a *Aggregator) checkGroup(client sarama.Client) error {
	b := client.LeastLoadedBroker()
	if b == nil {
		return nil
	}
	resp, err := b.FindCoordinator(&sarama.FindCoordinatorRequest{Version: 2, CoordinatorKey: a.cfg.Group, CoordinatorType: sarama.CoordinatorGroup})
	if err != nil || !errors.Is(resp.Err, sarama.ErrGroupAuthorizationFailed) {
		return nil
	}
	return fmt.Errorf("aggregate: join group %s: %w", a.cfg.Group, a.cfg.Kafka.GroupDenied(resp.Err, a.cfg.Group, a.topic))
}

// checkTopics makes sure the telemetry and state topics exist with the same
// partition count: state partition p holds the state of telemetry partition
// p. (kafka.EnsureTopics creates them; this catches a deployment that
// skipped it.)
func (a *Aggregator) checkTopics(client sarama.Client) error {
	tel, err := client.Partitions(a.topic)
	if err != nil {
		return fmt.Errorf("aggregate: topic %s: %w", a.topic, err)
	}
	st, err := client.Partitions(a.state)
	if err != nil {
		return fmt.Errorf("aggregate: topic %s: %w", a.state, err)
	}
	if len(tel) != len(st) {
		return fmt.Errorf("aggregate: %w: %s has %d partitions but %s has %d; they must match",
			kafka.ErrTopicMismatch, a.topic, len(tel), a.state, len(st))
	}
	return nil
}

func closeLogged(log *slog.Logger, what string, c interface{ Close() error }) {
	if err := c.Close(); err != nil {
		log.Warn("close "+what, "err", err)
	}
}

// Stats returns a snapshot of the owned partitions' accounting.
func (a *Aggregator) Stats() Stats {
	a.mu.Lock()
	parts := make([]*partState, 0, len(a.parts))
	for _, ps := range a.parts {
		parts = append(parts, ps)
	}
	a.mu.Unlock()
	st := Stats{
		PartitionLag:   make(map[int32]int64, len(parts)),
		PublishLatency: a.publishLatency.Snapshot(),
		Freshness:      a.freshness.Snapshot(),
	}
	for _, ps := range parts {
		ps.mu.Lock()
		st.Partitions = append(st.Partitions, ps.id)
		st.Sites += len(ps.sites)
		st.Devices += ps.devices
		st.Consumed += ps.acct.Consumed
		st.Applied += ps.acct.Applied
		st.Duplicates += ps.acct.Duplicates
		st.Gaps += ps.acct.Gaps
		st.Undecodable += ps.acct.Undecodable
		lag := max(0, ps.acct.HighWaterMark-ps.acct.NextOffset)
		st.Lag += lag
		st.PartitionLag[ps.id] = lag
		ps.mu.Unlock()
	}
	slices.Sort(st.Partitions)
	return st
}

// ownedParts returns the partitions' states owned now.
func (a *Aggregator) ownedParts() []*partState {
	a.mu.Lock()
	defer a.mu.Unlock()
	parts := make([]*partState, 0, len(a.parts))
	for _, ps := range a.parts {
		parts = append(parts, ps)
	}
	return parts
}

// SessionError is why the latest consumer group session ended with an
// error while the aggregator rejoins ("" once it joined again).
func (a *Aggregator) SessionError() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.sessionErr
}

// Ready reports whether the Aggregator has joined its group and restored
// every partition assigned to it.
func (a *Aggregator) Ready() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.session == nil {
		return false
	}
	for _, p := range a.session.Claims()[a.topic] {
		ps := a.parts[p]
		if ps == nil {
			return false
		}
		ps.mu.Lock()
		ok := ps.restored
		ps.mu.Unlock()
		if !ok {
			return false
		}
	}
	return true
}
