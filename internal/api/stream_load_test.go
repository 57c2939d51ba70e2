package api_test

import (
	"context"
	"testing"
	"time"

	"github.com/vppctl/vpp/internal/api"
	"github.com/vppctl/vpp/internal/fleet"
)

// TestStreamSendsLoadChanges: a change of Load alone (same version) is an
// event, so the page's banner follows the progress and the errors.
func TestStreamSendsLoadChanges(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	src := newSource()
	src.addSite("north", "s1", 2, 1.5)
	src.setLoad(fleet.Load{Loading: true})
	srv := newServer(t, api.PageConfig{Source: src, Changed: src.Changed, MinInterval: 20 * time.Millisecond})
	c := dialStream(ctx, t, srv.URL)
	ev, _ := c.nextState(t)
	if !ev.Load.Loading || ev.Load.Complete || ev.Load.Status != "connecting to Kafka" {
		t.Fatalf("first event load %+v", ev.Load)
	}
	src.setLoad(fleet.Load{Loading: true, Err: "cannot reach Kafka at 127.0.0.1:1: connection refused"})
	ev, _ = c.nextState(t)
	if ev.Load.Error == "" || !ev.Load.Loading {
		t.Fatalf("event after the error: load %+v", ev.Load)
	}
	src.setLoad(fleet.Load{})
	ev, _ = c.nextState(t)
	if ev.Load.Loading || !ev.Load.Complete || ev.Fleet.Devices != 2 {
		t.Fatalf("event after catch-up: load %+v, %d devices", ev.Load, ev.Fleet.Devices)
	}
}

// setLoad publishes the current snapshot with Load l, as the reader does
// when only its progress changed.
func (s *source) setLoad(l fleet.Load) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := *s.snap
	next.Load = l
	s.snap = &next
	close(s.changed)
	s.changed = make(chan struct{})
}
