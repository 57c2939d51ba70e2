package tui

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/teatest/v2"

	"github.com/vppctl/vpp/internal/dispatch"
	"github.com/vppctl/vpp/proto/vppv1"
)

// fakeDispatcher serves a fixed list and records the writes.
type fakeDispatcher struct {
	mu        sync.Mutex
	list      []dispatch.Entry
	created   []dispatch.Request
	cancelled []string // id + " by " + canceller
	createErr error
}

func (f *fakeDispatcher) List() ([]dispatch.Entry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]dispatch.Entry(nil), f.list...), nil
}

func (f *fakeDispatcher) Create(_ context.Context, r dispatch.Request) (dispatch.Entry, bool, dispatch.Headroom, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.createErr != nil {
		return dispatch.Entry{}, false, dispatch.Headroom{}, f.createErr
	}
	f.created = append(f.created, r)
	d, err := dispatch.Build(r, testNow)
	if err != nil {
		return dispatch.Entry{}, false, dispatch.Headroom{}, err
	}
	return dispatch.Entry{Dispatch: d}, true, dispatch.Headroom{}, nil
}

func (f *fakeDispatcher) Cancel(_ context.Context, id, by string) (dispatch.Entry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cancelled = append(f.cancelled, id+" by "+by)
	return dispatch.Entry{}, nil
}

// testDispatches are an active dispatch of the region north (with the
// engine's status), a pending one of a site and a cancelled one.
func testDispatches() []dispatch.Entry {
	ms := func(d time.Duration) int64 { return testNow.Add(d).UnixMilli() }
	return []dispatch.Entry{
		{
			Dispatch: &vppv1.Dispatch{Id: "d-active000001", Node: "region/north", TargetKw: 500, StartMs: ms(-5 * time.Minute), EndMs: ms(10 * time.Minute), CreatedBy: "alice", Source: "cli"},
			Status: &vppv1.DispatchStatus{DispatchId: "d-active000001", State: vppv1.DispatchState_DISPATCH_STATE_ACTIVE,
				TargetKw: 500, ActualKw: 480, Devices: 9, Following: 8},
		},
		{Dispatch: &vppv1.Dispatch{Id: "d-pending00001", Node: "site/site-0042", TargetKw: -1000, StartMs: ms(time.Hour), EndMs: ms(2 * time.Hour)}},
		{Dispatch: &vppv1.Dispatch{Id: "d-cancelled001", Node: "fleet", TargetKw: 2000, StartMs: ms(-2 * time.Hour), EndMs: ms(-time.Hour), CancelledMs: ms(-90 * time.Minute)}},
	}
}

// newDispatchModel is a model on the test fleet with the test dispatches;
// operator "" is a read-only session.
func newDispatchModel(t *testing.T, operator string) (*model, *fakeDispatcher) {
	t.Helper()
	f := &fakeDispatcher{list: testDispatches()}
	m := newModel(&fakeData{snap: testSnapshot()}, Options{Now: fixedNow, Dispatch: f, Operator: operator})
	m.Update(tea.WindowSizeMsg{Width: 120, Height: 36})
	return m, f
}

// send presses keys and runs the commands they return, feeding their
// messages back (the way the program does), and returns the frame.
func send(m *model, keys ...tea.Key) string {
	for _, k := range keys {
		_, cmd := m.Update(tea.KeyPressMsg(k))
		for cmd != nil {
			msg := cmd()
			if msg == nil {
				break
			}
			if _, ok := msg.(tickMsg); ok {
				break
			}
			_, cmd = m.Update(msg)
		}
	}
	return ansi.Strip(m.render())
}

func typeText(s string) []tea.Key {
	var out []tea.Key
	for _, r := range s {
		out = append(out, char(r))
	}
	return out
}

var (
	kTab       = tea.Key{Code: tea.KeyTab}
	kBackspace = tea.Key{Code: tea.KeyBackspace}
)

func TestDispatchFormSubmit(t *testing.T) {
	m, f := newDispatchModel(t, "alice")
	frame := send(m, char('d'))
	if _, ok := m.top().(*dispatchForm); !ok {
		t.Fatalf("d opened %T, want the dispatch form", m.top())
	}
	for _, want := range []string{"dispatch region/north", "by alice", "feasible", "discharge ↑", "charge ↓", "duration", "15m"} {
		if !strings.Contains(frame, want) {
			t.Errorf("form misses %q:\n%s", want, frame)
		}
	}
	keys := typeText("-1.5MW")
	keys = append(keys, kTab, kBackspace, kBackspace, kBackspace)
	keys = append(keys, typeText("30m")...)
	keys = append(keys, kEnter)
	frame = send(m, keys...)
	if len(f.created) != 1 {
		t.Fatalf("Create called %d times, want 1", len(f.created))
	}
	want := dispatch.Request{Node: "region/north", PowerKW: -1500, Duration: 30 * time.Minute, CreatedBy: "alice", Source: "tui"}
	if got := f.created[0]; got != want {
		t.Errorf("Create(%+v), want %+v", got, want)
	}
	if m.top() != m.table {
		t.Errorf("after the create the top is %T, want the table", m.top())
	}
	if !strings.Contains(frame, "created d-") {
		t.Errorf("the table does not note the new dispatch:\n%s", frame)
	}
}

func TestDispatchFormValidation(t *testing.T) {
	for _, c := range []struct{ power, dur, want string }{
		{"lots", "15m", `power "lots"`},
		{"20GW", "15m", "beyond ±10 GW"},
		{"500kW", "0s", "duration must be positive"},
		{"500kW", "soon", `time: invalid duration "soon"`},
	} {
		t.Run(c.power+"_"+c.dur, func(t *testing.T) {
			m, f := newDispatchModel(t, "alice")
			keys := append([]tea.Key{char('d')}, typeText(c.power)...)
			keys = append(keys, kTab, kBackspace, kBackspace, kBackspace)
			keys = append(keys, typeText(c.dur)...)
			frame := send(m, append(keys, kEnter)...)
			if len(f.created) != 0 {
				t.Errorf("Create called with %+v", f.created)
			}
			if _, ok := m.top().(*dispatchForm); !ok {
				t.Fatalf("the form closed on an invalid request")
			}
			if !strings.Contains(frame, c.want) {
				t.Errorf("form does not say %q:\n%s", c.want, frame)
			}
			// esc closes the form without a write.
			send(m, kEsc)
			if m.top() != m.table || len(f.created) != 0 {
				t.Errorf("esc: top %T, creates %d", m.top(), len(f.created))
			}
		})
	}
}

func TestDispatchFormServiceError(t *testing.T) {
	m, f := newDispatchModel(t, "alice")
	f.createErr = errors.New("unknown node: region/north is not in the fleet")
	frame := send(m, append(append([]tea.Key{char('d')}, typeText("100kW")...), kEnter)...)
	if _, ok := m.top().(*dispatchForm); !ok {
		t.Fatalf("the form closed on a refused request")
	}
	if !strings.Contains(frame, "is not in the fleet") {
		t.Errorf("the refusal is not shown:\n%s", frame)
	}
}

func TestDispatchList(t *testing.T) {
	m, f := newDispatchModel(t, "alice")
	frame := send(m, char('D'))
	for _, want := range []string{
		"dispatches (3, 1 active)",
		"d-pending00001", "site/site-0042", "pending", "-1.00 MW",
		"d-active000001", "region/north", "active", "+500 kW", "+480 kW", "-20.0 kW", "8/9",
		"d-cancelled001", "cancelled",
	} {
		if !strings.Contains(frame, want) {
			t.Errorf("list misses %q:\n%s", want, frame)
		}
	}
	// Newest start first: the pending dispatch, then the active one.
	if strings.Index(frame, "d-pending00001") > strings.Index(frame, "d-active000001") {
		t.Errorf("list is not newest start first:\n%s", frame)
	}
	// x asks, any key but y keeps the dispatch.
	frame = send(m, kDown, char('x'))
	if !strings.Contains(frame, "cancel dispatch d-active000001 on region/north?") {
		t.Errorf("x does not ask to confirm:\n%s", frame)
	}
	send(m, char('n'))
	if len(f.cancelled) != 0 {
		t.Fatalf("n cancelled %v", f.cancelled)
	}
	frame = send(m, char('x'), char('y'))
	if want := []string{"d-active000001 by alice"}; len(f.cancelled) != 1 || f.cancelled[0] != want[0] {
		t.Errorf("cancelled %v, want %v", f.cancelled, want)
	}
	if !strings.Contains(frame, "cancelled d-active000001") {
		t.Errorf("the list does not note the cancel:\n%s", frame)
	}
	// An ended dispatch cannot be cancelled.
	frame = send(m, kDown, char('x'))
	if !strings.Contains(frame, "d-cancelled001 is cancelled, nothing to cancel") || len(f.cancelled) != 1 {
		t.Errorf("x on a cancelled dispatch:\n%s", frame)
	}
}

func TestDispatchActiveInTable(t *testing.T) {
	m, f := newDispatchModel(t, "alice")
	frame := send(m)
	if !strings.Contains(frame, "▸◆north") {
		t.Errorf("the row of north is not marked:\n%s", frame)
	}
	// The header follows north once it is focused.
	frame = send(m, kEnter)
	if !strings.Contains(frame, "Net -3.00 kW (chg 9.00 kW dis 6.00 kW)  ◆ tgt +500 kW act +480 kW err -20.0 kW") {
		t.Errorf("the header does not show north's dispatch:\n%s", frame)
	}
	// x on the table cancels the focused node's active dispatch.
	send(m, char('x'), char('y'))
	if len(f.cancelled) != 1 || f.cancelled[0] != "d-active000001 by alice" {
		t.Errorf("cancelled %v", f.cancelled)
	}
	// Nothing active on south.
	m, f = newDispatchModel(t, "alice")
	frame = send(m, kDown, char('x'))
	if !strings.Contains(frame, "no active dispatch on south") || m.table.pending != nil || len(f.cancelled) != 0 {
		t.Errorf("x without an active dispatch:\n%s", frame)
	}
}

func TestDispatchReadOnly(t *testing.T) {
	m, f := newDispatchModel(t, "")
	frame := send(m, char('d'))
	if m.top() != m.table || !strings.Contains(frame, readOnlyText) {
		t.Errorf("d in a read-only session: top %T\n%s", m.top(), frame)
	}
	frame = send(m, char('x'), char('y'))
	if !strings.Contains(frame, readOnlyText) {
		t.Errorf("x in a read-only session:\n%s", frame)
	}
	frame = send(m, char('D'))
	if !strings.Contains(frame, "read-only") || !strings.Contains(frame, "d-active000001") {
		t.Errorf("the list of a read-only session:\n%s", frame)
	}
	frame = send(m, kDown, char('x'), char('y'))
	if !strings.Contains(frame, readOnlyText) {
		t.Errorf("x on the list of a read-only session:\n%s", frame)
	}
	if len(f.created)+len(f.cancelled) != 0 {
		t.Errorf("read-only session wrote: %v %v", f.created, f.cancelled)
	}
}

// TestGoldenDispatches is the dispatch list of an operator, the cursor on
// the active dispatch.
func TestGoldenDispatches(t *testing.T) {
	f := &fakeDispatcher{list: testDispatches()}
	tm := teatest.NewTestModel(t, New(&fakeData{snap: testSnapshot()}, Options{Now: fixedNow, Refresh: 50 * time.Millisecond, Dispatch: f, Operator: "alice"}),
		teatest.WithInitialTermSize(120, 36),
		teatest.WithProgramOptions(tea.WithColorProfile(colorprofile.Ascii)))
	waitText(t, tm, "LIVE")
	press(tm, char('D'), kDown)
	waitText(t, tm, "newest start first")
	frame := finalFrame(t, tm)
	checkFrame(t, frame, 120, 36)
	goldenRequire(t, frame)
}

// TestGoldenDispatchForm is the form on the region north, a power typed.
func TestGoldenDispatchForm(t *testing.T) {
	f := &fakeDispatcher{list: testDispatches()}
	tm := teatest.NewTestModel(t, New(&fakeData{snap: testSnapshot()}, Options{Now: fixedNow, Refresh: 50 * time.Millisecond, Dispatch: f, Operator: "alice"}),
		teatest.WithInitialTermSize(100, 24),
		teatest.WithProgramOptions(tea.WithColorProfile(colorprofile.Ascii)))
	waitText(t, tm, "LIVE")
	press(tm, append([]tea.Key{char('d')}, typeText("-20kW")...)...)
	waitText(t, tm, "-20kW")
	frame := finalFrame(t, tm)
	checkFrame(t, frame, 100, 24)
	goldenRequire(t, frame)
}
