package aggregate

import (
	"fmt"
	"runtime"
	"testing"

	"google.golang.org/protobuf/proto"
)

// BenchmarkTwinMemory reports the heap the twins of 1,000,000 devices hold
// (10 devices per site), as bytes per device after a GC: readings go
// through the same decode-and-apply path as telemetry records.
func BenchmarkTwinMemory(b *testing.B) {
	const devices = 1_000_000
	for range b.N {
		b.StopTimer()
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		b.StartTimer()
		ps := newPartState(0, testTwin)
		for i := range devices {
			r := reading(fmt.Sprintf("site-%06d", i/10), fmt.Sprintf("dev-%07d", i), 1, 1)
			v, err := proto.Marshal(r)
			if err != nil {
				b.Fatal(err)
			}
			ps.record(int64(i), v, 0)
			if len(ps.dirty) > 10_000 {
				ps.flushed()
			}
		}
		ps.flushed()
		b.StopTimer()
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/devices, "bytes/device")
		runtime.KeepAlive(ps)
		b.StartTimer()
	}
}
