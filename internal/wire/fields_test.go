package wire

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

func TestFields(t *testing.T) {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, "dev-1")
	b = protowire.AppendTag(b, 7, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, 42)
	b = protowire.AppendTag(b, 2, protowire.VarintType)
	b = protowire.AppendVarint(b, 300)
	type field struct {
		num protowire.Number
		typ protowire.Type
		v   uint64
		s   string
	}
	var got []field
	if err := Fields(b, func(num protowire.Number, typ protowire.Type, v uint64, s []byte) error {
		got = append(got, field{num, typ, v, string(s)})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []field{{1, protowire.BytesType, 0, "dev-1"}, {7, protowire.Fixed64Type, 0, ""}, {2, protowire.VarintType, 300, ""}}
	if len(got) != len(want) {
		t.Fatalf("fields %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("field %d = %v, want %v", i, got[i], want[i])
		}
	}
	if err := Fields(b[:len(b)-1], func(protowire.Number, protowire.Type, uint64, []byte) error { return nil }); err == nil {
		t.Error("truncated message accepted")
	}
	stop := errors.New("stop")
	if err := Fields(b, func(protowire.Number, protowire.Type, uint64, []byte) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("Fields = %v, want fn's error", err)
	}
}
