package tui

import (
	"bytes"
	"encoding/json"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/ansi"

	"github.com/vppctl/vpp/internal/api"
	"github.com/vppctl/vpp/internal/fleet"
	"github.com/vppctl/vpp/proto/vppv1"
)

func newTestModel(t testing.TB, snap *fleet.Snapshot, w, h int) (*model, *fakeData) {
	t.Helper()
	d := &fakeData{snap: snap}
	m := newModel(d, Options{Now: fixedNow})
	m.Update(tea.WindowSizeMsg{Width: w, Height: h})
	return m, d
}

func pressAll(m *model, keys ...tea.Key) {
	for _, k := range keys {
		_, cmd := m.Update(tea.KeyPressMsg(k))
		// Run the command synchronously when it opens a device.
		if cmd != nil {
			if msg := cmd(); msg != nil {
				if _, ok := msg.(openDeviceMsg); ok {
					m.Update(msg)
				}
			}
		}
	}
}

func rowIDs(t *tableView) []string {
	var ids []string
	for _, r := range t.rows {
		ids = append(ids, r.id)
	}
	return ids
}

func TestCursorFollowsNodeID(t *testing.T) {
	m, d := newTestModel(t, testSnapshot(), 120, 40)
	pressAll(m, kDown) // south
	if got := m.table.selected().id; got != "south" {
		t.Fatalf("selected %q, want south", got)
	}
	// Re-sort by every column, both ways: the cursor stays on south.
	for range 2 * int(numSortKeys) {
		pressAll(m, char('s'))
		if got := m.table.selected().id; got != "south" {
			t.Fatalf("after sort by %d desc=%v: selected %q, want south (rows %v)", m.table.sortBy, m.table.desc, got, rowIDs(m.table))
		}
		pressAll(m, char('S'))
		if got := m.table.selected().id; got != "south" {
			t.Fatalf("after reverse: selected %q, want south", got)
		}
	}
	// A refresh with a new region that sorts before south: the row index
	// of south changes, the selection does not.
	tr := fleet.NewTree()
	for _, reg := range []string{"east", "north", "south", "a-new"} {
		tr.ApplySite(&vppv1.SiteState{SiteId: "s-" + reg, SubstationId: "sub-" + reg, RegionId: reg, Devices: []*vppv1.DeviceState{{Last: reading("d-"+reg, "s-"+reg, "sub-"+reg, reg, 50, 1, 20, 0)}}})
	}
	d.snap = tr.Snapshot()
	m.table.sortBy, m.table.desc = sortName, false
	m.refresh()
	if got := m.table.selected().id; got != "south" {
		t.Fatalf("after refresh: selected %q, want south (rows %v)", got, rowIDs(m.table))
	}
	if m.table.cur.index != 3 {
		t.Fatalf("cursor index %d, want 3 (south is the 4th region now)", m.table.cur.index)
	}
	// Drill down and back up: the cursor returns to the node we left.
	pressAll(m, kEnter)
	if m.table.levelKind != fleet.KindRegion {
		t.Fatalf("level %v after enter", m.table.levelKind)
	}
	pressAll(m, tea.Key{Code: tea.KeyBackspace})
	if got := m.table.selected().id; got != "south" || len(m.table.path) != 0 {
		t.Fatalf("after back: selected %q path %v", got, m.table.path)
	}
}

func TestFilter(t *testing.T) {
	m, _ := newTestModel(t, testSnapshot(), 120, 40)
	pressAll(m, char('/'), char('T'), char('h'))
	if got := rowIDs(m.table); !slices.Equal(got, []string{"north", "south"}) {
		t.Fatalf("filter th: rows %v", got)
	}
	pressAll(m, tea.Key{Code: tea.KeyBackspace}, char('w'))
	if got := rowIDs(m.table); len(got) != 0 {
		t.Fatalf("filter tw: rows %v", got)
	}
	if !strings.Contains(ansi.Strip(m.render()), "no match") {
		t.Fatal("an empty filter result says so")
	}
	pressAll(m, tea.Key{Code: tea.KeyBackspace}, tea.Key{Code: tea.KeyEnter})
	if m.table.filtering || m.table.filter != "T" {
		t.Fatalf("enter keeps the filter: filtering=%v filter=%q", m.table.filtering, m.table.filter)
	}
	if got := rowIDs(m.table); !slices.Equal(got, []string{"north", "south", "west"}) {
		t.Fatalf("filter t: rows %v", got)
	}
	pressAll(m, kEsc)
	if m.table.filter != "" || len(m.table.rows) != 3 {
		t.Fatalf("esc clears the filter: %q, %d rows", m.table.filter, len(m.table.rows))
	}
}

func TestSortOrder(t *testing.T) {
	m, _ := newTestModel(t, testSnapshot(), 120, 40)
	pressAll(m, char('s'), char('s')) // power
	if m.table.sortBy != sortPower {
		t.Fatalf("sort %d, want power", m.table.sortBy)
	}
	// north -3 kW, south -1 kW, west 0 kW.
	if got := rowIDs(m.table); !slices.Equal(got, []string{"north", "south", "west"}) {
		t.Fatalf("power ascending: %v", got)
	}
	pressAll(m, char('S'))
	if got := rowIDs(m.table); !slices.Equal(got, []string{"west", "south", "north"}) {
		t.Fatalf("power descending: %v", got)
	}
	if !strings.Contains(ansi.Strip(m.render()), "POWER▼") {
		t.Fatal("the header marks the sort column ▼")
	}
	pressAll(m, char('s'), char('s'), char('s'), char('s')) // alarms, descending
	if got := rowIDs(m.table); got[0] != "south" {
		t.Fatalf("alarms descending: %v", got)
	}
}

func TestNextAlarm(t *testing.T) {
	m, _ := newTestModel(t, testSnapshot(), 120, 40)
	pressAll(m, char('!'))
	if got := m.table.selected().id; got != "south" {
		t.Fatalf("! from north: %q, want south (alarming)", got)
	}
	pressAll(m, char('!'))
	if got := m.table.selected().id; got != "north" {
		t.Fatalf("! from south: %q, want north (an offline device), wrapping", got)
	}
}

func TestStale(t *testing.T) {
	snap := testSnapshot()
	now := testNow
	d := &fakeData{snap: snap}
	m := newModel(d, Options{Now: func() time.Time { return now }, StaleAfter: 5 * time.Second})
	m.Update(tea.WindowSizeMsg{Width: 100, Height: 30})
	if f := ansi.Strip(m.render()); !strings.Contains(f, "LIVE") || strings.Contains(f, "STALE") {
		t.Fatalf("fresh data is live:\n%s", f)
	}
	now = testNow.Add(12 * time.Second)
	m.Update(tickMsg(now))
	f := ansi.Strip(m.render())
	if !strings.Contains(f, "STALE 12s") || strings.Contains(f, "LIVE") {
		t.Fatalf("old data is stale:\n%s", f)
	}
	// No data at all is not live either.
	d.snap = fleet.EmptySnapshot()
	m.Update(tickMsg(now))
	if f := ansi.Strip(m.render()); !strings.Contains(f, "NO DATA") {
		t.Fatalf("no data:\n%s", f)
	}
}

func TestPauseFreezes(t *testing.T) {
	m, d := newTestModel(t, testSnapshot(), 100, 30)
	before := m.render()
	pressAll(m, tea.Key{Code: tea.KeySpace})
	d.snap = fleet.EmptySnapshot()
	m.Update(tickMsg(testNow))
	after := m.render()
	if !strings.Contains(ansi.Strip(after), "PAUSED") {
		t.Fatal("the header says PAUSED")
	}
	if strings.Contains(ansi.Strip(after), "no data yet") || m.c.snap.Fleet.Rollup.Devices == 0 {
		t.Fatal("a paused view keeps its snapshot")
	}
	_ = before
	pressAll(m, tea.Key{Code: tea.KeySpace})
	if m.c.snap.Fleet.Rollup.Devices != 0 {
		t.Fatal("resuming reads the latest snapshot")
	}
}

func TestRowSpark(t *testing.T) {
	nan := math.NaN()
	cases := []struct {
		vals   []float64
		w      int
		hi     float64
		signed bool
		want   string
	}{
		{[]float64{-5, -2.5, 0, 2.5, 5}, 5, 5, true, "▁▂▄▆█"},
		{[]float64{-50, 50}, 2, 5, true, "▁█"}, // clamped to ±limit
		{[]float64{nan, 0, 1}, 4, 1, true, "  ▄█"},
		{[]float64{0, 50, 100, nan}, 4, 100, false, "▁▅█ "},
		{[]float64{1, 2, 3, 4, 5, 6}, 3, 6, false, "▆▇█"}, // the newest w values
	}
	for _, c := range cases {
		if got := spark(c.vals, c.w, c.hi, c.signed, nil, nil); got != c.want {
			t.Errorf("spark(%v, %d, %v, signed=%v) = %q, want %q", c.vals, c.w, c.hi, c.signed, got, c.want)
		}
	}
	// Charge and discharge colour differently.
	st := newStyles(true)
	got := spark([]float64{-1, 1}, 2, 1, true, &st.Discharge, &st.Charge)
	if !strings.Contains(got, "▁") || !strings.Contains(got, "█") || strings.Count(got, "\x1b[") < 2 {
		t.Errorf("coloured spark %q", got)
	}
}

// every screen at a size, with the keys that lead there.
var screens = []struct {
	name string
	keys []tea.Key
}{
	{"fleet", nil},
	{"substations", []tea.Key{kDown, kEnter}},
	{"sites", []tea.Key{kDown, kEnter, kEnter}},
	{"devices", []tea.Key{kDown, kEnter, kEnter, kEnter}},
	{"device", []tea.Key{kDown, kEnter, kEnter, kEnter, kDown, kEnter}},
	{"alarms", []tea.Key{char('a')}},
	{"pipeline", []tea.Key{char('p')}},
	{"help", []tea.Key{char('?')}},
	{"filtering", []tea.Key{char('/'), char('x')}},
}

func TestNoLineExceedsTheTerminal(t *testing.T) {
	for _, sz := range [][2]int{{80, 24}, {200, 60}, {100, 30}, {60, 15}} {
		for _, s := range screens {
			m, _ := newTestModel(t, testSnapshot(), sz[0], sz[1])
			pressAll(m, s.keys...)
			frame := m.View().Content
			lines := strings.Split(frame, "\n")
			if len(lines) > sz[1] {
				t.Errorf("%dx%d %s: %d lines", sz[0], sz[1], s.name, len(lines))
			}
			for i, l := range lines {
				if w := ansi.StringWidth(l); w > sz[0] {
					t.Errorf("%dx%d %s: line %d is %d wide: %q", sz[0], sz[1], s.name, i, w, ansi.Strip(l))
				}
			}
			// The hint bar stays on the last line.
			if sz[1] >= 24 && !strings.Contains(ansi.Strip(lines[len(lines)-1]), "q quit") && s.name != "filtering" {
				t.Errorf("%dx%d %s: no hint bar on the last line: %q", sz[0], sz[1], s.name, ansi.Strip(lines[len(lines)-1]))
			}
		}
	}
}

func TestChartsDropFirst(t *testing.T) {
	small, _ := newTestModel(t, testSnapshot(), 80, 24)
	big, _ := newTestModel(t, testSnapshot(), 120, 40)
	if small.showCharts() || !big.showCharts() {
		t.Fatalf("charts: 80x24 %v, 120x40 %v", small.showCharts(), big.showCharts())
	}
	if f := ansi.Strip(small.render()); !strings.Contains(f, "north") || !strings.Contains(f, "q quit") {
		t.Fatal("80x24 keeps the table and the hints")
	}
}

func TestDeviceDetailWatch(t *testing.T) {
	var watched []string
	stopped := 0
	d := &fakeData{snap: testSnapshot()}
	m := newModel(d, Options{Now: fixedNow, Watch: func(site, id string) func() {
		watched = append(watched, site+"/"+id)
		return func() { stopped++ }
	}})
	m.Update(tea.WindowSizeMsg{Width: 120, Height: 40})
	pressAll(m, char('a'), kEnter)
	if dv := m.registered(screenDevice).(*deviceView); m.top() != dv || dv.deviceID != "dev-0042-2" {
		t.Fatalf("enter on the first alarm opens its device: screen %v device %q", m.top().Crumbs(), dv.deviceID)
	}
	if len(watched) != 1 || !strings.HasSuffix(watched[0], "/dev-0042-2") || stopped != 0 {
		t.Fatalf("watched %v, stopped %d", watched, stopped)
	}
	f := ansi.Strip(m.render())
	for _, want := range []string{"over-temperature", "61.5 °C", "discharging", "duplicates", "gaps", "last seen", "headroom ↑"} {
		if !strings.Contains(f, want) {
			t.Errorf("device detail lacks %q", want)
		}
	}
	pressAll(m, kEsc)
	if m.top() != m.registered(screenAlarms) {
		t.Fatalf("esc returns to the alarms, screen %v", m.top().Crumbs())
	}
	if stopped != 1 {
		t.Fatalf("leaving the detail stopped %d watches, want 1", stopped)
	}
}

// TestTableWatchesSubstation: the table watches the substation whose
// sites (or one of whose sites' devices) it lists, once, and stops when it
// leaves it, so the recorder records only the sites on screen.
func TestTableWatchesSubstation(t *testing.T) {
	watching := map[string]int{}
	calls := 0
	d := &fakeData{snap: testSnapshot()}
	m := newModel(d, Options{Now: fixedNow, Watch: func(string, string) func() { return func() {} },
		WatchSubstation: func(id string) func() {
			calls++
			watching[id]++
			stopped := false
			return func() {
				if !stopped {
					stopped = true
					if watching[id]--; watching[id] == 0 {
						delete(watching, id)
					}
				}
			}
		}})
	m.Update(tea.WindowSizeMsg{Width: 120, Height: 40})
	check := func(step string, want map[string]int, wantCalls int) {
		t.Helper()
		if !maps.Equal(watching, want) || calls != wantCalls {
			t.Fatalf("%s: watching %v after %d watches, want %v after %d", step, watching, calls, want, wantCalls)
		}
	}
	check("fleet", map[string]int{}, 0)
	pressAll(m, kEnter) // north
	check("region", map[string]int{}, 0)
	pressAll(m, kEnter) // sub-01
	if m.table.levelKind != fleet.KindSubstation || m.table.levelID != "sub-01" {
		t.Fatalf("level %v %q, want sub-01", m.table.levelKind, m.table.levelID)
	}
	check("sub-01", map[string]int{"sub-01": 1}, 1)
	for range 3 {
		m.Update(tickMsg(testNow))
		m.render()
	}
	check("refreshes", map[string]int{"sub-01": 1}, 1)
	pressAll(m, kEnter) // site-0001: its charts are the recorder's too
	check("site", map[string]int{"sub-01": 1}, 1)
	pressAll(m, kEnter, kEsc) // a device's detail and back
	check("device", map[string]int{"sub-01": 1}, 1)
	pressAll(m, tea.Key{Code: tea.KeyBackspace}, tea.Key{Code: tea.KeyBackspace}) // up to north
	check("back to the region", map[string]int{}, 1)
	pressAll(m, kDown, kEnter) // sub-02
	check("sub-02", map[string]int{"sub-02": 1}, 2)
	pressAll(m, char('a'), char('f')) // alarms and back: the table kept its place
	check("jumps", map[string]int{"sub-02": 1}, 2)
	// The substation leaves the fleet: the table goes up, the watch ends.
	tr := fleet.NewTree()
	tr.ApplySite(&vppv1.SiteState{SiteId: "site-0001", SubstationId: "sub-01", RegionId: "north", Devices: []*vppv1.DeviceState{{Last: reading("d-1", "site-0001", "sub-01", "north", 50, 1, 20, 0)}}})
	d.snap = tr.Snapshot()
	m.refresh()
	if m.table.levelKind != fleet.KindRegion {
		t.Fatalf("level %v after sub-02 left, want the region", m.table.levelKind)
	}
	check("sub-02 gone", map[string]int{}, 2)
}

// alarmsOf is the alarms screen of m.
func alarmsOf(m *model) *alarmsView { return m.registered(screenAlarms).(*alarmsView) }

func TestAlarmsCachedPerVersion(t *testing.T) {
	m, d := newTestModel(t, testSnapshot(), 120, 40)
	pressAll(m, char('a'))
	alarms := alarmsOf(m)
	if alarms.builds != 1 || len(alarms.items) != 3 {
		t.Fatalf("builds %d items %d", alarms.builds, len(alarms.items))
	}
	for range 5 {
		m.Update(tickMsg(testNow))
		m.render()
	}
	if alarms.builds != 1 {
		t.Fatalf("same version rebuilt: %d builds", alarms.builds)
	}
	want := []string{"dev-0042-2", "dev-0003-1", "dev-0042-3"} // critical, offline, low SoC
	var got []string
	for _, it := range alarms.items {
		got = append(got, it.deviceID)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
	d.snap = bigSnapshot(2, 2, 5, 4)
	m.Update(tickMsg(testNow))
	if alarms.builds != 2 {
		t.Fatalf("a new version rebuilds once: %d", alarms.builds)
	}
	// Only hot subtrees are visited, but nothing is missed.
	var brute int
	for _, reg := range d.snap.Regions() {
		for _, sub := range reg.Children {
			for _, site := range sub.Children {
				for _, dv := range site.Devices() {
					if dv.GetLast().GetAlarms() != 0 || dv.GetOffline() {
						brute++
					}
				}
			}
		}
	}
	if len(alarms.items) != brute {
		t.Fatalf("alarms %d, brute force %d", len(alarms.items), brute)
	}
}

func TestSeriesMemoisedPerFrame(t *testing.T) {
	m, d := newTestModel(t, testSnapshot(), 120, 40)
	m.render()
	n := d.calls
	m.render()
	pressAll(m, kDown, kUp)
	if d.calls != n {
		t.Fatalf("redrawing the same frame called Series %d more times", d.calls-n)
	}
	m.Update(tickMsg(testNow))
	m.render()
	if d.calls == n {
		t.Fatal("a refresh reads the series again")
	}
}

var kUp = tea.Key{Code: tea.KeyUp}

func TestColourProfiles(t *testing.T) {
	m, _ := newTestModel(t, testSnapshot(), 120, 40)
	frame := m.View().Content
	down := func(p colorprofile.Profile) string {
		var b bytes.Buffer
		w := &colorprofile.Writer{Forward: &b, Profile: p}
		if _, err := w.WriteString(frame); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	if s := down(colorprofile.ANSI); strings.Contains(s, "38;2;") || !strings.Contains(s, "\x1b[") {
		t.Error("16 colours: no truecolor sequences, but colour")
	}
	if s := down(colorprofile.Ascii); strings.Contains(s, "38;") || strings.Contains(s, "\x1b[3") {
		t.Error("NO_COLOR (Ascii): no colour at all")
	}
	if s := down(colorprofile.NoTTY); strings.Contains(s, "\x1b") {
		t.Error("NoTTY: plain text")
	}
}

func TestOnce(t *testing.T) {
	var b bytes.Buffer
	if err := Once(&b, &fakeData{snap: testSnapshot()}, Options{Now: fixedNow}, 100); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if strings.Contains(out, "\x1b") {
		t.Fatal("Once writes no ANSI sequences")
	}
	for _, want := range []string{"regions (3)", "north", "south", "west", "Net -4.00 kW", "LIVE"} {
		if !strings.Contains(out, want) {
			t.Errorf("Once lacks %q:\n%s", want, out)
		}
	}
	for i, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if ansi.StringWidth(l) > 100 {
			t.Errorf("line %d wider than 100: %q", i, l)
		}
		if strings.Contains(l, "help") {
			t.Errorf("Once has no hint bar: %q", l)
		}
	}
	goldenRequire(t, out) // testdata/TestOnce.golden; go test -update rewrites it
}

func TestOnceJSON(t *testing.T) {
	snap := testSnapshot()
	var b bytes.Buffer
	if err := OnceJSON(&b, snap); err != nil {
		t.Fatal(err)
	}
	var got struct {
		api.NodeJSON
		Regions []struct {
			api.NodeJSON
			Substations []struct {
				api.NodeJSON
				Sites []api.SiteJSON `json:"sites"`
			} `json:"substations"`
		} `json:"regions"`
		Pipeline api.PipelineJSON `json:"pipeline"`
	}
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	r := snap.Fleet.Rollup
	if got.Devices != r.Devices || got.PowerKW != r.PowerKW() || got.EnergyKWh != r.EnergyKWh() || got.Offline != r.Offline || got.Alarming != r.Alarming {
		t.Fatalf("fleet totals %+v, rollup %+v", got.NodeJSON, r)
	}
	var devs, sites int64
	var power float64
	for _, reg := range got.Regions {
		for _, sub := range reg.Substations {
			for _, s := range sub.Sites {
				sites++
				for _, d := range s.DeviceList {
					devs++
					power += d.PowerKW
				}
			}
		}
	}
	if devs != r.Devices || int(sites) != snap.Sites() || math.Abs(power-r.PowerKW()) > 1e-9 {
		t.Fatalf("tree holds %d devices (%v kW) in %d sites; rollup %d devices (%v kW), %d sites", devs, power, sites, r.Devices, r.PowerKW(), snap.Sites())
	}
	if got.Pipeline.Ingest.Received != snap.Pipeline.Received {
		t.Fatal("pipeline accounting missing")
	}
}

func BenchmarkRender(b *testing.B) {
	snap := bigSnapshot(10, 10, 100, 10) // 100,000 devices
	if snap.Fleet.Rollup.Devices != 100_000 {
		b.Fatalf("devices %d", snap.Fleet.Rollup.Devices)
	}
	views := []struct {
		name string
		keys []tea.Key
	}{
		{"fleet", nil},
		{"substation", []tea.Key{kEnter, kEnter}},
		{"site", []tea.Key{kEnter, kEnter, kEnter}},
		{"alarms", []tea.Key{char('a')}},
	}
	for _, sz := range [][2]int{{200, 60}, {80, 24}} {
		for _, v := range views {
			name := v.name + "/" + itoa(sz[0]) + "x" + itoa(sz[1])
			// A new data frame: the refresh's work (snapshot, rows, series,
			// charts) included.
			b.Run(name+"/refresh", func(b *testing.B) {
				m, _ := newTestModel(b, snap, sz[0], sz[1])
				pressAll(m, v.keys...)
				b.ReportAllocs()
				for b.Loop() {
					m.c.snap = nil // force the rows to rebuild as for a new version
					m.table.version = 0
					alarmsOf(m).built = false
					m.Update(tickMsg(testNow))
					_ = m.View()
				}
			})
			// A frame caused by a key press between refreshes.
			b.Run(name+"/redraw", func(b *testing.B) {
				m, _ := newTestModel(b, snap, sz[0], sz[1])
				pressAll(m, v.keys...)
				_ = m.View()
				b.ReportAllocs()
				for b.Loop() {
					_ = m.View()
				}
			})
		}
	}
}
