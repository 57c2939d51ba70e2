package sshserve

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	tea "charm.land/bubbletea/v2"
	"charm.land/ssh"
	"charm.land/wish/v2"
	gossh "golang.org/x/crypto/ssh"
)

// Reasons a session ended, as logged.
const (
	reasonQuit     = "quit"
	reasonIdle     = "idle"
	reasonShutdown = "shutdown"
	reasonFull     = "too-many-sessions"
	reasonNoPTY    = "no-pty"
	reasonCommand  = "command-refused"
	reasonNoModel  = "no-model"
	reasonPanic    = "panic"
)

// SessionInfo describes a session being served.
type SessionInfo struct {
	// ID numbers the sessions of a server from 1.
	ID uint64
	// User is the SSH user name the client gave.
	User string
	// RemoteAddr is the client's address.
	RemoteAddr string
	// Fingerprint is the SHA256 fingerprint of the client's key.
	Fingerprint string
	// Started is when the session started.
	Started time.Time
}

// session is an ssh.Session with the server's bookkeeping; the logging
// middleware wraps every session in one and the inner middlewares share it.
// (The ssh.Context is per connection, which may carry several sessions, so
// it cannot hold per-session state.)
type session struct {
	ssh.Session
	info SessionInfo

	// ctx bounds the session's program; cancelled when the session ends
	// or the server gives up waiting for it.
	ctx    context.Context
	cancel context.CancelFunc

	lastInput atomic.Int64 // unix nanoseconds

	mu      sync.Mutex
	program *tea.Program
	reason  string
	quit    bool
}

func (s *session) setReason(r string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reason == "" {
		s.reason = r
	}
}

func (s *session) getReason() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reason
}

// setProgram records the session's program, quitting it at once if the
// session was asked to end before the program existed.
func (s *session) setProgram(p *tea.Program) {
	s.mu.Lock()
	s.program = p
	quit := s.quit
	s.mu.Unlock()
	if quit {
		go p.Quit()
	}
}

// end asks the session's program to quit for reason r. Quit blocks until
// the program's event loop takes it (or ctx ends), so it runs on its own
// goroutine.
func (s *session) end(r string) {
	s.mu.Lock()
	if s.reason == "" {
		s.reason = r
	}
	s.quit = true
	p := s.program
	s.mu.Unlock()
	if p != nil {
		go p.Quit()
	}
}

// touch records input now.
func (s *session) touch() { s.lastInput.Store(time.Now().UnixNano()) }

// activityReader is the program's input: the session, with every read
// counted as activity for the idle timeout.
type activityReader struct {
	r io.Reader
	s *session
}

// Read implements io.Reader.
func (a activityReader) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if n > 0 {
		a.s.touch()
	}
	return n, err
}

// Errors of registry.add.
var (
	errFull    = errors.New("too many sessions")
	errClosing = errors.New("server shutting down")
)

// registry is the set of sessions being served, under a mutex; entries are
// removed when their program ends.
type registry struct {
	max int

	killCtx context.Context // parent of every session's ctx
	kill    context.CancelFunc

	mu       sync.Mutex
	closing  bool
	sessions map[*session]struct{}
	wg       sync.WaitGroup
}

func newRegistry(limit int) *registry {
	ctx, cancel := context.WithCancel(context.Background())
	return &registry{max: limit, killCtx: ctx, kill: cancel, sessions: make(map[*session]struct{})}
}

// add registers s, or fails when the registry is full or closing.
func (r *registry) add(s *session) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing {
		return errClosing
	}
	if len(r.sessions) >= r.max {
		return errFull
	}
	s.ctx, s.cancel = context.WithCancel(r.killCtx)
	r.sessions[s] = struct{}{}
	r.wg.Add(1)
	return nil
}

// remove unregisters s and releases its context.
func (r *registry) remove(s *session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.sessions[s]; !ok {
		return
	}
	delete(r.sessions, s)
	s.cancel()
	r.wg.Done()
}

// closeAll refuses new sessions and asks every session to end for reason;
// it returns how many there were.
func (r *registry) closeAll(reason string) int {
	r.mu.Lock()
	r.closing = true
	all := make([]*session, 0, len(r.sessions))
	for s := range r.sessions {
		all = append(all, s)
	}
	r.mu.Unlock()
	for _, s := range all {
		s.end(reason)
	}
	return len(all)
}

// wait blocks until every session has been removed or ctx is done.
func (r *registry) wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		r.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for sessions: %w", ctx.Err())
	}
}

// snapshot lists the sessions, oldest first.
func (r *registry) snapshot() []SessionInfo {
	r.mu.Lock()
	out := make([]SessionInfo, 0, len(r.sessions))
	for s := range r.sessions {
		out = append(out, s.info)
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b SessionInfo) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// logSession is the outermost middleware: it wraps the session for the
// inner middlewares and logs its start and end with the client's key
// fingerprint, user, remote address and duration.
func (s *Server) logSession(next ssh.Handler) ssh.Handler {
	var ids atomic.Uint64
	return func(sess ssh.Session) {
		fp := ""
		if pk := sess.PublicKey(); pk != nil {
			fp = gossh.FingerprintSHA256(pk)
		}
		ts := &session{Session: sess, info: SessionInfo{
			ID:          ids.Add(1),
			User:        sess.User(),
			RemoteAddr:  sess.RemoteAddr().String(),
			Fingerprint: fp,
			Started:     time.Now(),
		}}
		pty, _, hasPTY := sess.Pty()
		log := s.log.With("session", ts.info.ID, "user", ts.info.User,
			"remote", ts.info.RemoteAddr, "fingerprint", fp)
		log.Info("ssh session start", "term", pty.Term,
			"width", pty.Window.Width, "height", pty.Window.Height,
			"client", sess.Context().ClientVersion())
		defer func() {
			reason := ts.getReason()
			if reason == "" && !hasPTY {
				reason = reasonNoPTY
			}
			log.Info("ssh session end", "reason", reason,
				"duration", time.Since(ts.info.Started).Round(time.Millisecond))
		}()
		next(ts)
	}
}

// guard is the middleware in front of Bubble Tea: it refuses commands,
// enforces MaxSessions, registers the session for the shutdown and the
// idle timeout, turns a panic into a clean exit 1, and tells the client
// why its session ended when it was not its own choice.
func (s *Server) guard(next ssh.Handler) ssh.Handler {
	return func(sess ssh.Session) {
		ts, ok := sess.(*session)
		if !ok {
			s.log.Error("ssh session not set up by the logging middleware")
			wish.Fatalf(sess, "vpp top: internal error\n")
			return
		}
		if len(sess.Command()) > 0 || sess.Subsystem() != "" {
			ts.setReason(reasonCommand)
			wish.Fatalf(sess, "vpp top: commands are not supported; connect without one to see the dashboard\n")
			return
		}
		switch err := s.reg.add(ts); {
		case errors.Is(err, errFull):
			ts.setReason(reasonFull)
			wish.Fatalf(sess, "vpp top: too many sessions (%d), try again later\n", s.reg.max)
			return
		case errors.Is(err, errClosing):
			ts.setReason(reasonShutdown)
			wish.Fatalf(sess, "vpp top: server shutting down\n")
			return
		}
		defer s.reg.remove(ts)
		defer func() {
			if r := recover(); r != nil {
				ts.setReason(reasonPanic)
				s.log.Error("ssh session panic", "session", ts.info.ID,
					"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				wish.Fatalf(sess, "\nvpp top: internal error, session closed\n")
			}
		}()

		ts.touch()
		if s.cfg.IdleTimeout > 0 {
			go s.watchIdle(ts)
		}
		next(sess)

		switch ts.getReason() {
		case reasonIdle:
			wish.Printf(sess, "vpp top: no input for %s, session closed\n", s.cfg.IdleTimeout)
		case reasonShutdown:
			wish.Printf(sess, "vpp top: server shutting down\n")
		case reasonNoModel:
			wish.Fatalf(sess, "vpp top: the dashboard is not available\n")
		case reasonPanic:
			wish.Fatalf(sess, "\nvpp top: internal error, session closed\n")
		default:
			ts.setReason(reasonQuit)
		}
	}
}

// watchIdle ends ts once it has had no input for the idle timeout.
func (s *Server) watchIdle(ts *session) {
	timeout := s.cfg.IdleTimeout
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case <-ts.ctx.Done():
			return
		case <-timer.C:
		}
		idle := time.Since(time.Unix(0, ts.lastInput.Load()))
		if idle >= timeout {
			s.log.Info("ssh session idle", "session", ts.info.ID, "idle", idle.Round(time.Second))
			ts.end(reasonIdle)
			return
		}
		timer.Reset(timeout - idle)
	}
}
