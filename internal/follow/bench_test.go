package follow_test

import (
	"testing"

	"github.com/IBM/sarama"

	"github.com/vppctl/vpp/internal/follow"
)

// BenchmarkApply measures the follower's own per-record work (position and
// catch-up bookkeeping, the hand-over to Apply) over 24 partitions.
func BenchmarkApply(b *testing.B) {
	var n int
	f := follow.New(follow.Config{Topics: []string{"t"}, Apply: func(r follow.Record) { n += len(r.Value) }})
	msgs := make([]*sarama.ConsumerMessage, 24)
	for p := range msgs {
		msgs[p] = &sarama.ConsumerMessage{Topic: "t", Partition: int32(p), Key: []byte("s/site"), Value: []byte("value")}
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		m := msgs[i%len(msgs)]
		m.Offset++
		f.ApplyMessage(m)
	}
	if n == 0 {
		b.Fatal("nothing applied")
	}
}
