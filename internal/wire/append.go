package wire

import (
	"encoding/binary"
	"math"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/vppctl/vpp/proto/vppv1"
)

// Tags of the fields of vpp.v1.Reading, as protowire.AppendTag encodes
// them: one byte for fields 1..15, two for fields 16 and 17.
const (
	tagDeviceID       = fieldDeviceID<<3 | byte(protowire.BytesType)
	tagSiteID         = fieldSiteID<<3 | byte(protowire.BytesType)
	tagSubstationID   = fieldSubstationID<<3 | byte(protowire.BytesType)
	tagRegionID       = fieldRegionID<<3 | byte(protowire.BytesType)
	tagSeq            = fieldSeq<<3 | byte(protowire.VarintType)
	tagTsMs           = fieldTsMs<<3 | byte(protowire.VarintType)
	tagSocPct         = fieldSocPct<<3 | byte(protowire.Fixed64Type)
	tagSohPct         = fieldSohPct<<3 | byte(protowire.Fixed64Type)
	tagPowerKw        = fieldPowerKw<<3 | byte(protowire.Fixed64Type)
	tagVoltageV       = fieldVoltageV<<3 | byte(protowire.Fixed64Type)
	tagCurrentA       = fieldCurrentA<<3 | byte(protowire.Fixed64Type)
	tagTemperatureC   = fieldTemperatureC<<3 | byte(protowire.Fixed64Type)
	tagCapacityKwh    = fieldCapacityKwh<<3 | byte(protowire.Fixed64Type)
	tagMaxChargeKw    = fieldMaxChargeKw<<3 | byte(protowire.Fixed64Type)
	tagMaxDischargeKw = fieldMaxDischargeKw<<3 | byte(protowire.Fixed64Type)
	tagMode           = fieldMode<<3 | uint16(protowire.VarintType)   // two bytes
	tagAlarms         = fieldAlarms<<3 | uint16(protowire.VarintType) // two bytes
	tagSetpointID     = fieldSetpointID<<3 | uint16(protowire.BytesType)
	tagSetpointSeq    = fieldSetpointSeq<<3 | uint16(protowire.VarintType)
	tagSetpointKw     = fieldSetpointKw<<3 | uint16(protowire.Fixed64Type)
	tagSetpointState  = fieldSetpointState<<3 | uint16(protowire.VarintType)
	tagSetpointReason = fieldSetpointReason<<3 | uint16(protowire.VarintType)
)

// AppendReading appends the protobuf encoding of r to b and returns the
// extended slice: the bytes proto.Marshal produces for r, without its
// reflection and size pass, so that the simulator can serialize a reading
// per device per tick cheaply. Like proto.Marshal it writes the fields in
// ascending number, leaves out proto3 zero values (but not -0.0, whose
// sign bit it keeps), and appends r's unknown fields last; a nil r appends
// nothing.
//
// Unlike proto.Marshal it does not validate the IDs: an ID that is not
// valid UTF-8 (which proto.Marshal refuses) is written as it is.
func AppendReading(b []byte, r *vppv1.Reading) []byte {
	if r == nil {
		return b
	}
	b = appendString(b, tagDeviceID, r.DeviceId)
	b = appendString(b, tagSiteID, r.SiteId)
	b = appendString(b, tagSubstationID, r.SubstationId)
	b = appendString(b, tagRegionID, r.RegionId)
	if r.Seq != 0 {
		b = protowire.AppendVarint(append(b, tagSeq), r.Seq)
	}
	if r.TsMs != 0 {
		b = protowire.AppendVarint(append(b, tagTsMs), uint64(r.TsMs))
	}
	b = appendDouble(b, tagSocPct, r.SocPct)
	b = appendDouble(b, tagSohPct, r.SohPct)
	b = appendDouble(b, tagPowerKw, r.PowerKw)
	b = appendDouble(b, tagVoltageV, r.VoltageV)
	b = appendDouble(b, tagCurrentA, r.CurrentA)
	b = appendDouble(b, tagTemperatureC, r.TemperatureC)
	b = appendDouble(b, tagCapacityKwh, r.CapacityKwh)
	b = appendDouble(b, tagMaxChargeKw, r.MaxChargeKw)
	b = appendDouble(b, tagMaxDischargeKw, r.MaxDischargeKw)
	if r.Mode != 0 {
		// An enum is an int32 on the wire: negative values take 10 bytes.
		b = append(b, byte(tagMode)|0x80, byte(tagMode>>7))
		b = protowire.AppendVarint(b, uint64(int64(r.Mode)))
	}
	if r.Alarms != 0 {
		b = append(b, byte(tagAlarms)|0x80, byte(tagAlarms>>7))
		b = protowire.AppendVarint(b, uint64(r.Alarms))
	}
	if len(r.SetpointId) != 0 {
		b = append(b, byte(tagSetpointID)|0x80, byte(tagSetpointID>>7))
		b = protowire.AppendString(b, r.SetpointId)
	}
	if r.SetpointSeq != 0 {
		b = append(b, byte(tagSetpointSeq)|0x80, byte(tagSetpointSeq>>7))
		b = protowire.AppendVarint(b, r.SetpointSeq)
	}
	if u := math.Float64bits(r.SetpointKw); u != 0 {
		b = append(b, byte(tagSetpointKw)|0x80, byte(tagSetpointKw>>7))
		b = binary.LittleEndian.AppendUint64(b, u)
	}
	if r.SetpointState != 0 {
		b = append(b, byte(tagSetpointState)|0x80, byte(tagSetpointState>>7))
		b = protowire.AppendVarint(b, uint64(int64(r.SetpointState)))
	}
	if r.SetpointReason != 0 {
		b = append(b, byte(tagSetpointReason)|0x80, byte(tagSetpointReason>>7))
		b = protowire.AppendVarint(b, uint64(int64(r.SetpointReason)))
	}
	return append(b, r.ProtoReflect().GetUnknown()...)
}

// appendString appends a string field unless it is empty. It is
// AppendStringField with the tag encoded beforehand: AppendReading with
// the general helpers measured twice as slow (74 against 35 ns).
func appendString(b []byte, tag byte, s string) []byte {
	if len(s) == 0 {
		return b
	}
	if len(s) < 0x80 {
		b = append(b, tag, byte(len(s)))
	} else {
		b = protowire.AppendVarint(append(b, tag), uint64(len(s)))
	}
	return append(b, s...)
}

// appendDouble appends a double field unless it is +0.0.
func appendDouble(b []byte, tag byte, f float64) []byte {
	u := math.Float64bits(f)
	if u == 0 {
		return b
	}
	return binary.LittleEndian.AppendUint64(append(b, tag), u)
}
