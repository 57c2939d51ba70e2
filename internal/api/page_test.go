package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vppctl/vpp/internal/api"
	"github.com/vppctl/vpp/internal/fleet"
	"github.com/vppctl/vpp/proto/vppv1"
)

// source is a fleet.SnapshotSource that publishes like reader.Reader: every
// change stores a new snapshot and closes the Changed channel.
type source struct {
	mu      sync.Mutex
	tree    *fleet.Tree
	snap    *fleet.Snapshot
	changed chan struct{}
}

func newSource() *source {
	t := fleet.NewTree()
	return &source{tree: t, snap: t.Snapshot(), changed: make(chan struct{})}
}

func (s *source) Snapshot() *fleet.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snap
}

func (s *source) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// addSite adds a site of n devices (each 10 kWh at 50 %, power kw) in
// region and publishes.
func (s *source) addSite(region, site string, n int, kw float64) *fleet.Snapshot {
	now := time.Now().UnixMilli()
	st := &vppv1.SiteState{SiteId: site, RegionId: region, SubstationId: region + "-sub", UpdatedMs: now}
	for i := range n {
		st.Devices = append(st.Devices, &vppv1.DeviceState{
			Last: &vppv1.Reading{
				DeviceId: fmt.Sprintf("%s-d%03d", site, i), Seq: 1, TsMs: now, SocPct: 50, SohPct: 95, PowerKw: kw,
				VoltageV: 400, TemperatureC: 25, CapacityKwh: 10, MaxChargeKw: 5, MaxDischargeKw: 5, Mode: vppv1.Mode_MODE_IDLE,
			},
			AppliedMs: now, HeadroomDischargeKw: 1, HeadroomChargeKw: 2,
		})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tree.ApplySite(st)
	s.snap = s.tree.Snapshot()
	close(s.changed)
	s.changed = make(chan struct{})
	return s.snap
}

// sseEvent is one message of an event stream.
type sseEvent struct {
	event, id, data string
	comments        []string
}

// sseClient reads an event stream.
type sseClient struct {
	resp *http.Response
	r    *bufio.Reader
}

func dialStream(ctx context.Context, t *testing.T, url string) *sseClient {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+api.StreamPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", api.StreamPath, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", api.StreamPath, resp.Status)
	}
	return &sseClient{resp: resp, r: bufio.NewReader(resp.Body)}
}

// next reads the next message (a block ended by an empty line).
func (c *sseClient) next() (sseEvent, error) {
	var e sseEvent
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return e, fmt.Errorf("read stream: %w", err)
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			return e, nil
		case strings.HasPrefix(line, ":"):
			e.comments = append(e.comments, line)
		case strings.HasPrefix(line, "event: "):
			e.event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "id: "):
			e.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "data: "):
			e.data += strings.TrimPrefix(line, "data: ")
		}
	}
}

// nextState reads messages until a "state" event and decodes it.
func (c *sseClient) nextState(t *testing.T) (api.Event, string) {
	t.Helper()
	for {
		e, err := c.next()
		if err != nil {
			t.Fatal(err)
		}
		if e.event != "state" {
			continue
		}
		var ev api.Event
		if err := json.Unmarshal([]byte(e.data), &ev); err != nil {
			t.Fatalf("decode event %q: %v", e.data, err)
		}
		if e.id != fmt.Sprint(ev.Version) {
			t.Errorf("event id %q, want the version %d", e.id, ev.Version)
		}
		return ev, e.data
	}
}

func newServer(t *testing.T, cfg api.PageConfig) *httptest.Server {
	t.Helper()
	h, err := api.NewPage(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func TestPage(t *testing.T) {
	srv := newServer(t, api.PageConfig{Source: newSource()})
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /: %s", resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'sha256-") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}
	page := string(body)
	for _, want := range []string{"<title>", "api/stream", "STALE", "positive when discharging", `id="kpi-devices"`, `id="regions"`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	// Self-contained: no URL with a scheme or a protocol-relative URL, and
	// every src/href is relative to the server or a data: URL.
	if m := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`).FindAllString(page, -1); len(m) > 0 {
		t.Errorf("page references external hosts: %q", m)
	}
	if m := regexp.MustCompile(`(?i)https?://`).FindAllString(page, -1); len(m) > 0 {
		t.Errorf("page holds absolute URLs: %q", m)
	}
	for _, m := range regexp.MustCompile(`(?i)\b(?:src|href)\s*=\s*"([^"]*)"`).FindAllStringSubmatch(page, -1) {
		if u := m[1]; strings.Contains(u, ":") && !strings.HasPrefix(u, "data:") {
			t.Errorf("page loads %q", u)
		}
	}
	if strings.Contains(page, "@import") || strings.Contains(page, "url(http") {
		t.Errorf("page imports external CSS")
	}

	for path, code := range map[string]int{"/nope": http.StatusNotFound, "/index.html": http.StatusNotFound} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != code {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, code)
		}
	}
	resp, err = http.Post(srv.URL+"/", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %d, want 405", resp.StatusCode)
	}
}

func TestStreamEventOnChange(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	src := newSource()
	src.addSite("north", "s1", 2, 1.5)
	srv := newServer(t, api.PageConfig{Source: src, Changed: src.Changed, MinInterval: 20 * time.Millisecond})
	c := dialStream(ctx, t, srv.URL)
	if ct := c.resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type = %q", ct)
	}
	if cc := c.resp.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("Cache-Control = %q", cc)
	}

	// The current state at once.
	ev, _ := c.nextState(t)
	if ev.Fleet.Devices != 2 || len(ev.Regions) != 1 || ev.Regions[0].ID != "north" {
		t.Fatalf("first event: fleet %+v regions %+v", ev.Fleet, ev.Regions)
	}

	// A change: the event carries the fleet and regions exactly as the API.
	snap := src.addSite("south", "s2", 3, -2)
	ev, data := c.nextState(t)
	if ev.Version != snap.Version {
		t.Fatalf("event version %d, want %d", ev.Version, snap.Version)
	}
	var raw struct {
		Fleet   json.RawMessage   `json:"fleet"`
		Regions []json.RawMessage `json:"regions"`
		AgeMS   *int64            `json:"age_ms"`
	}
	if err := json.Unmarshal([]byte(data), &raw); err != nil {
		t.Fatal(err)
	}
	wantFleet, _ := json.Marshal(api.NewNodeJSON(snap.Fleet))
	if string(raw.Fleet) != string(wantFleet) {
		t.Errorf("fleet JSON\n got %s\nwant %s", raw.Fleet, wantFleet)
	}
	if len(raw.Regions) != 2 {
		t.Fatalf("regions: %d, want 2", len(raw.Regions))
	}
	for i, r := range snap.Regions() {
		want, _ := json.Marshal(api.NewNodeJSON(r))
		if string(raw.Regions[i]) != string(want) {
			t.Errorf("region %d JSON\n got %s\nwant %s", i, raw.Regions[i], want)
		}
	}
	if raw.AgeMS == nil || *raw.AgeMS < 0 || *raw.AgeMS > 5000 {
		t.Errorf("age_ms = %v, want a fresh age", raw.AgeMS)
	}
	if ev.Fleet.Devices != 5 || ev.Fleet.PowerKW != 2*1.5-3*2 {
		t.Errorf("fleet devices %d power %v, want 5 and -3", ev.Fleet.Devices, ev.Fleet.PowerKW)
	}
}

func TestStreamCoalescesChanges(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	src := newSource()
	srv := newServer(t, api.PageConfig{Source: src, Changed: src.Changed, MinInterval: 300 * time.Millisecond})
	c := dialStream(ctx, t, srv.URL)
	first, _ := c.nextState(t)
	start := time.Now()

	// 50 changes in a burst: the client gets at most one event per
	// MinInterval, and the next one already holds the latest state.
	var last *fleet.Snapshot
	for i := range 50 {
		last = src.addSite("r", fmt.Sprintf("s%02d", i), 1, 1)
	}
	ev, _ := c.nextState(t)
	if gap := time.Since(start); gap < 250*time.Millisecond {
		t.Errorf("second event after %v, want ≥ MinInterval", gap)
	}
	if ev.Version == first.Version {
		t.Fatalf("second event has the first version")
	}
	if ev.Version != last.Version || ev.Fleet.Devices != 50 {
		t.Errorf("second event: version %d devices %d, want the latest (%d, 50)", ev.Version, ev.Fleet.Devices, last.Version)
	}
}

func TestStreamHeartbeat(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	src := newSource()
	srv := newServer(t, api.PageConfig{Source: src, Changed: src.Changed, Heartbeat: 50 * time.Millisecond})
	c := dialStream(ctx, t, srv.URL)
	c.nextState(t)
	beats := 0
	for beats < 2 {
		e, err := c.next()
		if err != nil {
			t.Fatal(err)
		}
		if e.event != "" {
			t.Fatalf("unexpected event %q without a change", e.event)
		}
		for _, cm := range e.comments {
			if strings.HasPrefix(cm, ": heartbeat") {
				beats++
			}
		}
	}
}

func TestStreamPollsWithoutChanged(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	src := newSource()
	srv := newServer(t, api.PageConfig{Source: src, MinInterval: 20 * time.Millisecond})
	c := dialStream(ctx, t, srv.URL)
	if ev, _ := c.nextState(t); ev.AgeMS != nil || ev.Regions == nil || len(ev.Regions) != 0 {
		t.Errorf("empty fleet: age %v regions %v, want null and []", ev.AgeMS, ev.Regions)
	}
	src.addSite("east", "s1", 4, 0)
	if ev, _ := c.nextState(t); ev.Fleet.Devices != 4 {
		t.Errorf("devices %d, want 4", ev.Fleet.Devices)
	}
}

func TestStreamStopsOnDisconnect(t *testing.T) {
	src := newSource()
	h, err := api.NewPage(api.PageConfig{Source: src, Changed: src.Changed, MaxStreams: 1})
	if err != nil {
		t.Fatal(err)
	}
	returned := make(chan struct{}, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		returned <- struct{}{}
	}))
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cctx, disconnect := context.WithCancel(ctx)
	c := dialStream(cctx, t, srv.URL)
	c.nextState(t)

	// The only slot is taken: a second stream is refused.
	resp, err := http.Get(srv.URL + api.StreamPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("second stream: %s, want 503", resp.Status)
	}
	<-returned // the refused request

	disconnect()
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("handler still running 5 s after the client disconnected")
	}
	// The slot is free again.
	c2 := dialStream(ctx, t, srv.URL)
	c2.nextState(t)
}

func TestStreamEndsWithServerContext(t *testing.T) {
	src := newSource()
	h, err := api.NewPage(api.PageConfig{Source: src, Changed: src.Changed})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, api.StreamPath, nil)
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ServeHTTP(rec, req)
	}()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("handler did not return after its context ended")
	}
	if !strings.Contains(rec.Body.String(), "event: state\n") {
		t.Errorf("no state event written: %q", rec.Body.String())
	}
	if !rec.Flushed {
		t.Errorf("stream not flushed")
	}
}

func TestNewRequiresSource(t *testing.T) {
	if _, err := api.NewPage(api.PageConfig{}); err == nil {
		t.Fatal("New without a source: no error")
	}
	rec := httptest.NewRecorder()
	api.Page(nil, nil).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusInternalServerError {
		t.Errorf("Handler(nil): %d, want 500", rec.Code)
	}
}

// TestMountedNextToAPI mounts the page as NewMux does (without its guard):
// the page at exactly GET /, the stream, the health endpoints and the JSON
// API for everything else.
func TestMountedNextToAPI(t *testing.T) {
	src := newSource()
	src.addSite("north", "s1", 3, 1)
	mux := http.NewServeMux()
	page := api.Page(src, src.Changed)
	mux.Handle("GET /{$}", page)
	mux.Handle("GET "+api.StreamPath, page)
	mux.Handle("GET /healthz", api.Health())
	mux.Handle("/", api.FleetHandler(src, time.Now))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	for _, tc := range []struct {
		method, path string
		code         int
		contentType  string
		body         string
	}{
		{http.MethodGet, "/", http.StatusOK, "text/html; charset=utf-8", "<!doctype html>"},
		{http.MethodHead, "/", http.StatusOK, "text/html; charset=utf-8", ""},
		{http.MethodGet, "/healthz", http.StatusOK, "application/json", `{"status":"ok"}`},
		{http.MethodGet, "/api/metrics/fleet", http.StatusOK, "application/json", `"devices":3`},
		{http.MethodGet, "/api/metrics/regions/north", http.StatusOK, "application/json", `"substations"`},
		{http.MethodGet, "/nope", http.StatusNotFound, "application/json", `"error"`},
		{http.MethodPost, "/", http.StatusNotFound, "application/json", `"error"`}, // as before the page existed
		{http.MethodHead, api.StreamPath, http.StatusOK, "text/event-stream", ""},
	} {
		req, err := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || resp.Header.Get("Content-Type") != tc.contentType || !strings.Contains(string(body), tc.body) {
			t.Errorf("%s %s: %d %q %.80q, want %d %q containing %q", tc.method, tc.path, resp.StatusCode,
				resp.Header.Get("Content-Type"), body, tc.code, tc.contentType, tc.body)
		}
	}
}
