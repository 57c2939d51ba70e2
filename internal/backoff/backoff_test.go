package backoff

import (
	"testing"
	"time"
)

func TestDelayDoublesToMax(t *testing.T) {
	p := Policy{Min: 250 * time.Millisecond, Max: 10 * time.Second}
	want := []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	for i, w := range want {
		if got := p.Delay(i + 1); got != w {
			t.Errorf("Delay(%d) = %v, want %v", i+1, got, w)
		}
	}
	if got := p.Delay(0); got != p.Min {
		t.Errorf("Delay(0) = %v, want Min", got)
	}
	if got := p.Delay(1 << 20); got != p.Max {
		t.Errorf("Delay(huge) = %v, want Max (no overflow)", got)
	}
}

func TestRetryResets(t *testing.T) {
	r := Retry{Policy: Policy{Min: 100 * time.Millisecond, Max: 5 * time.Second}}
	if d := r.Fail(); d != 100*time.Millisecond {
		t.Fatalf("first Fail = %v", d)
	}
	if d := r.Fail(); d != 200*time.Millisecond {
		t.Fatalf("second Fail = %v", d)
	}
	if r.Failures() != 2 {
		t.Fatalf("Failures = %d", r.Failures())
	}
	r.Reset()
	if d := r.Fail(); d != 100*time.Millisecond {
		t.Fatalf("Fail after Reset = %v", d)
	}
}
