package testutil

// Missing tools. On a developer's machine a missing tool skips the test;
// under CI (CI=true) it fails it: CI installs every tool the tests use, so
// a skip there would hide a test that never ran.

import (
	"os"
	"os/exec"
	"strconv"
	"testing"
)

// CI reports whether the tests run under CI: the CI environment variable
// is set to true (as CI services and .ci/run set it).
func CI() bool {
	ci, _ := strconv.ParseBool(os.Getenv("CI"))
	return ci
}

// Missing skips the test with why, or fails it under CI.
func Missing(t testing.TB, why string) {
	t.Helper()
	if CI() {
		t.Fatalf("%s (CI=true: required)", why)
		return
	}
	t.Skip(why)
}

// RequireTool makes sure the program name is on PATH: when it is not, the
// test is skipped, or fails under CI. install says how to get it (e.g.
// "apt-get install tmux").
func RequireTool(t testing.TB, name, install string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		Missing(t, name+" not installed ("+install+")")
	}
}
