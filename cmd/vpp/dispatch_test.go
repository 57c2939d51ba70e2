package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"google.golang.org/protobuf/proto"

	"github.com/vppctl/vpp/internal/api"
	"github.com/vppctl/vpp/internal/dispatch"
	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/internal/kafka/kafkatest"
	"github.com/vppctl/vpp/internal/testutil"
	"github.com/vppctl/vpp/proto/vppv1"
)

// vppCmd runs the vpp command line args and returns its stdout and error.
func vppCmd(ctx context.Context, args ...string) (string, string, error) {
	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

func TestDispatchFlags(t *testing.T) {
	var got *dispatchCreateOptions
	cmd := newDispatchCreateCmd(func(_ context.Context, o *dispatchCreateOptions) error { got = o; return nil })
	cmd.SetArgs([]string{"--node", "region/north", "--power", "5MW", "--duration", "30m", "--ramp", "1MW/s", "--priority", "3", "--idempotency-key", "k"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	r := got.req
	if r.Node != "region/north" || r.PowerKW != 5000 || r.Duration != 30*time.Minute || r.RampKWPerS != 1000 || r.Priority != 3 ||
		r.IdempotencyKey != "k" || r.Source != "cli" || r.CreatedBy == "" || got.timeout != defaultDispatchTimeout {
		t.Errorf("parsed %+v", got)
	}
}

func TestDispatchUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args   []string
		reason string
	}{
		{[]string{"dispatch", "create", "--power", "5MW", "--duration", "30m"}, "--node, --power and --duration are required"},
		{[]string{"dispatch", "create", "--node", "north", "--power", "5MW", "--duration", "30m"}, `node "north"`},
		{[]string{"dispatch", "create", "--node", "fleet", "--power", "5 lots", "--duration", "30m"}, "--power"},
		{[]string{"dispatch", "create", "--node", "fleet", "--power", "20GW", "--duration", "30m"}, "beyond ±10 GW"},
		{[]string{"dispatch", "create", "--node", "fleet", "--power", "5MW", "--duration", "0s"}, "duration must be positive"},
		{[]string{"dispatch", "create", "--node", "fleet", "--power", "5MW", "--duration", "soon"}, "--duration"},
		{[]string{"dispatch", "create", "--node", "fleet", "--power", "5MW", "--duration", "1m", "--start", "2020-01-01T00:00:00Z"}, "in the past"},
		{[]string{"dispatch", "create", "--node", "fleet", "--power", "5MW", "--duration", "1m", "--ramp", "-1kW/s"}, "ramp must be >= 0"},
		{[]string{"dispatch", "show"}, "one dispatch ID"},
		{[]string{"dispatch", "cancel", "bad/id"}, "not allowed"},
	} {
		_, _, err := vppCmd(context.Background(), c.args...)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), c.reason) {
			t.Errorf("%v: %v, want a usage error with %q", c.args, err, c.reason)
		}
	}
	if code := run(context.Background(), []string{"dispatch", "create", "--node", "north", "--power", "1", "--duration", "1m"}); code != 2 {
		t.Errorf("exit code %d, want 2", code)
	}
}

// seedFleet writes one site of region north to the state topic.
func seedFleet(t *testing.T, opts kafka.Options) {
	t.Helper()
	cfg, err := opts.ProducerConfig()
	if err != nil {
		t.Fatal(err)
	}
	p, err := sarama.NewSyncProducer(opts.Brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	b, _ := proto.Marshal(&vppv1.StateRecord{Body: &vppv1.StateRecord_Site{Site: &vppv1.SiteState{
		SiteId: "site-1", RegionId: "north", SubstationId: "sub-1", UpdatedMs: time.Now().UnixMilli(),
		Devices: []*vppv1.DeviceState{{Last: &vppv1.Reading{DeviceId: "dev-1", CapacityKwh: 10, SocPct: 50, MaxDischargeKw: 5, MaxChargeKw: 5},
			AppliedMs: time.Now().UnixMilli(), HeadroomDischargeKw: 4, HeadroomChargeKw: 3}},
	}}})
	if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: opts.Topics().State(), Key: sarama.StringEncoder("s/site-1"), Value: sarama.ByteEncoder(b)}); err != nil {
		t.Fatal(err)
	}
}

func TestDispatchEndToEnd(t *testing.T) {
	opts := kafkatest.Options(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, opts); err != nil {
		t.Fatal(err)
	}
	kf := append(testutil.KafkaFlags(opts), "--timeout", "10s")
	vpp := func(args ...string) (string, error) {
		t.Helper()
		out, errOut, err := vppCmd(ctx, append(args, kf...)...)
		if errOut != "" {
			t.Logf("stderr of %v: %s", args, errOut)
		}
		return out, err
	}

	// No fleet yet: create says why and fails (not a usage error).
	_, err := vpp("dispatch", "create", "--node", "region/north", "--power", "5MW", "--duration", "30m")
	var ue usageError
	if err == nil || errors.As(err, &ue) || !strings.Contains(err.Error(), "is vpp aggregate running") {
		t.Fatalf("create without a fleet: %v", err)
	}
	seedFleet(t, opts)
	// An unknown node is a bad command.
	_, err = vpp("dispatch", "create", "--node", "region/south", "--power", "5MW", "--duration", "30m")
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "region/south is not in the fleet") {
		t.Fatalf("create for an unknown node: %v", err)
	}

	out, err := vpp("dispatch", "create", "--node", "region/north", "--power", "5MW", "--duration", "30m", "--ramp", "1MW/s")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	id := lines[len(lines)-1]
	if dispatch.ValidID(id) != nil || !strings.Contains(out, "headroom now: discharge 4kW, charge 3kW") {
		t.Fatalf("create printed %q", out)
	}

	out, err = vpp("dispatch", "list")
	if err != nil || !strings.Contains(out, id) || !strings.Contains(out, "region/north") || !strings.Contains(out, "active") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	out, err = vpp("dispatch", "show", id, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var j api.DispatchJSON
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		t.Fatalf("show --json: %v\n%s", err, out)
	}
	if j.ID != id || j.Node != "region/north" || j.TargetKW != 5000 || j.RampKWPerS != 1000 || j.Status != "active" ||
		j.CreatedBy != currentUser() || j.Source != "cli" {
		t.Errorf("show --json: %+v", j)
	}
	out, err = vpp("dispatch", "cancel", id)
	if err != nil || !strings.Contains(out, "cancelled") {
		t.Fatalf("cancel: %v %s", err, out)
	}
	_, err = vpp("dispatch", "cancel", id)
	if !errors.Is(err, dispatch.ErrConflict) {
		t.Errorf("second cancel: %v", err)
	}
	_, err = vpp("dispatch", "show", "d-nosuch")
	if !errors.Is(err, dispatch.ErrNotFound) {
		t.Errorf("show unknown: %v", err)
	}
	out, err = vpp("dispatch", "list", "--json")
	var list []api.DispatchJSON
	if err != nil || json.Unmarshal([]byte(out), &list) != nil || len(list) != 1 || list[0].Status != "cancelled" || list[0].CancelledBy != currentUser() {
		t.Errorf("list --json after cancel: %v %s", err, out)
	}
}
