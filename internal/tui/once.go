package tui

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/charmbracelet/x/ansi"

	"github.com/vppctl/vpp/internal/api"
	"github.com/vppctl/vpp/internal/fleet"
)

// ErrIncomplete is returned by Once and OnceJSON for a snapshot of a fleet
// still loading: they never print partial totals.
var ErrIncomplete = errors.New("fleet not loaded")

// complete returns nil for a complete snapshot, else an error wrapping
// ErrIncomplete that says how far loading is.
func complete(s *fleet.Snapshot) error {
	if s != nil && s.Load.Loading {
		return fmt.Errorf("%w: %s", ErrIncomplete, s.Load.Text())
	}
	return nil
}

// Once writes one plain-text frame of the fleet view (`vpp top --once`):
// the header and every region, width cells wide, without charts, hints or
// ANSI sequences. A snapshot still loading is refused (ErrIncomplete).
func Once(w io.Writer, d Data, o Options, width int) error {
	if err := complete(d.Snapshot()); err != nil {
		return err
	}
	if width <= 0 {
		width = 120
	}
	m := newModel(d, o)
	m.plain = true
	m.width = width
	m.height = headerLines + 2 + max(1, len(m.table.rows))
	m.layout()
	out := ansi.Strip(m.render())
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(strings.Replace(l, "▸ ", "  ", 1), " ")
	}
	if _, err := io.WriteString(w, strings.Join(lines, "\n")+"\n"); err != nil {
		return fmt.Errorf("write fleet view: %w", err)
	}
	return nil
}

// treeJSON is the fleet node with its regions.
type treeJSON struct {
	api.NodeJSON
	Regions  []regionJSON     `json:"regions"`
	Pipeline api.PipelineJSON `json:"pipeline"`
}

type regionJSON struct {
	api.NodeJSON
	Substations []substationJSON `json:"substations"`
}

type substationJSON struct {
	api.NodeJSON
	Sites []api.SiteJSON `json:"sites"`
}

// OnceJSON writes the whole fleet tree as one JSON document (`vpp top
// --once --json`): fleet → regions → substations → sites, each node with
// the fields and units of the /api/metrics/* JSON, the devices of each
// site under "device_list", and the pipeline accounting under "pipeline".
// Device ages are relative to the time of the call. A snapshot still
// loading is refused (ErrIncomplete).
func OnceJSON(w io.Writer, snap *fleet.Snapshot) error {
	if snap == nil {
		snap = fleet.EmptySnapshot()
	}
	if err := complete(snap); err != nil {
		return err
	}
	now := time.Now()
	t := treeJSON{NodeJSON: api.NewNodeJSON(snap.Fleet), Regions: make([]regionJSON, 0, len(snap.Regions())), Pipeline: api.NewPipelineJSON(&snap.Pipeline)}
	for _, reg := range snap.Regions() {
		rj := regionJSON{NodeJSON: api.NewNodeJSON(reg), Substations: make([]substationJSON, 0, len(reg.Children))}
		for _, sub := range reg.Children {
			sj := substationJSON{NodeJSON: api.NewNodeJSON(sub), Sites: make([]api.SiteJSON, 0, len(sub.Children))}
			for _, site := range sub.Children {
				states := site.Devices() // decodes the site's record
				devs := make([]api.DeviceJSON, 0, len(states))
				for _, d := range states {
					devs = append(devs, api.NewDeviceJSON(d, now))
				}
				sj.Sites = append(sj.Sites, api.SiteJSON{NodeJSON: api.NewNodeJSON(site), DeviceList: devs})
			}
			rj.Substations = append(rj.Substations, sj)
		}
		t.Regions = append(t.Regions, rj)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(t); err != nil {
		return fmt.Errorf("write fleet json: %w", err)
	}
	return nil
}
