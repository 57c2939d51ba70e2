package aggregate

import (
	"math"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/vppctl/vpp/internal/wire"
	"github.com/vppctl/vpp/proto/vppv1"
)

// Field numbers of the state records (proto/vpp/v1/state.proto) that
// appendSiteRecord writes.
const (
	recordSiteField = 1 // StateRecord.site

	siteIDField         = 1
	siteSubstationField = 2
	siteRegionField     = 3
	siteDevicesField    = 4
	siteUpdatedField    = 5
	sitePartitionField  = 6

	devLastField              = 1
	devAppliedMsField         = 2
	devOfflineField           = 3
	devAppliedField           = 4
	devDuplicatesField        = 5
	devGapsField              = 6
	devHeadroomDischargeField = 7
	devHeadroomChargeField    = 8
)

// appendSiteRecord appends the StateRecord of site s: byte for byte what
// proto.Marshal writes for the SiteState that states and fill build, without
// building it. At high rates every site is published every flush, so this
// runs once per device and flush; protobuf's generic marshaller spent
// several times as long. r is scratch space for one device's reading.
func appendSiteRecord(b []byte, s *siteTwin, nowMs int64, partition int32, r *vppv1.Reading) []byte {
	b = protowire.AppendTag(b, recordSiteField, protowire.BytesType)
	var site, dev, last int // where each embedded message begins
	b, site = openLen(b, 3)
	b = appendString(b, siteIDField, s.id)
	b = appendString(b, siteSubstationField, s.substation)
	b = appendString(b, siteRegionField, s.region)
	for i := range s.devices {
		d := &s.devices[i]
		b = protowire.AppendTag(b, siteDevicesField, protowire.BytesType)
		b, dev = openLen(b, 2)
		b = protowire.AppendTag(b, devLastField, protowire.BytesType)
		b, last = openLen(b, 2)
		d.reading(r, s)
		b = wire.AppendReading(b, r)
		b = closeLen(b, last, 2)
		b = appendVarint(b, devAppliedMsField, uint64(d.appliedMs))
		if d.offline {
			b = appendVarint(b, devOfflineField, 1)
		}
		b = appendVarint(b, devAppliedField, d.applied)
		b = appendVarint(b, devDuplicatesField, d.duplicates)
		b = appendVarint(b, devGapsField, d.gaps)
		b = appendDouble(b, devHeadroomDischargeField, d.headroomDischarge)
		b = appendDouble(b, devHeadroomChargeField, d.headroomCharge)
		b = closeLen(b, dev, 2)
	}
	b = appendVarint(b, siteUpdatedField, uint64(nowMs))
	b = appendVarint(b, sitePartitionField, uint64(int64(partition)))
	return closeLen(b, site, 3)
}

// openLen reserves guess bytes for the length prefix of an embedded message
// and returns where the message's bytes start.
func openLen(b []byte, guess int) ([]byte, int) {
	for range guess {
		b = append(b, 0)
	}
	return b, len(b)
}

// closeLen writes the length of the message that began at start into the
// room openLen reserved, moving the message when its length needs a
// different number of bytes than guessed (so the encoding stays minimal).
func closeLen(b []byte, start, guess int) []byte {
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

// appendString appends a proto3 string field (omitted when empty).
func appendString(b []byte, num protowire.Number, v string) []byte {
	if v == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, v)
}

// appendVarint appends a proto3 varint field (omitted when zero).
func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// appendDouble appends a proto3 double field (omitted when +0, as protobuf
// does; -0 is written).
func appendDouble(b []byte, num protowire.Number, v float64) []byte {
	if math.Float64bits(v) == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, math.Float64bits(v))
}
