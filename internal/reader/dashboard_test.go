package reader

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/vppctl/vpp/internal/fleet"
	"github.com/vppctl/vpp/internal/history"
	"github.com/vppctl/vpp/proto/vppv1"
)

// TestSessionWatchesEndWithTheSession: a session's watches stop when its
// context ends, though its screens never closed them (an SSH client that
// disconnects), and a stop before that stops only its own watch.
func TestSessionWatchesEndWithTheSession(t *testing.T) {
	tree := fleet.NewTree()
	for _, s := range []struct{ site, sub string }{{"site-1", "sub-a"}, {"site-2", "sub-b"}} {
		tree.ApplySite(&vppv1.SiteState{SiteId: s.site, SubstationId: s.sub, RegionId: "r", Devices: []*vppv1.DeviceState{{Last: &vppv1.Reading{
			DeviceId: s.site + "-d", SiteId: s.site, PowerKw: 2, SocPct: 50, CapacityKwh: 10,
		}}}})
	}
	snap := tree.Snapshot()
	rec := history.NewRecorder(10)
	d := &Dashboard{rec: rec, store: history.NewStore(nil, rec)}
	sec := int64(1_700_000_000)
	observe := func() {
		sec++
		rec.Observe(snap, time.Unix(sec, 0))
	}
	recorded := func(kind fleet.Kind, id string) bool {
		return !math.IsNaN(d.Series(kind, id, history.PowerKW, 1)[0])
	}

	ctx, cancel := context.WithCancel(context.Background())
	w := d.Session(ctx)
	stopA := w.WatchSubstation("sub-a")
	w.WatchSubstation("sub-b")
	w.Watch("site-1", "site-1-d")
	other := d.WatchSubstation("sub-b") // another session's
	observe()
	if !recorded(fleet.KindSite, "site-1") || !recorded(fleet.KindSite, "site-2") || !recorded(fleet.KindDevice, "site-1-d") {
		t.Fatal("the session's watches are not recorded")
	}
	stopA()
	stopA()
	observe()
	if recorded(fleet.KindSite, "site-1") {
		t.Fatal("sub-a still recorded after its stop")
	}

	cancel()
	deadline := time.Now().Add(10 * time.Second)
	for recorded(fleet.KindDevice, "site-1-d") {
		if time.Now().After(deadline) {
			t.Fatal("the device is still watched after the session ended")
		}
		time.Sleep(time.Millisecond)
		observe()
	}
	observe()
	if !recorded(fleet.KindSite, "site-2") {
		t.Fatal("the end of one session stopped another session's watch of sub-b")
	}
	other()
	if recorded(fleet.KindSite, "site-2") {
		t.Fatal("sub-b still recorded: the session's watch of it outlived the session")
	}
	// A watch asked for after the end is not kept.
	w.WatchSubstation("sub-a")
	observe()
	if recorded(fleet.KindSite, "site-1") {
		t.Fatal("a watch after the session's end is recorded")
	}
}
