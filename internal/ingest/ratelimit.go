package ingest

import (
	"hash/maphash"
	"sync"
	"time"
)

// limiterShards splits the bucket table so connections rarely contend.
const limiterShards = 64

// evictScan is how many entries a full shard looks at to pick a victim.
const evictScan = 16

// rateLimiter is a token bucket per device ID: rate readings per second,
// bursts up to burst. It never refuses a reading: reserve takes a token
// for every reading, letting the bucket go into debt, and says how long
// the device must wait until its debt is paid; the connection stops
// reading for that long (see conn.throttle), so the device slows down to
// the rate and no reading is lost to the limit.
//
// Its table holds at most about maxEntries buckets; when a shard is full,
// the least recently used of a few sampled buckets is evicted. Evicting
// errs on the side of admitting: a device whose bucket was evicted starts
// again with a full one (a bucket in debt was used recently, so it is
// rarely the victim).
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
	// tokens is negative while the device is in debt: it read more than
	// its rate allows, and its connection waits.
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

// reserve takes one token from device's bucket at time nowMS (Unix ms)
// and returns how long the device must wait before its next reading is
// within the rate (0: there was a token).
func (l *rateLimiter) reserve(device string, nowMS int64) time.Duration {
	var ref limiterRef
	return l.reserveRef(&ref, device, nowMS)
}

// reserveRef is reserve for a device whose bucket ref may already hold;
// it sets ref to the bucket it used.
func (l *rateLimiter) reserveRef(ref *limiterRef, device string, nowMS int64) time.Duration {
	if sh := ref.sh; sh != nil {
		sh.mu.Lock()
		if b := ref.b; b.live {
			wait := l.take(b, nowMS)
			sh.mu.Unlock()
			return wait
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

// take refills b up to nowMS and takes one token from it, into debt if
// there is none, and returns the time until the debt is paid. The
// bucket's shard is locked.
func (l *rateLimiter) take(b *bucket, nowMS int64) time.Duration {
	if nowMS > b.lastMS {
		b.tokens = min(l.burst, b.tokens+float64(nowMS-b.lastMS)*l.rate)
		b.lastMS = nowMS
	}
	b.tokens--
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / l.rate * float64(time.Millisecond))
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
