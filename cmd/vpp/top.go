package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"time"

	tea "charm.land/bubbletea/v2"
	"charm.land/ssh"
	"github.com/spf13/cobra"

	"github.com/vppctl/vpp/internal/dispatch"
	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/internal/reader"
	"github.com/vppctl/vpp/internal/tui"
	"github.com/vppctl/vpp/internal/tui/sshserve"
)

// Defaults of `vpp top`.
const (
	defaultTopWidth       = 120
	defaultTopCatchUp     = 15 * time.Second
	defaultTopMaxSessions = 32
	defaultTopIdleTimeout = 30 * time.Minute
)

type topOptions struct {
	kafka    kafkaFlags
	once     bool
	json     bool
	refresh  time.Duration
	stale    time.Duration
	width    int
	catchUp  time.Duration
	logFile  string
	ssh      string
	hostKey  string
	authKeys string
	opKeys   string
	maxSess  int
	idle     time.Duration
}

func newTopCmd() *cobra.Command {
	o := &topOptions{}
	cmd := &cobra.Command{
		Use:   "top",
		Short: "Live fleet dashboard in the terminal (or over SSH)",
		Long: `Show the fleet live: net power with its charge and discharge split, stored
energy, SoC, headroom, devices online/offline/alarming, ingest rate, consumer
lag and the age of the data; a table of regions → substations → sites →
devices to drill into; device details, the alarm list and the pipeline
accounting. Press ? for every key.

--once prints one plain-text frame of the fleet view and exits; with --json
it prints the whole fleet tree as JSON instead. Both wait until the reader
has caught up with the state topic, so the numbers are complete, and fail
at once with the cause when Kafka cannot be reached, a topic does not exist
(a wrong --topic-prefix) or access is refused.

Until the reader has caught up, the dashboard's header says "loading
12/64 partitions (41 %)" and draws the totals dim; when it cannot read, the
header shows KAFKA ERROR with the cause, and the reader keeps retrying.

--ssh serves the dashboard over SSH, one session per client.

Dispatches: D lists them; on the fleet table d opens the dispatch form for
the selected row's node (power like 500kW or -1MW, positive discharges;
duration like 15m) and x cancels the active dispatch of that node (or of
the node listed), confirmed with y. Locally the dispatches are created by
the OS user (source "tui"); over SSH only the sessions whose key is in
--operator-keys may dispatch (creator "ssh:" and the key's SHA256
fingerprint, source "ssh"), every other session sees them read-only.`,
		Example: `  # the live dashboard
  vpp top

  # one frame for a script or a ticket
  vpp top --once --width 100

  # the fleet tree as JSON
  vpp top --once --json | jq '.regions[].power_kw'

  # serve the dashboard over SSH
  vpp top --ssh :2222 --host-key ./vpp_host_ed25519 --authorized-keys ~/.ssh/authorized_keys`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.json && !o.once {
				return usageError{errors.New("--json needs --once")}
			}
			if o.once && o.ssh != "" {
				return usageError{errors.New("--once and --ssh exclude each other")}
			}
			if o.opKeys != "" && o.ssh == "" {
				return usageError{errors.New("--operator-keys needs --ssh")}
			}
			return runTop(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	o.kafka.register(f)
	// top only reads Kafka: the codecs do not apply, but the flags stay
	// accepted so that a config file's top-level compression keys work.
	_ = f.MarkHidden("compression")
	_ = f.MarkHidden("state-compression")
	f.BoolVar(&o.once, "once", false, "print one plain-text frame of the fleet view and exit")
	f.BoolVar(&o.json, "json", false, "with --once: print the fleet tree as JSON")
	f.DurationVar(&o.refresh, "refresh", tui.DefaultRefresh, "how often the dashboard redraws with the latest data")
	f.DurationVar(&o.stale, "stale-after", tui.DefaultStaleAfter, "show data older than this as STALE")
	f.IntVar(&o.width, "width", defaultTopWidth, "with --once: line width of the frame")
	f.DurationVar(&o.catchUp, "catch-up-timeout", defaultTopCatchUp, "with --once: how long to wait for the complete fleet state")
	f.StringVar(&o.logFile, "log-file", "", "write logs to this file (default: discarded while the dashboard runs)")
	f.StringVar(&o.ssh, "ssh", "", "serve the dashboard over SSH on this address instead (e.g. :2222)")
	f.StringVar(&o.hostKey, "host-key", "", "with --ssh: host key file, created when missing (default $XDG_CONFIG_HOME/vpp/ssh_host_ed25519_key)")
	f.StringVar(&o.authKeys, "authorized-keys", "", "with --ssh: authorized_keys file of the clients allowed in")
	f.StringVar(&o.opKeys, "operator-keys", "", "with --ssh: authorized_keys file of the operators, whose sessions may create and cancel dispatches (others see them read-only)")
	f.IntVar(&o.maxSess, "max-sessions", defaultTopMaxSessions, "with --ssh: most concurrent sessions")
	f.DurationVar(&o.idle, "idle-timeout", defaultTopIdleTimeout, "with --ssh: close a session idle for this long")
	return cmd
}

// topPreflightTimeout bounds vpp top's first connection attempts: a
// refusal ends it, an unreachable Kafka is left to the dashboard. It is
// longer than kafka.Preflight takes to call a listener that closes every
// connection another protocol (about 4 s).
const topPreflightTimeout = 6 * time.Second

// topOnceReachTimeout bounds how long vpp top --once tries to reach Kafka
// before it gives up with the cause (*kafka.UnreachableError, which says
// why the last attempt failed, a listener that closes connections
// included).
const topOnceReachTimeout = 3 * time.Second

func runTop(ctx context.Context, o *topOptions, out, errOut io.Writer) error {
	// Logs must not corrupt the dashboard: a file, or nowhere.
	var warnTo io.Writer
	if o.once {
		warnTo = errOut
	}
	logger, closeLog, err := screenLogger(o.logFile, warnTo)
	if err != nil {
		return err
	}
	defer closeLog()
	prev := slog.Default()
	slog.SetDefault(logger)
	defer slog.SetDefault(prev)

	kopts := o.kafka.options("vpp-top")
	if err := kopts.Security.Validate(); err != nil {
		return usageError{err}
	}
	// Wrong credentials or TLS settings end vpp top at once instead of a
	// dashboard that waits forever. An unreachable Kafka ends --once after
	// topOnceReachTimeout; the dashboard starts at once, shows the cause in
	// its header while the reader retries, and ends if the preflight, run
	// beside it, finds a cause retrying cannot cure.
	var ropts []reader.Option
	fatal := make(chan error, 1)
	if o.once {
		// A missing topic or a refused ACL ends --once with the cause too.
		ropts = append(ropts, reader.WithFailFast())
		pctx, pcancel := context.WithTimeout(ctx, min(topOnceReachTimeout, o.catchUp))
		err := kafka.Preflight(pctx, kopts)
		pcancel()
		if err != nil {
			return err
		}
	} else {
		go func() {
			pctx, pcancel := context.WithTimeout(ctx, topPreflightTimeout)
			defer pcancel()
			if err := kafka.Preflight(pctx, kopts); err != nil && ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) {
				fatal <- err
			}
		}()
	}
	r, err := reader.New(kopts, logger, ropts...)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	defer func() { cancel(); <-done }()

	data, waitData := reader.StartDashboard(rctx, r, kopts, logger)
	defer func() { cancel(); waitData() }()
	opts := tui.Options{Refresh: o.refresh, StaleAfter: o.stale, Watch: data.Watch, WatchSubstation: data.WatchSubstation}
	if !o.once {
		dopts := kopts
		dopts.ClientID = "vpp-top-dispatch"
		svc, err := dispatch.Open(dopts, logger.With("part", "dispatch"))
		if err != nil {
			return err
		}
		svc.Fleet = r
		svc.FleetReady = func() bool { ok, _ := r.Ready(); return ok }
		vdone := make(chan struct{})
		go func() {
			defer close(vdone)
			if err := svc.View.Run(rctx); err != nil && rctx.Err() == nil {
				logger.Error("dispatch view stopped", "err", err)
			}
		}()
		defer func() { cancel(); <-vdone; _ = svc.Close() }()
		opts.Dispatch = svc
	}

	if o.once {
		wctx, wcancel := context.WithTimeout(ctx, o.catchUp)
		defer wcancel()
		if err := r.WaitCaughtUp(wctx); err != nil {
			return err
		}
		if o.json {
			return tui.OnceJSON(out, r.Snapshot())
		}
		return tui.Once(out, data, opts, o.width)
	}

	if o.ssh != "" {
		if o.hostKey == "" {
			dir, err := os.UserConfigDir()
			if err != nil {
				return usageError{fmt.Errorf("--host-key not given and no config directory: %w", err)}
			}
			o.hostKey = filepath.Join(dir, "vpp", "ssh_host_ed25519_key")
		}
		sctx, scancel := context.WithCancel(ctx)
		defer scancel()
		stopWatch := watchFatal(fatal, scancel)
		err := sshserve.Serve(sctx, sshserve.Config{
			Addr:               o.ssh,
			HostKeyPath:        o.hostKey,
			AuthorizedKeysPath: o.authKeys,
			OperatorKeysPath:   o.opKeys,
			MaxSessions:        o.maxSess,
			IdleTimeout:        o.idle,
			Logger:             sshLogger(errOut, o.logFile != "", logger),
		}, func(sess ssh.Session) tea.Model {
			so := opts
			so.Operator, so.Source = "", "ssh"
			// The session's watches end with its connection: a client that
			// disconnects never closes its screens.
			ws := data.Session(sess.Context())
			so.Watch, so.WatchSubstation = ws.Watch, ws.WatchSubstation
			if who, ok := sshserve.Operator(sess); ok {
				so.Operator = who
			}
			return tui.New(data, so)
		})
		if e := stopWatch(); e != nil {
			return e
		}
		if errors.Is(err, sshserve.ErrNoAuthorizedKeys) || errors.Is(err, sshserve.ErrNoHostKey) {
			return usageError{err}
		}
		return err
	}

	opts.Operator = osUser()
	pctx, pcancel := context.WithCancel(ctx)
	defer pcancel()
	stopWatch := watchFatal(fatal, pcancel)
	p := tea.NewProgram(tui.New(data, opts), tea.WithContext(pctx), tea.WithOutput(out))
	_, err = p.Run()
	if e := stopWatch(); e != nil {
		return e
	}
	if err != nil {
		if errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil {
			return ctx.Err() // Ctrl-C or SIGTERM: a clean exit
		}
		return fmt.Errorf("dashboard: %w", err)
	}
	return nil
}

// osUser is the local operator: the OS user's name ("operator" when it
// cannot be told).
func osUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "operator"
}

// watchFatal calls cancel when fatal delivers an error (the preflight
// found a cause retrying cannot cure). The returned function stops the
// watch and returns that error, nil if none came.
func watchFatal(fatal <-chan error, cancel context.CancelFunc) (stop func() error) {
	quit := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		select {
		case err := <-fatal:
			cancel()
			done <- err
		case <-quit:
			done <- nil
		}
	}()
	return func() error { close(quit); return <-done }
}

// sshLogger is the SSH server's logger: the log file when one is given,
// else stderr (the server has no dashboard of its own to corrupt).
func sshLogger(errOut io.Writer, toFile bool, fileLogger *slog.Logger) *slog.Logger {
	if toFile {
		return fileLogger
	}
	return slog.New(slog.NewTextHandler(errOut, nil))
}
