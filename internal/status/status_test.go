package status

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vppctl/vpp/internal/testutil"
)

func TestRate(t *testing.T) {
	t0 := time.Date(2026, 6, 21, 12, 0, 0, 0, time.UTC)
	r := NewRate(t0)
	steps := []struct {
		n    uint64
		at   time.Duration
		want float64
	}{
		{n: 500, at: time.Second, want: 500},              // from 0 at the start
		{n: 1500, at: 3 * time.Second, want: 500},         // 1000 in 2 s
		{n: 1500, at: 4 * time.Second, want: 0},           // idle
		{n: 1600, at: 4 * time.Second, want: 0},           // no time passed
		{n: 1000, at: 5 * time.Second, want: 0},           // went down: no rate
		{n: 1250, at: 5500 * time.Millisecond, want: 500}, // measured from the lower count
	}
	for i, s := range steps {
		if got := r.Observe(s.n, t0.Add(s.at)); got != s.want {
			t.Errorf("step %d: Observe(%d, +%v) = %v, want %v", i, s.n, s.at, got, s.want)
		}
	}
}

func TestRateZeroValue(t *testing.T) {
	var r Rate // an elapsed-time clock: the zero time is the origin
	if got := r.Observe(300, time.Time{}.Add(2*time.Second)); got != 150 {
		t.Errorf("first Observe = %v, want 150", got)
	}
	if got := r.Observe(400, time.Time{}.Add(3*time.Second)); got != 100 {
		t.Errorf("second Observe = %v, want 100", got)
	}
}

func TestStartPrintsLinesToAPipe(t *testing.T) {
	var buf testutil.SyncBuffer
	var mu sync.Mutex
	n := 0
	stop := Start(&buf, time.Millisecond, func() string {
		mu.Lock()
		defer mu.Unlock()
		n++
		return "status"
	})
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(buf.String(), "\n") < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	stop()
	stop() // a second stop does nothing
	out := buf.String()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) < 3 {
		t.Fatalf("got %d lines, want at least 3: %q", len(lines), out)
	}
	for _, l := range lines {
		if l != "status" {
			t.Fatalf("line %q, want %q (no terminal control sequences on a pipe)", l, "status")
		}
	}
	mu.Lock()
	calls := n
	mu.Unlock()
	time.Sleep(5 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if n != calls {
		t.Errorf("line called after stop: %d calls, then %d", calls, n)
	}
	if IsTerminal(&buf) {
		t.Error("IsTerminal(buffer) = true")
	}
}
