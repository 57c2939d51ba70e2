package aggregate

import (
	"testing"

	"github.com/IBM/sarama"
)

// TestWaiting: waiting takes what is already in the channel, never more
// than maxConsumeBatch in all and never blocking, and reports a closed
// channel after the messages still in it.
func TestWaiting(t *testing.T) {
	msgs := make(chan *sarama.ConsumerMessage, 2*maxConsumeBatch)
	first := &sarama.ConsumerMessage{Offset: 0}
	batch, ok := waiting(msgs, []*sarama.ConsumerMessage{first})
	if !ok || len(batch) != 1 {
		t.Fatalf("empty channel: %d messages, open %v; want 1, true", len(batch), ok)
	}
	for i := range 2*maxConsumeBatch - 1 {
		msgs <- &sarama.ConsumerMessage{Offset: int64(i + 1)}
	}
	batch, ok = waiting(msgs, batch)
	if !ok || len(batch) != maxConsumeBatch {
		t.Fatalf("full channel: %d messages, open %v; want %d, true", len(batch), ok, maxConsumeBatch)
	}
	for i, m := range batch {
		if m.Offset != int64(i) {
			t.Fatalf("message %d has offset %d: out of order", i, m.Offset)
		}
	}
	close(msgs)
	batch, ok = waiting(msgs, batch[:0])
	if !ok || len(batch) != maxConsumeBatch || batch[0].Offset != maxConsumeBatch {
		t.Fatalf("closed channel with messages: %d from offset %d, open %v; want %d from %d, true",
			len(batch), batch[0].Offset, ok, maxConsumeBatch, maxConsumeBatch)
	}
	batch, ok = waiting(msgs, batch[:0])
	if ok || len(batch) != 0 {
		t.Fatalf("closed empty channel: %d messages, open %v; want 0, false", len(batch), ok)
	}
}
