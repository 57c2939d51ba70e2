package smallmap

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestModel: random puts, gets and deletes agree with a plain
// map, across the move from the slices into the map and back to empty.
func TestModel(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for round := range 50 {
		var x Map[int]
		model := map[string]int{}
		keys := 2 + r.IntN(3*MaxFew)
		for step := range 400 {
			k := fmt.Sprintf("k%d", r.IntN(keys))
			switch r.IntN(4) {
			case 0, 1:
				x.Put(k, step)
				model[k] = step
			case 2:
				x.Delete(k)
				delete(model, k)
			case 3:
				if round%2 == 0 {
					x.Clear()
				} else {
					x.Release()
				}
				clear(model)
			}
			if x.Len() != len(model) {
				t.Fatalf("round %d step %d: len %d, want %d", round, step, x.Len(), len(model))
			}
			for i := range keys {
				k := fmt.Sprintf("k%d", i)
				want, wok := model[k]
				got, ok := x.Get(k)
				gotb, okb := x.GetBytes([]byte(k))
				if ok != wok || got != want || okb != wok || gotb != want {
					t.Fatalf("round %d step %d: %s = %d,%v (bytes %d,%v), want %d,%v", round, step, k, got, ok, gotb, okb, want, wok)
				}
			}
			if few := x.Few(); !x.Mapped() && len(few) != len(model) {
				t.Fatalf("round %d step %d: Few has %d values, want %d", round, step, len(few), len(model))
			}
		}
	}
}

// TestMovesToMap: the index keeps MaxFew entries without
// a map and makes one for the next.
func TestMovesToMap(t *testing.T) {
	var x Map[*int]
	for i := range MaxFew {
		x.Put(fmt.Sprint(i), new(i))
	}
	if x.Mapped() || len(x.Few()) != MaxFew {
		t.Fatalf("%d entries: mapped %v, few %d", MaxFew, x.Mapped(), len(x.Few()))
	}
	if n := testing.AllocsPerRun(100, func() { x.GetBytes([]byte("3")) }); n != 0 && !raceEnabled {
		t.Fatalf("GetBytes allocates %v times", n)
	}
	x.Put("more", new(-1))
	if !x.Mapped() || x.Few() != nil || x.Len() != MaxFew+1 {
		t.Fatalf("%d entries: mapped %v, few %d, len %d", MaxFew+1, x.Mapped(), len(x.Few()), x.Len())
	}
	if v, ok := x.Get("0"); !ok || *v != 0 {
		t.Fatal("an entry was lost moving into the map")
	}
}
