package api

import (
	"encoding/json"
	"fmt"
	"github.com/vppctl/vpp/internal/fleet"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/vppctl/vpp/proto/vppv1"
)

// NodeJSON is the JSON form of one node of the hierarchy.
type NodeJSON struct {
	ID                  string           `json:"id"`
	Kind                string           `json:"kind"`
	RegionID            string           `json:"region_id,omitempty"`
	SubstationID        string           `json:"substation_id,omitempty"`
	Devices             int64            `json:"devices"`
	Online              int64            `json:"online"`
	Offline             int64            `json:"offline"`
	Alarming            int64            `json:"alarming"`
	PowerKW             float64          `json:"power_kw"`
	ChargeKW            float64          `json:"charge_kw"`
	DischargeKW         float64          `json:"discharge_kw"`
	CapacityKWh         float64          `json:"capacity_kwh"`
	EnergyKWh           float64          `json:"energy_kwh"`
	SoCPct              float64          `json:"soc_pct"`
	HeadroomDischargeKW float64          `json:"headroom_discharge_kw"`
	HeadroomChargeKW    float64          `json:"headroom_charge_kw"`
	TemperatureMinC     *float64         `json:"temperature_min_c"`
	TemperatureMaxC     *float64         `json:"temperature_max_c"`
	Alarms              map[string]int64 `json:"alarms"`
	UpdatedAt           string           `json:"updated_at,omitempty"`
	Children            int              `json:"children"`
	Partition           *int32           `json:"partition,omitempty"`
}

// NewNodeJSON converts a node to its JSON form.
func NewNodeJSON(n *fleet.Node) NodeJSON {
	r := &n.Rollup
	j := NodeJSON{
		ID:                  n.ID,
		Kind:                n.Kind.String(),
		RegionID:            n.RegionID,
		SubstationID:        n.SubstationID,
		Devices:             r.Devices,
		Online:              r.Online,
		Offline:             r.Offline,
		Alarming:            r.Alarming,
		PowerKW:             r.PowerKW(),
		ChargeKW:            r.ChargeKW(),
		DischargeKW:         r.DischargeKW(),
		CapacityKWh:         r.CapacityKWh(),
		EnergyKWh:           r.EnergyKWh(),
		SoCPct:              r.SoCPct(),
		HeadroomDischargeKW: r.HeadroomDischargeKW(),
		HeadroomChargeKW:    r.HeadroomChargeKW(),
		Alarms:              r.AlarmCounts(),
		UpdatedAt:           msTime(r.UpdatedMS),
		Children:            len(n.Children),
	}
	if lo, hi, ok := r.TemperatureRangeC(); ok {
		j.TemperatureMinC, j.TemperatureMaxC = &lo, &hi
	}
	if n.Kind == fleet.KindSite {
		p := n.Partition
		j.Partition = &p
		j.Children = int(r.Devices)
	}
	return j
}

// DeviceJSON is the JSON form of one device: its last reading, its twin
// bookkeeping and its headroom.
type DeviceJSON struct {
	DeviceID            string   `json:"device_id"`
	Seq                 uint64   `json:"seq"`
	ReadingAt           string   `json:"reading_at,omitempty"`
	AppliedAt           string   `json:"applied_at,omitempty"`
	AgeS                float64  `json:"age_s"`
	Offline             bool     `json:"offline"`
	Mode                string   `json:"mode"`
	SoCPct              float64  `json:"soc_pct"`
	SoHPct              float64  `json:"soh_pct"`
	PowerKW             float64  `json:"power_kw"`
	VoltageV            float64  `json:"voltage_v"`
	CurrentA            float64  `json:"current_a"`
	TemperatureC        float64  `json:"temperature_c"`
	CapacityKWh         float64  `json:"capacity_kwh"`
	EnergyKWh           float64  `json:"energy_kwh"`
	MaxChargeKW         float64  `json:"max_charge_kw"`
	MaxDischargeKW      float64  `json:"max_discharge_kw"`
	Alarms              []string `json:"alarms"`
	AlarmBits           uint32   `json:"alarm_bits"`
	HeadroomDischargeKW float64  `json:"headroom_discharge_kw"`
	HeadroomChargeKW    float64  `json:"headroom_charge_kw"`
	Applied             uint64   `json:"applied"`
	Duplicates          uint64   `json:"duplicates"`
	Gaps                uint64   `json:"gaps"`
}

// NewDeviceJSON converts a device state to its JSON form; now gives its
// age (time since the aggregator applied its last reading).
func NewDeviceJSON(d *vppv1.DeviceState, now time.Time) DeviceJSON {
	l := d.GetLast()
	j := DeviceJSON{
		DeviceID:            l.GetDeviceId(),
		Seq:                 l.GetSeq(),
		ReadingAt:           msTime(l.GetTsMs()),
		AppliedAt:           msTime(d.GetAppliedMs()),
		Offline:             d.GetOffline(),
		Mode:                fleet.ModeName(l.GetMode()),
		SoCPct:              finite(l.GetSocPct()),
		SoHPct:              finite(l.GetSohPct()),
		PowerKW:             finite(l.GetPowerKw()),
		VoltageV:            finite(l.GetVoltageV()),
		CurrentA:            finite(l.GetCurrentA()),
		TemperatureC:        finite(l.GetTemperatureC()),
		CapacityKWh:         finite(l.GetCapacityKwh()),
		EnergyKWh:           finite(l.GetSocPct() / 100 * l.GetCapacityKwh()),
		MaxChargeKW:         finite(l.GetMaxChargeKw()),
		MaxDischargeKW:      finite(l.GetMaxDischargeKw()),
		Alarms:              fleet.AlarmNames(l.GetAlarms()),
		AlarmBits:           l.GetAlarms(),
		HeadroomDischargeKW: finite(d.GetHeadroomDischargeKw()),
		HeadroomChargeKW:    finite(d.GetHeadroomChargeKw()),
		Applied:             d.GetApplied(),
		Duplicates:          d.GetDuplicates(),
		Gaps:                d.GetGaps(),
	}
	if j.Alarms == nil {
		j.Alarms = []string{}
	}
	if ms := d.GetAppliedMs(); ms > 0 {
		j.AgeS = max(0, now.Sub(time.UnixMilli(ms)).Seconds())
	}
	return j
}

// PipelineJSON is the JSON form of the pipeline accounting.
type PipelineJSON struct {
	UpdatedAt string `json:"updated_at,omitempty"`
	Ingest    struct {
		Instances        int               `json:"instances"`
		Received         uint64            `json:"received"`
		Rejected         uint64            `json:"rejected"`
		RejectedByReason map[string]uint64 `json:"rejected_by_reason"`
		Published        uint64            `json:"published"`
		Acked            uint64            `json:"acked"`
		Frames           uint64            `json:"frames"`
		Connections      int64             `json:"connections"`
		ProtocolErrors   map[string]uint64 `json:"protocol_errors"`
		Buffered         int64             `json:"buffered"`
		BufferCapacity   int64             `json:"buffer_capacity"`
	} `json:"ingest"`
	Aggregate struct {
		Consumed    uint64          `json:"consumed"`
		Applied     uint64          `json:"applied"`
		Duplicates  uint64          `json:"duplicates"`
		Gaps        uint64          `json:"gaps"`
		Undecodable uint64          `json:"undecodable"`
		Lag         int64           `json:"lag"`
		Partitions  []PartitionJSON `json:"partitions"`
	} `json:"aggregate"`
	// Unaccounted is received − published − rejected: readings in flight
	// or lost.
	Unaccounted int64 `json:"unaccounted"`
}

// PartitionJSON is the accounting of one telemetry partition.
type PartitionJSON struct {
	Partition     int32  `json:"partition"`
	NextOffset    int64  `json:"next_offset"`
	HighWaterMark int64  `json:"high_water_mark"`
	Lag           int64  `json:"lag"`
	Consumed      uint64 `json:"consumed"`
	Applied       uint64 `json:"applied"`
	Duplicates    uint64 `json:"duplicates"`
	Gaps          uint64 `json:"gaps"`
	Undecodable   uint64 `json:"undecodable"`
	UpdatedAt     string `json:"updated_at,omitempty"`
}

// NewPipelineJSON converts the pipeline accounting to its JSON form.
func NewPipelineJSON(p *fleet.Pipeline) PipelineJSON {
	var j PipelineJSON
	if !p.UpdatedAt.IsZero() {
		j.UpdatedAt = p.UpdatedAt.Format(time.RFC3339Nano)
	}
	in := &j.Ingest
	in.Instances = len(p.Instances)
	in.Received = p.Received
	in.Rejected = p.RejectedTotal
	in.RejectedByReason = make(map[string]uint64, len(p.Rejected))
	for k, v := range p.Rejected {
		in.RejectedByReason[k] = v
	}
	in.Published = p.Published
	in.Acked = p.Acked
	in.Frames = p.Frames
	in.Connections = p.Connections
	in.ProtocolErrors = make(map[string]uint64, len(p.ProtocolErrors))
	for code, v := range p.ProtocolErrors {
		in.ProtocolErrors[strconv.Itoa(int(code))] = v
	}
	in.Buffered = p.Buffered
	in.BufferCapacity = p.BufferCapacity
	ag := &j.Aggregate
	ag.Consumed = p.Consumed
	ag.Applied = p.Applied
	ag.Duplicates = p.Duplicates
	ag.Gaps = p.Gaps
	ag.Undecodable = p.Undecodable
	ag.Lag = p.Lag
	ag.Partitions = make([]PartitionJSON, 0, len(p.Partitions))
	for _, ps := range p.Partitions {
		ag.Partitions = append(ag.Partitions, PartitionJSON{
			Partition:     ps.GetPartition(),
			NextOffset:    ps.GetNextOffset(),
			HighWaterMark: ps.GetHighWaterMark(),
			Lag:           fleet.PartitionLag(ps),
			Consumed:      ps.GetConsumed(),
			Applied:       ps.GetApplied(),
			Duplicates:    ps.GetDuplicates(),
			Gaps:          ps.GetGaps(),
			Undecodable:   ps.GetUndecodable(),
			UpdatedAt:     msTime(ps.GetUpdatedMs()),
		})
	}
	j.Unaccounted = p.Unaccounted()
	return j
}

// LoadJSON says whether the fleet of an answer is complete: not while its
// reader is still loading the state topic (the totals are those of part of
// the fleet) or cannot read it (error says why; it keeps retrying).
type LoadJSON struct {
	// Loading is true until the reader caught up; Complete is its negation.
	Loading  bool `json:"loading"`
	Complete bool `json:"complete"`
	// Partitions to load and loaded (0 before the reader reached Kafka).
	Partitions       int `json:"partitions"`
	PartitionsLoaded int `json:"partitions_loaded"`
	// Records to load and loaded.
	Records       int64 `json:"records"`
	RecordsLoaded int64 `json:"records_loaded"`
	// Percent is the share of the records loaded, 0 to 100.
	Percent float64 `json:"percent"`
	// Status says it in words ("loading 12/64 partitions (41 %)"); empty
	// once complete.
	Status string `json:"status,omitempty"`
	// Error is why the reader cannot read now; empty while it reads.
	Error string `json:"error,omitempty"`
}

// NewLoadJSON converts a snapshot's Load to its JSON form.
func NewLoadJSON(l fleet.Load) LoadJSON {
	return LoadJSON{
		Loading:          l.Loading,
		Complete:         !l.Loading,
		Partitions:       l.Partitions,
		PartitionsLoaded: l.Done,
		Records:          l.Records,
		RecordsLoaded:    l.Read,
		Percent:          finite(l.Percent),
		Status:           l.Text(),
		Error:            l.Err,
	}
}

// FleetJSON is the answer of GET /api/metrics/fleet: the fleet node, and
// whether it is complete (loading, complete) with the loading progress.
type FleetJSON struct {
	NodeJSON
	Loading  bool     `json:"loading"`
	Complete bool     `json:"complete"`
	Load     LoadJSON `json:"load"`
}

// RegionJSON is a region with its substations.
type RegionJSON struct {
	NodeJSON
	Substations []NodeJSON `json:"substations"`
}

// SubstationJSON is a substation with its sites.
type SubstationJSON struct {
	NodeJSON
	Sites []NodeJSON `json:"sites"`
}

// SiteJSON is a site with its devices ("devices" is the count, as in
// every node; "device_list" holds the devices).
type SiteJSON struct {
	NodeJSON
	DeviceList []DeviceJSON `json:"device_list"`
}

// FleetHandler returns the read-only JSON API over the snapshots of src:
//
//	GET /api/metrics/fleet             the fleet node, with loading,
//	                                   complete and load (FleetJSON)
//	GET /api/metrics/regions           the region nodes (a JSON array)
//	GET /api/metrics/regions/{id}      a region and its substations
//	GET /api/metrics/substations/{id}  a substation and its sites
//	GET /api/metrics/sites/{id}        a site and its devices (device_list)
//	GET /api/metrics/pipeline          the pipeline accounting
//
// Unknown IDs and paths answer 404, other methods 405, both with a JSON
// body {"error": "..."}. Until the source caught up every answer covers
// part of the fleet: the fleet answer says so, and every answer carries
// the header Vpp-Fleet-Loading with the progress ("loading 12/64
// partitions (41 %)"). now gives device ages; nil means time.Now.
func FleetHandler(src fleet.SnapshotSource, now func() time.Time) http.Handler {
	if now == nil {
		now = time.Now
	}
	a := &fleetAPI{src: src, now: now}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/metrics/fleet", a.fleet)
	mux.HandleFunc("GET /api/metrics/regions", a.regions)
	mux.HandleFunc("GET /api/metrics/regions/{id}", a.region)
	mux.HandleFunc("GET /api/metrics/substations/{id}", a.substation)
	mux.HandleFunc("GET /api/metrics/sites/{id}", a.site)
	mux.HandleFunc("GET /api/metrics/pipeline", a.pipeline)
	return loadingHeader{src, jsonFallback{mux}}
}

// LoadingHeader is the response header that marks an answer about a fleet
// still loading.
const LoadingHeader = "Vpp-Fleet-Loading"

// loadingHeader sets LoadingHeader while the source is loading.
type loadingHeader struct {
	src  fleet.SnapshotSource
	next http.Handler
}

func (h loadingHeader) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if l := h.src.Snapshot().Load; l.Loading {
		w.Header().Set(LoadingHeader, l.Text())
	}
	h.next.ServeHTTP(w, r)
}

type fleetAPI struct {
	src fleet.SnapshotSource
	now func() time.Time
}

func (a *fleetAPI) fleet(w http.ResponseWriter, _ *http.Request) {
	s := a.src.Snapshot()
	writeJSON(w, http.StatusOK, FleetJSON{NodeJSON: NewNodeJSON(s.Fleet), Loading: s.Load.Loading, Complete: !s.Load.Loading, Load: NewLoadJSON(s.Load)})
}

func (a *fleetAPI) regions(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, nodesJSON(a.src.Snapshot().Regions()))
}

func (a *fleetAPI) region(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	n := a.src.Snapshot().Region(id)
	if n == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("region %q not found", id))
		return
	}
	writeJSON(w, http.StatusOK, RegionJSON{NodeJSON: NewNodeJSON(n), Substations: nodesJSON(n.Children)})
}

func (a *fleetAPI) substation(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	n := a.src.Snapshot().Substation(id)
	if n == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("substation %q not found", id))
		return
	}
	writeJSON(w, http.StatusOK, SubstationJSON{NodeJSON: NewNodeJSON(n), Sites: nodesJSON(n.Children)})
}

func (a *fleetAPI) site(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	n := a.src.Snapshot().Site(id)
	if n == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("site %q not found", id))
		return
	}
	now := a.now()
	states := n.Devices() // decodes the site's record
	devs := make([]DeviceJSON, 0, len(states))
	for _, d := range states {
		devs = append(devs, NewDeviceJSON(d, now))
	}
	writeJSON(w, http.StatusOK, SiteJSON{NodeJSON: NewNodeJSON(n), DeviceList: devs})
}

func (a *fleetAPI) pipeline(w http.ResponseWriter, _ *http.Request) {
	s := a.src.Snapshot()
	writeJSON(w, http.StatusOK, NewPipelineJSON(&s.Pipeline))
}

func nodesJSON(ns []*fleet.Node) []NodeJSON {
	out := make([]NodeJSON, 0, len(ns))
	for _, n := range ns {
		out = append(out, NewNodeJSON(n))
	}
	return out
}

func msTime(ms int64) string {
	if ms <= 0 {
		return ""
	}
	return time.UnixMilli(ms).UTC().Format(time.RFC3339Nano)
}

// finite maps NaN and infinities, which JSON cannot carry, to 0.
func finite(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0
	}
	return x
}

type errorJSON struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorJSON{Error: msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		b, _ = json.Marshal(errorJSON{Error: "encode response: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// jsonFallback serves the mux and turns its own plain-text 404 and 405
// answers (no pattern matched) into JSON errors, keeping the Allow header.
type jsonFallback struct{ mux *http.ServeMux }

func (f jsonFallback) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, pattern := f.mux.Handler(r); pattern != "" {
		f.mux.ServeHTTP(w, r)
		return
	}
	f.mux.ServeHTTP(&errorRewriter{ResponseWriter: w, method: r.Method, path: r.URL.Path}, r)
}

// errorRewriter replaces the body of a 404/405 from the mux by a JSON error.
type errorRewriter struct {
	http.ResponseWriter
	method, path string
	rewrote      bool
}

func (e *errorRewriter) WriteHeader(code int) {
	var msg string
	switch code {
	case http.StatusNotFound:
		msg = fmt.Sprintf("%s not found", e.path)
	case http.StatusMethodNotAllowed:
		msg = fmt.Sprintf("method %s not allowed on %s", e.method, e.path)
	default:
		e.ResponseWriter.WriteHeader(code)
		return
	}
	e.rewrote = true
	e.Header().Del("X-Content-Type-Options")
	writeError(e.ResponseWriter, code, msg) // keeps the mux's Allow header
}

func (e *errorRewriter) Write(b []byte) (int, error) {
	if e.rewrote {
		return len(b), nil // drop the mux's plain-text body
	}
	return e.ResponseWriter.Write(b)
}
