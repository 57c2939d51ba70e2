package main

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// startStatus prints line() to w every interval until the returned stop
// function is called. On a terminal it rewrites one line in place;
// otherwise (a pipe, a log file) it prints one line per interval. stop
// waits for the printer to finish and ends the line on a terminal.
func startStatus(w io.Writer, interval time.Duration, line func() string) (stop func()) {
	tty := isTerminal(w)
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
