package aggregate

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// holdStream is a telemetry partition for the state-interval tests: busy
// sites (most of the traffic) and quiet ones, with duplicates and gaps.
func holdStream(t *testing.T, n int) [][]byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 11))
	seq := map[string]uint64{}
	out := make([][]byte, 0, n)
	for range n {
		site := rng.IntN(3) // busy
		if rng.IntN(10) < 3 {
			site = 3 + rng.IntN(9) // quiet
		}
		dev := fmt.Sprintf("s%02d-d%d", site, rng.IntN(3))
		switch k := rng.IntN(20); {
		case k == 0 && seq[dev] > 0: // a duplicate: the same seq again
		case k == 1:
			seq[dev] += 2 // a gap
		default:
			seq[dev]++
		}
		out = append(out, mustMarshal(t, reading(fmt.Sprintf("s%02d", site), dev, seq[dev], float64(seq[dev]%17))))
	}
	return out
}

func holdNow(off int) int64 { return 1_000_000 + int64(off) }

// holdOwner applies records [0, end) as a partition's owner does, with a
// capture every captureEvery records, and returns the state records it
// published, in order.
func holdOwner(t *testing.T, ps *partState, recs [][]byte, end, captureEvery int) []stateRecord {
	t.Helper()
	var log []stateRecord
	for off := range end {
		ps.record(int64(off), recs[off], holdNow(off))
		if (off+1)%captureEvery != 0 {
			continue
		}
		ps.beginCapture(false)
		if !ps.pending() {
			continue
		}
		out, err := ps.flushRecords(holdNow(off), 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range out {
			log = append(log, stateRecord{key: bytes.Clone(r.key), value: append([]byte(nil), r.value...)})
		}
		ps.take()
		ps.settle(true)
	}
	return log
}

// TestStateIntervalFailoverLosesNothing: with sites held back between
// publications, an owner that dies at any point leaves a state topic from
// which the next owner, resuming at replay_from, ends with exactly the
// twins and counters of an owner that applied every record once.
func TestStateIntervalFailoverLosesNothing(t *testing.T) {
	const n, every = 3000, 7
	recs := holdStream(t, n)
	cfg := testTwin
	cfg.holdCaptures = 5

	ref := newPartState(0, cfg)
	for off := range n {
		ref.record(int64(off), recs[off], holdNow(off))
	}

	for crash := 1; crash < n; crash += 97 {
		a := newPartState(0, cfg)
		log := holdOwner(t, a, recs, crash, every)

		tmp := newPartState(0, cfg)
		for _, r := range log {
			if err := tmp.restore(string(r.key), r.value); err != nil {
				t.Fatal(err)
			}
		}
		b := newPartState(0, cfg)
		b.adopt(tmp)
		from := resumeAt(b.acct)
		if from > b.acct.NextOffset {
			t.Fatalf("crash at %d: resume at %d beyond next_offset %d", crash, from, b.acct.NextOffset)
		}
		// The committed offset may lie below the resume point: start
		// earlier, as a consumer group can.
		for off := max(0, int(from)-5); off < n; off++ {
			if int64(off) < b.acct.NextOffset {
				if int64(off) >= b.pos {
					b.replay(int64(off), recs[off], holdNow(off))
				}
				continue
			}
			b.record(int64(off), recs[off], holdNow(off))
		}
		if msg := sameTwins(ref, b); msg != "" {
			t.Fatalf("crash at %d (resumed at %d of next_offset %d): %s", crash, from, b.acct.NextOffset, msg)
		}
	}
}

// sameTwins reports how the twins and counters of a and b differ, "" when
// they do not.
func sameTwins(a, b *partState) string {
	x, y := a.acct, b.acct
	if x.NextOffset != y.NextOffset || x.Consumed != y.Consumed || x.Applied != y.Applied || x.Duplicates != y.Duplicates || x.Gaps != y.Gaps || x.Undecodable != y.Undecodable {
		return fmt.Sprintf("counters %v, want %v", y, x)
	}
	if a.devices != b.devices || len(a.sites) != len(b.sites) {
		return fmt.Sprintf("%d devices in %d sites, want %d in %d", b.devices, len(b.sites), a.devices, len(a.sites))
	}
	for id, sa := range a.sites {
		sb := b.sites[id]
		if sb == nil || len(sa.devices) != len(sb.devices) {
			return fmt.Sprintf("site %s differs", id)
		}
		for i := range sa.devices {
			if da, db := fmt.Sprint(sa.devices[i]), fmt.Sprint(sb.devices[i]); da != db {
				return fmt.Sprintf("site %s device %d: %s, want %s", id, i, db, da)
			}
		}
	}
	return ""
}

// TestStateIntervalPublishesBusySitesOncePerInterval: a site changed at
// every capture is written once per holdCaptures captures, a quiet site's
// change at the next capture, and the last capture of a claim writes what
// is held.
func TestStateIntervalPublishesBusySitesOncePerInterval(t *testing.T) {
	cfg := testTwin
	cfg.holdCaptures = 5
	ps := newPartState(0, cfg)
	writes := map[string][]uint32{} // site → captures that wrote it
	capture := func(all bool) {
		ps.beginCapture(all)
		if !ps.pending() {
			return
		}
		out, err := ps.flushRecords(1000, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range out {
			if id, ok := strings.CutPrefix(string(r.key), sitePrefix); ok {
				writes[id] = append(writes[id], ps.captures)
			}
		}
		ps.take()
		ps.settle(true)
	}
	off := int64(0)
	apply := func(site string, seq uint64) {
		ps.record(off, mustMarshal(t, reading(site, site+"-d", seq, 1)), 1000)
		off++
	}
	for c := uint64(1); c <= 20; c++ {
		apply("busy", c)
		if c == 8 {
			apply("quiet", 1)
		}
		capture(false)
	}
	if got, want := fmt.Sprint(writes["busy"]), "[1 6 11 16]"; got != want {
		t.Errorf("busy site written at captures %s, want %s", got, want)
	}
	if got, want := fmt.Sprint(writes["quiet"]), "[8]"; got != want {
		t.Errorf("quiet site written at captures %s, want %s", got, want)
	}
	// Captures 17 to 20 changed the busy site again: held, then written by
	// the claim's last capture, which leaves nothing to replay.
	capture(true)
	if got, want := fmt.Sprint(writes["busy"]), "[1 6 11 16 21]"; got != want {
		t.Errorf("after the last capture, busy site written at %s, want %s", got, want)
	}
	if ps.acct.ReplayFrom != ps.acct.NextOffset {
		t.Errorf("replay_from %d after the last capture, want next_offset %d", ps.acct.ReplayFrom, ps.acct.NextOffset)
	}
}

// BenchmarkCapture times one flush's capture (held sites due, encode the
// dirty ones, take, settle) after readings of 100 sites not changed for
// longer than the state interval (10 flushes), in partitions of two sizes:
// it costs the sites changed, not the partition's sites, so the two agree.
func BenchmarkCapture(b *testing.B) {
	for _, devices := range []int{10_000, 200_000} {
		b.Run(fmt.Sprintf("devices=%d", devices), func(b *testing.B) {
			cfg := testTwin
			cfg.holdCaptures = 10
			ps := newPartState(0, cfg)
			sites := devices / 5
			for i := range devices {
				site := fmt.Sprintf("s%d", i/5)
				ps.record(int64(i), mustMarshal(b, reading(site, fmt.Sprintf("%s-d%d", site, i%5), 1, 1.5)), 1000)
			}
			// Every site's next reading, made beforehand.
			next := make([][]byte, sites)
			for i := range next {
				site := fmt.Sprintf("s%d", i)
				next[i] = mustMarshal(b, reading(site, site+"-d0", 2, 1.5))
			}
			// The fleet's first publication, before the timed captures.
			ps.beginCapture(true)
			if _, err := ps.flushRecords(1000, 0); err != nil {
				b.Fatal(err)
			}
			ps.take()
			ps.settle(true)
			off, k := int64(devices), 0
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				b.StopTimer()
				for range 100 {
					ps.record(off, next[k%sites], 1000) // a duplicate after the first round: still a change of the site
					off, k = off+1, k+1
				}
				b.StartTimer()
				ps.beginCapture(false)
				if _, err := ps.flushRecords(1000, 0); err != nil {
					b.Fatal(err)
				}
				ps.take()
				ps.settle(true)
			}
		})
	}
}
