package ingest

import (
	"encoding/binary"

	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers of the ack messages (proto/vpp/v1/telemetry.proto).
const (
	downlinkAckField  protowire.Number = 1 // Downlink.ack
	ackDevicesField   protowire.Number = 1 // Ack.devices
	deviceAckIDField  protowire.Number = 1 // DeviceAck.device_id
	deviceAckSeqField protowire.Number = 2 // DeviceAck.acked_seq
)

// maxAckHeader is room for a Downlink's tag (one byte for field 1) and the
// length of its Ack.
const maxAckHeader = 1 + binary.MaxVarintLen64

// downlinkAckEncoder appends a vpp.v1.Downlink whose body is an Ack, one
// device at a time, straight to a byte slice: the ack writer builds no
// vppv1 messages per flush. The bytes are those proto.Marshal makes of the
// same message (fields in number order, zero values left out).
type downlinkAckEncoder struct {
	at      int // offset of the message being built
	devices int // devices in it so far (0: none is being built)
}

// begin starts a message at the end of b. The Downlink's tag and length
// are written by end, once the Ack's length is known: begin leaves room
// for them.
func (e *downlinkAckEncoder) begin(b []byte) []byte {
	e.at, e.devices = len(b), 0
	return append(b, make([]byte, maxAckHeader)...)
}

// add appends one DeviceAck to the message.
func (e *downlinkAckEncoder) add(b []byte, id string, seq uint64) []byte {
	n := 0
	if id != "" {
		n += protowire.SizeTag(deviceAckIDField) + protowire.SizeBytes(len(id))
	}
	if seq != 0 {
		n += protowire.SizeTag(deviceAckSeqField) + protowire.SizeVarint(seq)
	}
	b = protowire.AppendTag(b, ackDevicesField, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(n))
	if id != "" {
		b = protowire.AppendTag(b, deviceAckIDField, protowire.BytesType)
		b = protowire.AppendString(b, id)
	}
	if seq != 0 {
		b = protowire.AppendTag(b, deviceAckSeqField, protowire.VarintType)
		b = protowire.AppendVarint(b, seq)
	}
	e.devices++
	return b
}

// end completes the message: it writes the Downlink's tag and the Ack's
// length and moves the Ack right behind them.
func (e *downlinkAckEncoder) end(b []byte) []byte {
	body := len(b) - (e.at + maxAckHeader)
	var hdr [maxAckHeader]byte
	h := protowire.AppendTag(hdr[:0], downlinkAckField, protowire.BytesType)
	h = protowire.AppendVarint(h, uint64(body))
	n := copy(b[e.at:], h)
	n += copy(b[e.at+n:], b[e.at+maxAckHeader:])
	e.devices = 0
	return b[:e.at+n]
}
