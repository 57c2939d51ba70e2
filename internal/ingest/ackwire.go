package ingest

import (
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/vppctl/vpp/internal/wire"
)

// Field numbers of the ack messages (proto/vpp/v1/telemetry.proto).
const (
	downlinkAckField  protowire.Number = 1 // Downlink.ack
	ackDevicesField   protowire.Number = 1 // Ack.devices
	deviceAckIDField  protowire.Number = 1 // DeviceAck.device_id
	deviceAckSeqField protowire.Number = 2 // DeviceAck.acked_seq
)

// ackLenGuess is the room begin reserves for an Ack's length: three bytes
// cover the up to 1,000 devices of a message with IDs below 100 bytes.
const ackLenGuess = 3

// downlinkAckEncoder appends a vpp.v1.Downlink whose body is an Ack, one
// device at a time, straight to a byte slice: the ack writer builds no
// vppv1 messages per flush. The bytes are those proto.Marshal makes of the
// same message (fields in number order, zero values left out).
type downlinkAckEncoder struct {
	at      int // offset of the Ack being built
	devices int // devices in it so far (0: none is being built)
}

// begin starts a message at the end of b; end writes the Ack's length.
func (e *downlinkAckEncoder) begin(b []byte) []byte {
	e.devices = 0
	b = protowire.AppendTag(b, downlinkAckField, protowire.BytesType)
	b, e.at = wire.OpenMessage(b, ackLenGuess)
	return b
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

// end completes the message: it writes the Ack's length.
func (e *downlinkAckEncoder) end(b []byte) []byte {
	e.devices = 0
	return wire.CloseMessage(b, e.at, ackLenGuess)
}
