package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/vppctl/vpp/internal/api"
	"github.com/vppctl/vpp/internal/fleet"
	"github.com/vppctl/vpp/internal/kafka/kafkatest"
	"github.com/vppctl/vpp/internal/pipeline"
	"github.com/vppctl/vpp/internal/sim"
	"github.com/vppctl/vpp/internal/testutil"
	"github.com/vppctl/vpp/proto/vppv1"
)

// chromiumPath is where Debian's chromium package installs the browser.
const chromiumPath = "/usr/bin/chromium"

// EnvArtifacts names the directory the browser test writes its screenshots
// to; without it they go to the test's temporary directory.
const EnvArtifacts = "VPP_ARTIFACTS"

// browserTimeout bounds the whole browser test.
const browserTimeout = 60 * time.Second

// browser starts headless Chromium with the flags that work in containers
// and CI, and returns a chromedp context for one tab. It skips the test when
// Chromium is missing, except in CI.
func browser(ctx context.Context, t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		testutil.Missing(t, chromiumPath+" not installed (apt-get install chromium)")
	}
	var out testutil.SyncBuffer
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1360, 1000),
		chromedp.CombinedOutput(&out),
	)
	bctx, cancelBrowser := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
		if t.Failed() {
			t.Logf("chromium output:\n%s", out.String())
		}
	})
	// Start the browser now, under ctx's deadline only.
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start chromium: %v\n%s", err, out.String())
	}
	return bctx
}

// watchTab records the tab's console errors and every URL it requests.
type watchTab struct {
	mu       sync.Mutex
	errs     []string
	requests []string
}

func watch(ctx context.Context) *watchTab {
	w := &watchTab{}
	msgs := chromedp.Console(ctx)
	reqs := chromedp.Events(ctx, network.RequestWillBeSent)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				w.mu.Lock()
				w.errs = append(w.errs, m.String())
				w.mu.Unlock()
			}
		}
	}()
	go func() {
		for ev, err := range reqs {
			if err != nil {
				return
			}
			w.mu.Lock()
			w.requests = append(w.requests, ev.Request.URL)
			w.mu.Unlock()
		}
	}()
	return w
}

// check fails the test for console errors and for requests that leave base.
func (w *watchTab) check(t *testing.T, base string) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, e := range w.errs {
		t.Errorf("browser console: %s", e)
	}
	if len(w.requests) == 0 {
		t.Errorf("no request seen")
	}
	for _, u := range w.requests {
		if !strings.HasPrefix(u, base+"/") && !strings.HasPrefix(u, "data:") {
			t.Errorf("page requested %s, outside %s", u, base)
		}
	}
}

// evalString evaluates a JavaScript expression giving a string.
func evalString(ctx context.Context, expr string) (string, error) {
	return chromedp.Run(ctx, chromedp.Evaluate[string](expr))
}

// waitPage polls expr until ok accepts its value or the wait (at most
// 30 s) ends; it returns the last value.
func waitPage(ctx context.Context, t *testing.T, what, expr string, ok func(string) bool) string {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var last string
	var err error
	for {
		last, err = evalString(wctx, expr)
		if err == nil && ok(last) {
			return last
		}
		select {
		case <-wctx.Done():
			t.Fatalf("page: %s: last value %q (err %v)", what, last, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// powerMatches reports whether a power the page shows ("+1,234.5 kW",
// "−0.12 MW") is kW to within half its last shown digit.
func powerMatches(shown string, kw float64) bool {
	num, unit, ok := strings.Cut(strings.TrimSpace(shown), " ")
	if !ok {
		return false
	}
	mult := map[string]float64{"kW": 1, "MW": 1e3, "GW": 1e6}[unit]
	if mult == 0 {
		return false
	}
	num = strings.ReplaceAll(strings.ReplaceAll(num, ",", ""), "\u2212", "-")
	v, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return false
	}
	decimals := 0
	if _, frac, ok := strings.Cut(num, "."); ok {
		decimals = len(frac)
	}
	tol := 0.5 * math.Pow10(-decimals) * mult
	return math.Abs(v*mult-kw) <= tol+1e-9
}

// count parses a number the page shows ("1,234").
func count(s string) (int64, bool) {
	n, err := strconv.ParseInt(strings.ReplaceAll(strings.TrimSpace(s), ",", ""), 10, 64)
	return n, err == nil
}

func getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: decode: %w", url, err)
	}
	return nil
}

// waitFleet polls the API until the fleet has devices devices.
func waitFleet(ctx context.Context, t *testing.T, base string, devices int64) (api.NodeJSON, []api.NodeJSON) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		var f api.NodeJSON
		var regions []api.NodeJSON
		err := getJSON(wctx, base+"/api/metrics/fleet", &f)
		if err == nil && f.Devices == devices {
			if err = getJSON(wctx, base+"/api/metrics/regions", &regions); err == nil {
				return f, regions
			}
		}
		select {
		case <-wctx.Done():
			t.Fatalf("API fleet devices %d, want %d (err %v)", f.Devices, devices, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func runSim(ctx context.Context, t *testing.T, p *pipeline.Pipeline, devices int, readings int64) {
	t.Helper()
	s, err := sim.New(sim.Config{
		URL: p.IngestURL(), TokenFunc: p.TokenFunc(), Devices: devices, Rate: 20_000, Count: readings, Seed: 7, Conns: 8,
		Regions: 3, SubstationsPerRegion: 2, SitesPerSubstation: 4,
		// Early evening: most batteries discharge.
		Start:  time.Date(2026, 6, 1, 18, 0, 0, 0, time.UTC),
		Logger: testutil.Logger(slog.LevelWarn),
	})
	if err != nil {
		t.Fatalf("sim: %v", err)
	}
	if err := s.Run(ctx); err != nil {
		t.Fatalf("sim run: %v", err)
	}
}

// screenshot saves a PNG of the whole page to VPP_ARTIFACTS (or a
// temporary directory) and logs its path.
func screenshot(ctx context.Context, t *testing.T, name string) string {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	dir := os.Getenv(EnvArtifacts)
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifacts directory: %v", err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatalf("write screenshot: %v", err)
	}
	t.Logf("screenshot: %s", path)
	return path
}

func setColorScheme(ctx context.Context, t *testing.T, scheme string) {
	t.Helper()
	_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
	})
	if err != nil {
		t.Fatalf("emulate prefers-color-scheme %s: %v", scheme, err)
	}
}

// TestBrowserLivePage is the acceptance test of the page: the pipeline on
// a test broker, a simulated fleet, and headless Chromium showing the page.
// The page must show the API's device count, follow a change of the fleet
// through the event stream, raise no console error and request nothing
// outside the server.
func TestBrowserLivePage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	defer cancel()
	bctx := browser(ctx, t)

	pctx, pcancel := context.WithCancel(ctx)
	p, err := pipeline.Start(pctx, pipeline.Config{Kafka: kafkatest.Options(t, 3), HTTPAddr: "127.0.0.1:0", Logger: testutil.Logger(slog.LevelWarn)})
	if err != nil {
		t.Fatalf("start pipeline: %v", err)
	}
	defer func() {
		pcancel()
		if err := p.Wait(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("pipeline shutdown: %v", err)
		}
	}()
	apiURL := p.APIURL()

	runSim(ctx, t, p, 120, 1200)
	want, regions := waitFleet(ctx, t, apiURL, 120)

	tab := watch(bctx)
	setColorScheme(bctx, t, "light")
	if err := chromedp.Do(bctx, chromedp.Navigate(apiURL+"/")); err != nil {
		t.Fatalf("navigate: %v", err)
	}
	if title, err := chromedp.Run(bctx, chromedp.Title()); err != nil || title != "vpp · fleet" {
		t.Errorf("title %q (err %v)", title, err)
	}

	// The page shows the API's device count, per region too.
	devicesExpr := `document.getElementById("kpi-devices").textContent`
	waitPage(bctx, t, "fleet devices = API's", devicesExpr, func(s string) bool { n, ok := count(s); return ok && n == want.Devices })
	waitPage(bctx, t, "one row per region", `String(document.querySelectorAll("#regions-body tr[data-region]").length)`,
		func(s string) bool { return s == strconv.Itoa(len(regions)) })
	for _, r := range regions {
		got := waitPage(bctx, t, "devices of region "+r.ID,
			fmt.Sprintf(`document.querySelector('#regions-body tr[data-region=%q] td:nth-child(2)').firstChild.textContent`, r.ID),
			func(s string) bool { n, ok := count(s); return ok && n == r.Devices })
		t.Logf("region %s: page %s devices, API %d", r.ID, got, r.Devices)
	}
	waitPage(bctx, t, "LIVE badge", `document.getElementById("badge").textContent`, func(s string) bool { return s == "LIVE" })
	waitPage(bctx, t, "power sparkline drawn", `String(document.querySelectorAll("#spark-power path.line").length)`,
		func(s string) bool { return s == "1" })
	// The page's net power is the API's, to the precision it shows.
	power := waitPage(bctx, t, "net power = API's", `document.getElementById("kpi-power").textContent + " " + document.getElementById("kpi-power-unit").textContent`,
		func(s string) bool { return powerMatches(s, want.PowerKW) })
	t.Logf("page: %s devices, net power %s (API %.3f kW)", strconv.FormatInt(want.Devices, 10), power, want.PowerKW)

	// More devices: the page follows through the stream, without reload.
	if _, err := chromedp.Run(bctx, chromedp.Evaluate[bool](`window.__sameDocument = true`)); err != nil {
		t.Fatal(err)
	}
	runSim(ctx, t, p, 200, 2000)
	want, _ = waitFleet(ctx, t, apiURL, 200)
	waitPage(bctx, t, "fleet devices follow the API", devicesExpr, func(s string) bool { n, ok := count(s); return ok && n == want.Devices })
	if same, err := chromedp.Run(bctx, chromedp.Evaluate[bool](`window.__sameDocument === true`)); err != nil || !same {
		t.Errorf("the page reloaded instead of updating live (err %v)", err)
	}
	waitPage(bctx, t, "online count", `document.getElementById("kpi-online").textContent`, func(s string) bool { n, ok := count(s); return ok && n == want.Online })

	time.Sleep(1500 * time.Millisecond) // a few more samples in the sparklines
	screenshot(bctx, t, "web-page-light.png")
	setColorScheme(bctx, t, "dark")
	screenshot(bctx, t, "web-page-dark.png")
	tab.check(t, apiURL)
}

// TestBrowserStaleBadge serves data a minute old: the page must show the
// STALE badge.
func TestBrowserStaleBadge(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	defer cancel()
	src := newSource()
	old := time.Now().Add(-time.Minute).UnixMilli()
	src.mu.Lock()
	src.tree.ApplySite(&vppv1.SiteState{SiteId: "s1", RegionId: "north", SubstationId: "n1", UpdatedMs: old, Devices: []*vppv1.DeviceState{{
		Last:      &vppv1.Reading{DeviceId: "d1", Seq: 1, TsMs: old, SocPct: 40, SohPct: 95, PowerKw: -2, CapacityKwh: 10, MaxChargeKw: 5, MaxDischargeKw: 5},
		AppliedMs: old,
	}}})
	src.snap = src.tree.Snapshot()
	src.mu.Unlock()
	srv := httptest.NewServer(api.Page(src, src.Changed))
	t.Cleanup(srv.Close) // after the browser closed its event stream
	bctx := browser(ctx, t)

	tab := watch(bctx)
	if err := chromedp.Do(bctx, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatalf("navigate: %v", err)
	}
	waitPage(bctx, t, "STALE badge", `document.getElementById("badge").textContent`, func(s string) bool { return s == "STALE" })
	waitPage(bctx, t, "data age about a minute", `document.getElementById("age").textContent`, func(s string) bool { return strings.HasSuffix(s, " min") })
	waitPage(bctx, t, "charging", `document.getElementById("kpi-dir").textContent`, func(s string) bool { return s == "charging" })
	screenshot(bctx, t, "web-page-stale.png")
	tab.check(t, srv.URL)
}

// TestBrowserLoadingBanner: while the source loads, the page shows the
// loading banner with the progress, then the cause of an error, and hides
// the banner once the fleet is complete.
func TestBrowserLoadingBanner(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	defer cancel()
	src := newSource()
	src.addSite("north", "s1", 2, 1.5)
	src.setLoad(fleet.Load{Loading: true, Partitions: 64, Done: 12, Records: 100, Read: 41, Percent: 41})
	srv := httptest.NewServer(api.Page(src, src.Changed))
	t.Cleanup(srv.Close)
	bctx := browser(ctx, t)

	tab := watch(bctx)
	if err := chromedp.Do(bctx, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatalf("navigate: %v", err)
	}
	banner := `(b => b.hidden ? "" : b.textContent)(document.getElementById("loading"))`
	waitPage(bctx, t, "loading banner", banner, func(s string) bool { return strings.Contains(s, "loading 12/64 partitions (41 %)") })
	screenshot(bctx, t, "web-page-loading.png")
	src.setLoad(fleet.Load{Loading: true, Err: "topic x.state does not exist: is an aggregator running with this --topic-prefix?"})
	waitPage(bctx, t, "error banner", banner, func(s string) bool { return strings.Contains(s, "x.state does not exist") })
	src.setLoad(fleet.Load{})
	waitPage(bctx, t, "no banner once complete", banner, func(s string) bool { return s == "" })
	tab.check(t, srv.URL)
}
