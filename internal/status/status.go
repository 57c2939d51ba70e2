// Package status is the live one-line status of a long-running command:
// a printer that rewrites one line on a terminal (or prints a line per
// interval to a pipe or a log file), and the rate meter behind the
// "per second" figures of those lines.
//
// The printer owns one goroutine between Start and the stop function it
// returns; a Rate is a plain value owned by the one goroutine that
// observes it (the printer's line function).
package status

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Start prints line() to w every interval until the returned stop function
// is called. On a terminal it rewrites one line in place; otherwise (a
// pipe, a log file) it prints one line per interval. stop waits for the
// printer to finish and, on a terminal, clears the line; calling it again
// does nothing.
func Start(w io.Writer, interval time.Duration, line func() string) (stop func()) {
	tty := IsTerminal(w)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			if tty {
				fmt.Fprint(w, "\r\033[K"+line())
			} else {
				fmt.Fprintln(w, line())
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			wg.Wait()
			if tty {
				fmt.Fprint(w, "\r\033[K")
			}
		})
	}
}

// IsTerminal reports whether w is a character device such as a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Rate measures how fast a counter grows: each Observe returns the
// per-second rate since the previous one. The zero Rate starts from a count
// of 0 at the zero time; NewRate starts from a count of 0 at a given time.
type Rate struct {
	n  uint64
	at time.Time
}

// NewRate returns a Rate whose first Observe measures from a count of 0 at
// start.
func NewRate(start time.Time) Rate { return Rate{at: start} }

// Observe records that the counter stood at n at time now and returns its
// rate per second since the previous observation. It returns 0 when no
// time passed or when the counter went down (a counter that covers what a
// process owns, such as an aggregator's partitions, shrinks when ownership
// moves); either way now and n become the base of the next observation.
func (r *Rate) Observe(n uint64, now time.Time) float64 {
	rate := 0.0
	if dt := now.Sub(r.at).Seconds(); dt > 0 && n >= r.n {
		rate = float64(n-r.n) / dt
	}
	r.n, r.at = n, now
	return rate
}
