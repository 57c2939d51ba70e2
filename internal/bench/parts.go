package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/IBM/sarama"
	"google.golang.org/protobuf/proto"

	"github.com/vppctl/vpp/internal/fleet"
	"github.com/vppctl/vpp/internal/history"
	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/internal/reader"
	"github.com/vppctl/vpp/internal/sim"
	"github.com/vppctl/vpp/internal/tui"
	"github.com/vppctl/vpp/proto/vppv1"
)

// fleetShape is the simulator's default fleet shape: 500 sites.
var fleetShape = sim.Shape{Regions: sim.DefaultRegions, SubstationsPerRegion: sim.DefaultSubstationsPerRegion,
	SitesPerSubstation: sim.DefaultSitesPerSubstation}

// sampleReading is a plausible reading of device i of the simulator's
// fleet shape.
func sampleReading(i int, seq uint64, ts int64) *vppv1.Reading {
	dev, site, sub, region := fleetShape.Place(i)
	return &vppv1.Reading{
		DeviceId: dev, SiteId: site, SubstationId: sub, RegionId: region,
		Seq: seq, TsMs: ts, SocPct: 55.5 + float64(i%40), SohPct: 93.1,
		PowerKw: -2.25 + float64(i%9)/2, VoltageV: 401.5, CurrentA: -5.6, TemperatureC: 24.5, CapacityKwh: 13.5,
		MaxChargeKw: 5, MaxDischargeKw: 5, Mode: vppv1.Mode_MODE_CHARGING,
	}
}

// sampleReadings returns n readings of a fleet of devices as the
// simulator spreads them over sites, marshalled, with their keys (the site
// IDs), as ingest publishes them.
func sampleReadings(n, devices int) (keys [][]byte, values [][]byte) {
	now := time.Now().UnixMilli()
	for i := range n {
		r := sampleReading(i%devices, uint64(i/devices+1), now)
		b, _ := proto.Marshal(r)
		keys = append(keys, []byte(r.SiteId))
		values = append(values, b)
	}
	return keys, values
}

// waitReady polls url until it answers 200, p exits or a minute passes.
func waitReady(ctx context.Context, url string, p *Proc) error {
	deadline := time.Now().Add(time.Minute)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("readiness of %s: %w", p.name, err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if done, err := p.Exited(); done {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within a minute: %s", p.name, p.stderr.String())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitGroup waits until consumer group has a stable membership with every
// partition of the telemetry topic assigned, p exits or a minute passes.
func waitGroup(ctx context.Context, o kafka.Options, group string, p *Proc) error {
	admin, err := newAdmin(o)
	if err != nil {
		return err
	}
	defer admin.Close()
	deadline := time.Now().Add(time.Minute)
	for {
		gs, err := admin.DescribeConsumerGroups([]string{group})
		if err == nil && len(gs) == 1 && gs[0].State == "Stable" && len(gs[0].Members) > 0 {
			assigned := 0
			for _, m := range gs[0].Members {
				if a, err := m.GetMemberAssignment(); err == nil && a != nil {
					assigned += len(a.Topics[o.Topics().Telemetry()])
				}
			}
			if assigned >= int(o.Partitions) {
				return nil
			}
		}
		if done, err := p.Exited(); done {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("consumer group %s not stable within a minute: %s", group, p.stderr.String())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// flatSeries is a history source with no history (the frame cost of the
// charts does not depend on the values).
type flatSeries struct{ *reader.Reader }

func (flatSeries) Series(_ fleet.Kind, _ string, _ history.Metric, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = math.Sin(float64(i) / 7)
	}
	return out
}

// readerCost writes the state of cfg.ReaderDevices devices (40 per site) to
// a fresh state topic, times a fleet reader folding it into the tree until
// it has caught up, then times a dashboard frame over that fleet.
func readerCost(ctx context.Context, cfg Config, res *Result) error {
	n := cfg.ReaderDevices
	o := cfg.Kafka
	o.Prefix = cfg.Kafka.Prefix + "reader." + strconv.FormatInt(time.Now().UnixNano(), 36) + "."
	if err := kafka.EnsureTopics(ctx, o); err != nil {
		return err
	}
	defer func() { _ = dropTopics(o) }()
	pcfg, err := o.ProducerConfig()
	if err != nil {
		return err
	}
	pcfg.Producer.Return.Successes = true
	pcfg.Producer.Partitioner = sarama.NewManualPartitioner
	producer, err := sarama.NewSyncProducer(o.Brokers, pcfg)
	if err != nil {
		return fmt.Errorf("producer: %w", err)
	}
	defer producer.Close()
	const perSite = 40
	sites := (n + perSite - 1) / perSite
	shape := sim.Shape{Regions: 10, SubstationsPerRegion: 25, SitesPerSubstation: (sites + 249) / 250}
	now := time.Now().UnixMilli()
	var batch []*sarama.ProducerMessage
	for s := range sites {
		var st *vppv1.SiteState
		for d := range min(perSite, n-s*perSite) {
			r := sampleReading(s*perSite+d, 1, now)
			_, site, sub, region := shape.Place(s)
			r.SiteId, r.SubstationId, r.RegionId = site, sub, region
			r.DeviceId = fmt.Sprintf("dev-%07d", s*perSite+d)
			if st == nil {
				st = &vppv1.SiteState{SiteId: site, SubstationId: sub, RegionId: region, UpdatedMs: now,
					Partition: int32(s % int(o.Partitions))}
			}
			st.Devices = append(st.Devices, &vppv1.DeviceState{Last: r, AppliedMs: now, Applied: 1,
				HeadroomDischargeKw: 2, HeadroomChargeKw: 3})
		}
		v, err := proto.Marshal(&vppv1.StateRecord{Body: &vppv1.StateRecord_Site{Site: st}})
		if err != nil {
			return fmt.Errorf("marshal site state: %w", err)
		}
		batch = append(batch, &sarama.ProducerMessage{Topic: o.Topics().State(), Partition: st.Partition,
			Key: sarama.StringEncoder(reader.SiteKeyPrefix + st.SiteId), Value: sarama.ByteEncoder(v)})
		if len(batch) == 200 || s == sites-1 {
			if err := producer.SendMessages(batch); err != nil {
				return fmt.Errorf("write site states: %w", err)
			}
			batch = batch[:0]
		}
	}

	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r, err := reader.New(o, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	if err := r.WaitCaughtUp(ctx); err != nil {
		return err
	}
	for r.Snapshot().Fleet.Rollup.Devices < int64(n) {
		if time.Since(start) > time.Minute {
			return fmt.Errorf("reader holds %d of %d devices", r.Snapshot().Fleet.Rollup.Devices, n)
		}
		time.Sleep(time.Millisecond)
	}
	res.ReaderFold = time.Since(start)
	res.ReaderDevices = n
	fc, err := tui.MeasureFrame(flatSeries{r}, 200, 60, 20)
	if err != nil {
		return err
	}
	res.Frame = FrameCost{Width: 200, Height: 60, Refresh: fc.Refresh, Redraw: fc.Redraw}
	cancel()
	<-done
	return nil
}

// dropTopics deletes the topics of a finished measurement, so the broker's
// log cleaner and retention do not keep working on them while the next
// one runs (a deployment has one set of topics, not one per step).
func dropTopics(o kafka.Options) error {
	admin, err := newAdmin(o)
	if err != nil {
		return err
	}
	defer admin.Close()
	var errs []error
	for _, s := range o.Specs() {
		if err := admin.DeleteTopic(s.Name); err != nil && !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
			errs = append(errs, fmt.Errorf("delete topic %s: %w", s.Name, err))
		}
	}
	return errors.Join(errs...)
}

// newAdmin connects a cluster admin to o's brokers.
func newAdmin(o kafka.Options) (sarama.ClusterAdmin, error) {
	cfg, err := o.SaramaConfig()
	if err != nil {
		return nil, err
	}
	admin, err := sarama.NewClusterAdmin(o.Brokers, cfg)
	if err != nil {
		return nil, fmt.Errorf("cluster admin: %w", err)
	}
	return admin, nil
}
