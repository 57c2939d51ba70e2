// Package history keeps per-second time series of the fleet hierarchy for
// sparklines: backfilled from the Kafka history topic when a reader starts,
// then extended live.
package history

import "github.com/vppctl/vpp/internal/fleet"

// Metric names one per-second series of a node.
type Metric int

// Metrics of every node (fleet, region, substation, site; devices too
// where noted).
const (
	// PowerKW is the net power, kW (> 0 discharging). Devices too.
	PowerKW Metric = iota
	// ChargeKW is the charging power (a magnitude), kW.
	ChargeKW
	// DischargeKW is the discharging power, kW.
	DischargeKW
	// EnergyKWh is the stored energy, kWh.
	EnergyKWh
	// SoCPct is the capacity-weighted state of charge, percent. Devices too.
	SoCPct
	// HeadroomDischargeKW is how much more the node could discharge, kW.
	HeadroomDischargeKW
	// HeadroomChargeKW is how much more the node could absorb, kW.
	HeadroomChargeKW
	// Online is the number of online devices.
	Online
	// Alarming is the number of alarming devices.
	Alarming
	// TemperatureC is a device's temperature, °C (devices only).
	TemperatureC
)

// Pipeline metrics (fleet node only): rates per second and the lag.
const (
	// ReceivedPerSec is readings received by ingest per second.
	ReceivedPerSec Metric = 100 + iota
	// RejectedPerSec is readings rejected per second.
	RejectedPerSec
	// PublishedPerSec is readings published to Kafka per second.
	PublishedPerSec
	// AckedPerSec is readings acknowledged to devices per second.
	AckedPerSec
	// ConsumedPerSec is telemetry records consumed by aggregators per second.
	ConsumedPerSec
	// AppliedPerSec is readings applied to twins per second.
	AppliedPerSec
	// DuplicatesPerSec is duplicates dropped per second.
	DuplicatesPerSec
	// GapsPerSec is sequence gaps found per second.
	GapsPerSec
	// Lag is the consumer lag, records.
	Lag
)

// Source serves series for sparklines.
type Source interface {
	// Series returns the last n per-second values of metric m of the node
	// (kind, id), oldest first, ending at the latest complete second.
	// Seconds without data are NaN; an unknown node or a metric the node
	// does not carry gives all NaN. Devices are kind fleet.KindDevice.
	Series(kind fleet.Kind, id string, m Metric, n int) []float64
}
