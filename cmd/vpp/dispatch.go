package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vppctl/vpp/internal/api"
	"github.com/vppctl/vpp/internal/dispatch"
	"github.com/vppctl/vpp/internal/flagval"
	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/internal/reader"
)

// Defaults of `vpp dispatch`.
const (
	defaultDispatchTimeout = 15 * time.Second
	dispatchSource         = "cli"
)

// newDispatchCmd is `vpp dispatch`: the operator's side of dispatch.
func newDispatchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dispatch",
		Short: "Create, list, show and cancel dispatches",
		Long: `A dispatch asks a node of the fleet (fleet, region/ID, substation/ID or
site/ID) to hold a power from a start for a duration: positive discharges,
negative charges. vpp aggregate splits it over the node's batteries and tracks
the node's actual power against the target (docs/dispatch.md).

These commands talk to Kafka like vpp top: they read the dispatch topic (and,
to create, the fleet) and write the dispatch record. The user running them
(os/user, else $USER) is recorded as creator or canceller, with source "cli".
The HTTP API of vpp aggregate offers the same (/api/dispatches).`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newDispatchCreateCmd(nil), newDispatchListCmd(nil), newDispatchShowCmd(nil), newDispatchCancelCmd(nil))
	return cmd
}

// dispatchCommon are the flags and dependencies every dispatch subcommand
// shares.
type dispatchCommon struct {
	kafka   kafkaFlags
	timeout time.Duration
	user    string
	now     func() time.Time
	stdout  io.Writer
	stderr  io.Writer
}

func (c *dispatchCommon) register(cmd *cobra.Command) {
	f := cmd.Flags()
	c.kafka.register(f)
	// Dispatch commands write one small record: the codecs and topic
	// settings do not apply, but stay accepted for a shared config file.
	for _, name := range []string{"compression", "state-compression", "partitions", "replication", "history-retention"} {
		_ = f.MarkHidden(name)
	}
	f.DurationVar(&c.timeout, "timeout", defaultDispatchTimeout, "how long to wait for Kafka, the dispatch topic and the fleet")
}

// bind fills the dependencies from the command.
func (c *dispatchCommon) bind(cmd *cobra.Command) {
	c.stdout, c.stderr = cmd.OutOrStdout(), cmd.ErrOrStderr()
	if c.now == nil {
		c.now = time.Now
	}
	if c.user == "" {
		c.user = currentUser()
	}
}

// currentUser is the operator's name: the OS user, else $USER, else
// "unknown".
func currentUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "unknown"
}

// open connects the dispatch service and runs its view until the returned
// stop is called; it returns once the view caught up.
func (c *dispatchCommon) open(ctx context.Context, log *slog.Logger) (*dispatch.Service, kafka.Options, func(), error) {
	kopts := c.kafka.options("vpp-dispatch")
	if err := kopts.Security.Validate(); err != nil {
		return nil, kopts, nil, usageError{err}
	}
	pctx, pcancel := context.WithTimeout(ctx, c.timeout)
	defer pcancel()
	if err := kafka.Preflight(pctx, kopts); err != nil {
		return nil, kopts, nil, err
	}
	svc, err := dispatch.Open(kopts, log)
	if err != nil {
		return nil, kopts, nil, err
	}
	svc.Now = c.now
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- svc.View.Run(rctx) }()
	stop := func() { cancel(); <-done; _ = svc.Close() }
	if err := svc.View.WaitCaughtUp(pctx); err != nil {
		stop()
		return nil, kopts, nil, fmt.Errorf("read dispatch topic %s: %w", kopts.Topics().Dispatch(), err)
	}
	return svc, kopts, stop, nil
}

// dispatchLogger writes warnings to stderr: the command's output stays
// clean.
func dispatchLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// dispatchCreateOptions are the parsed flags of vpp dispatch create.
type dispatchCreateOptions struct {
	dispatchCommon
	req dispatch.Request
}

// newDispatchCreateCmd is `vpp dispatch create`; runF, when not nil, runs
// instead of runDispatchCreate with the parsed options (for tests).
func newDispatchCreateCmd(runF func(context.Context, *dispatchCreateOptions) error) *cobra.Command {
	o := &dispatchCreateOptions{}
	var node, power, duration, start, ramp string
	var priority int32
	var key string
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a dispatch",
		Long: `create checks the command (node ID, power, duration, start, ramp), loads the
fleet to check that the node exists, writes the dispatch and prints its ID
alone on the last line of stdout.

--power takes W, kW, MW or GW (a bare number is kW): positive discharges,
negative charges. --start takes RFC 3339 (default now; at most 30 s in the
past). --ramp is the highest rate of change of the node's power, e.g. 1MW/s
(default 0: at once). Lower --priority wins where dispatches overlap.

With --idempotency-key, the ID derives from the user and the key: running the
same command again returns the same dispatch instead of a second one.`,
		Example: `  # discharge 5 MW from region north for 30 minutes
  vpp dispatch create --node region/north --power 5MW --duration 30m

  # charge a site at 250 kW from 17:00 UTC for an hour, ramping at 50 kW/s
  vpp dispatch create --node site/site-0042 --power -250kW --duration 1h --start 2026-12-02T17:00:00Z --ramp 50kW/s

  # safe to retry from a script
  id=$(vpp dispatch create --node fleet --power 1MW --duration 15m --idempotency-key job-7 | tail -1)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if node == "" || power == "" || duration == "" {
				return usageError{errors.New("--node, --power and --duration are required")}
			}
			r := &o.req
			r.Node, r.Priority, r.IdempotencyKey = node, priority, key
			var err error
			if r.PowerKW, err = flagval.ParsePowerKW(power); err != nil {
				return usageError{fmt.Errorf("--power: %w", err)}
			}
			if r.Duration, err = time.ParseDuration(duration); err != nil {
				return usageError{fmt.Errorf("--duration %q: want a duration like 30m or 1h30m", duration)}
			}
			if start != "" {
				if r.Start, err = time.Parse(time.RFC3339, start); err != nil {
					return usageError{fmt.Errorf("--start %q: want RFC 3339 (2026-12-02T17:00:00Z)", start)}
				}
			}
			if ramp != "" {
				if r.RampKWPerS, err = flagval.ParsePowerKW(ramp); err != nil {
					return usageError{fmt.Errorf("--ramp: %w", err)}
				}
			}
			o.bind(cmd)
			r.CreatedBy, r.Source = o.user, dispatchSource
			// Refuse a bad command before talking to Kafka.
			if _, err := dispatch.Build(*r, o.now()); err != nil {
				return usageError{err}
			}
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runDispatchCreate(cmd.Context(), o)
		},
	}
	o.register(cmd)
	f := cmd.Flags()
	f.StringVar(&node, "node", "", "node to dispatch: fleet, region/ID, substation/ID or site/ID")
	f.StringVar(&power, "power", "", "target power: 5MW, -250kW, or a number of kW (positive discharges)")
	f.StringVar(&duration, "duration", "", "how long the dispatch holds, e.g. 30m")
	f.StringVar(&start, "start", "", "start time, RFC 3339 (default now)")
	f.StringVar(&ramp, "ramp", "", "highest rate of change of the node's power, e.g. 1MW/s (default at once)")
	f.Int32Var(&priority, "priority", 0, "lower wins where dispatches overlap")
	f.StringVar(&key, "idempotency-key", "", "derive the ID from the user and this key, so that a retry returns the same dispatch")
	return cmd
}

// runDispatchCreate loads the fleet, writes the dispatch and prints its ID.
func runDispatchCreate(ctx context.Context, o *dispatchCreateOptions) error {
	log := dispatchLogger(o.stderr)
	svc, kopts, stop, err := o.open(ctx, log)
	if err != nil {
		return err
	}
	defer stop()
	ropts := kopts
	ropts.ClientID = "vpp-dispatch-reader"
	fr, err := reader.New(ropts, log)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- fr.Run(rctx) }()
	defer func() { cancel(); <-done }()
	wctx, wcancel := context.WithTimeout(ctx, o.timeout)
	defer wcancel()
	if err := fr.WaitCaughtUp(wctx); err != nil {
		return fmt.Errorf("load the fleet from %s: %w", kopts.Topics().State(), err)
	}
	snap := fr.Snapshot()
	if snap.Sites() == 0 {
		return fmt.Errorf("load the fleet: no site in %s (is vpp aggregate running?)", kopts.Topics().State())
	}
	svc.Fleet = fr
	e, created, h, err := svc.Create(ctx, o.req)
	switch {
	case errors.Is(err, dispatch.ErrInvalid), errors.Is(err, dispatch.ErrUnknownNode):
		return usageError{err}
	case err != nil:
		return err
	}
	d := e.Dispatch
	verb := "created"
	if !created {
		verb = "exists (same idempotency key and request)"
	}
	fmt.Fprintf(o.stdout, "dispatch %s %s: %s %s from %s to %s (%s); headroom now: discharge %s, charge %s, %d of %d devices online\n",
		d.GetId(), verb, d.GetNode(), flagval.FormatPowerKW(d.GetTargetKw()),
		fmtMS(d.GetStartMs()), fmtMS(d.GetEndMs()), dispatch.StateName(e.State(o.now())),
		flagval.FormatPowerKW(h.DischargeKW), flagval.FormatPowerKW(h.ChargeKW), h.Online, h.Devices)
	fmt.Fprintln(o.stdout, d.GetId())
	return nil
}

func fmtMS(ms int64) string {
	if ms <= 0 {
		return "-"
	}
	return time.UnixMilli(ms).UTC().Format(time.RFC3339)
}

// dispatchListOptions are the parsed flags of vpp dispatch list.
type dispatchListOptions struct {
	dispatchCommon
	json bool
}

// newDispatchListCmd is `vpp dispatch list`; runF, when not nil, runs
// instead of runDispatchList (for tests).
func newDispatchListCmd(runF func(context.Context, *dispatchListOptions) error) *cobra.Command {
	o := &dispatchListOptions{}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List dispatches, newest start first",
		Example: `  vpp dispatch list
  vpp dispatch list --json | jq '.[] | select(.status == "active") | .id'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.bind(cmd)
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runDispatchList(cmd.Context(), o)
		},
	}
	o.register(cmd)
	cmd.Flags().BoolVar(&o.json, "json", false, "print the dispatches as JSON (the API's form)")
	return cmd
}

func runDispatchList(ctx context.Context, o *dispatchListOptions) error {
	svc, _, stop, err := o.open(ctx, dispatchLogger(o.stderr))
	if err != nil {
		return err
	}
	defer stop()
	entries, err := svc.List()
	if err != nil {
		return err
	}
	now := o.now()
	if o.json {
		out := make([]api.DispatchJSON, 0, len(entries))
		for _, e := range entries {
			out = append(out, api.NewDispatchJSON(e, now))
		}
		return writeIndented(o.stdout, out)
	}
	tw := tabwriter.NewWriter(o.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNODE\tSTATUS\tTARGET\tACTUAL\tSTART\tEND\tCREATED BY")
	for _, e := range entries {
		d := e.Dispatch
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.GetId(), d.GetNode(), dispatch.StateName(e.State(now)),
			flagval.FormatPowerKW(d.GetTargetKw()), flagval.FormatPowerKW(e.ActualKW()),
			fmtMS(d.GetStartMs()), fmtMS(d.GetEndMs()), d.GetCreatedBy())
	}
	return tw.Flush()
}

func writeIndented(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// dispatchShowOptions are the parsed flags of vpp dispatch show.
type dispatchShowOptions struct {
	dispatchCommon
	id   string
	json bool
}

// newDispatchShowCmd is `vpp dispatch show`; runF, when not nil, runs
// instead of runDispatchShow (for tests).
func newDispatchShowCmd(runF func(context.Context, *dispatchShowOptions) error) *cobra.Command {
	o := &dispatchShowOptions{}
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show a dispatch: the request, its audit fields and its tracking",
		Example: `  vpp dispatch show d-abcdefghijkl
  vpp dispatch show d-abcdefghijkl --json | jq .actual_kw`,
		Args: exactArgs(1, "show takes one dispatch ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.id = args[0]
			if err := dispatch.ValidID(o.id); err != nil {
				return usageError{err}
			}
			o.bind(cmd)
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runDispatchShow(cmd.Context(), o)
		},
	}
	o.register(cmd)
	cmd.Flags().BoolVar(&o.json, "json", false, "print the dispatch as JSON (the API's form)")
	return cmd
}

func runDispatchShow(ctx context.Context, o *dispatchShowOptions) error {
	svc, _, stop, err := o.open(ctx, dispatchLogger(o.stderr))
	if err != nil {
		return err
	}
	defer stop()
	e, err := svc.Get(o.id)
	if err != nil {
		return err
	}
	j := api.NewDispatchJSON(e, o.now())
	if o.json {
		return writeIndented(o.stdout, j)
	}
	tw := tabwriter.NewWriter(o.stdout, 0, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, v)
		}
	}
	row("id", j.ID)
	row("node", j.Node)
	row("status", j.Status)
	row("reason", j.Reason)
	row("target", flagval.FormatPowerKW(j.TargetKW))
	row("actual", flagval.FormatPowerKW(j.ActualKW))
	row("feasible", flagval.FormatPowerKW(j.FeasibleKW))
	row("shortfall", flagval.FormatPowerKW(j.ShortfallKW))
	row("start", j.Start)
	row("end", j.End)
	row("ramp", flagval.FormatPowerKW(j.RampKWPerS)+"/s")
	row("priority", fmt.Sprint(j.Priority))
	row("devices", fmt.Sprintf("%d (following %d, clamped %d)", j.Devices, j.Following, j.Clamped))
	row("mae (1 min)", flagval.FormatPowerKW(j.MAEMinuteKW))
	row("overshoot", flagval.FormatPowerKW(j.OvershootKW))
	row("reached at", j.ReachedAt)
	row("first follow", j.FirstFollowAt)
	row("created", j.CreatedAt+" by "+j.CreatedBy+" ("+j.Source+")")
	if j.CancelledAt != "" {
		row("cancelled", j.CancelledAt+" by "+j.CancelledBy)
	}
	return tw.Flush()
}

// dispatchCancelOptions are the parsed flags of vpp dispatch cancel.
type dispatchCancelOptions struct {
	dispatchCommon
	id string
}

// newDispatchCancelCmd is `vpp dispatch cancel`; runF, when not nil, runs
// instead of runDispatchCancel (for tests).
func newDispatchCancelCmd(runF func(context.Context, *dispatchCancelOptions) error) *cobra.Command {
	o := &dispatchCancelOptions{}
	cmd := &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel a pending or active dispatch",
		Long: `cancel rewrites the dispatch with the time and the user who cancelled it; the
devices return to local control. A dispatch that ended or was cancelled
already cannot be cancelled (exit 1).`,
		Example: `  vpp dispatch cancel d-abcdefghijkl`,
		Args:    exactArgs(1, "cancel takes one dispatch ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.id = args[0]
			if err := dispatch.ValidID(o.id); err != nil {
				return usageError{err}
			}
			o.bind(cmd)
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runDispatchCancel(cmd.Context(), o)
		},
	}
	o.register(cmd)
	return cmd
}

func runDispatchCancel(ctx context.Context, o *dispatchCancelOptions) error {
	svc, _, stop, err := o.open(ctx, dispatchLogger(o.stderr))
	if err != nil {
		return err
	}
	defer stop()
	e, err := svc.Cancel(ctx, o.id, o.user)
	if err != nil {
		return err
	}
	fmt.Fprintf(o.stdout, "dispatch %s cancelled at %s by %s\n", o.id, fmtMS(e.Dispatch.GetCancelledMs()), e.Dispatch.GetCancelledBy())
	return nil
}

// exactArgs is cobra.ExactArgs with a usage error of its own words.
func exactArgs(n int, msg string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError{fmt.Errorf("%s, got %d arguments", msg, len(args))}
		}
		return nil
	}
}
