package history

import (
	"math"
	"sync"
	"time"

	"github.com/vppctl/vpp/internal/fleet"
	"github.com/vppctl/vpp/proto/vppv1"
)

// DefaultPoints is the default length, in seconds, of the series a Recorder
// keeps per recorded site and per watched device.
const DefaultPoints = 300

// socNaN encodes an unknown state of charge in a site ring.
const socNaN = math.MaxUint16

// siteRing is the recent history of one site of a watched substation: net
// power (float32, kW) and capacity-weighted SoC (uint16, 1/100 %), one slot
// per second.
type siteRing struct {
	sub   string // the watched substation it was last recorded under
	seen  int64  // last second written
	power []float32
	soc   []uint16
}

// deviceRing is the recent history of one watched device.
type deviceRing struct {
	siteID string
	refs   int
	seen   int64 // last second written; 0 before any
	power  []float32
	soc    []float32
	temp   []float32
}

// Recorder records live series from fleet snapshots: net power and SoC of
// the sites of the substations being watched, and power, SoC and
// temperature of the devices being watched, each in a ring of the last
// Points seconds. Nothing else of the fleet is recorded: a dashboard
// watches what it shows (the TUI the substation whose sites its table
// lists, and the device whose detail is open), so the cost is that of what
// is shown, not of the fleet. A watched series starts empty and fills from
// the first Observe after Watch or WatchSubstation. One goroutine calls
// Observe once a second; any number of goroutines call Series, Watch,
// WatchSubstation and the stop functions they return.
//
// Cost: Observe is O(sites of the watched substations + watched devices),
// whatever the size of the fleet (BenchmarkRecorderObserve). Memory: 6 B
// per site-second plus bookkeeping, measured at 2.0 KB per recorded site
// at 300 points (a substation of 200 sites: 400 KB while watched), and 3.7
// KB per watched device; nothing per unwatched site or device. A site's
// series is dropped when its substation's last watch stops, or when it was
// not seen under a watched substation for Points seconds.
type Recorder struct {
	points int64

	mu      sync.RWMutex
	last    int64                // last observed second; 0 before any
	sites   map[string]*siteRing // the sites of the watched substations
	subs    map[string]int       // watched substation → watches
	devices map[string]*deviceRing
	sweepAt int64
}

// NewRecorder returns a recorder that keeps points seconds per series
// (DefaultPoints when <= 0).
func NewRecorder(points int) *Recorder {
	if points <= 0 {
		points = DefaultPoints
	}
	return &Recorder{
		points:  int64(points),
		sites:   make(map[string]*siteRing),
		subs:    make(map[string]int),
		devices: make(map[string]*deviceRing),
	}
}

// Watch starts recording device deviceID of site siteID from the next
// Observe on, and returns the function that stops it. Watches are counted:
// the device is recorded until every stop function was called (calling one
// twice is harmless). The TUI watches the device whose detail it shows.
func (r *Recorder) Watch(siteID, deviceID string) (stop func()) {
	r.mu.Lock()
	d := r.devices[deviceID]
	if d == nil {
		nan := float32(math.NaN())
		buf := make([]float32, 3*r.points)
		for i := range buf {
			buf[i] = nan
		}
		p := r.points
		d = &deviceRing{siteID: siteID, power: buf[:p:p], soc: buf[p : 2*p : 2*p], temp: buf[2*p:]}
		r.devices[deviceID] = d
	}
	d.siteID = siteID
	d.refs++
	r.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			if d.refs--; d.refs <= 0 && r.devices[deviceID] == d {
				delete(r.devices, deviceID)
			}
		})
	}
}

// WatchSubstation starts recording every site of substation id from the
// next Observe on, and returns the function that stops it. Watches are
// counted like Watch's: the sites are recorded until every stop function
// was called (calling one twice is harmless), and their series are then
// dropped. The TUI watches the substation whose sites (or one of whose
// sites' devices) its table lists.
func (r *Recorder) WatchSubstation(id string) (stop func()) {
	r.mu.Lock()
	r.subs[id]++
	r.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			if r.subs[id]--; r.subs[id] > 0 {
				return
			}
			delete(r.subs, id)
			// O(recorded sites): those of the watched substations only.
			for sid, s := range r.sites {
				if s.sub == id {
					delete(r.sites, sid)
				}
			}
		})
	}
}

// Observe records snap as the state at now (its second). Call it once a
// second, from one goroutine; an earlier second than the last is ignored,
// the same second again overwrites. O(sites of the watched substations +
// watched devices), never O(fleet); it allocates only for sites it has not
// recorded before.
func (r *Recorder) Observe(snap *fleet.Snapshot, now time.Time) {
	if snap == nil || snap.Fleet == nil {
		return
	}
	sec := now.Unix()
	r.mu.Lock()
	defer r.mu.Unlock()
	if sec < r.last {
		return
	}
	r.last = sec
	for id := range r.subs {
		sub := snap.Substation(id)
		if sub == nil {
			continue // gone (or not yet there): its sites' series go stale
		}
		for _, site := range sub.Children {
			s := r.site(site.ID)
			s.sub = id // a site that moved belongs to where it is now
			s.put(r.points, sec, &site.Rollup)
		}
	}
	for id, d := range r.devices {
		site := snap.Site(d.siteID)
		if site == nil {
			continue
		}
		dev := site.Device(id)
		if dev.GetLast() == nil {
			continue
		}
		d.put(r.points, sec, dev.GetLast())
	}
	if sec >= r.sweepAt {
		r.sweepAt = sec + max(1, r.points/4)
		for id, s := range r.sites {
			if s.seen <= sec-r.points {
				delete(r.sites, id)
			}
		}
	}
}

func (r *Recorder) site(id string) *siteRing {
	s := r.sites[id]
	if s == nil {
		p := r.points
		s = &siteRing{power: make([]float32, p), soc: make([]uint16, p)}
		nan := float32(math.NaN())
		for i := range p {
			s.power[i], s.soc[i] = nan, socNaN
		}
		r.sites[id] = s
	}
	return s
}

// gap returns the slots between the last written second and sec (exclusive)
// that must be cleared: a second without an observation is unknown.
func gap(seen, sec, points int64) (from, to int64) {
	if seen == 0 || sec <= seen+1 {
		return 0, 0
	}
	return max(seen+1, sec-points+1), sec
}

func (s *siteRing) put(points, sec int64, ru *fleet.Rollup) {
	from, to := gap(s.seen, sec, points)
	for t := from; t < to; t++ {
		s.power[t%points], s.soc[t%points] = float32(math.NaN()), socNaN
	}
	i := sec % points
	s.power[i] = float32(ru.PowerKW())
	s.soc[i] = socNaN
	if ru.CapacityMicroKWh > 0 {
		s.soc[i] = uint16(math.Round(min(max(ru.SoCPct(), 0), 100) * 100))
	}
	s.seen = sec
}

func (d *deviceRing) put(points, sec int64, last *vppv1.Reading) {
	nan := float32(math.NaN())
	from, to := gap(d.seen, sec, points)
	for t := from; t < to; t++ {
		d.power[t%points], d.soc[t%points], d.temp[t%points] = nan, nan, nan
	}
	i := sec % points
	d.power[i] = float32(last.GetPowerKw())
	d.soc[i] = float32(last.GetSocPct())
	d.temp[i] = float32(last.GetTemperatureC())
	d.seen = sec
}

// Latest returns the last observed second, the one Series end at; ok is
// false before any Observe.
func (r *Recorder) Latest() (t time.Time, ok bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.last == 0 {
		return time.Time{}, false
	}
	return time.Unix(r.last, 0).UTC(), true
}

// Series returns the last n per-second values of metric m of a site
// (PowerKW, SoCPct) or a watched device (PowerKW, SoCPct, TemperatureC),
// oldest first, ending at the last observed second. Seconds without an
// observation, unknown nodes and other metrics are NaN. It allocates only
// the result.
func (r *Recorder) Series(kind fleet.Kind, id string, m Metric, n int) []float64 {
	if n <= 0 {
		return nil
	}
	out := make([]float64, n)
	r.mu.RLock()
	defer r.mu.RUnlock()
	r.series(kind, id, m, out)
	return out
}

func (r *Recorder) series(kind fleet.Kind, id string, m Metric, dst []float64) {
	end := r.last
	switch kind {
	case fleet.KindSite:
		s := r.sites[id]
		if s == nil || end == 0 {
			break
		}
		from := max(s.seen-r.points+1, 1)
		switch m {
		case PowerKW:
			fillRing(dst, s.power, end, from, func(v float32) float64 { return float64(v) })
			maskAfter(dst, end, s.seen)
			return
		case SoCPct:
			fillRing(dst, s.soc, end, from, socValue)
			maskAfter(dst, end, s.seen)
			return
		}
	case fleet.KindDevice:
		d := r.devices[id]
		if d == nil || d.seen == 0 {
			break
		}
		var ring []float32
		switch m {
		case PowerKW:
			ring = d.power
		case SoCPct:
			ring = d.soc
		case TemperatureC:
			ring = d.temp
		}
		if ring == nil {
			break
		}
		fillRing(dst, ring, end, max(d.seen-r.points+1, 1), func(v float32) float64 { return float64(v) })
		maskAfter(dst, end, d.seen)
		return
	}
	fillNaN(dst)
}

// maskAfter sets to NaN the seconds of dst (ending at end) after seen: a
// node not in the latest snapshots has no value there.
func maskAfter(dst []float64, end, seen int64) {
	for i := len(dst) - 1; i >= 0 && end-int64(len(dst)-1-i) > seen; i-- {
		dst[i] = math.NaN()
	}
}

func socValue(v uint16) float64 {
	if v == socNaN {
		return math.NaN()
	}
	return float64(v) / 100
}
