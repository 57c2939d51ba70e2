package sshserve_test

import (
	"context"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"charm.land/ssh"
	gossh "golang.org/x/crypto/ssh"

	"github.com/vppctl/vpp/internal/dispatch"
	"github.com/vppctl/vpp/internal/e2e"
	"github.com/vppctl/vpp/internal/fleet"
	"github.com/vppctl/vpp/internal/history"
	"github.com/vppctl/vpp/internal/tui"
	"github.com/vppctl/vpp/internal/tui/sshserve"
)

// emptyFleet is the dashboard's data: a fleet without devices.
type emptyFleet struct{}

func (emptyFleet) Snapshot() *fleet.Snapshot { return fleet.EmptySnapshot() }

func (emptyFleet) Series(_ fleet.Kind, _ string, _ history.Metric, n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = math.NaN()
	}
	return s
}

// recorder is a Dispatcher that records the creates.
type recorder struct {
	mu      sync.Mutex
	created []dispatch.Request
}

func (r *recorder) List() ([]dispatch.Entry, error) { return nil, nil }

func (r *recorder) Create(_ context.Context, q dispatch.Request) (dispatch.Entry, bool, dispatch.Headroom, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.created = append(r.created, q)
	d, err := dispatch.Build(q, time.Now())
	if err != nil {
		return dispatch.Entry{}, false, dispatch.Headroom{}, err
	}
	return dispatch.Entry{Dispatch: d}, true, dispatch.Headroom{}, nil
}

func (r *recorder) Cancel(context.Context, string, string) (dispatch.Entry, error) {
	return dispatch.Entry{}, nil
}

func (r *recorder) creates() []dispatch.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]dispatch.Request(nil), r.created...)
}

// TestOperatorKeyMayDispatch serves the real dashboard as vpp top --ssh
// does: the session of a key in the operator keys creates a dispatch in
// its fingerprint's name, the session of another authorized key is
// read-only.
func TestOperatorKeyMayDispatch(t *testing.T) {
	rec := &recorder{}
	op, viewer := newClientKey(t), newClientKey(t)
	factory := func(sess ssh.Session) tea.Model {
		o := tui.Options{Dispatch: rec, Source: "ssh"}
		if who, ok := sshserve.Operator(sess); ok {
			o.Operator = who
		}
		return tui.New(emptyFleet{}, o)
	}
	ts := startServer(t, factory, func(c *sshserve.Config) {
		writeAuthorized(t, c.AuthorizedKeysPath, op.authorizedLine(), viewer.authorizedLine())
		c.OperatorKeysPath = c.AuthorizedKeysPath + ".operators"
		writeAuthorized(t, c.OperatorKeysPath, "# operators", op.authorizedLine())
	})

	// The viewer may look, not dispatch.
	c, err := dial(t, ts.addr, "bob", viewer.signer)
	if err != nil {
		t.Fatalf("dial viewer: %v", err)
	}
	tm := openTerm(t, c, true, 120, 36)
	tm.waitFor("regions")
	if _, err := tm.in.Write([]byte("d")); err != nil {
		t.Fatal(err)
	}
	tm.waitFor("read-only")
	if _, err := tm.in.Write([]byte("100kW\r")); err != nil {
		t.Fatal(err)
	}
	if _, err := tm.in.Write([]byte("q")); err != nil {
		t.Fatal(err)
	}
	tm.wait()
	if got := rec.creates(); len(got) != 0 {
		t.Fatalf("a viewer's session created %+v", got)
	}

	// The operator dispatches the fleet.
	c, err = dial(t, ts.addr, "alice", op.signer)
	if err != nil {
		t.Fatalf("dial operator: %v", err)
	}
	tm = openTerm(t, c, true, 120, 36)
	tm.waitFor("regions")
	if _, err := tm.in.Write([]byte("d")); err != nil {
		t.Fatal(err)
	}
	tm.waitFor("feasible")
	if _, err := tm.in.Write([]byte("100kW\r")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(rec.creates()) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	got := rec.creates()
	if len(got) != 1 {
		t.Fatalf("the operator's session created %d dispatches, want 1", len(got))
	}
	want := dispatch.Request{Node: "fleet", PowerKW: 100, Duration: 15 * time.Minute,
		CreatedBy: "ssh:" + gossh.FingerprintSHA256(op.signer.PublicKey()), Source: "ssh"}
	if got[0] != want {
		t.Errorf("created %+v, want %+v", got[0], want)
	}
}

func TestOperatorKeysMissing(t *testing.T) {
	dir := t.TempDir()
	k := newClientKey(t)
	cfg := sshserve.Config{
		Addr:               "127.0.0.1:0",
		HostKeyPath:        dir + "/host_key",
		AuthorizedKeysPath: dir + "/authorized_keys",
		OperatorKeysPath:   dir + "/no_such_file",
	}
	writeAuthorized(t, cfg.AuthorizedKeysPath, k.authorizedLine())
	s, err := sshserve.Listen(context.Background(), cfg, newDashboard)
	if err == nil {
		_ = s.Close()
		t.Fatal("Listen with a missing operator keys file succeeded")
	}
	if !strings.Contains(err.Error(), "operator keys") {
		t.Errorf("error %q does not name the operator keys", err)
	}
}

// TestOpenSSHOperatorKey is the acceptance check with the real ssh client
// in a real terminal (tmux): the session of an operator key creates a
// dispatch with d in its fingerprint's name; the session of another
// authorized key is told it is read-only and creates nothing.
func TestOpenSSHOperatorKey(t *testing.T) {
	requireSSH(t)
	e2e.RequireTmux(t)
	rec := &recorder{}
	op, viewer := newClientKey(t), newClientKey(t)
	factory := func(sess ssh.Session) tea.Model {
		o := tui.Options{Dispatch: rec, Source: "ssh"}
		if who, ok := sshserve.Operator(sess); ok {
			o.Operator = who
		}
		return tui.New(emptyFleet{}, o)
	}
	ts := startServer(t, factory, func(c *sshserve.Config) {
		writeAuthorized(t, c.AuthorizedKeysPath, op.authorizedLine(), viewer.authorizedLine())
		c.OperatorKeysPath = c.AuthorizedKeysPath + ".operators"
		writeAuthorized(t, c.OperatorKeysPath, op.authorizedLine())
	})

	tm := e2e.StartTmux(t, 120, 36, sshArgs(ts.addr, viewer.writePrivate(t))...)
	tm.WaitFor("regions", 10*time.Second)
	tm.Send("d")
	tm.WaitFor("read-only", 5*time.Second)
	tm.Send("q")
	if code := tm.Wait(10 * time.Second); code != 0 {
		t.Fatalf("ssh exit code %d; screen:\n%s", code, tm.Capture())
	}
	if got := rec.creates(); len(got) != 0 {
		t.Fatalf("a viewer's session created %+v", got)
	}

	tm = e2e.StartTmux(t, 120, 36, sshArgs(ts.addr, op.writePrivate(t))...)
	tm.WaitFor("regions", 10*time.Second)
	tm.Send("d")
	tm.WaitFor("feasible", 5*time.Second)
	tm.Type("100kW")
	tm.Send("Enter")
	deadline := time.Now().Add(5 * time.Second)
	for len(rec.creates()) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	got := rec.creates()
	want := "ssh:" + gossh.FingerprintSHA256(op.signer.PublicKey())
	if len(got) != 1 || got[0].CreatedBy != want || got[0].Source != "ssh" || got[0].PowerKW != 100 {
		t.Fatalf("the operator's session created %+v, want one of 100 kW by %s", got, want)
	}
	tm.Send("q")
	if code := tm.Wait(10 * time.Second); code != 0 {
		t.Fatalf("ssh exit code %d", code)
	}
}
