package follow

import "github.com/IBM/sarama"

// ApplyMessage runs the per-record path of a session on m, for benchmarks.
func (f *Follower) ApplyMessage(m *sarama.ConsumerMessage) { f.apply(m) }
