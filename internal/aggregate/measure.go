package aggregate

import (
	"fmt"
	"runtime"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/vppctl/vpp/proto/vppv1"
)

// TwinMemory measures the heap that the twins of n devices hold (10
// devices per site, one partition), in bytes per device: the live heap
// after a GC with the twins built, minus the live heap before. Readings go
// through the same decode-and-apply path as telemetry records. It runs in
// the calling process and allocates about n × 300 bytes transiently.
func TwinMemory(n int) (float64, error) {
	if n <= 0 {
		return 0, fmt.Errorf("twin memory: devices %d: must be > 0", n)
	}
	// Two collections: the second frees what finalizers and the first
	// left, so other goroutines' garbage does not skew the difference.
	runtime.GC()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	ps := newPartState(0, twinConfig{offlineAfter: 30 * time.Second, reserve: 10, horizon: 15 * time.Minute})
	r := &vppv1.Reading{
		SubstationId: "sub-0001", RegionId: "north", Seq: 1, TsMs: 1_700_000_000_000,
		SocPct: 50, SohPct: 99, PowerKw: 1.5, VoltageV: 400, CurrentA: 3.75, TemperatureC: 25,
		CapacityKwh: 13.5, MaxChargeKw: 5, MaxDischargeKw: 5, Mode: vppv1.Mode_MODE_DISCHARGING,
	}
	var buf []byte
	for i := range n {
		r.SiteId = fmt.Sprintf("site-%06d", i/10)
		r.DeviceId = fmt.Sprintf("dev-%07d", i)
		var err error
		buf, err = proto.MarshalOptions{}.MarshalAppend(buf[:0], r)
		if err != nil {
			return 0, fmt.Errorf("twin memory: marshal: %w", err)
		}
		ps.record(int64(i), buf, r.TsMs)
		if len(ps.dirty) > 10_000 {
			ps.flushed()
		}
	}
	ps.flushed()
	if ps.devices != n {
		return 0, fmt.Errorf("twin memory: %d twins after %d devices", ps.devices, n)
	}
	runtime.GC()
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(ps)
	return (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / float64(n), nil
}
