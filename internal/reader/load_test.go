package reader

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vppctl/vpp/internal/api"
	"github.com/vppctl/vpp/internal/fleet"
	"github.com/vppctl/vpp/internal/follow"
	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/internal/kafka/kafkatest"
	"github.com/vppctl/vpp/proto/vppv1"
)

// holdAfter makes the reader's follower block before applying record n
// (counted from 1) until release is closed; reached is closed then.
func holdAfter(n int, reached, release chan struct{}) Option {
	return func(c *follow.Config) {
		apply := c.Apply
		seen := 0
		var once sync.Once
		c.Apply = func(m follow.Record) {
			seen++
			if seen == n {
				once.Do(func() { close(reached) })
				<-release
			}
			apply(m)
		}
	}
}

// readyz asks h for /readyz: the status code and the reason.
func readyz(t *testing.T, h http.Handler) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	var body struct{ Reason string }
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("readyz body %q: %v", rec.Body, err)
	}
	return rec.Code, body.Reason
}

// TestReaderLoading holds a reader in the middle of loading records
// produced before it started: its snapshots say loading, its readiness is
// 503 with the progress, and both turn complete after catch-up.
func TestReaderLoading(t *testing.T) {
	opts := startBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, opts); err != nil {
		t.Fatal(err)
	}
	prod := newProducer(t, opts)
	for i, id := range []string{"a", "b", "c", "d"} {
		prod.site(&vppv1.SiteState{SiteId: id, RegionId: "r", SubstationId: "x", Partition: int32(i % 2), Devices: []*vppv1.DeviceState{{Last: reading(id+"-d", 1, 50, 1, 10, 20, 0)}}})
	}
	reached, release := make(chan struct{}), make(chan struct{})
	r, err := New(opts, testLogger(t), WithBackoff(testBackoff()), holdAfter(3, reached, release))
	if err != nil {
		t.Fatal(err)
	}
	health := api.Health(r.Ready)
	stopped := make(chan struct{})
	go func() { _ = r.Run(ctx); close(stopped) }()
	defer func() { cancel(); <-stopped }()
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()
	select {
	case <-reached:
	case <-ctx.Done():
		t.Fatal("the reader read nothing")
	}
	p := r.Progress()
	if !p.Started || p.CaughtUp || p.Records < 4 || p.Read >= p.Records {
		t.Errorf("progress while loading: %+v", p)
	}
	if l := r.Snapshot().Load; !l.Loading {
		t.Errorf("snapshot while loading: %+v, want Loading", l)
	}
	if code, reason := readyz(t, health); code != http.StatusServiceUnavailable || !strings.HasPrefix(reason, "fleet reader ") {
		t.Errorf("readyz while loading: %d %q, want 503 with the reader's reason", code, reason)
	}
	close(release)
	released = true
	if err := r.WaitCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	snap := r.Snapshot()
	if snap.Load.Loading || snap.Load.Err != "" || snap.Load.Percent != 100 || snap.Sites() != 4 {
		t.Errorf("snapshot after catch-up: load %+v, %d sites", snap.Load, snap.Sites())
	}
	if code, _ := readyz(t, health); code != http.StatusOK {
		t.Errorf("readyz after catch-up: %d", code)
	}
}

// TestReaderFailFast: with WithFailFast a reader of a prefix whose topics
// do not exist stops at once with the missing topic; without, it keeps
// retrying and its snapshots carry the cause.
func TestReaderFailFast(t *testing.T) {
	opts := startBroker(t)
	opts.Prefix = kafkatest.Prefix("typo")
	topic := opts.Topics().State()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	r, err := New(opts, testLogger(t), WithFailFast())
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = r.Run(ctx) }()
	err = r.WaitCaughtUp(ctx)
	var me *kafka.MissingTopicError
	if !errors.As(err, &me) || !strings.Contains(err.Error(), "topic "+topic+" does not exist: is an aggregator running with this --topic-prefix?") {
		t.Fatalf("WaitCaughtUp: %v, want the missing topic", err)
	}

	r2, err := New(opts, testLogger(t), WithBackoff(testBackoff()))
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	stopped := make(chan struct{})
	go func() { _ = r2.Run(rctx); close(stopped) }()
	defer func() { stop(); <-stopped }()
	snap := waitFor(t, r2, func(s *fleet.Snapshot) bool { return strings.Contains(s.Load.Err, topic+" does not exist") })
	if !snap.Load.Loading {
		t.Error("a reader that cannot read must not be complete")
	}
	if ok, reason := r2.Ready(); ok || !strings.Contains(reason, "does not exist") {
		t.Errorf("Ready: %v %q", ok, reason)
	}
	if err := kafka.EnsureTopics(ctx, opts); err != nil {
		t.Fatal(err)
	}
	if err := r2.WaitCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	if l := r2.Snapshot().Load; l.Err != "" || l.Loading {
		t.Errorf("load after the topics appeared: %+v", l)
	}
}
