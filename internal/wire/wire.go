// Package wire reads a serialized vpp.v1.Reading straight from its protobuf
// encoding into a flat struct, without allocating: the IDs are sub-slices of
// the input. It is what the hot paths use instead of proto.Unmarshal (ingest
// for every reading it validates, aggregate for every record it applies).
//
// Parse accepts and rejects exactly what proto.Unmarshal into a
// vppv1.Reading accepts and rejects, and yields the same values: proto3
// defaults for absent fields, the last occurrence of a field wins, unknown
// fields and known fields with an unexpected wire type are skipped. The one
// difference is in how it fails: an ID that is not valid UTF-8 (which
// proto.Unmarshal refuses) is reported as ErrInvalidUTF8 with every field
// still filled in, so that ingest can reject the reading with a reason and
// name its device.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/vppctl/vpp/proto/vppv1"
)

// ErrInvalidUTF8 is returned by Parse when a well-formed reading carries an
// ID (any occurrence of it) that is not valid UTF-8.
var ErrInvalidUTF8 = errors.New("reading: string field contains invalid UTF-8")

// Field numbers of vpp.v1.Reading (proto/vpp/v1/telemetry.proto).
const (
	fieldDeviceID       = 1
	fieldSiteID         = 2
	fieldSubstationID   = 3
	fieldRegionID       = 4
	fieldSeq            = 5
	fieldTsMs           = 6
	fieldSocPct         = 7
	fieldSohPct         = 8
	fieldPowerKw        = 9
	fieldVoltageV       = 10
	fieldCurrentA       = 11
	fieldTemperatureC   = 12
	fieldCapacityKwh    = 13
	fieldMaxChargeKw    = 14
	fieldMaxDischargeKw = 15
	fieldMode           = 16
	fieldAlarms         = 17
	fieldSetpointID     = 18
	fieldSetpointSeq    = 19
	fieldSetpointKw     = 20
	fieldSetpointState  = 21
	fieldSetpointReason = 22
)

// Reading is a decoded vpp.v1.Reading. Its ID slices point into the bytes
// it was parsed from: they are valid as long as those are, and must not be
// modified.
type Reading struct {
	DeviceID, SiteID, SubstationID, RegionID []byte

	Seq            uint64
	TsMs           int64
	SocPct         float64
	SohPct         float64
	PowerKw        float64
	VoltageV       float64
	CurrentA       float64
	TemperatureC   float64
	CapacityKwh    float64
	MaxChargeKw    float64
	MaxDischargeKw float64
	Mode           vppv1.Mode
	Alarms         uint32
	// The dispatch compliance fields (18-22); SetpointID points into the
	// parsed bytes like the other IDs.
	SetpointID     []byte
	SetpointSeq    uint64
	SetpointKw     float64
	SetpointState  vppv1.SetpointState
	SetpointReason vppv1.SetpointReason
}

// Parse resets r and fills it from the serialized reading b. It fails
// where proto.Unmarshal fails: on bytes that are not well-formed protobuf
// (or a field number beyond the protobuf maximum), and with ErrInvalidUTF8
// when the reading is otherwise well-formed but an ID is not valid UTF-8
// (r is then filled in all the same). A reading with a malformed field
// reports that error, never ErrInvalidUTF8.
func (r *Reading) Parse(b []byte) error {
	*r = Reading{}
	badUTF8, bigField := false, false
	for len(b) > 0 {
		var num protowire.Number
		var typ protowire.Type
		if b[0] < 0x80 && b[0] >= 1<<3 { // one-byte tag: fields 1..15
			num, typ = protowire.Number(b[0]>>3), protowire.Type(b[0]&7)
			b = b[1:]
		} else {
			var n int
			num, typ, n = protowire.ConsumeTag(b)
			if n < 0 {
				return fmt.Errorf("reading tag: %w", protowire.ParseError(n))
			}
			b = b[n:]
		}
		if num > protowire.MaxValidNumber {
			// ConsumeTag takes field numbers up to 2^31-1, proto.Unmarshal
			// only up to 2^29-1. Skipped here, failed at the end.
			bigField = true
		}
		switch typ {
		case protowire.BytesType:
			if (num < fieldDeviceID || num > fieldRegionID) && num != fieldSetpointID {
				break
			}
			var v []byte
			if len(b) > 0 && b[0] < 0x80 && int(b[0]) < len(b) { // short string
				v, b = b[1:1+b[0]:1+b[0]], b[1+b[0]:]
			} else {
				var n int
				v, n = protowire.ConsumeBytes(b)
				if n < 0 {
					return fmt.Errorf("reading field %d: %w", num, protowire.ParseError(n))
				}
				b = b[n:]
			}
			if !utf8.Valid(v) {
				badUTF8 = true
			}
			switch num {
			case fieldDeviceID:
				r.DeviceID = v
			case fieldSiteID:
				r.SiteID = v
			case fieldSubstationID:
				r.SubstationID = v
			case fieldSetpointID:
				r.SetpointID = v
			default:
				r.RegionID = v
			}
			continue
		case protowire.VarintType:
			if num != fieldSeq && num != fieldTsMs && num != fieldMode && num != fieldAlarms &&
				num != fieldSetpointSeq && num != fieldSetpointState && num != fieldSetpointReason {
				break
			}
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return fmt.Errorf("reading field %d: %w", num, protowire.ParseError(n))
			}
			b = b[n:]
			switch num {
			case fieldSeq:
				r.Seq = v
			case fieldTsMs:
				r.TsMs = int64(v)
			case fieldMode:
				r.Mode = vppv1.Mode(int32(v))
			case fieldAlarms:
				r.Alarms = uint32(v)
			case fieldSetpointSeq:
				r.SetpointSeq = v
			case fieldSetpointState:
				r.SetpointState = vppv1.SetpointState(int32(v))
			default:
				r.SetpointReason = vppv1.SetpointReason(int32(v))
			}
			continue
		case protowire.Fixed64Type:
			if (num < fieldSocPct || num > fieldMaxDischargeKw) && num != fieldSetpointKw {
				break
			}
			if len(b) < 8 {
				return fmt.Errorf("reading field %d: %w", num, io.ErrUnexpectedEOF)
			}
			f := math.Float64frombits(binary.LittleEndian.Uint64(b))
			b = b[8:]
			switch num {
			case fieldSocPct:
				r.SocPct = f
			case fieldSohPct:
				r.SohPct = f
			case fieldPowerKw:
				r.PowerKw = f
			case fieldVoltageV:
				r.VoltageV = f
			case fieldCurrentA:
				r.CurrentA = f
			case fieldTemperatureC:
				r.TemperatureC = f
			case fieldCapacityKwh:
				r.CapacityKwh = f
			case fieldMaxChargeKw:
				r.MaxChargeKw = f
			case fieldSetpointKw:
				r.SetpointKw = f
			default:
				r.MaxDischargeKw = f
			}
			continue
		}
		// An unknown field, or a known one with another wire type:
		// proto.Unmarshal keeps it as an unknown field; skip it.
		n := protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return fmt.Errorf("reading field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
	}
	if badUTF8 {
		return ErrInvalidUTF8
	}
	if bigField {
		return fmt.Errorf("reading: field number above %d", protowire.MaxValidNumber)
	}
	return nil
}

// ToProto returns r as a vppv1.Reading (it allocates the ID strings).
func (r *Reading) ToProto() *vppv1.Reading {
	return &vppv1.Reading{
		DeviceId: string(r.DeviceID), SiteId: string(r.SiteID),
		SubstationId: string(r.SubstationID), RegionId: string(r.RegionID),
		Seq: r.Seq, TsMs: r.TsMs, SocPct: r.SocPct, SohPct: r.SohPct, PowerKw: r.PowerKw,
		VoltageV: r.VoltageV, CurrentA: r.CurrentA, TemperatureC: r.TemperatureC,
		CapacityKwh: r.CapacityKwh, MaxChargeKw: r.MaxChargeKw, MaxDischargeKw: r.MaxDischargeKw,
		Mode: r.Mode, Alarms: r.Alarms,
		SetpointId: string(r.SetpointID), SetpointSeq: r.SetpointSeq, SetpointKw: r.SetpointKw,
		SetpointState: r.SetpointState, SetpointReason: r.SetpointReason,
	}
}

// SetValues copies the values of p (everything but the IDs, including the
// setpoint ID) into r and clears r's IDs.
func (r *Reading) SetValues(p *vppv1.Reading) {
	*r = Reading{
		Seq: p.GetSeq(), TsMs: p.GetTsMs(), SocPct: p.GetSocPct(), SohPct: p.GetSohPct(),
		PowerKw: p.GetPowerKw(), VoltageV: p.GetVoltageV(), CurrentA: p.GetCurrentA(),
		TemperatureC: p.GetTemperatureC(), CapacityKwh: p.GetCapacityKwh(),
		MaxChargeKw: p.GetMaxChargeKw(), MaxDischargeKw: p.GetMaxDischargeKw(),
		Mode: p.GetMode(), Alarms: p.GetAlarms(),
		SetpointSeq: p.GetSetpointSeq(), SetpointKw: p.GetSetpointKw(),
		SetpointState: p.GetSetpointState(), SetpointReason: p.GetSetpointReason(),
	}
}
