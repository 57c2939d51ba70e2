package aggregate

import (
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/vppctl/vpp/internal/wire"
	"github.com/vppctl/vpp/proto/vppv1"
)

// appendSiteRecord appends the StateRecord of site s: byte for byte what
// proto.Marshal writes for the SiteState that states and fill build, without
// building it. At high rates every site is published every flush, so this
// runs once per device and flush; protobuf's generic marshaller spent
// several times as long. r is scratch space for one device's reading.
func appendSiteRecord(b []byte, s *siteTwin, nowMs int64, partition int32, cfg *twinConfig, r *vppv1.Reading) []byte {
	b = protowire.AppendTag(b, wire.RecordSiteField, protowire.BytesType)
	var site, dev, last int // where each embedded message begins
	b, site = wire.OpenMessage(b, 3)
	b = wire.AppendStringField(b, wire.SiteIDField, s.id)
	b = wire.AppendStringField(b, wire.SiteSubstationField, s.substation)
	b = wire.AppendStringField(b, wire.SiteRegionField, s.region)
	for i := range s.devices {
		d := &s.devices[i]
		b = protowire.AppendTag(b, wire.SiteDevicesField, protowire.BytesType)
		b, dev = wire.OpenMessage(b, 2)
		b = protowire.AppendTag(b, wire.DevLastField, protowire.BytesType)
		b, last = wire.OpenMessage(b, 2)
		d.reading(r, s)
		r.SiteId, r.SubstationId, r.RegionId = "", "", "" // the site's, said once
		b = wire.AppendReading(b, r)
		b = wire.CloseMessage(b, last, 2)
		b = wire.AppendVarintField(b, wire.DevAppliedMsField, uint64(d.appliedMs))
		if d.offline {
			b = wire.AppendVarintField(b, wire.DevOfflineField, 1)
		}
		b = wire.AppendVarintField(b, wire.DevAppliedField, d.applied)
		b = wire.AppendVarintField(b, wire.DevDuplicatesField, d.duplicates)
		b = wire.AppendVarintField(b, wire.DevGapsField, d.gaps)
		dis, ch := d.headroom(cfg)
		b = wire.AppendDoubleField(b, wire.DevHeadroomDischargeField, dis)
		b = wire.AppendDoubleField(b, wire.DevHeadroomChargeField, ch)
		b = wire.CloseMessage(b, dev, 2)
	}
	b = wire.AppendVarintField(b, wire.SiteUpdatedField, uint64(nowMs))
	b = wire.AppendVarintField(b, wire.SitePartitionField, uint64(int64(partition)))
	if s.through > 0 {
		b = wire.AppendVarintField(b, wire.SiteThroughField, uint64(s.through))
	}
	return wire.CloseMessage(b, site, 3)
}
