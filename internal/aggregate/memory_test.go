package aggregate

import "testing"

// BenchmarkTwinMemory reports the heap the twins of 1,000,000 devices hold
// (10 devices per site), as bytes per device after a GC.
func BenchmarkTwinMemory(b *testing.B) {
	const devices = 1_000_000
	for range b.N {
		v, err := TwinMemory(devices)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(v, "bytes/device")
	}
}

// TestTwinMemory checks the measurement on a small fleet: every device is
// held, and the figure is positive and below the size of a decoded
// reading plus its strings.
func TestTwinMemory(t *testing.T) {
	v, err := TwinMemory(20_000)
	if err != nil {
		t.Fatal(err)
	}
	if v <= 0 || v > 1024 {
		t.Fatalf("twin memory %.0f bytes/device", v)
	}
}
