package qutil

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
