package ingest

import (
	"testing"
	"time"
)

// stuckPub is a publisher whose broker never answers: it holds every
// record and its Close blocks until released, as sarama's does while
// records are in flight to a broker that is down or hung.
type stuckPub struct {
	fakePub
	release chan struct{}
}

func (p *stuckPub) Close() error {
	<-p.release
	return p.fakePub.Close()
}

// TestShutdownWithStuckProducer stops a server whose producer cannot
// close: Serve must still return, bounded by the shutdown timeout and the
// producer close grace, instead of waiting for Kafka forever.
func TestShutdownWithStuckProducer(t *testing.T) {
	pub := &stuckPub{fakePub: fakePub{hold: true}, release: make(chan struct{})}
	defer close(pub.release)
	const timeout = 200 * time.Millisecond
	srv := startServer(t, Config{ShutdownTimeout: timeout}, pub)
	c := dial(t, srv.url)
	c.send(reading("a", "s", 1), reading("a", "s", 2))
	eventually(t, "2 records at the publisher", func() bool { return pub.heldCount() == 2 })

	stopped := make(chan error, 1)
	go func() { stopped <- srv.stop() }()
	// Generous: the bound is timeout + producerCloseGrace plus the
	// connection close linger; a shutdown that waits for the producer
	// never returns at all.
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("Serve returned %v, want nil", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Serve did not return while the producer could not close")
	}
	if got := c.ack("a"); got != 0 {
		t.Fatalf("ack a=%d for readings Kafka never acknowledged", got)
	}
}
