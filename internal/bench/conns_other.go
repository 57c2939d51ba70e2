//go:build !unix

package bench

// connsFileLimit has no open-file limit to check or raise here: dials
// fail when the system runs out.
func connsFileLimit(int) error { return nil }
