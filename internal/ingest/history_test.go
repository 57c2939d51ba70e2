package ingest

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/vppctl/vpp/proto/vppv1"
)

// TestStatsAlsoGoToHistory checks that every IngestStats record of the stats
// topic is also written, wrapped in a HistoryRecord under the same key, to
// the history topic.
func TestStatsAlsoGoToHistory(t *testing.T) {
	pub := &fakePub{}
	srv := startServer(t, Config{StatsInterval: 20 * time.Millisecond}, pub)
	c := dial(t, srv.url)
	c.send(reading("a", "s", 1), reading("a", "s", 2))
	eventually(t, "history stats with 2 readings", func() bool {
		h := pub.topic("history")
		if len(h) == 0 {
			return false
		}
		var rec vppv1.HistoryRecord
		if err := proto.Unmarshal(h[len(h)-1].Value, &rec); err != nil {
			t.Fatalf("history record: %v", err)
		}
		return rec.GetIngest().GetReceived() == 2 && rec.GetIngest().GetPublished() == 2
	})
	hist, stats := pub.topic("history"), pub.topic("stats")
	if len(hist) == 0 || len(stats) == 0 {
		t.Fatalf("%d history and %d stats records", len(hist), len(stats))
	}
	for _, m := range hist {
		if string(m.Key) != "ingest/test" || m.Topic != "test.history" {
			t.Fatalf("history record topic %s key %q", m.Topic, m.Key)
		}
		var rec vppv1.HistoryRecord
		if err := proto.Unmarshal(m.Value, &rec); err != nil {
			t.Fatal(err)
		}
		if rec.GetIngest().GetInstance() != "test" || rec.GetIngest().GetUpdatedMs() == 0 {
			t.Fatalf("history record %v", &rec)
		}
	}
	// The first history record is the first stats record.
	var first vppv1.IngestStats
	if err := proto.Unmarshal(stats[0].Value, &first); err != nil {
		t.Fatal(err)
	}
	var rec vppv1.HistoryRecord
	if err := proto.Unmarshal(hist[0].Value, &rec); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(rec.GetIngest(), &first) {
		t.Fatalf("history %v != stats %v", rec.GetIngest(), &first)
	}
}
