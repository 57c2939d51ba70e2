package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/internal/kafka/kafkatest"
	"github.com/vppctl/vpp/internal/pipeline"
	"github.com/vppctl/vpp/internal/sim"
	"github.com/vppctl/vpp/internal/testutil"
	"github.com/vppctl/vpp/proto/vppv1"
)

// runFleet starts a pipeline and fills it with a small simulated fleet; it
// returns the Kafka options and the pipeline, both quiet once it returns.
func runFleet(t *testing.T, devices int) (kafka.Options, *pipeline.Pipeline) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	opts := kafkatest.Options(t, 4)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	p, err := pipeline.Start(ctx, pipeline.Config{Kafka: opts, HTTPAddr: "127.0.0.1:0", Logger: log})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = p.Wait()
	})
	s, err := sim.New(sim.Config{URL: p.IngestURL(), TokenFunc: p.TokenFunc(), Devices: devices, Rate: 5000, Count: int64(devices * 5), Seed: 3,
		Start: time.Date(2026, 6, 1, 19, 0, 0, 0, time.UTC), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(ctx, time.Minute)
	defer rcancel()
	if err := s.Run(rctx); err != nil {
		t.Fatalf("sim: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for p.Reader().Snapshot().Fleet.Rollup.Devices != int64(devices) || p.Reader().Snapshot().Pipeline.Lag != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("fleet never reached %d devices", devices)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second) // the last flush reaches every reader
	return opts, p
}

// TestTopInTmux drives the real binary in a terminal: the header shows the
// fleet's device count, Enter drills down into a region, q exits 0 and the
// terminal is restored.
func TestTopInTmux(t *testing.T) {
	RequireTmux(t)
	bin := testutil.BuildVPP(context.Background(), t)
	opts, _ := runFleet(t, 300)

	logFile := filepath.Join(t.TempDir(), "top.log")
	tm := StartTmux(t, 120, 36, append([]string{bin, "top", "--log-file", logFile}, testutil.KafkaFlags(opts)...)...)
	defer func() {
		if t.Failed() {
			b, _ := os.ReadFile(logFile)
			code, exited := tm.Exited()
			t.Logf("exited %v (code %d); log:\n%s", exited, code, b)
		}
	}()
	screen := tm.WaitFor("Devices 300 on", 30*time.Second)
	if !strings.Contains(screen, "regions (3)") {
		t.Fatalf("no region table:\n%s", screen)
	}
	tm.Send("Enter")
	screen = tm.WaitFor("fleet › ", 10*time.Second)
	if !strings.Contains(screen, "substations of east") {
		t.Errorf("after Enter the table does not list substations:\n%s", screen)
	}
	tm.Send("q")
	if code := tm.Wait(10 * time.Second); code != 0 {
		t.Fatalf("vpp top exited %d; screen:\n%s", code, tm.Capture())
	}
	if err := tm.TerminalRestored(); err != nil {
		t.Errorf("terminal not restored: %v", err)
	}
}

// TestTopOnceJSONEqualsAPI compares `vpp top --once --json` with
// /api/metrics/fleet on the same data.
func TestTopOnceJSONEqualsAPI(t *testing.T) {
	bin := testutil.BuildVPP(context.Background(), t)
	opts, p := runFleet(t, 200)

	out, err := exec.Command(bin, append([]string{"top", "--once", "--json"}, testutil.KafkaFlags(opts)...)...).Output()
	if err != nil {
		t.Fatalf("vpp top --once --json: %v", err)
	}
	type totals struct {
		Devices     int     `json:"devices"`
		Online      int     `json:"online"`
		PowerKW     float64 `json:"power_kw"`
		EnergyKWh   float64 `json:"energy_kwh"`
		CapacityKWh float64 `json:"capacity_kwh"`
		HeadroomUp  float64 `json:"headroom_discharge_kw"`
		HeadroomDn  float64 `json:"headroom_charge_kw"`
	}
	var top totals
	if err := json.Unmarshal(out, &top); err != nil {
		t.Fatalf("decode --json output: %v\n%s", err, out)
	}
	resp, err := http.Get(p.APIURL() + "/api/metrics/fleet")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var api totals
	if err := json.NewDecoder(resp.Body).Decode(&api); err != nil {
		t.Fatal(err)
	}
	if top != api {
		t.Fatalf("vpp top --once --json totals %+v differ from /api/metrics/fleet %+v", top, api)
	}
	if top.Devices != 200 {
		t.Fatalf("devices = %d, want 200", top.Devices)
	}

	frame, err := exec.Command(bin, append([]string{"top", "--once", "--width", "100"}, testutil.KafkaFlags(opts)...)...).Output()
	if err != nil {
		t.Fatalf("vpp top --once: %v", err)
	}
	if !strings.Contains(string(frame), "Devices 200 on") {
		t.Errorf("--once frame lacks the device count:\n%s", frame)
	}
}

// TestTopDispatchInTmux drives the real binary in a terminal: d on a region
// opens the dispatch form, a power and enter create the dispatch (the row
// gets its ◆ and the dispatch topic has it, from the TUI), drilled into
// the region the header shows target against actual, x then y cancels it,
// and D lists it as cancelled.
func TestTopDispatchInTmux(t *testing.T) {
	RequireTmux(t)
	bin := testutil.BuildVPP(context.Background(), t)
	opts, p := runFleet(t, 300)

	logFile := filepath.Join(t.TempDir(), "top.log")
	tm := StartTmux(t, 140, 40, append([]string{bin, "top", "--log-file", logFile}, testutil.KafkaFlags(opts)...)...)
	defer func() {
		if t.Failed() {
			b, _ := os.ReadFile(logFile)
			t.Logf("screen:\n%s\nlog:\n%s", tm.Capture(), b)
		}
	}()
	tm.WaitFor("Devices 300 on", 30*time.Second)
	tm.Send("d")
	tm.WaitFor("power like 500kW", 10*time.Second)
	tm.Type("100kW")
	tm.Send("Enter")
	tm.WaitFor("◆", 20*time.Second)
	var id string
	testutil.WaitFor(context.Background(), t, 20*time.Second, 100*time.Millisecond, "the dispatch from the TUI in the dispatch topic", func() (bool, string) {
		es, err := p.Dispatch().List()
		if err != nil || len(es) != 1 {
			return false, fmt.Sprint(len(es), err)
		}
		d := es[0].Dispatch
		id = es[0].ID()
		return d.GetSource() == "tui" && d.GetTargetKw() == 100 && es[0].State(time.Now()) == vppv1.DispatchState_DISPATCH_STATE_ACTIVE,
			fmt.Sprintf("%v %v", d, es[0].State(time.Now()))
	})
	// Drilled into the region, the header shows target against actual.
	tm.Send("Enter")
	if screen := tm.WaitFor(" tgt ", 10*time.Second); !strings.Contains(screen, "act") {
		t.Errorf("no target against actual in the header:\n%s", screen)
	}
	tm.Send("x")
	tm.WaitFor("? y confirms", 5*time.Second)
	tm.Send("y")
	testutil.WaitFor(context.Background(), t, 20*time.Second, 100*time.Millisecond, "the dispatch cancelled from the TUI", func() (bool, string) {
		e, err := p.Dispatch().Get(id)
		return err == nil && e.Dispatch.GetCancelledMs() > 0, fmt.Sprint(err)
	})
	tm.Send("D")
	if screen := tm.WaitFor("cancelled", 10*time.Second); !strings.Contains(screen, id) {
		t.Errorf("the dispatch list does not show %s:\n%s", id, screen)
	}
	tm.Send("q")
	if code := tm.Wait(10 * time.Second); code != 0 {
		t.Fatalf("vpp top exited %d", code)
	}
}

// TestTopKafkaDownInTmux: the interactive dashboard started with nothing
// listening at --brokers comes up, says why in its header and keeps
// retrying (it does not exit: no part of it may need Kafka to start).
func TestTopKafkaDownInTmux(t *testing.T) {
	RequireTmux(t)
	bin := testutil.BuildVPP(context.Background(), t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	tm := StartTmux(t, 120, 30, bin, "top", "--brokers", addr)
	tm.WaitFor("cannot reach Kafka at "+addr, 20*time.Second)
	if code, exited := tm.Exited(); exited {
		t.Fatalf("vpp top exited (%d) with Kafka away; screen:\n%s", code, tm.Capture())
	}
	tm.Send("q")
	if code := tm.Wait(10 * time.Second); code != 0 {
		t.Fatalf("vpp top exited %d", code)
	}
}
