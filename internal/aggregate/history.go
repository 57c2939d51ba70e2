package aggregate

import (
	"cmp"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"google.golang.org/protobuf/proto"

	vppfleet "github.com/vppctl/vpp/internal/fleet"
	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/proto/vppv1"
)

// DefaultHistoryInterval is how often each owned partition publishes a
// PartitionSample to the history topic.
const DefaultHistoryInterval = time.Second

const (
	// historyErrorLogInterval bounds how often failed samples are logged.
	historyErrorLogInterval = time.Minute
	// historyQueue bounds the samples waiting for the history producer.
	historyQueue = 256
	// historyCloseTimeout bounds how long Close waits for the history
	// producer to give up on a broker that does not answer.
	historyCloseTimeout = 5 * time.Second
)

// subKey names one substation partial (a substation ID may in principle
// appear under two regions; they stay apart).
type subKey struct{ region, substation string }

// sample returns the partition's PartitionSample at nowMs: its counters,
// its lag and, per substation, the sum of its devices' contributions in
// fixed point (exactly what fleet readers compute from the site states).
// O(devices of the partition). The caller holds mu.
func (ps *partState) sample(nowMs, hwm int64) *vppv1.PartitionSample {
	if hwm > ps.acct.HighWaterMark {
		ps.acct.HighWaterMark = hwm
	}
	subs := make(map[subKey]*vppv1.SubstationSample)
	var st vppv1.DeviceState // reused: fill allocates nothing once it has a Reading
	for _, s := range ps.sites {
		k := subKey{s.region, s.substation}
		sub := subs[k]
		if sub == nil {
			sub = &vppv1.SubstationSample{SubstationId: s.substation, RegionId: s.region}
			subs[k] = sub
		}
		for i := range s.devices {
			s.devices[i].fill(&st, s)
			c := vppfleet.DeviceContribution(&st)
			sub.NetMicroKw += c.NetMicroKW
			sub.ChargeMicroKw += c.ChargeMicroKW
			sub.DischargeMicroKw += c.DischargeMicroKW
			sub.EnergyMicroKwh += c.EnergyMicroKWh
			sub.CapacityMicroKwh += c.CapacityMicroKWh
			sub.HeadroomDischargeMicroKw += c.HeadroomDischargeMicroKW
			sub.HeadroomChargeMicroKw += c.HeadroomChargeMicroKW
			sub.Devices += int32(c.Devices)
			sub.Online += int32(c.Online)
			sub.Alarming += int32(c.Alarming)
		}
	}
	out := &vppv1.PartitionSample{
		Partition:   ps.id,
		TsMs:        nowMs,
		Consumed:    ps.acct.Consumed,
		Applied:     ps.acct.Applied,
		Duplicates:  ps.acct.Duplicates,
		Gaps:        ps.acct.Gaps,
		Lag:         max(0, ps.acct.HighWaterMark-ps.acct.NextOffset),
		Substations: make([]*vppv1.SubstationSample, 0, len(subs)),
	}
	for _, sub := range subs {
		out.Substations = append(out.Substations, sub)
	}
	slices.SortFunc(out.Substations, func(a, b *vppv1.SubstationSample) int {
		return cmp.Or(cmp.Compare(a.SubstationId, b.SubstationId), cmp.Compare(a.RegionId, b.RegionId))
	})
	return out
}

// historySink publishes partition samples to the history topic, fire and
// forget: its own non-idempotent async producer (so a failing history
// topic can never delay or disturb the state producer), and a full input
// drops the sample instead of blocking the partition's loop.
type historySink struct {
	topic    string
	producer sarama.AsyncProducer
	log      *slog.Logger
	queue    chan *sarama.ProducerMessage // bounded; sarama's Input is unbuffered
	stop     chan struct{}
	fwd      sync.WaitGroup // the forwarder
	errs     sync.WaitGroup // the error drain
	once     sync.Once

	mu      sync.Mutex
	dropped uint64
	logged  time.Time
}

// newHistorySink starts the history producer.
func newHistorySink(opts kafka.Options, log *slog.Logger) (*historySink, error) {
	cfg, err := opts.SaramaConfig()
	if err != nil {
		return nil, fmt.Errorf("history producer config: %w", err)
	}
	if cfg.ClientID == "vpp" {
		cfg.ClientID = "vpp-aggregate-history"
	}
	cfg.Producer.RequiredAcks = sarama.WaitForLocal
	cfg.Producer.Retry.Max = 1
	cfg.Producer.Compression = sarama.CompressionLZ4
	cfg.Producer.Flush.Frequency = 20 * time.Millisecond
	cfg.Producer.Return.Successes = false
	cfg.Producer.Return.Errors = true
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Producer.Timeout = 5 * time.Second
	p, err := sarama.NewAsyncProducer(opts.Brokers, cfg)
	if err != nil {
		return nil, fmt.Errorf("history producer: %w", err)
	}
	h := &historySink{
		topic: opts.Topics().History(), producer: p, log: log,
		queue: make(chan *sarama.ProducerMessage, historyQueue), stop: make(chan struct{}),
	}
	h.errs.Go(func() {
		for pe := range p.Errors() {
			h.failed(fmt.Errorf("produce to %s: %w", h.topic, pe.Err))
		}
	})
	h.fwd.Go(func() {
		for {
			select {
			case m := <-h.queue:
				select {
				case p.Input() <- m:
				case <-h.stop:
					return
				}
			case <-h.stop:
				return
			}
		}
	})
	return h, nil
}

// publish hands a sample to the producer without blocking.
func (h *historySink) publish(s *vppv1.PartitionSample) {
	b, err := proto.Marshal(&vppv1.HistoryRecord{Body: &vppv1.HistoryRecord_Partition{Partition: s}})
	if err != nil {
		h.failed(fmt.Errorf("marshal sample of partition %d: %w", s.GetPartition(), err))
		return
	}
	m := &sarama.ProducerMessage{
		Topic:     h.topic,
		Partition: 0,
		Key:       sarama.StringEncoder(PartitionKey(s.GetPartition())),
		Value:     sarama.ByteEncoder(b),
		Timestamp: time.UnixMilli(s.GetTsMs()),
	}
	select {
	case h.queue <- m:
	default:
		h.failed(fmt.Errorf("history producer saturated: sample of partition %d dropped", s.GetPartition()))
	}
}

// failed counts a lost sample and logs at most once per
// historyErrorLogInterval.
func (h *historySink) failed(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.dropped++
	if now := time.Now(); now.Sub(h.logged) >= historyErrorLogInterval {
		h.log.Warn("history sample lost (sparklines get a gap; state is unaffected)", "err", err, "lost_total", h.dropped)
		h.logged = now
	}
}

// Close stops the producer, flushing what it holds, and waits (at most
// historyCloseTimeout) for it to finish. Samples still queued are dropped.
func (h *historySink) Close() error {
	h.once.Do(func() {
		close(h.stop)
		h.fwd.Wait()
		h.producer.AsyncClose()
		done := make(chan struct{})
		go func() {
			h.errs.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(historyCloseTimeout):
			h.log.Warn("history producer did not stop in time; leaving it to finish on its own")
		}
	})
	return nil
}
