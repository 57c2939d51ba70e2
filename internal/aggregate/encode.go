package aggregate

import (
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
	siteThroughField    = 7

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
	b, site = wire.OpenMessage(b, 3)
	b = wire.AppendStringField(b, siteIDField, s.id)
	b = wire.AppendStringField(b, siteSubstationField, s.substation)
	b = wire.AppendStringField(b, siteRegionField, s.region)
	for i := range s.devices {
		d := &s.devices[i]
		b = protowire.AppendTag(b, siteDevicesField, protowire.BytesType)
		b, dev = wire.OpenMessage(b, 2)
		b = protowire.AppendTag(b, devLastField, protowire.BytesType)
		b, last = wire.OpenMessage(b, 2)
		d.reading(r, s)
		b = wire.AppendReading(b, r)
		b = wire.CloseMessage(b, last, 2)
		b = wire.AppendVarintField(b, devAppliedMsField, uint64(d.appliedMs))
		if d.offline {
			b = wire.AppendVarintField(b, devOfflineField, 1)
		}
		b = wire.AppendVarintField(b, devAppliedField, d.applied)
		b = wire.AppendVarintField(b, devDuplicatesField, d.duplicates)
		b = wire.AppendVarintField(b, devGapsField, d.gaps)
		b = wire.AppendDoubleField(b, devHeadroomDischargeField, d.headroomDischarge)
		b = wire.AppendDoubleField(b, devHeadroomChargeField, d.headroomCharge)
		b = wire.CloseMessage(b, dev, 2)
	}
	b = wire.AppendVarintField(b, siteUpdatedField, uint64(nowMs))
	b = wire.AppendVarintField(b, sitePartitionField, uint64(int64(partition)))
	if s.through > 0 {
		b = wire.AppendVarintField(b, siteThroughField, uint64(s.through))
	}
	return wire.CloseMessage(b, site, 3)
}
