package wire

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// Fields calls fn for every field of the serialized message b, in order:
// a varint field with its value (s nil), a length-delimited field with its
// bytes (v 0; s is a sub-slice of b), other wire types with neither. It
// returns fn's first error, or an error for malformed input; it does not
// allocate.
func Fields(b []byte, fn func(num protowire.Number, typ protowire.Type, v uint64, s []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("tag: %w", protowire.ParseError(n))
		}
		b = b[n:]
		var v uint64
		var s []byte
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			s, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := fn(num, typ, v, s); err != nil {
			return err
		}
	}
	return nil
}
