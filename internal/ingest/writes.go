package ingest

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// writersPerTick bounds the goroutines one tick of the write loop starts.
// A connection whose peer stops reading blocks its writer until writeWait;
// the others of the tick carry on, and the next tick starts fresh writers,
// so one slow client never stalls the acks of the others.
const writersPerTick = 16

// pingCheck is how often the write loop looks for connections due for a
// ping: a tenth of interval, within [tick, 1s].
func pingCheck(interval, tick time.Duration) time.Duration {
	return min(max(interval/10, tick), max(time.Second, tick))
}

// queueWrite puts c in the write loop's queue for its next tick, unless it
// is queued already. Its ack tracker calls it whenever an ack advances,
// which is for most readings: the load keeps a connection that is queued
// already from writing the flag's cache line every time.
func (s *Server) queueWrite(c *conn) {
	if !c.queued.Load() && c.queued.CompareAndSwap(false, true) {
		s.requeue(c)
	}
}

// requeue puts c, marked queued, back in the queue for the next tick.
func (s *Server) requeue(c *conn) {
	s.wmu.Lock()
	s.wqueue = append(s.wqueue, c)
	s.wmu.Unlock()
}

// writeLoop is the server's only ticker for connection writes: every
// AckInterval it takes the connections whose acks advanced, adds those due
// for a ping (checked every pingCheck), and hands them to writers. An idle
// connection costs it nothing but the ping check. It runs until ctx ends.
func (s *Server) writeLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.AckInterval)
	defer t.Stop()
	every := pingCheck(s.cfg.PingInterval, s.cfg.AckInterval)
	nextCheck := time.Now().Add(every)
	for {
		var now time.Time
		select {
		case <-ctx.Done():
			s.writers.Wait()
			return
		case now = <-t.C:
		}
		s.wmu.Lock()
		batch := s.wqueue
		s.wqueue = nil
		s.wmu.Unlock()
		if !now.Before(nextCheck) {
			batch = s.duePings(batch, now)
			nextCheck = now.Add(every)
		}
		s.startWriters(batch, now)
	}
}

// duePings appends to batch the connections due for a ping that are not
// queued already, and marks them queued.
func (s *Server) duePings(batch []*conn, now time.Time) []*conn {
	ns := now.UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if ns >= c.nextPing.Load() && c.queued.CompareAndSwap(false, true) {
			batch = append(batch, c)
		}
	}
	return batch
}

// startWriters writes to the connections of batch from up to
// writersPerTick new goroutines, which take them in turn; it does not wait
// for them.
func (s *Server) startWriters(batch []*conn, now time.Time) {
	if len(batch) == 0 {
		return
	}
	next := new(atomic.Int64)
	n := min(len(batch), writersPerTick)
	s.writers.Add(n)
	for range n {
		go func() {
			defer s.writers.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(batch) {
					return
				}
				s.write(batch[i], now)
			}
		}()
	}
}

// write flushes c's acks and pings c when it is due. A connection whose
// previous write is still in progress is skipped and stays queued for the
// next tick; one whose writes stopped (it is closing) is dropped.
func (s *Server) write(c *conn, now time.Time) {
	if !c.wmu.TryLock() {
		s.requeue(c)
		return
	}
	defer c.wmu.Unlock()
	if c.wstopped {
		return
	}
	// Unqueued before collecting: an ack that advances from here on
	// queues the connection again.
	c.queued.Store(false)
	if err := c.flushAcks(); err != nil {
		c.log.Debug("write acks", "err", err)
		c.abort() // the read loop notices, paused or not
		return
	}
	if err := c.flushDownlinks(); err != nil {
		c.log.Debug("write setpoints", "err", err)
		c.abort()
		return
	}
	if now.UnixNano() >= c.nextPing.Load() {
		c.nextPing.Store(now.Add(s.cfg.PingInterval).UnixNano())
		c.acks.trim()
		if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeWait)); err != nil {
			c.log.Debug("write ping", "err", err)
			c.abort()
		}
	}
}
