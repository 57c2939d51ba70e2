// Package testutil holds what vpp's tests share: waiting for a condition,
// a logger that is quiet unless the tests run with -v, building the vpp
// binary for tests that run it as a child process, the Kafka flags of
// such a process, and what a test does when a tool it needs is missing
// (skip, or fail under CI=true). Only tests and test helpers import it.
package testutil

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vppctl/vpp/internal/kafka"
)

// Eventually fails t unless cond holds within timeout, checking it every
// interval.
func Eventually(t testing.TB, timeout, interval time.Duration, what string, cond func() bool) {
	t.Helper()
	WaitFor(context.Background(), t, timeout, interval, what, func() (bool, string) { return cond(), "" })
}

// WaitFor fails t unless cond holds within timeout, checking it every
// interval; cond says why it does not hold yet, and the failure reports its
// last reason. It gives up early when ctx ends; timeout <= 0 leaves the
// bound to ctx alone.
func WaitFor(ctx context.Context, t testing.TB, timeout, interval time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	var expired <-chan time.Time
	if timeout > 0 {
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		expired = timer.C
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		ok, why := cond()
		if ok {
			return
		}
		if why != "" {
			why = ": " + why
		}
		select {
		case <-expired:
			t.Fatalf("timed out after %s waiting for %s%s", timeout, what, why)
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v%s", what, ctx.Err(), why)
		case <-tick.C:
		}
	}
}

// Logger returns a logger that writes to stderr at level when the tests run
// with -v, and discards everything otherwise.
func Logger(level slog.Level) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// BuildVPP builds the vpp binary into the test's temporary directory and
// returns its path.
func BuildVPP(ctx context.Context, t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "vpp")
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/vppctl/vpp/cmd/vpp").CombinedOutput()
	if err != nil {
		t.Fatalf("build vpp: %v\n%s", err, out)
	}
	return bin
}

// KafkaFlags are the flags that give a vpp process the Kafka options o:
// brokers, topic prefix, partitions, (when set) replication and the TLS
// and SASL settings. A password reaches the process only through
// o.Security.PasswordFile (a password has no flag): tests that set
// o.Security.Password pass it in $VPP_KAFKA_PASSWORD themselves.
func KafkaFlags(o kafka.Options) []string {
	args := []string{"--brokers", strings.Join(o.Brokers, ","), "--topic-prefix", o.Prefix,
		"--partitions", fmt.Sprint(o.Partitions)}
	if o.Replication > 0 {
		args = append(args, "--replication", fmt.Sprint(o.Replication))
	}
	return append(args, o.Security.Flags()...)
}
