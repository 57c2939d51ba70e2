// Package backoff computes retry delays that double with each consecutive
// failure, from a minimum up to a maximum.
package backoff

import "time"

// Policy is an exponential backoff: the first retry waits Min, each
// further consecutive failure doubles the wait, never beyond Max.
type Policy struct {
	Min, Max time.Duration
}

// Delay is the wait before the retry that follows the n-th consecutive
// failure (n >= 1): Min·2^(n-1), capped at Max. n < 1 is taken as 1.
func (p Policy) Delay(n int) time.Duration {
	if n < 1 {
		n = 1
	}
	d := p.Min
	for i := 1; i < n && d < p.Max; i++ {
		d *= 2
	}
	return min(d, p.Max)
}

// Retry counts consecutive failures under a Policy; the zero value of
// failures starts fresh. It is not safe for concurrent use.
type Retry struct {
	Policy
	failures int
}

// Fail records one more consecutive failure and returns the delay to wait
// before the next attempt.
func (r *Retry) Fail() time.Duration {
	r.failures++
	return r.Policy.Delay(r.failures)
}

// Reset forgets the failures after a success: the next Fail waits Min.
func (r *Retry) Reset() { r.failures = 0 }

// Failures is the number of consecutive failures since the last Reset.
func (r *Retry) Failures() int { return r.failures }
