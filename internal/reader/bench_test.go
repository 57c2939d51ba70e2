package reader

import (
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/vppctl/vpp/internal/follow"
	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/proto/vppv1"
)

// BenchmarkFold measures the reader's per-record work: decoding one site
// state record (10 devices) and folding it into a fleet of 10,000 sites /
// 100,000 devices.
func BenchmarkFold(b *testing.B) {
	r, err := New(kafka.Options{Brokers: []string{"127.0.0.1:1"}, Prefix: "bench.", Version: kafka.DefaultVersion}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	const sites = 10_000
	recs := make([][2]follow.Record, sites)
	for i := range sites {
		sub := i % 100
		for v := range 2 {
			s := &vppv1.SiteState{
				SiteId:       fmt.Sprintf("site-%06d", i),
				SubstationId: fmt.Sprintf("sub-%04d", sub),
				RegionId:     fmt.Sprintf("region-%02d", sub%10),
				UpdatedMs:    1_700_000_000_000 + int64(v),
				Partition:    int32(i % 12),
			}
			for d := range 10 {
				s.Devices = append(s.Devices, randomDevice(rng, fmt.Sprintf("dev-%06d-%02d", i, d), uint64(v+1)))
			}
			val, err := proto.Marshal(&vppv1.StateRecord{Body: &vppv1.StateRecord_Site{Site: s}})
			if err != nil {
				b.Fatal(err)
			}
			recs[i][v] = follow.Record{Topic: r.stateTopic, Partition: s.Partition, Key: []byte(SiteKeyPrefix + s.SiteId), Value: val}
		}
		r.apply(recs[i][0])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		rec := recs[i%sites][(i/sites+1)%2]
		rec.Offset = int64(i)
		r.apply(rec)
	}
	if r.skipped != 0 {
		b.Fatalf("%d records skipped", r.skipped)
	}
}
