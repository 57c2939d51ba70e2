package ingest

import (
	"hash/maphash"
	"math/bits"
	"sync"
	"time"
)

// limiterShards splits the bucket table so connections rarely contend.
const limiterShards = 64

// limiterWays is the buckets of one set: a device's bucket is in the set
// its ID hashes to, at any of its ways.
const limiterWays = 8

// rateLimiter is a token bucket per device ID: rate readings per second,
// bursts up to burst. It never refuses a reading: reserve takes a token
// for every reading, letting the bucket go into debt, and says how long
// the device must wait until its debt is paid; the connection stops
// reading for that long (see conn.throttle), so the device slows down to
// the rate and no reading is lost to the limit.
//
// Its table is fixed when it is made, about maxEntries buckets in sets of
// limiterWays, and holds no pointers: a reading costs a hash of its device
// ID (once per device of a connection, see devEntry.hash), a lock and a
// look at one set, however many devices the server has seen. A bucket is
// known by the 64-bit hash of its device's ID (with a seed of the
// process, so nobody can pick IDs that share one). A bucket that refilled
// to its burst says nothing a fresh one would not: its slot is free for
// another device at no loss. Only when every bucket of a set still
// carries a debt or a used burst is one of them given up — the one
// closest to full — and counted as evicted; that device starts again
// with a full bucket. To make the bucket of a device that exceeds its
// rate go, its set must fill with devices that exceed theirs too: at the
// default rate a bucket is full again 10 ms after a reading within its
// rate, so a fleet reading within its rates keeps only a few buckets
// busy.
type rateLimiter struct {
	rate      float64 // tokens per millisecond
	burst     float64
	seed      maphash.Seed
	setMask   uint64 // sets per shard - 1
	shards    [limiterShards]limiterShard
	shardSets int
}

type limiterShard struct {
	mu      sync.Mutex
	sets    []limiterSet
	evicted uint64
	_       [40]byte // a shard's lock to a cache line of its own
}

// limiterSet is limiterWays buckets. tag is the hash of the bucket's
// device (0: empty); tokens is negative while the device is in debt (it
// read more than its rate allows, and its connection waits); last is
// when the bucket was last refilled (Unix ms).
type limiterSet struct {
	tag    [limiterWays]uint64
	tokens [limiterWays]float64
	last   [limiterWays]int64
}

// newRateLimiter returns a limiter of perSecond readings per device with
// bursts of burst, tracking about maxEntries devices (rounded up to a
// power of two, at least limiterShards·limiterWays).
func newRateLimiter(perSecond float64, burst, maxEntries int) *rateLimiter {
	return newRateLimiterSeed(perSecond, burst, maxEntries, maphash.MakeSeed())
}

// newRateLimiterSeed is newRateLimiter hashing device IDs with seed.
func newRateLimiterSeed(perSecond float64, burst, maxEntries int, seed maphash.Seed) *rateLimiter {
	perShard := max(1, (maxEntries+limiterShards*limiterWays-1)/(limiterShards*limiterWays))
	perShard = 1 << bits.Len(uint(perShard-1)) // a power of two
	l := &rateLimiter{
		rate:      perSecond / 1000,
		burst:     float64(burst),
		seed:      seed,
		setMask:   uint64(perShard - 1),
		shardSets: perShard,
	}
	for i := range l.shards {
		l.shards[i].sets = make([]limiterSet, perShard)
	}
	return l
}

// hash returns the key of device in the table (never 0, which marks an
// empty slot).
func (l *rateLimiter) hash(device string) uint64 {
	return max(maphash.String(l.seed, device), 1)
}

// reserve takes one token from device's bucket at time nowMS (Unix ms)
// and returns how long the device must wait before its next reading is
// within the rate (0: there was a token).
func (l *rateLimiter) reserve(device string, nowMS int64) time.Duration {
	return l.reserveHash(l.hash(device), nowMS)
}

// reserveHash is reserve for the device whose hash (l.hash) is h.
func (l *rateLimiter) reserveHash(h uint64, nowMS int64) time.Duration {
	sh := &l.shards[h%limiterShards]
	sh.mu.Lock()
	set := &sh.sets[(h/limiterShards)&l.setMask]
	w := -1
	for i, t := range set.tag {
		if t == h {
			w = i
			break
		}
	}
	if w < 0 {
		w = l.claim(sh, set, h, nowMS)
	}
	wait := l.take(set, w, nowMS)
	sh.mu.Unlock()
	return wait
}

// claim gives h a full bucket in set, in an empty slot or one whose bucket
// refilled to its burst by nowMS; when there is none, in that of the
// bucket closest to full, which is counted as evicted. sh.mu is held.
func (l *rateLimiter) claim(sh *limiterShard, set *limiterSet, h uint64, nowMS int64) int {
	w, most := 0, -1.0
	for i, t := range set.tag {
		if t == 0 {
			w, most = i, l.burst
			break
		}
		if tk := l.refilled(set, i, nowMS); tk > most {
			w, most = i, tk
			if tk >= l.burst {
				break
			}
		}
	}
	if most < l.burst {
		sh.evicted++
	}
	set.tag[w], set.tokens[w], set.last[w] = h, l.burst, nowMS
	return w
}

// refilled returns the tokens of bucket w of set at nowMS.
func (l *rateLimiter) refilled(set *limiterSet, w int, nowMS int64) float64 {
	tk := set.tokens[w]
	if nowMS > set.last[w] {
		tk = min(l.burst, tk+float64(nowMS-set.last[w])*l.rate)
	}
	return tk
}

// take refills bucket w of set up to nowMS and takes one token from it,
// into debt if there is none, and returns the time until the debt is
// paid. The set's shard is locked.
func (l *rateLimiter) take(set *limiterSet, w int, nowMS int64) time.Duration {
	tk := l.refilled(set, w, nowMS) - 1
	set.tokens[w] = tk
	set.last[w] = max(set.last[w], nowMS)
	if tk >= 0 {
		return 0
	}
	return time.Duration(-tk / l.rate * float64(time.Millisecond))
}

// size returns the buckets that hold something a fresh one would not (not
// refilled to the burst at nowMS) and the buckets evicted so far. It
// looks at every bucket (about 0.4 ms for the default table): for the
// stats of every StatsInterval, not per reading.
func (l *rateLimiter) size(nowMS int64) (entries int, evicted uint64) {
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		for s := range sh.sets {
			set := &sh.sets[s]
			for w, t := range set.tag {
				if t != 0 && l.refilled(set, w, nowMS) < l.burst {
					entries++
				}
			}
		}
		evicted += sh.evicted
		sh.mu.Unlock()
	}
	return entries, evicted
}

// capacity is the buckets the table holds.
func (l *rateLimiter) capacity() int { return limiterShards * l.shardSets * limiterWays }
