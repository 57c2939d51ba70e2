// Package queue holds the small queueing primitives that ingest's buffers
// and the spool share: a FIFO of pointers that reuses its array, a min-heap
// of sequence numbers and a broadcast notifier. None is safe for concurrent
// use on its own: the owner's mutex guards them.
package queue

// SeqHeap is a binary min-heap of sequence numbers (hand-written:
// container/heap would box every uint64 in an interface).
type SeqHeap []uint64

// Len is the number of sequence numbers held.
func (h SeqHeap) Len() int { return len(h) }

// Min is the smallest sequence number; the heap must not be empty.
func (h SeqHeap) Min() uint64 { return h[0] }

// Push adds v.
func (h *SeqHeap) Push(v uint64) {
	*h = append(*h, v)
	s := *h
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if s[p] <= s[i] {
			break
		}
		s[p], s[i] = s[i], s[p]
		i = p
	}
}

// Pop removes and returns the smallest sequence number; the heap must not
// be empty.
func (h *SeqHeap) Pop() uint64 {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s = s[:last]
	i := 0
	for {
		l := 2*i + 1
		if l >= len(s) {
			break
		}
		m := l
		if r := l + 1; r < len(s) && s[r] < s[l] {
			m = r
		}
		if s[i] <= s[m] {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return top
}

// Notifier wakes every waiter at once. It is not safe for concurrent use:
// the mutex that guards the condition guards the Notifier too.
type Notifier struct{ ch chan struct{} }

// Wait returns a channel closed by the next Broadcast.
func (n *Notifier) Wait() <-chan struct{} {
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

// Broadcast wakes every waiter (and allocates nothing when there is none).
func (n *Notifier) Broadcast() {
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
}

// FIFO is a first-in, first-out queue of pointers that reuses its backing
// array (popped slots are cleared so the garbage collector can free what
// they pointed to). The zero value is an empty queue; it is not safe for
// concurrent use.
type FIFO[T any] struct {
	items []*T
	head  int
}

// Len is the number of queued items.
func (q *FIFO[T]) Len() int { return len(q.items) - q.head }

// Push appends v.
func (q *FIFO[T]) Push(v *T) { q.items = append(q.items, v) }

// Peek returns the oldest item without removing it, or nil.
func (q *FIFO[T]) Peek() *T {
	if q.head == len(q.items) {
		return nil
	}
	return q.items[q.head]
}

// Pop removes and returns the oldest item, or nil.
func (q *FIFO[T]) Pop() *T {
	if q.head == len(q.items) {
		return nil
	}
	v := q.items[q.head]
	q.items[q.head] = nil
	q.head++
	switch {
	case q.head == len(q.items):
		q.items, q.head = q.items[:0], 0
	case q.head > 1024 && q.head*2 > len(q.items):
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	return v
}
