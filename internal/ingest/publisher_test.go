package ingest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/IBM/sarama"

	"github.com/vppctl/vpp/internal/buffer"
)

// echoProducer is a sarama.AsyncProducer that answers every message at
// once: on Errors when fail says so, else on Successes. It checks what it
// got before answering, and scribbles on the message afterwards as sarama
// does (it sets the timestamp of a success).
type echoProducer struct {
	sarama.AsyncProducer // only the methods below are called
	input                chan *sarama.ProducerMessage
	successes            chan *sarama.ProducerMessage
	errs                 chan *sarama.ProducerError
	fail                 func(m *sarama.ProducerMessage) bool
	check                func(m *sarama.ProducerMessage)
	wg                   sync.WaitGroup
}

func newEchoProducer(fail func(*sarama.ProducerMessage) bool, check func(*sarama.ProducerMessage)) *echoProducer {
	p := &echoProducer{
		input:     make(chan *sarama.ProducerMessage),
		successes: make(chan *sarama.ProducerMessage, 1),
		errs:      make(chan *sarama.ProducerError, 1),
		fail:      fail,
		check:     check,
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for m := range p.input {
			p.check(m)
			if p.fail(m) {
				p.errs <- &sarama.ProducerError{Msg: m, Err: errors.New("injected")}
				continue
			}
			p.successes <- m
		}
	}()
	return p
}

func (p *echoProducer) Input() chan<- *sarama.ProducerMessage     { return p.input }
func (p *echoProducer) Successes() <-chan *sarama.ProducerMessage { return p.successes }
func (p *echoProducer) Errors() <-chan *sarama.ProducerError      { return p.errs }
func (p *echoProducer) AsyncClose() {
	close(p.input)
	p.wg.Wait()
	close(p.successes)
	close(p.errs)
}

// TestSaramaPublisherReusesMessages: messages are recycled once sarama
// returns them, and a recycled message carries nothing of its previous
// use (key, headers, timestamp, metadata).
func TestSaramaPublisherReusesMessages(t *testing.T) {
	var fails int
	prod := newEchoProducer(
		func(m *sarama.ProducerMessage) bool { fails++; return fails%3 == 0 },
		nil) // set per message below
	p := startPublisher(prod, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx := context.Background()
	msgs := []buffer.Message{
		{Topic: "t", Key: []byte("site-1"), Value: []byte("v1")},
		{Topic: "r", Key: []byte("dev-1"), Value: []byte("v2"), Headers: []buffer.Header{{Key: "h1", Value: []byte("a")}, {Key: "h2", Value: []byte("b")}}},
		{Topic: "t", Value: []byte("v3")},
	}
	for i := range 30 {
		m := msgs[i%len(msgs)]
		got := make(chan error, 1)
		var seen *sarama.ProducerMessage
		prod.check = func(pm *sarama.ProducerMessage) {
			seen = pm
			key, _ := encoded(pm.Key)
			val, _ := encoded(pm.Value)
			if pm.Topic != m.Topic || !bytes.Equal(key, m.Key) || (pm.Key == nil) != (m.Key == nil) ||
				!bytes.Equal(val, m.Value) || len(pm.Headers) != len(m.Headers) ||
				!pm.Timestamp.IsZero() || pm.Partition != 0 || pm.Offset != 0 {
				t.Errorf("message %d: %+v, want %+v", i, pm, m)
			}
			for j, h := range pm.Headers {
				if string(h.Key) != m.Headers[j].Key || !bytes.Equal(h.Value, m.Headers[j].Value) {
					t.Errorf("message %d header %d: %s=%s", i, j, h.Key, h.Value)
				}
			}
		}
		if err := p.Publish(ctx, &m, VerdictFunc(func(err error) { got <- err })); err != nil {
			t.Fatal(err)
		}
		err := <-got
		if wantErr := (i+1)%3 == 0; (err != nil) != wantErr {
			t.Fatalf("message %d: err %v, want error %v", i, err, wantErr)
		}
		if seen != nil {
			seen.Timestamp = testNow // as sarama does for a success
		}
	}
	if _, failed := p.ProducerStats(); failed != 10 {
		t.Errorf("%d failed, want 10", failed)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}

func encoded(e sarama.Encoder) ([]byte, error) {
	if e == nil {
		return nil, nil
	}
	return e.Encode()
}

// TestSaramaPublisherAllocs: publishing a record allocates nothing of its
// own once messages are recycled.
func TestSaramaPublisherAllocs(t *testing.T) {
	prod := newEchoProducer(func(*sarama.ProducerMessage) bool { return false }, func(*sarama.ProducerMessage) {})
	p := startPublisher(prod, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer p.Close()
	m := &buffer.Message{Topic: "t", Key: []byte("site-1"), Value: []byte("v")}
	got := make(chan error, 1)
	done := VerdictFunc(func(err error) { got <- err })
	ctx := context.Background()
	n := testing.AllocsPerRun(1000, func() {
		if err := p.Publish(ctx, m, done); err != nil {
			t.Fatal(err)
		}
		<-got
	})
	// The pool may lose a message now and then (to a GC; often under the
	// race detector); before pooling there were four allocations.
	if n >= 1 && !raceEnabled {
		t.Fatalf("Publish allocates %v times per message", n)
	}
}

// BenchmarkSaramaPublish measures Publish up to sarama's verdict, on a
// producer that answers at once.
func BenchmarkSaramaPublish(b *testing.B) {
	prod := newEchoProducer(func(*sarama.ProducerMessage) bool { return false }, func(*sarama.ProducerMessage) {})
	p := startPublisher(prod, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer p.Close()
	m := &buffer.Message{Topic: "t", Key: []byte("site-1"), Value: make([]byte, 120)}
	got := make(chan error, 1)
	done := VerdictFunc(func(err error) { got <- err })
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Publish(ctx, m, done); err != nil {
			b.Fatal(err)
		}
		<-got
	}
}
