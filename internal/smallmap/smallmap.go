// Package smallmap is a string-keyed map for the few keys most owners
// hold: its first entries live in two slices, searched in order, and only
// more than MaxFew of them make a Go map.
package smallmap

// MaxFew is how many entries a Map keeps in slices before it makes a map.
const MaxFew = 8

// Map maps string keys to values. Its first MaxFew entries
// are kept in two slices and searched in order; one more moves them all
// into a map, which it keeps from then on. Most of ingest's connections
// carry one device, or a small gateway's few: a map would cost each of them
// a few hundred bytes more than the slices, and a search of a few keys
// costs no more than a map lookup. The zero value is empty and ready.
type Map[V any] struct {
	keys []string
	vals []V
	m    map[string]V
}

// Get returns the value of key k.
func (x *Map[V]) Get(k string) (V, bool) {
	if x.m != nil {
		v, ok := x.m[k]
		return v, ok
	}
	for i, key := range x.keys {
		if key == k {
			return x.vals[i], true
		}
	}
	var zero V
	return zero, false
}

// GetBytes is Get for a key as bytes, without allocating.
func (x *Map[V]) GetBytes(b []byte) (V, bool) {
	if x.m != nil {
		v, ok := x.m[string(b)]
		return v, ok
	}
	for i, key := range x.keys {
		if key == string(b) {
			return x.vals[i], true
		}
	}
	var zero V
	return zero, false
}

// Put sets the value of key k.
func (x *Map[V]) Put(k string, v V) {
	if x.m != nil {
		x.m[k] = v
		return
	}
	for i, key := range x.keys {
		if key == k {
			x.vals[i] = v
			return
		}
	}
	if len(x.keys) < MaxFew {
		x.keys = append(x.keys, k)
		x.vals = append(x.vals, v)
		return
	}
	x.m = make(map[string]V, 2*MaxFew)
	for i, key := range x.keys {
		x.m[key] = x.vals[i]
	}
	x.keys, x.vals = nil, nil
	x.m[k] = v
}

// Delete removes key k (the last entry takes its place in the slices).
func (x *Map[V]) Delete(k string) {
	if x.m != nil {
		delete(x.m, k)
		return
	}
	for i, key := range x.keys {
		if key == k {
			last := len(x.keys) - 1
			x.keys[i], x.vals[i] = x.keys[last], x.vals[last]
			var zero V
			x.keys[last], x.vals[last] = "", zero // no reference kept
			x.keys, x.vals = x.keys[:last], x.vals[:last]
			return
		}
	}
}

// Len is the number of entries.
func (x *Map[V]) Len() int {
	if x.m != nil {
		return len(x.m)
	}
	return len(x.keys)
}

// Few returns the values while they are kept in slices (nil once the index
// has a map), in the order they were put, but for deletions. It is valid
// until the index changes.
func (x *Map[V]) Few() []V {
	if x.m != nil {
		return nil
	}
	return x.vals
}

// Mapped reports whether the index has its map.
func (x *Map[V]) Mapped() bool { return x.m != nil }

// Clear removes every entry and keeps the storage for reuse.
func (x *Map[V]) Clear() {
	clear(x.m)
	clear(x.keys)
	clear(x.vals)
	x.keys, x.vals = x.keys[:0], x.vals[:0]
}

// Release removes every entry and lets go of the storage.
func (x *Map[V]) Release() { *x = Map[V]{} }
