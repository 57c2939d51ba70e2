package kafka

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

func TestUnreachable(t *testing.T) {
	o := Options{Brokers: []string{"127.0.0.1:39999"}}
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}
	err := o.Unreachable(fmt.Errorf("connect to kafka: %w", fmt.Errorf("%w: %w", sarama.ErrOutOfBrokers, dial)))
	var ue *UnreachableError
	if !errors.As(err, &ue) {
		t.Fatalf("%v: not an *UnreachableError", err)
	}
	if got, want := err.Error(), "cannot reach Kafka at 127.0.0.1:39999: dial tcp: connect: connection refused"; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
	if !errors.Is(err, sarama.ErrOutOfBrokers) || !Persistent(err) {
		t.Error("the client's error is lost, or the error is not persistent")
	}
	plain := errors.New("something else")
	if o.Unreachable(plain) != plain || Persistent(plain) {
		t.Error("other errors must come back unchanged, not persistent")
	}
	if !Persistent(fmt.Errorf("x: %w", &MissingTopicError{Topic: "t"})) {
		t.Error("a missing topic must be persistent")
	}
}

// TestPreflightUnreachable: Preflight against a closed port ends with the
// context as an *UnreachableError naming the refusal.
func TestPreflightUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	err = Preflight(ctx, Options{Brokers: []string{addr}, Version: DefaultVersion})
	var ue *UnreachableError
	if !errors.As(err, &ue) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("Preflight: %v, want an *UnreachableError with the refusal and the deadline", err)
	}
}

// TestPreflightNoAnswer: a listener that accepts and never answers ends
// Preflight with its context, not after the network timeouts.
func TestPreflightNoAnswer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = Preflight(ctx, Options{Brokers: []string{ln.Addr().String()}, Version: DefaultVersion})
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("returned after %s", took)
	}
	var ue *UnreachableError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "no answer") {
		t.Fatalf("Preflight: %v, want an *UnreachableError saying no answer", err)
	}
}
