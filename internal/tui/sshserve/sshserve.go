// Package sshserve serves the `vpp top` dashboard over SSH with wish.
//
// Every SSH session gets its own Bubble Tea program, built by a
// ModelFactory, with the client's colour profile and window size (wish's
// bubbletea.MakeOptions); the server's own terminal is never read. Clients
// authenticate with a public key listed in an OpenSSH authorized_keys file,
// the only method offered. Sessions need a PTY, are limited in number, are
// closed when idle and are closed gracefully when the server shuts down.
// A second, optional authorized_keys file (Config.OperatorKeysPath) names
// the operators: Operator tells the ModelFactory whether a session's key
// is one, and in whose name ("ssh:" and its SHA256 fingerprint) it acts.
//
// Tests that need the bound port listen on 127.0.0.1:0 with Listen, read
// Server.Addr and then call Server.Serve; Serve is Listen followed by
// Server.Serve for callers that do not need the address.
package sshserve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	tea "charm.land/bubbletea/v2"
	"charm.land/ssh"
	"charm.land/wish/v2"
	"charm.land/wish/v2/activeterm"
	"charm.land/wish/v2/bubbletea"
	"charm.land/wish/v2/recover"
	gossh "golang.org/x/crypto/ssh"
)

// Defaults of Config.
const (
	// DefaultAddr is the listen address when Config.Addr is empty.
	DefaultAddr = "127.0.0.1:2222"
	// DefaultMaxSessions is the number of concurrent sessions when
	// Config.MaxSessions is zero.
	DefaultMaxSessions = 16
	// DefaultIdleTimeout is how long a session may go without input when
	// Config.IdleTimeout is zero.
	DefaultIdleTimeout = 30 * time.Minute
	// DefaultShutdownTimeout bounds the graceful shutdown when
	// Config.ShutdownTimeout is zero.
	DefaultShutdownTimeout = 5 * time.Second
	// handshakeTimeout bounds an unauthenticated connection's handshake.
	handshakeTimeout = 20 * time.Second
	// idleGrace is how much longer than Config.IdleTimeout a connection
	// may go without any traffic.
	idleGrace = 30 * time.Second
)

// Sentinel errors.
var (
	// ErrNoAuthorizedKeys is returned when Config.AuthorizedKeysPath is
	// empty: the server offers public-key authentication only and refuses
	// to start without a list of keys.
	ErrNoAuthorizedKeys = errors.New("sshserve: an authorized_keys file is required")
	// ErrNoHostKey is returned when Config.HostKeyPath is empty.
	ErrNoHostKey = errors.New("sshserve: a host key path is required")
	// ErrNoFactory is returned when the ModelFactory is nil.
	ErrNoFactory = errors.New("sshserve: a model factory is required")
	// ErrServed is returned when Server.Serve is called more than once or
	// after Server.Close.
	ErrServed = errors.New("sshserve: server already served or closed")
)

// Config configures the SSH server. AuthorizedKeysPath and HostKeyPath are
// required; the zero value of every other field selects its default.
type Config struct {
	// Addr is the listen address, e.g. 127.0.0.1:2222; default DefaultAddr.
	// A port of 0 binds a free port: read it from Server.Addr.
	Addr string
	// HostKeyPath is the server's persisted private host key in OpenSSH
	// format. It is generated (ed25519, mode 0600, parent directories 0700)
	// on first start and reused afterwards. Required.
	HostKeyPath string
	// AuthorizedKeysPath is an OpenSSH authorized_keys file listing the
	// keys allowed in; no other authentication method is offered. It is
	// read at start (it must exist) and re-read when it changes. Keys with
	// options other than restrictions this server honours anyway
	// (restrict, no-port-forwarding, no-agent-forwarding,
	// no-X11-forwarding, no-user-rc) are ignored with a warning. Required.
	AuthorizedKeysPath string
	// OperatorKeysPath, when set, is an authorized_keys file of the
	// operators' keys (read at start, re-read when it changes): a session
	// whose key is listed is an operator (see Operator). Optional.
	OperatorKeysPath string
	// MaxSessions is the number of concurrent sessions; an excess session
	// is told so and closed with exit status 1. Default DefaultMaxSessions.
	MaxSessions int
	// IdleTimeout closes a session that has sent no input (no key press,
	// no mouse event) for this long, with a message; the dashboard's own
	// output does not count. A connection with no traffic at all is closed
	// 30s after it. Default DefaultIdleTimeout; negative disables both.
	IdleTimeout time.Duration
	// ShutdownTimeout bounds the graceful shutdown after the context of
	// Serve is done: sessions are asked to quit, and connections still open
	// after it are closed. Default DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// Logger receives the server's logs; default slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.MaxSessions <= 0 {
		c.MaxSessions = DefaultMaxSessions
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// ModelFactory builds a fresh model for one session. It typically closes
// over the data source all sessions share; the model itself must be the
// session's own. A nil model ends the session with an error message.
type ModelFactory func(sess ssh.Session) tea.Model

// operatorKey is the session context's key of the operator's name.
type operatorKey struct{}

// Operator reports whether sess is an operator's session (its key is in
// Config.OperatorKeysPath), and who: "ssh:" and the key's SHA256
// fingerprint. It is known when the ModelFactory is called.
func Operator(sess ssh.Session) (who string, ok bool) {
	who, ok = sess.Context().Value(operatorKey{}).(string)
	return who, ok && who != ""
}

// Server is an SSH server bound to its listener, ready to Serve.
type Server struct {
	cfg     Config
	log     *slog.Logger
	factory ModelFactory
	ln      net.Listener
	srv     *ssh.Server
	hostKey gossh.PublicKey
	keys    *authorizedKeys
	ops     *authorizedKeys // nil without OperatorKeysPath
	reg     *registry
	served  atomic.Bool
}

// Serve listens on cfg.Addr and serves the dashboard built by factory until
// ctx is done, then shuts down gracefully and returns nil. It returns an
// error if the configuration is invalid, the keys cannot be read or the
// address cannot be bound.
func Serve(ctx context.Context, cfg Config, factory ModelFactory) error {
	s, err := Listen(ctx, cfg, factory)
	if err != nil {
		return err
	}
	return s.Serve(ctx)
}

// Listen validates cfg, loads (or creates) the host key, reads the
// authorized keys and binds cfg.Addr, without accepting connections yet.
// The caller must call Serve or Close. Addr reports the bound address, so
// a test can listen on 127.0.0.1:0 and learn the port before serving.
func Listen(ctx context.Context, cfg Config, factory ModelFactory) (*Server, error) {
	if factory == nil {
		return nil, ErrNoFactory
	}
	if cfg.AuthorizedKeysPath == "" {
		return nil, ErrNoAuthorizedKeys
	}
	if cfg.HostKeyPath == "" {
		return nil, ErrNoHostKey
	}
	cfg = cfg.withDefaults()
	s := &Server{
		cfg:     cfg,
		log:     cfg.Logger,
		factory: factory,
		reg:     newRegistry(cfg.MaxSessions),
	}

	keys, err := loadAuthorizedKeys(cfg.AuthorizedKeysPath, s.log)
	if err != nil {
		return nil, err
	}
	s.keys = keys
	if cfg.OperatorKeysPath != "" {
		if s.ops, err = loadAuthorizedKeys(cfg.OperatorKeysPath, s.log); err != nil {
			return nil, fmt.Errorf("operator keys: %w", err)
		}
	}
	signer, err := loadOrCreateHostKey(cfg.HostKeyPath, s.log)
	if err != nil {
		return nil, err
	}
	s.hostKey = signer.PublicKey()

	// The transport's own idle timeout (no traffic at all: a vanished
	// client, a connection without a session) comes a grace period after
	// the sessions' input timeout, whose watchdog tells the client why.
	var idle time.Duration
	if cfg.IdleTimeout > 0 {
		idle = cfg.IdleTimeout + idleGrace
	}
	srv, err := wish.NewServer(
		wish.WithAddress(cfg.Addr),
		func(srv *ssh.Server) error {
			srv.AddHostKey(signer)
			return nil
		},
		wish.WithPublicKeyAuth(s.authorize),
		wish.WithIdleTimeout(idle),
		wish.WithVersion("vpp"),
		ssh.EmulatePty(),
		// Middlewares run last to first: logging, activeterm, the session
		// guard (limits, registry, idle, shutdown), then Bubble Tea; the
		// recover middleware guards the whole chain.
		wish.WithMiddleware(
			recover.MiddlewareWithLogger(printfLogger{s.log},
				bubbletea.MiddlewareWithProgramHandler(s.newProgram),
				s.guard,
				activeterm.Middleware(),
				s.logSession,
			),
		),
	)
	if err != nil {
		return nil, fmt.Errorf("configure ssh server: %w", err)
	}
	srv.HandshakeTimeout = handshakeTimeout
	s.srv = srv

	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", cfg.Addr, err)
	}
	s.ln = ln
	return s, nil
}

// Addr returns the address the server is bound to.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// HostKey returns the server's public host key.
func (s *Server) HostKey() gossh.PublicKey { return s.hostKey }

// Sessions returns the sessions being served, oldest first.
func (s *Server) Sessions() []SessionInfo { return s.reg.snapshot() }

// Close releases the listener of a server that will not be served. It
// returns ErrServed once Serve has been called.
func (s *Server) Close() error {
	if !s.served.CompareAndSwap(false, true) {
		return ErrServed
	}
	s.reg.kill()
	if err := s.ln.Close(); err != nil {
		return fmt.Errorf("close listener: %w", err)
	}
	return nil
}

// Serve accepts SSH connections until ctx is done, then shuts down
// gracefully: no new connections or sessions are accepted, every session's
// program is asked to quit (its client sees "server shutting down"), and
// connections still open after Config.ShutdownTimeout are closed. It returns
// nil after a shutdown and an error if serving fails. Serve may be called
// once.
func (s *Server) Serve(ctx context.Context) error {
	if !s.served.CompareAndSwap(false, true) {
		return ErrServed
	}
	s.log.Info("ssh server listening", "addr", s.ln.Addr().String(),
		"host_key", gossh.FingerprintSHA256(s.hostKey),
		"max_sessions", s.cfg.MaxSessions, "idle_timeout", s.cfg.IdleTimeout)

	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()

	select {
	case err := <-errc:
		s.reg.closeAll(reasonShutdown)
		s.reg.kill()
		_ = s.srv.Close()
		return fmt.Errorf("serve ssh on %s: %w", s.ln.Addr(), err)
	case <-ctx.Done():
	}

	s.shutdown(context.WithoutCancel(ctx))
	select {
	case <-errc:
	case <-time.After(time.Second):
		s.log.Warn("ssh server: accept loop did not stop")
	}
	return nil
}

// shutdown stops accepting, asks every session to quit, waits up to the
// shutdown timeout for the clients to leave and then closes what is left.
func (s *Server) shutdown(ctx context.Context) {
	start := time.Now()
	n := s.reg.closeAll(reasonShutdown)
	s.log.Info("ssh server shutting down", "sessions", n)

	sctx, cancel := context.WithTimeout(ctx, s.cfg.ShutdownTimeout)
	defer cancel()
	err := s.srv.Shutdown(sctx)
	_ = s.ln.Close() // in case Serve had not tracked it yet
	if err != nil {
		s.log.Warn("ssh server: graceful shutdown timed out, closing connections",
			"timeout", s.cfg.ShutdownTimeout, "err", err)
		s.reg.kill()
		_ = s.srv.Close()
	}
	wctx, wcancel := context.WithTimeout(ctx, time.Second)
	defer wcancel()
	if err := s.reg.wait(wctx); err != nil {
		s.log.Warn("ssh server: sessions still running after shutdown", "sessions", len(s.reg.snapshot()))
	}
	s.reg.kill() // releases the sessions' contexts; none should be left
	s.log.Info("ssh server stopped", "duration", time.Since(start).Round(time.Millisecond))
}

// newProgram is the bubbletea.ProgramHandler: the session's own program
// with the client's terminal (bubbletea.MakeOptions), input tracked for the
// idle timeout, no OS signal handling (signals belong to the server) and a
// context the server can cancel to kill it.
func (s *Server) newProgram(sess ssh.Session) *tea.Program {
	ts, ok := sess.(*session)
	if !ok {
		s.log.Error("ssh session not set up by the guard middleware")
		return nil
	}
	if pk := ts.Session.PublicKey(); pk != nil && s.ops != nil && s.ops.allowed(pk) {
		ts.Session.Context().SetValue(operatorKey{}, "ssh:"+gossh.FingerprintSHA256(pk))
	}
	m := s.factory(ts.Session)
	if m == nil {
		ts.setReason(reasonNoModel)
		return nil
	}
	opts := append(bubbletea.MakeOptions(sess),
		tea.WithInput(activityReader{r: ts.Session, s: ts}),
		tea.WithoutSignalHandler(),
		tea.WithContext(ts.ctx),
	)
	p := tea.NewProgram(safeModel{m: m, s: ts, log: s.log}, opts...)
	ts.setProgram(p)
	return p
}

// printfLogger adapts slog to the Printf logger of wish's recover
// middleware.
type printfLogger struct{ l *slog.Logger }

// Printf implements recover.Logger.
func (p printfLogger) Printf(format string, v ...any) {
	p.l.Error("ssh session panic", "detail", fmt.Sprintf(format, v...))
}
