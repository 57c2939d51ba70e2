package faults_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/internal/kafka/kafkatest"
	"github.com/vppctl/vpp/internal/sim"
	"github.com/vppctl/vpp/internal/testutil"
)

// dispatchJSON is the part of `vpp dispatch show --json` and of
// GET /api/dispatches/{id} the tests read.
type dispatchJSON struct {
	ID            string    `json:"id"`
	Status        string    `json:"status"`
	TargetKW      float64   `json:"target_kw"`
	ActualKW      float64   `json:"actual_kw"`
	FeasibleKW    float64   `json:"feasible_kw"`
	Devices       int       `json:"devices"`
	Following     int       `json:"following"`
	CreatedAt     time.Time `json:"created_at"`
	ReachedAt     time.Time `json:"reached_at"`
	FirstFollowAt time.Time `json:"first_follow_at"`
}

// dispatchRig is a fleet on real processes: `vpp ingest`, n `vpp
// aggregate` (the first serving the API with an operator token) and an
// in-process simulator in real time, one reading per device per second.
type dispatchRig struct {
	dir, bin         string
	opts             kafka.Options
	listen, ingHTTP  string
	api, token       string
	ing              *proc
	s                *sim.Sim
	simDone          <-chan error
	heartbeat        time.Duration
	devices, seconds int
}

const dispatchOperatorToken = "operator-token-of-the-dispatch-test"

func startDispatchRig(t *testing.T, ctx context.Context, aggregators, devices, seconds int) *dispatchRig {
	t.Helper()
	rg := &dispatchRig{dir: t.TempDir(), bin: testutil.BuildVPP(ctx, t), listen: freeAddr(t), ingHTTP: freeAddr(t),
		api: freeAddr(t), token: dispatchOperatorToken, heartbeat: 6 * time.Second, devices: devices, seconds: seconds}
	rg.opts = kafkaOptions(kafkatest.Brokers(t), fmt.Sprintf("fault-dispatch-%d", aggregators), 6, 1)
	if err := kafka.EnsureTopics(ctx, rg.opts); err != nil {
		t.Fatal(err)
	}
	rg.ing = startIngest(t, ctx, rg.dir, rg.bin, rg.opts, rg.listen, rg.ingHTTP)
	group := rg.opts.Prefix + "aggregate"
	for i := range aggregators {
		args := append([]string{"aggregate", "--group", group, "--instance-id", fmt.Sprintf("a%d", i), "--quiet",
			"--heartbeat", rg.heartbeat.String()}, testutil.KafkaFlags(rg.opts)...)
		if i == 0 {
			args = append(args, "--http", rg.api, "--operator-token", rg.token)
		}
		startProc(t, rg.dir, fmt.Sprintf("aggregate-a%d", i), rg.bin, args...)
	}
	rg.s = newSim(t, rg.listen, sim.Config{Devices: devices, Rate: float64(devices), Count: int64(devices * seconds),
		Seed: 31, Conns: 4, TimeScale: 1, Regions: 2, SubstationsPerRegion: 2, SitesPerSubstation: 10})
	rg.simDone = runSim(ctx, rg.s)
	return rg
}

// cli runs `vpp dispatch ARGS` against the rig's Kafka and returns its
// stdout, stderr and exit code.
func (rg *dispatchRig) cli(ctx context.Context, args ...string) (stdout, stderr string, code int) {
	args = append(append([]string{"dispatch"}, args...), "--brokers", strings.Join(rg.opts.Brokers, ","), "--topic-prefix", rg.opts.Prefix)
	cmd := exec.CommandContext(ctx, rg.bin, append(args, rg.opts.Security.Flags()...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Env = append(cmd.Environ(), "VPP_CONFIG=")
	err := cmd.Run()
	code = 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		code = -1
		errb.WriteString(err.Error())
	}
	return out.String(), errb.String(), code
}

// create runs `vpp dispatch create` and returns the new ID (the last line
// of stdout).
func (rg *dispatchRig) create(t *testing.T, ctx context.Context, args ...string) string {
	t.Helper()
	out, errs, code := rg.cli(ctx, append([]string{"create"}, args...)...)
	if code != 0 {
		t.Fatalf("vpp dispatch create %v: exit %d: %s", args, code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return lines[len(lines)-1]
}

// httpDo sends a request to the aggregator's API.
func (rg *dispatchRig) httpDo(ctx context.Context, method, path, token, key string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+rg.api+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// show reads a dispatch from the API.
func (rg *dispatchRig) show(ctx context.Context, id string) (dispatchJSON, error) {
	var d dispatchJSON
	code, b, err := rg.httpDo(ctx, http.MethodGet, "/api/dispatches/"+id, rg.token, "", nil)
	if err != nil {
		return d, err
	}
	if code != http.StatusOK {
		return d, fmt.Errorf("GET /api/dispatches/%s: %d %s", id, code, b)
	}
	return d, json.Unmarshal(b, &d)
}

// regionHeadroom waits until the fleet is complete and returns a region
// and its discharge headroom (kW), from the API.
func (rg *dispatchRig) regionHeadroom(t *testing.T, ctx context.Context) (string, float64) {
	t.Helper()
	var region string
	var head float64
	waitUntil(t, ctx, 60*time.Second, "the whole fleet online in the API", func() bool {
		code, b, err := rg.httpDo(ctx, http.MethodGet, "/api/metrics/regions", rg.token, "", nil)
		if err != nil || code != http.StatusOK {
			return false
		}
		var regions []struct {
			ID                  string  `json:"id"`
			Online              int     `json:"online"`
			HeadroomDischargeKW float64 `json:"headroom_discharge_kw"`
		}
		if json.Unmarshal(b, &regions) != nil || len(regions) != 2 {
			return false
		}
		online := 0
		for _, r := range regions {
			online += r.Online
		}
		region, head = regions[0].ID, regions[0].HeadroomDischargeKW
		return online == rg.devices && head > 0
	})
	return region, head
}

// tracking follows a dispatch for d once a second: how long until the
// node came within 5 % of the feasible target, the mean absolute error and
// the largest overshoot over the samples after that.
type tracking struct {
	reached        time.Duration // from creation
	firstFollow    time.Duration
	mae, overshoot float64 // fraction of the feasible target
	samples        int
}

func (rg *dispatchRig) track(t *testing.T, ctx context.Context, id string, hold time.Duration) tracking {
	t.Helper()
	var d dispatchJSON
	waitUntil(t, ctx, 30*time.Second, "dispatch "+id+" reaches its target", func() bool {
		var err error
		d, err = rg.show(ctx, id)
		return err == nil && !d.ReachedAt.IsZero()
	})
	tr := tracking{reached: d.ReachedAt.Sub(d.CreatedAt), firstFollow: d.FirstFollowAt.Sub(d.CreatedAt)}
	end := time.Now().Add(hold)
	var sum float64
	for time.Now().Before(end) && ctx.Err() == nil {
		time.Sleep(time.Second)
		d, err := rg.show(ctx, id)
		if err != nil || d.FeasibleKW == 0 {
			continue
		}
		e := (d.ActualKW - d.FeasibleKW) / d.FeasibleKW
		sum += math.Abs(e)
		tr.overshoot = math.Max(tr.overshoot, e)
		tr.samples++
	}
	if tr.samples > 0 {
		tr.mae = sum / float64(tr.samples)
	}
	return tr
}

// following waits until the simulated devices following dispatch id number
// want, and returns how long that took.
func (rg *dispatchRig) waitFollowing(t *testing.T, ctx context.Context, id string, cond func(int) bool, limit time.Duration, what string) time.Duration {
	t.Helper()
	start := time.Now()
	waitUntil(t, ctx, limit, what, func() bool { return cond(rg.s.Following()[id]) })
	return time.Since(start)
}

// TestDispatch dispatches a simulated fleet (200 devices in real time, one
// reading a second each) through real `vpp ingest` and `vpp aggregate`
// processes, with one and with three aggregators: a dispatch from the CLI
// and one through the HTTP API reach and hold their targets; a cancel and
// an expiry release every device within 2 s; a bad command is refused with
// its reason (exit 2, HTTP 400), a POST without the operator token with
// 401; with one aggregator, an ingest SIGKILL mid-dispatch puts every
// device back on local control within its heartbeat timeout; and the fleet
// totals still equal the simulator's truth afterwards.
func TestDispatch(t *testing.T) {
	skipShort(t)
	for _, n := range []int{1, 3} {
		t.Run(fmt.Sprintf("aggregators=%d", n), func(t *testing.T) { dispatchRun(t, n) })
	}
}

func dispatchRun(t *testing.T, aggregators int) {
	const devices = 200
	seconds := 110
	if aggregators > 1 {
		seconds = 70
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	rg := startDispatchRig(t, ctx, aggregators, devices, seconds)
	region, head := rg.regionHeadroom(t, ctx)
	var notes []string

	// Bad commands: refused with the reason, nothing created.
	if _, errs, code := rg.cli(ctx, "create", "--node", "region/"+region, "--power", "NaN", "--duration", "1m"); code != 2 || !strings.Contains(errs, "finite") {
		t.Errorf("create --power NaN: exit %d, %q; want 2 and the reason", code, errs)
	}
	if _, errs, code := rg.cli(ctx, "create", "--node", "region/nowhere", "--power", "10kW", "--duration", "1m"); code != 2 || !strings.Contains(errs, "not in the fleet") {
		t.Errorf("create on an unknown node: exit %d, %q; want 2 and the reason", code, errs)
	}
	body := map[string]any{"node": "region/" + region, "power": "10kW", "duration": "0s"}
	if code, b, err := rg.httpDo(ctx, http.MethodPost, "/api/dispatches", rg.token, "", body); err != nil || code != http.StatusBadRequest || !strings.Contains(string(b), "duration") {
		t.Errorf("POST with a zero duration: %d %s %v; want 400 with the reason", code, b, err)
	}
	body["duration"] = "1m"
	if code, _, err := rg.httpDo(ctx, http.MethodPost, "/api/dispatches", "", "", body); err != nil || code != http.StatusUnauthorized {
		t.Errorf("POST without the operator token: %d %v; want 401", code, err)
	}
	if out, _, _ := rg.cli(ctx, "list"); strings.Contains(out, "region/") {
		t.Errorf("a refused command created a dispatch:\n%s", out)
	}

	// From the CLI: 40 % of the region's headroom for two minutes.
	target := math.Round(0.4*head*10) / 10
	id := rg.create(t, ctx, "--node", "region/"+region, "--power", fmt.Sprintf("%.1fkW", target), "--duration", "2m")
	hold := 30 * time.Second
	if aggregators > 1 {
		hold = 15 * time.Second
	}
	tr := rg.track(t, ctx, id, hold)
	st := rg.s.Stats().Setpoints
	first := st.FirstFollow[id]
	t.Logf("CLI dispatch %s: %.1f kW on region %s (headroom %.1f kW): command → first device following it %s (aggregator's view %s), within 5 %% after %s; over %d s: mean |error| %.2f %%, overshoot %.2f %%; every device: command → its first reading following p50 %s, p99 %s",
		id, target, region, head, first.Round(time.Millisecond), tr.firstFollow.Round(10*time.Millisecond), tr.reached.Round(10*time.Millisecond), tr.samples,
		100*tr.mae, 100*tr.overshoot, st.LatencyP50, st.LatencyP99)
	notes = append(notes, fmt.Sprintf("command → first device %s, step to within 5 %% in %s, MAE %.2f %%, overshoot %.2f %%",
		first.Round(time.Millisecond), tr.reached.Round(100*time.Millisecond), 100*tr.mae, 100*tr.overshoot))
	if tr.reached > 10*time.Second {
		t.Errorf("the node took %s to come within 5 %% of its target, want ≤ 10 s", tr.reached)
	}
	if tr.mae > 0.05 || tr.overshoot > 0.05 {
		t.Errorf("tracking: mean |error| %.2f %%, overshoot %.2f %%; want ≤ 5 %% each", 100*tr.mae, 100*tr.overshoot)
	}
	if first <= 0 || first > time.Second {
		t.Errorf("command → first device following: %s, want ≤ 1 s", first)
	}
	if n := rg.s.Following()[id]; n == 0 {
		t.Fatalf("no simulated device follows %s", id)
	}

	// Cancel from the CLI: every device released within 2 s.
	if _, errs, code := rg.cli(ctx, "cancel", id); code != 0 {
		t.Fatalf("vpp dispatch cancel: exit %d: %s", code, errs)
	}
	took := rg.waitFollowing(t, ctx, id, func(n int) bool { return n == 0 }, 2*time.Second, "every device released after the cancel")
	notes = append(notes, fmt.Sprintf("cancel → 0 devices following in %s", took.Round(10*time.Millisecond)))

	// Through the API, idempotent, with an expiry 20 s out.
	body = map[string]any{"node": "region/" + region, "power": fmt.Sprintf("%.1fkW", target/2), "duration": "20s"}
	var ids []string
	for range 2 {
		code, b, err := rg.httpDo(ctx, http.MethodPost, "/api/dispatches", rg.token, "dispatch-test-"+region, body)
		if err != nil || (code != http.StatusCreated && code != http.StatusOK) {
			t.Fatalf("POST /api/dispatches: %d %s %v", code, b, err)
		}
		var d dispatchJSON
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, d.ID)
	}
	if ids[0] != ids[1] {
		t.Errorf("a retried POST with the same Idempotency-Key created %v", ids)
	}
	apiID := ids[0]
	d, err := rg.show(ctx, apiID)
	if err != nil {
		t.Fatal(err)
	}
	rg.waitFollowing(t, ctx, apiID, func(n int) bool { return n > 0 }, 10*time.Second, "devices follow the API's dispatch")
	end := d.CreatedAt.Add(20 * time.Second)
	time.Sleep(time.Until(end))
	took = rg.waitFollowing(t, ctx, apiID, func(n int) bool { return n == 0 }, 2*time.Second, "every device released at the expiry")
	notes = append(notes, fmt.Sprintf("expiry → 0 devices following in %s", took.Round(10*time.Millisecond)))

	if aggregators == 1 {
		// Ingest dies mid-dispatch: every device reverts within its
		// heartbeat timeout; after ingest is back, devices follow again
		// only once vpp sent the setpoint again.
		id := rg.create(t, ctx, "--node", "region/"+region, "--power", fmt.Sprintf("%.1fkW", target), "--duration", "2m")
		rg.waitFollowing(t, ctx, id, func(n int) bool { return n > 0 }, 15*time.Second, "devices follow before the kill")
		rg.ing.kill()
		took := rg.waitFollowing(t, ctx, id, func(n int) bool { return n == 0 }, rg.heartbeat+time.Second, "every device on local control after the ingest kill")
		notes = append(notes, fmt.Sprintf("ingest SIGKILL → local control in %s (heartbeat %s)", took.Round(10*time.Millisecond), rg.heartbeat))
		rg.ing = startIngest(t, ctx, rg.dir, rg.bin, rg.opts, rg.listen, rg.ingHTTP)
		took = rg.waitFollowing(t, ctx, id, func(n int) bool { return n > 0 }, rg.heartbeat+5*time.Second, "devices follow again once vpp re-sends")
		notes = append(notes, fmt.Sprintf("ingest back → following again in %s", took.Round(100*time.Millisecond)))
		if _, errs, code := rg.cli(ctx, "cancel", id); code != 0 {
			t.Fatalf("vpp dispatch cancel: exit %d: %s", code, errs)
		}
	}

	// Exact accounting holds after dispatches.
	simEnd := waitSim(t, ctx, rg.s, rg.simDone)
	truth := rg.s.Truth()
	tel := waitTelemetry(t, ctx, rg.opts, truth.ReadingsAcked, 60*time.Second)
	checkAcked(t, tel, truth)
	r := startReader(t, ctx, rg.opts)
	conv, _, ok := waitTotals(t, ctx, r, truth, simEnd, 60*time.Second)
	if !ok {
		t.Errorf("fleet totals do not equal the truth after the dispatches")
	}
	result{
		Fault: fmt.Sprintf("dispatch with %d aggregator(s)", aggregators), Broker: brokerKind(""),
		Sent: truth.ReadingsSent, Acked: truth.ReadingsAcked, InKafka: tel.distinct, Records: tel.records,
		Match: ok, Converge: conv, Notes: notes,
	}.report(t)
}
