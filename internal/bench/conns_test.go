package bench

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vppctl/vpp/internal/testutil"
)

// TestConns runs the connection-memory measurement with 500 connections on
// the embedded broker (child vpp processes): the plumbing, not the
// performance.
func TestConns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds vpp and runs child processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	bin := testutil.BuildVPP(ctx, t)
	const n = 500
	cfg := DefaultConnsConfig()
	cfg.Exe, cfg.Conns, cfg.Settle, cfg.Progress = bin, n, 2*time.Second, testWriter{t}
	res, err := Conns(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v: %.0f bytes per connection (heap %.0f, stacks %.0f)", res, res.PerConn(), res.HeapPerConn(), res.StackPerConn())
	if res.Conns != n {
		t.Errorf("ingest reported %d connections, want %d", res.Conns, n)
	}
	if res.Sent != n*DefaultConnsReadings || res.Acked != res.Sent {
		t.Errorf("sent %d readings, %d acked; want %d each", res.Sent, res.Acked, n*DefaultConnsReadings)
	}
	if res.RSSBefore <= 0 || res.PerConn() <= 0 || res.GoroutinesAfter <= res.GoroutinesBefore {
		t.Errorf("no memory per connection measured: %+v", res)
	}
	if _, err := Conns(ctx, ConnsConfig{Exe: bin, Conns: 1 << 30}); err == nil {
		t.Error("2^30 connections: no error about the open file limit")
	}
}

// testWriter writes to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
