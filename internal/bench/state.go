package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/internal/wire"
)

// Field numbers of the partition records that the watcher reads without
// decoding whole records (those of site records are in package wire): a
// site record holds every device of the site, and decoding all of them
// would load the benchmark's process far more than the figures need.
const (
	partID      = 1 // PartitionState.partition
	partApplied = 4 // PartitionState.applied
)

// maxSamples bounds the freshness samples one step keeps (4 bytes each).
const maxSamples = 32 << 20

// stateWatcher follows a state topic: the readings applied per partition
// (from the partition records) and the freshness of every reading (from
// the site records).
//
// Freshness of a reading is the time from its timestamp (the simulator
// stamps the time the schedule made it due) to the moment a site record
// reflecting it arrives here. A site record carries each device's last
// reading only: when a device's seq moves from a to b, readings a+1 … b
// all became reflected now. Their timestamps follow from b's, because the
// simulator's schedule spaces a device's readings exactly period apart, so
// each of them is counted, not just the newest (which would hide the older
// ones' longer wait).
//
// With sample k > 1 only the sites whose ID hashes to 0 mod k are read: a
// random 1/k of the fleet, every one of its readings counted. Reading every
// device of every site record costs this process about as much CPU as the
// simulator itself at high rates, CPU taken from the pipeline measured.
type stateWatcher struct {
	period float64 // ms between a device's readings
	sample uint32

	mu      sync.Mutex
	lastSeq map[string]uint64
	applied map[int32]uint64
	samples []int32 // µs
	over    int64   // samples beyond maxSamples
}

func newStateWatcher(period time.Duration, sample int) *stateWatcher {
	return &stateWatcher{
		period:  float64(period) / float64(time.Millisecond),
		sample:  uint32(max(sample, 1)),
		lastSeq: map[string]uint64{},
		applied: map[int32]uint64{},
	}
}

// run consumes every partition of the state topic from its newest offset
// until ctx ends. ready is closed once every partition consumer started.
func (w *stateWatcher) run(ctx context.Context, o kafka.Options, ready chan<- struct{}) error {
	cfg, err := o.SaramaConfig()
	if err != nil {
		return err
	}
	cfg.ClientID = "vpp-bench-state"
	cfg.Consumer.MaxWaitTime = 10 * time.Millisecond
	cfg.Consumer.Fetch.Default = 4 << 20
	consumer, err := sarama.NewConsumer(o.Brokers, cfg)
	if err != nil {
		return fmt.Errorf("state consumer: %w", err)
	}
	defer consumer.Close()
	topic := o.Topics().State()
	parts, err := consumer.Partitions(topic)
	if err != nil {
		return fmt.Errorf("partitions of %s: %w", topic, err)
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		stopped []error // partitions whose consumer stopped before ctx ended
	)
	defer wg.Wait()
	for _, p := range parts {
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetNewest)
		if err != nil {
			return fmt.Errorf("consume %s/%d: %w", topic, p, err)
		}
		wg.Go(func() {
			defer pc.Close()
			for {
				select {
				case m, ok := <-pc.Messages():
					if !ok {
						mu.Lock()
						stopped = append(stopped, fmt.Errorf("consume %s/%d: stopped before the measurement ended", topic, p))
						mu.Unlock()
						return
					}
					w.observe(m.Value, time.Now())
				case <-ctx.Done():
					return
				}
			}
		})
	}
	close(ready)
	wg.Wait()
	return errors.Join(stopped...)
}

// observe reads one state record received at now.
func (w *stateWatcher) observe(b []byte, now time.Time) {
	nowMs := float64(now.UnixNano()) / 1e6
	_ = wire.Fields(b, func(num protowire.Number, typ protowire.Type, _ uint64, v []byte) error {
		switch {
		case typ != protowire.BytesType:
		case num == wire.RecordSiteField:
			w.site(v, nowMs)
		case num == wire.RecordPartitionField:
			w.partition(v)
		}
		return nil
	})
}

func (w *stateWatcher) partition(b []byte) {
	var id int32
	var applied uint64
	_ = wire.Fields(b, func(num protowire.Number, _ protowire.Type, v uint64, _ []byte) error {
		switch num {
		case partID:
			id = int32(v)
		case partApplied:
			applied = v
		}
		return nil
	})
	w.mu.Lock()
	w.applied[id] = max(w.applied[id], applied)
	w.mu.Unlock()
}

// errSkip stops a walk over a site record that is not sampled.
var errSkip = errors.New("site not sampled")

func (w *stateWatcher) site(b []byte, nowMs float64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	// Malformed records are skipped: the aggregator wrote them.
	_ = wire.Fields(b, func(num protowire.Number, _ protowire.Type, _ uint64, dev []byte) error {
		if num == wire.SiteIDField && w.sample > 1 && !sampled(dev, w.sample) {
			return errSkip // site_id (field 1) comes first in proto's field order
		}
		if num != wire.SiteDevicesField {
			return nil
		}
		return wire.Fields(dev, func(num protowire.Number, _ protowire.Type, _ uint64, last []byte) error {
			if num != wire.DevLastField {
				return nil
			}
			var r wire.Reading
			if err := r.Parse(last); err != nil {
				return err
			}
			w.reflected(r.DeviceID, r.Seq, r.TsMs, nowMs)
			return nil
		})
	})
}

// sampled reports whether the site with this ID is in the 1/k sample
// (FNV-1a of the ID).
func sampled(id []byte, k uint32) bool {
	h := uint32(2166136261)
	for _, c := range id {
		h = (h ^ uint32(c)) * 16777619
	}
	return h%k == 0
}

// reflected records that device id's readings up to seq (the last with
// timestamp ts) are reflected at nowMs. w.mu is held.
func (w *stateWatcher) reflected(id []byte, seq uint64, ts int64, nowMs float64) {
	prev, ok := w.lastSeq[string(id)]
	if ok && seq <= prev {
		return
	}
	if !ok {
		prev = 0
	}
	w.lastSeq[string(id)] = seq
	for k := prev + 1; k <= seq; k++ {
		if len(w.samples) >= maxSamples {
			w.over += int64(seq - k + 1)
			return
		}
		due := float64(ts) - float64(seq-k)*w.period
		w.samples = append(w.samples, int32(math.Round((nowMs-due)*1000)))
	}
}

// appliedSum is the readings applied over every partition so far.
func (w *stateWatcher) appliedSum() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	var n uint64
	for _, v := range w.applied {
		n += v
	}
	return n
}

// percentiles summarises the freshness samples.
func (w *stateWatcher) percentiles() Percentiles {
	w.mu.Lock()
	s := slices.Clone(w.samples)
	w.mu.Unlock()
	return percentilesOf(s)
}

func percentilesOf(s []int32) Percentiles {
	if len(s) == 0 {
		return Percentiles{}
	}
	slices.Sort(s)
	q := func(p float64) time.Duration {
		i := int(math.Ceil(p*float64(len(s)))) - 1
		return time.Duration(s[max(0, min(i, len(s)-1))]) * time.Microsecond
	}
	return Percentiles{N: len(s), P50: q(0.50), P99: q(0.99), P999: q(0.999), Max: q(1)}
}
