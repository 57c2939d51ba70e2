package ingest

import (
	"hash/maphash"
	"sync"
)

// limiterShards splits the bucket table so connections rarely contend.
const limiterShards = 64

// evictScan is how many entries a full shard looks at to pick a victim.
const evictScan = 16

// rateLimiter is a token bucket per device ID: rate readings per second,
// bursts up to burst. Its table holds at most about maxEntries buckets;
// when a shard is full, the least recently used of a few sampled buckets
// is evicted. Evicting errs on the side of admitting: a device whose
// bucket was evicted starts again with a full one.
type rateLimiter struct {
	rate     float64 // tokens per millisecond
	burst    float64
	perShard int
	seed     maphash.Seed
	shards   [limiterShards]limiterShard
}

type limiterShard struct {
	mu      sync.Mutex
	buckets map[string]*bucket
	evicted uint64
}

type bucket struct {
	tokens float64
	lastMS int64
	// live is true while the bucket is in its shard's table: a
	// limiterRef to an evicted bucket must look the device up again.
	live bool
}

// limiterRef is a connection's reference to a device's bucket, so that the
// device's next readings find it without hashing and looking up its ID.
type limiterRef struct {
	sh *limiterShard
	b  *bucket
}

// newRateLimiter returns a limiter of perSecond readings per device with
// bursts of burst, tracking at most maxEntries devices.
func newRateLimiter(perSecond float64, burst, maxEntries int) *rateLimiter {
	l := &rateLimiter{
		rate:     perSecond / 1000,
		burst:    float64(burst),
		perShard: max(1, maxEntries/limiterShards),
		seed:     maphash.MakeSeed(),
	}
	for i := range l.shards {
		l.shards[i].buckets = make(map[string]*bucket)
	}
	return l
}

// allow takes one token from device's bucket at time nowMS (Unix ms) and
// reports whether there was one.
func (l *rateLimiter) allow(device string, nowMS int64) bool {
	var ref limiterRef
	return l.allowRef(&ref, device, nowMS)
}

// allowRef is allow for a device whose bucket ref may already hold; it
// sets ref to the bucket it used.
func (l *rateLimiter) allowRef(ref *limiterRef, device string, nowMS int64) bool {
	if sh := ref.sh; sh != nil {
		sh.mu.Lock()
		if b := ref.b; b.live {
			ok := l.take(b, nowMS)
			sh.mu.Unlock()
			return ok
		}
		sh.mu.Unlock()
	}
	sh := &l.shards[maphash.String(l.seed, device)%limiterShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	b := sh.buckets[device]
	if b == nil {
		if len(sh.buckets) >= l.perShard {
			sh.evict()
		}
		b = &bucket{tokens: l.burst, lastMS: nowMS, live: true}
		sh.buckets[device] = b
	}
	ref.sh, ref.b = sh, b
	return l.take(b, nowMS)
}

// take refills b up to nowMS and takes one token from it, if there is
// one. The bucket's shard is locked.
func (l *rateLimiter) take(b *bucket, nowMS int64) bool {
	if nowMS > b.lastMS {
		b.tokens = min(l.burst, b.tokens+float64(nowMS-b.lastMS)*l.rate)
		b.lastMS = nowMS
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// evict removes the least recently used of up to evictScan buckets (map
// iteration order is random, so this samples). sh.mu is held.
func (sh *limiterShard) evict() {
	var victim string
	oldest := int64(1<<63 - 1)
	n := 0
	for k, b := range sh.buckets {
		if b.lastMS < oldest {
			victim, oldest = k, b.lastMS
		}
		if n++; n >= evictScan {
			break
		}
	}
	if b := sh.buckets[victim]; b != nil {
		b.live = false
	}
	delete(sh.buckets, victim)
	sh.evicted++
}

// size returns the buckets held and the evictions so far.
func (l *rateLimiter) size() (entries int, evicted uint64) {
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		entries += len(sh.buckets)
		evicted += sh.evicted
		sh.mu.Unlock()
	}
	return entries, evicted
}
