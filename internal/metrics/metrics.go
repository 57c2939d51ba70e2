// Package metrics exposes vpp's counters to Prometheus. Collectors read the
// components' own Stats at scrape time, so the hot paths keep plain atomic
// counters and nothing is counted twice.
package metrics

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vppctl/vpp/internal/aggregate"
	"github.com/vppctl/vpp/internal/fleet"
	"github.com/vppctl/vpp/internal/ingest"
	"github.com/vppctl/vpp/internal/latency"
)

// Handler returns the /metrics handler of a registry holding the given
// collectors plus the Go runtime and process collectors.
func Handler(cs ...prometheus.Collector) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, c := range cs {
		reg.MustRegister(c)
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

// IngestCollector reports an ingest server's counters.
type IngestCollector struct {
	src      func() ingest.Stats
	producer func() (latency.Snapshot, uint64, bool)

	readings, frames, acked, connections, protocolErrors   *prometheus.Desc
	buffered, bufferedBytes, capRecords, capBytes, kafkaUp *prometheus.Desc
	produceLatency, produceErrors                          *prometheus.Desc
	refused, idleClosed                                    *prometheus.Desc
	rateLimitedFrames, rateLimitedWait                     *prometheus.Desc
	setpoints, setpointReaderErrors                        *prometheus.Desc
}

// NewIngestCollector reports the stats src returns.
func NewIngestCollector(src func() ingest.Stats) *IngestCollector {
	return &IngestCollector{
		src:            src,
		readings:       desc("vpp_ingest_readings_total", "Readings by result: received (decoded), accepted (published to Kafka), rejected (by reason).", "result", "reason"),
		frames:         desc("vpp_ingest_frames_total", "WebSocket frames received."),
		acked:          desc("vpp_ingest_acked_readings_total", "Readings acknowledged to their devices as durable."),
		connections:    desc("vpp_ingest_connections", "Open WebSocket connections."),
		protocolErrors: desc("vpp_ingest_protocol_errors_total", "Connections closed for a protocol error, by RFC 6455 close code.", "code"),
		buffered:       desc("vpp_ingest_buffer_records", "Records accepted and not yet acknowledged by Kafka."),
		bufferedBytes:  desc("vpp_ingest_buffer_bytes", "Bytes of the records in the buffer."),
		capRecords:     desc("vpp_ingest_buffer_capacity_records", "Capacity of the buffer in records."),
		capBytes:       desc("vpp_ingest_buffer_capacity_bytes", "Capacity of the buffer in bytes."),
		kafkaUp:        desc("vpp_ingest_kafka_up", "1 while publishing to Kafka succeeds, 0 while it fails."),
		produceLatency: desc("vpp_ingest_produce_seconds", "Time from handing a record to the Kafka producer to Kafka's acknowledgement or error."),
		produceErrors:  desc("vpp_ingest_produce_errors_total", "Produce attempts Kafka failed (each record is retried, never dropped)."),
		refused:        desc("vpp_ingest_refused_handshakes_total", "WebSocket handshakes refused before the upgrade, by reason (conn_limit, ip_conn_limit: 503; token_*: 401).", "reason"),
		idleClosed:     desc("vpp_ingest_idle_closed_total", "Connections closed (1008) after --read-idle-timeout without a message."),
		rateLimitedFrames: desc("vpp_ingest_rate_limited_frames_total",
			"Frames after which a connection stopped reading because their devices exceeded --device-rate and --device-burst (they are slowed down, never rejected)."),
		rateLimitedWait: desc("vpp_ingest_rate_limited_wait_seconds_total",
			"Time connections stopped reading for the per-device rate limit."),
		setpoints: desc("vpp_ingest_setpoints_total",
			"Setpoints read from the setpoints topic, by result: delivered (written to the connection holding the device), not_held (no connection here holds the device), dropped (the connection's queue was full; vpp refreshes them).", "result"),
		setpointReaderErrors: desc("vpp_ingest_setpoint_reader_errors_total", "Sessions of the setpoint reader that ended in an error (it reconnects)."),
	}
}

// WithProducer adds the producer's latency histogram and error count (see
// ingest.Server.ProducerStats).
func (c *IngestCollector) WithProducer(f func() (latency.Snapshot, uint64, bool)) *IngestCollector {
	c.producer = f
	return c
}

// Describe implements prometheus.Collector.
func (c *IngestCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.readings, c.frames, c.acked, c.connections, c.protocolErrors,
		c.buffered, c.bufferedBytes, c.capRecords, c.capBytes, c.kafkaUp, c.produceLatency, c.produceErrors,
		c.refused, c.idleClosed, c.rateLimitedFrames, c.rateLimitedWait, c.setpoints, c.setpointReaderErrors} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *IngestCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.src()
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter(c.readings, float64(st.Received), "received", "")
	counter(c.readings, float64(st.Published), "accepted", "")
	for reason, n := range st.Rejected {
		counter(c.readings, float64(n), "rejected", reason)
	}
	counter(c.frames, float64(st.Frames))
	counter(c.acked, float64(st.Acked))
	gauge(c.connections, float64(st.Connections))
	for code, n := range st.ProtocolErrors {
		counter(c.protocolErrors, float64(n), strconv.Itoa(code))
	}
	for reason, n := range st.Refused {
		counter(c.refused, float64(n), reason)
	}
	counter(c.idleClosed, float64(st.IdleClosed))
	counter(c.rateLimitedFrames, float64(st.RateLimitedFrames))
	counter(c.rateLimitedWait, st.RateLimitedWait.Seconds())
	counter(c.setpoints, float64(st.SetpointsDelivered), "delivered")
	counter(c.setpoints, float64(st.SetpointsNotHeld), "not_held")
	counter(c.setpoints, float64(st.SetpointsDropped), "dropped")
	counter(c.setpointReaderErrors, float64(st.SetpointReaderErrors))
	gauge(c.buffered, float64(st.Buffered))
	gauge(c.bufferedBytes, float64(st.BufferedBytes))
	gauge(c.capRecords, float64(st.BufferCapacity))
	gauge(c.capBytes, float64(st.BufferCapacityBytes))
	up := 1.0
	if st.KafkaDown {
		up = 0
	}
	gauge(c.kafkaUp, up)
	if c.producer != nil {
		if lat, errs, ok := c.producer(); ok {
			ch <- histogram(c.produceLatency, lat)
			counter(c.produceErrors, float64(errs))
		}
	}
}

// AggregateCollector reports an aggregator's counters: those of the
// partitions it owns now (restored from the state topic, so they cover the
// partitions' history).
type AggregateCollector struct {
	src func() aggregate.Stats

	partitions, sites, devices, records, lag *prometheus.Desc
	partitionLag, publish, freshness         *prometheus.Desc
}

// NewAggregateCollector reports the stats src returns.
func NewAggregateCollector(src func() aggregate.Stats) *AggregateCollector {
	return &AggregateCollector{
		src:          src,
		partitions:   desc("vpp_aggregate_partitions", "Telemetry partitions this instance owns."),
		sites:        desc("vpp_aggregate_sites", "Site twins held in memory."),
		devices:      desc("vpp_aggregate_twins", "Device twins held in memory."),
		records:      desc("vpp_aggregate_owned_readings", "Telemetry records of the owned partitions by result: consumed, applied, duplicate, undecodable; gap counts sequence numbers that never arrived.", "result"),
		lag:          desc("vpp_aggregate_consumer_lag_records", "Telemetry records of the owned partitions not yet applied."),
		partitionLag: desc("vpp_aggregate_partition_lag_records", "Telemetry records not yet applied, per owned partition.", "partition"),
		publish:      desc("vpp_aggregate_state_publish_seconds", "Time to publish a flush of changed site states until Kafka acknowledged it."),
		freshness:    desc("vpp_aggregate_freshness_seconds", "Time from a reading's timestamp to its twin update."),
	}
}

// Describe implements prometheus.Collector.
func (c *AggregateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.partitions, c.sites, c.devices, c.records, c.lag, c.partitionLag, c.publish, c.freshness} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *AggregateCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.src()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(c.partitions, float64(len(st.Partitions)))
	gauge(c.sites, float64(st.Sites))
	gauge(c.devices, float64(st.Devices))
	// Owned partitions change on rebalance, so these totals can go down:
	// report them as gauges of cumulative counts.
	gauge(c.records, float64(st.Consumed), "consumed")
	gauge(c.records, float64(st.Applied), "applied")
	gauge(c.records, float64(st.Duplicates), "duplicate")
	gauge(c.records, float64(st.Undecodable), "undecodable")
	gauge(c.records, float64(st.Gaps), "gap")
	gauge(c.lag, float64(st.Lag))
	for p, lag := range st.PartitionLag {
		gauge(c.partitionLag, float64(lag), strconv.Itoa(int(p)))
	}
	ch <- histogram(c.publish, st.PublishLatency)
	ch <- histogram(c.freshness, st.Freshness)
}

// histogram converts a latency.Snapshot to a Prometheus histogram.
func histogram(d *prometheus.Desc, s latency.Snapshot) prometheus.Metric {
	return prometheus.MustNewConstHistogram(d, s.Count, s.Sum, s.Cumulative)
}

// FleetCollector reports the fleet as the state topics show it.
type FleetCollector struct {
	src fleet.SnapshotSource

	devices, power, energy, capacity, headroom, soc *prometheus.Desc
}

// NewFleetCollector reports the fleet rollup of src's snapshot.
func NewFleetCollector(src fleet.SnapshotSource) *FleetCollector {
	return &FleetCollector{
		src:      src,
		devices:  desc("vpp_fleet_devices", "Devices by state.", "state"),
		power:    desc("vpp_fleet_power_kilowatts", "Fleet power: net (> 0 discharging), charge and discharge.", "flow"),
		energy:   desc("vpp_fleet_energy_kilowatt_hours", "Energy stored in the fleet."),
		capacity: desc("vpp_fleet_capacity_kilowatt_hours", "Usable capacity of the fleet."),
		headroom: desc("vpp_fleet_headroom_kilowatts", "Power the fleet could still discharge (up) or absorb (down).", "direction"),
		soc:      desc("vpp_fleet_soc_percent", "Capacity-weighted state of charge."),
	}
}

// Describe implements prometheus.Collector.
func (c *FleetCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.devices, c.power, c.energy, c.capacity, c.headroom, c.soc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *FleetCollector) Collect(ch chan<- prometheus.Metric) {
	r := c.src.Snapshot().Fleet.Rollup
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(c.devices, float64(r.Online), "online")
	gauge(c.devices, float64(r.Offline), "offline")
	gauge(c.devices, float64(r.Alarming), "alarming")
	gauge(c.power, r.PowerKW(), "net")
	gauge(c.power, r.ChargeKW(), "charge")
	gauge(c.power, r.DischargeKW(), "discharge")
	gauge(c.energy, r.EnergyKWh())
	gauge(c.capacity, r.CapacityKWh())
	gauge(c.headroom, r.HeadroomDischargeKW(), "up")
	gauge(c.headroom, r.HeadroomChargeKW(), "down")
	gauge(c.soc, r.SoCPct())
}
