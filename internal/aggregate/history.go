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

// subSums is one substation's partial over the devices of one partition,
// in fixed point exactly as fleet readers sum them, kept up to date as
// readings are applied so that a sample costs O(substations), not
// O(devices).
type subSums struct {
	region, substation                string
	net, charge, discharge            int64
	energy, capacity                  int64
	headroomDischarge, headroomCharge int64
	devices, online, alarming         int32
}

// contrib is one device's part of its substation's sums.
type contrib struct {
	net, charge, discharge            int64
	energy, capacity                  int64
	headroomDischarge, headroomCharge int64
	online, alarming                  int32
}

// contribution is d's part of the sums: what fleet.DeviceContribution
// gives for d's DeviceState, computed from the twin.
func (d *twin) contribution(cfg *twinConfig) contrib {
	var c contrib
	if !d.offline {
		c.online = 1
		dis, ch := d.headroom(cfg)
		c.headroomDischarge = vppfleet.ToMicro(dis)
		c.headroomCharge = vppfleet.ToMicro(ch)
	}
	p := vppfleet.ToMicro(d.power)
	c.net = p
	if p < 0 {
		c.charge = -p
	} else {
		c.discharge = p
	}
	c.capacity = vppfleet.ToMicro(d.capacity)
	c.energy = vppfleet.ToMicro(d.soc / 100 * d.capacity)
	if d.alarms != 0 {
		c.alarming = 1
	}
	return c
}

// add adds sign (+1 or -1) times c, and sign devices, to the sums.
func (s *subSums) add(c contrib, sign int64) {
	s.net += sign * c.net
	s.charge += sign * c.charge
	s.discharge += sign * c.discharge
	s.energy += sign * c.energy
	s.capacity += sign * c.capacity
	s.headroomDischarge += sign * c.headroomDischarge
	s.headroomCharge += sign * c.headroomCharge
	s.online += int32(sign) * c.online
	s.alarming += int32(sign) * c.alarming
	s.devices += int32(sign)
}

// subOf returns the sums of a substation, creating them.
func (ps *partState) subOf(region, substation string) *subSums {
	k := subKey{region, substation}
	sub := ps.subs[k]
	if sub == nil {
		sub = &subSums{region: region, substation: substation}
		ps.subs[k] = sub
	}
	return sub
}

// attach adds every device of s to its substation's sums (a site that
// moved substation, or was restored).
func (ps *partState) attach(s *siteTwin) {
	s.sub = ps.subOf(s.region, s.substation)
	// The same IDs, shared: a site keeps no copy of its substation's.
	s.region, s.substation = s.sub.region, s.sub.substation
	for i := range s.devices {
		s.sub.add(s.devices[i].contribution(&ps.cfg), 1)
	}
}

// detach removes every device of s from its substation's sums.
func (ps *partState) detach(s *siteTwin) {
	if s.sub == nil {
		return
	}
	for i := range s.devices {
		s.sub.add(s.devices[i].contribution(&ps.cfg), -1)
	}
	if s.sub.devices == 0 {
		delete(ps.subs, subKey{s.sub.region, s.sub.substation})
	}
	s.sub = nil
}

// sample returns the partition's PartitionSample at nowMs: its counters,
// its lag and, per substation, the sum of its devices' contributions in
// fixed point (exactly what fleet readers compute from the site states),
// from the sums kept as readings are applied: O(substations of the
// partition). The caller holds mu.
func (ps *partState) sample(nowMs, hwm int64) *vppv1.PartitionSample {
	if hwm > ps.acct.HighWaterMark {
		ps.acct.HighWaterMark = hwm
	}
	out := &vppv1.PartitionSample{
		Partition:   ps.id,
		TsMs:        nowMs,
		Consumed:    ps.acct.Consumed,
		Applied:     ps.acct.Applied,
		Duplicates:  ps.acct.Duplicates,
		Gaps:        ps.acct.Gaps,
		Lag:         max(0, ps.acct.HighWaterMark-ps.acct.NextOffset),
		Substations: make([]*vppv1.SubstationSample, 0, len(ps.subs)),
	}
	for _, s := range ps.subs {
		if s.devices == 0 {
			continue
		}
		out.Substations = append(out.Substations, &vppv1.SubstationSample{
			SubstationId: s.substation, RegionId: s.region,
			NetMicroKw: s.net, ChargeMicroKw: s.charge, DischargeMicroKw: s.discharge,
			EnergyMicroKwh: s.energy, CapacityMicroKwh: s.capacity,
			HeadroomDischargeMicroKw: s.headroomDischarge, HeadroomChargeMicroKw: s.headroomCharge,
			Devices: s.devices, Online: s.online, Alarming: s.alarming,
		})
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
