package follow

import (
	"testing"

	"github.com/IBM/sarama"
)

// batch is a record batch from first to last holding records at offsets.
func batch(first, last int64, offsets ...int64) *sarama.Records {
	rb := &sarama.RecordBatch{FirstOffset: first, LastOffsetDelta: int32(last - first)}
	for _, o := range offsets {
		rb.Records = append(rb.Records, &sarama.Record{OffsetDelta: o - first})
	}
	return &sarama.Records{RecordBatch: rb}
}

func TestScanBlock(t *testing.T) {
	control := batch(5, 5, 5)
	control.RecordBatch.Control = true
	partial := func(r *sarama.Records) *sarama.Records {
		r.RecordBatch.PartialTrailingRecord, r.RecordBatch.Records = true, nil
		return r
	}
	legacy := &sarama.Records{MsgSet: &sarama.MessageSet{Messages: []*sarama.MessageBlock{
		{Offset: 2, Msg: &sarama.Message{}}, {Offset: 3, Msg: &sarama.Message{}},
	}}}
	for _, tc := range []struct {
		name              string
		block             *sarama.FetchResponseBlock
		from, mark        int64
		wantFound, wantAt int64
	}{
		{"batch begins before from", &sarama.FetchResponseBlock{RecordsSet: []*sarama.Records{batch(0, 4, 0, 1, 2, 3, 4)}}, 3, 10, 3, 3},
		{"records before from only (compacted)", &sarama.FetchResponseBlock{RecordsSet: []*sarama.Records{batch(0, 4, 0, 1)}}, 3, 5, -1, 5},
		{"a transaction marker", &sarama.FetchResponseBlock{RecordsSet: []*sarama.Records{control}}, 5, 6, -1, 6},
		{"records at the mark and after only", &sarama.FetchResponseBlock{RecordsSet: []*sarama.Records{batch(10, 12, 10, 12)}}, 3, 10, -1, 13},
		{"a second batch holds one", &sarama.FetchResponseBlock{RecordsSet: []*sarama.Records{batch(0, 3, 0), batch(4, 6, 6)}}, 3, 10, 6, 4},
		{"partial trailing batch: go on from it", &sarama.FetchResponseBlock{RecordsSet: []*sarama.Records{batch(0, 3, 0, 1), partial(batch(4, 9))}}, 3, 10, -1, 4},
		{"partial trailing batch past the mark", &sarama.FetchResponseBlock{RecordsSet: []*sarama.Records{batch(0, 3, 0, 1), partial(batch(10, 19))}}, 3, 10, -1, 20},
		{"partial first batch: records there", &sarama.FetchResponseBlock{RecordsSet: []*sarama.Records{partial(batch(3, 9))}}, 3, 10, 3, 3},
		{"partial answer", &sarama.FetchResponseBlock{Partial: true}, 3, 10, 3, 3},
		{"nothing", &sarama.FetchResponseBlock{}, 3, 10, -1, 3},
		{"legacy message set", &sarama.FetchResponseBlock{RecordsSet: []*sarama.Records{legacy}}, 3, 10, 3, 3},
		{"legacy message set, before from", &sarama.FetchResponseBlock{RecordsSet: []*sarama.Records{legacy}}, 4, 10, -1, 4},
	} {
		found, at := scanBlock(tc.block, tc.from, tc.mark)
		if found != tc.wantFound || (found < 0 && at != tc.wantAt) {
			t.Errorf("%s: found %d, go on at %d; want %d, %d", tc.name, found, at, tc.wantFound, tc.wantAt)
		}
	}
}
