package history

import (
	"math"

	"github.com/vppctl/vpp/internal/fleet"
)

// Store is the Source the TUI reads: the fleet, regions and substations
// (and the pipeline metrics, fleet only) from the Kafka-backed Reader,
// backfilled; the sites of watched substations and watched devices from the
// live Recorder (other sites' series are NaN). It is safe for concurrent
// use. One Store per process serves every session:
//
//	reader := history.NewReader(kopts, history.DefaultWindow, logger)
//	rec := history.NewRecorder(history.DefaultPoints)
//	store := history.NewStore(reader, rec)
//	go reader.Run(ctx)
//	// the goroutine that refreshes fleet snapshots, once a second:
//	rec.Observe(fleetReader.Snapshot(), time.Now())
//	// a session listing the sites of a substation:
//	stopSub := rec.WatchSubstation(substationID)
//	defer stopSub()
//	// a session showing a device's detail:
//	stop := rec.Watch(siteID, deviceID)
//	defer stop()
//	// any goroutine, e.g. when rendering:
//	vals := store.Series(fleet.KindRegion, regionID, history.PowerKW, width)
type Store struct {
	reader *Reader
	rec    *Recorder
}

var _ Source = (*Store)(nil)

// NewStore combines a Reader and a Recorder; either may be nil (its series
// are then all NaN). Running the Reader and feeding the Recorder stay the
// caller's job.
func NewStore(reader *Reader, rec *Recorder) *Store {
	return &Store{reader: reader, rec: rec}
}

// Reader returns the store's Reader (nil if none).
func (s *Store) Reader() *Reader { return s.reader }

// Recorder returns the store's Recorder (nil if none).
func (s *Store) Recorder() *Recorder { return s.rec }

// Series implements Source. It allocates only the result.
func (s *Store) Series(kind fleet.Kind, id string, m Metric, n int) []float64 {
	if n <= 0 {
		return nil
	}
	switch kind {
	case fleet.KindFleet, fleet.KindRegion, fleet.KindSubstation:
		if s.reader != nil {
			return s.reader.Series(kind, id, m, n)
		}
	case fleet.KindSite, fleet.KindDevice:
		if s.rec != nil {
			return s.rec.Series(kind, id, m, n)
		}
	}
	out := make([]float64, n)
	for i := range out {
		out[i] = math.NaN()
	}
	return out
}
