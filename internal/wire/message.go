package wire

import (
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// OpenMessage starts an embedded message (or any length-delimited value)
// at the end of b, whose tag the caller has appended: it reserves guess
// bytes for the length prefix and returns where the value's bytes begin.
// The value is appended next, then CloseMessage writes its length. This
// spares encoders a size pass over what they write.
func OpenMessage(b []byte, guess int) ([]byte, int) {
	for range guess {
		b = append(b, 0)
	}
	return b, len(b)
}

// CloseMessage writes the length of the value that began at start (as
// OpenMessage returned it, with the same guess) into the reserved room,
// moving the value when its length needs another number of bytes than
// guessed, so that the encoding stays the minimal one proto.Marshal
// writes.
func CloseMessage(b []byte, start, guess int) []byte {
	n := len(b) - start
	w := protowire.SizeVarint(uint64(n))
	switch {
	case w > guess:
		b = append(b, make([]byte, w-guess)...)
		copy(b[start+w-guess:], b[start:start+n])
	case w < guess:
		copy(b[start-guess+w:], b[start:start+n])
		b = b[:len(b)-(guess-w)]
	}
	protowire.AppendVarint(b[start-guess:start-guess], uint64(n))
	return b
}

// AppendStringField appends a proto3 string field, left out when empty as
// proto.Marshal leaves it out.
func AppendStringField(b []byte, num protowire.Number, v string) []byte {
	if v == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, v)
}

// AppendVarintField appends a proto3 varint field (uint64, or an int64 or
// int32 converted as protobuf does: uint64(int64(v))), left out when zero.
func AppendVarintField(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// AppendDoubleField appends a proto3 double field, left out when +0 as
// proto.Marshal leaves it out (-0 is written).
func AppendDoubleField(b []byte, num protowire.Number, v float64) []byte {
	if math.Float64bits(v) == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, math.Float64bits(v))
}
