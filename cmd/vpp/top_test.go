package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/internal/kafka/kafkatest"
)

// runTopOnce runs `vpp top --once` with args as the root does and returns
// what it printed on stdout and its error.
func runTopOnce(t *testing.T, ctx context.Context, args ...string) (string, error) {
	t.Helper()
	cmd := newTopCmd()
	var out, errOut bytes.Buffer
	cmd.SetArgs(append([]string{"--once"}, args...))
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	cmd.PersistentPreRunE = func(c *cobra.Command, _ []string) error { return applySettings(c, "") }
	err := cmd.ExecuteContext(ctx)
	return out.String(), err
}

// TestTopOnceUnreachable: nothing listening ends --once within seconds
// with the broker and the refusal, not after --catch-up-timeout.
func TestTopOnceUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	out, err := runTopOnce(t, ctx, "--brokers", addr, "--catch-up-timeout", "15s")
	took := time.Since(start)
	if err == nil {
		t.Fatal("--once against a closed port succeeded")
	}
	if took > 5*time.Second {
		t.Errorf("failed after %s, want under 5 s", took)
	}
	var ue *kafka.UnreachableError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "cannot reach Kafka at "+addr+": ") || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("error %q: want the broker and the refusal", err)
	}
	if out != "" {
		t.Errorf("printed %q", out)
	}
}

// TestTopOnceMissingTopic: a --topic-prefix no aggregator uses ends --once
// at once with the missing topic.
func TestTopOnceMissingTopic(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	prefix := kafkatest.Prefix("typo")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	out, err := runTopOnce(t, ctx, "--brokers", strings.Join(brokers, ","), "--topic-prefix", prefix)
	want := "topic " + prefix + "state does not exist: is an aggregator running with this --topic-prefix?"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want %q", err, want)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("failed after %s", took)
	}
	if out != "" {
		t.Errorf("printed %q", out)
	}
}

// TestWatchFatal: a preflight error ends the dashboard's context and is
// returned; without one, stopping returns nil.
func TestWatchFatal(t *testing.T) {
	fatal := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	stop := watchFatal(fatal, cancel)
	want := errors.New("kafka x: authentication failed")
	fatal <- want
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the preflight error did not cancel")
	}
	if got := stop(); got != want {
		t.Errorf("stop: %v, want %v", got, want)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	if got := watchFatal(make(chan error), cancel2)(); got != nil || ctx2.Err() != nil {
		t.Errorf("without an error: %v, ctx %v", got, ctx2.Err())
	}
}

func TestTopUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args   []string
		reason string
	}{
		{[]string{"top", "--json"}, "--json needs --once"},
		{[]string{"top", "--once", "--ssh", ":0"}, "exclude each other"},
		{[]string{"top", "--operator-keys", "/etc/vpp/operator_keys"}, "--operator-keys needs --ssh"},
	} {
		_, _, err := vppCmd(context.Background(), c.args...)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), c.reason) {
			t.Errorf("%v: %v, want a usage error with %q", c.args, err, c.reason)
		}
	}
}
