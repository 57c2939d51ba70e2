package testutil

import "testing"

func TestCI(t *testing.T) {
	for v, want := range map[string]bool{"": false, "true": true, "1": true, "false": false, "yes": false} {
		t.Setenv("CI", v)
		if got := CI(); got != want {
			t.Errorf("CI=%q: %v, want %v", v, got, want)
		}
	}
}

// fakeTB records how a helper ended a test.
type fakeTB struct {
	testing.TB
	skipped, failed bool
}

func (f *fakeTB) Helper()               {}
func (f *fakeTB) Skip(...any)           { f.skipped = true }
func (f *fakeTB) Fatalf(string, ...any) { f.failed = true }

func TestRequireTool(t *testing.T) {
	const missing = "vpp-no-such-tool-on-path"
	t.Setenv("CI", "")
	f := &fakeTB{}
	RequireTool(f, missing, "nowhere")
	if !f.skipped || f.failed {
		t.Errorf("without CI: skipped %v failed %v, want a skip", f.skipped, f.failed)
	}
	t.Setenv("CI", "true")
	f = &fakeTB{}
	RequireTool(f, missing, "nowhere")
	if f.skipped || !f.failed {
		t.Errorf("CI=true: skipped %v failed %v, want a failure", f.skipped, f.failed)
	}
	f = &fakeTB{}
	RequireTool(f, "go", "the Go toolchain")
	if f.skipped || f.failed {
		t.Errorf("a tool on PATH: skipped %v failed %v", f.skipped, f.failed)
	}
}
