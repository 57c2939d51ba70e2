package queue

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestSeqHeapSorts(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h SeqHeap
	var want []uint64
	for range 1000 {
		v := r.Uint64N(500)
		h.Push(v)
		want = append(want, v)
	}
	slices.Sort(want)
	for i, w := range want {
		if h.Min() != w {
			t.Fatalf("min %d at %d, want %d", h.Min(), i, w)
		}
		if got := h.Pop(); got != w {
			t.Fatalf("pop %d at %d, want %d", got, i, w)
		}
	}
	if h.Len() != 0 {
		t.Fatalf("len %d after popping all", h.Len())
	}
}

func TestNotifier(t *testing.T) {
	var n Notifier
	a, b := n.Wait(), n.Wait()
	if a != b {
		t.Fatal("waiters before one broadcast share a channel")
	}
	n.Broadcast()
	<-a
	select {
	case <-n.Wait():
		t.Fatal("a new wait is not closed yet")
	default:
	}
	n.Broadcast()
}

func TestFIFO(t *testing.T) {
	var q FIFO[int]
	if q.Pop() != nil || q.Peek() != nil || q.Len() != 0 {
		t.Fatal("empty queue")
	}
	vals := make([]int, 5000)
	for i := range vals {
		vals[i] = i
	}
	next := 0
	for i := range vals {
		q.Push(&vals[i])
		if i%3 == 2 { // pop one in three while pushing: exercises compaction
			if got := q.Pop(); got == nil || *got != next {
				t.Fatalf("pop %v, want %d", got, next)
			}
			next++
		}
	}
	for q.Len() > 0 {
		if p := q.Peek(); *p != next {
			t.Fatalf("peek %d, want %d", *p, next)
		}
		if got := q.Pop(); *got != next {
			t.Fatalf("pop %d, want %d", *got, next)
		}
		next++
	}
	if next != len(vals) {
		t.Fatalf("popped %d of %d", next, len(vals))
	}
}
