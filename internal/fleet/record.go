package fleet

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/vppctl/vpp/internal/wire"
	"github.com/vppctl/vpp/proto/vppv1"
)

// ErrNotSite is returned by ApplySiteRecord for a state record that holds
// no site state.
var ErrNotSite = errors.New("not a site state")

// siteHeader is what a tree keeps of a site record besides its bytes.
type siteHeader struct {
	id, substation, region []byte
	partition              int32
}

// parseSiteRecord reads the header and the rollup of a serialized
// StateRecord holding a site, as SiteContribution of the decoded SiteState
// would compute it, without building any message: O(bytes), no
// allocation. Records are those vpp writes (each field once); malformed
// protobuf and IDs that are not UTF-8 are errors, as in proto.Unmarshal.
func parseSiteRecord(b []byte) (h siteHeader, r Rollup, err error) {
	var site []byte
	found := false
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return h, r, fmt.Errorf("state record: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if num == wire.RecordSiteField && typ == protowire.BytesType {
			site, n = protowire.ConsumeBytes(b)
			found = true
		} else {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if num == wire.RecordPartitionField { // the other case of the oneof
				found = false
			}
		}
		if n < 0 {
			return h, r, fmt.Errorf("state record field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
	}
	if !found {
		return h, r, ErrNotSite
	}
	var updated int64
	for len(site) > 0 {
		num, typ, n := protowire.ConsumeTag(site)
		if n < 0 {
			return h, r, fmt.Errorf("site state: %w", protowire.ParseError(n))
		}
		site = site[n:]
		switch {
		case typ == protowire.BytesType && (num == wire.SiteIDField || num == wire.SiteSubstationField || num == wire.SiteRegionField || num == wire.SiteDevicesField):
			var v []byte
			v, n = protowire.ConsumeBytes(site)
			if n < 0 {
				break
			}
			switch num {
			case wire.SiteIDField:
				h.id = v
			case wire.SiteSubstationField:
				h.substation = v
			case wire.SiteRegionField:
				h.region = v
			case wire.SiteDevicesField:
				c, err := deviceContribution(v)
				if err != nil {
					return h, r, err
				}
				r.Add(&c)
			}
			if num != wire.SiteDevicesField && !utf8.Valid(v) {
				return h, r, fmt.Errorf("site state field %d: %w", num, wire.ErrInvalidUTF8)
			}
		case typ == protowire.VarintType && (num == wire.SiteUpdatedField || num == wire.SitePartitionField):
			var v uint64
			v, n = protowire.ConsumeVarint(site)
			if num == wire.SiteUpdatedField {
				updated = int64(v)
			} else {
				h.partition = int32(v)
			}
		default:
			n = protowire.ConsumeFieldValue(num, typ, site)
		}
		if n < 0 {
			return h, r, fmt.Errorf("site state field %d: %w", num, protowire.ParseError(n))
		}
		site = site[n:]
	}
	r.UpdatedMS = max(r.UpdatedMS, updated)
	return h, r, nil
}

// deviceContribution is DeviceContribution of a serialized DeviceState.
func deviceContribution(b []byte) (Rollup, error) {
	var (
		offline    bool
		appliedMs  int64
		hdis, hchg float64
		last       []byte
		hasLast    bool
		r          Rollup
		reading    wire.Reading
	)
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return r, fmt.Errorf("device state: %w", protowire.ParseError(n))
		}
		b = b[n:]
		switch {
		case num == wire.DevLastField && typ == protowire.BytesType:
			last, n = protowire.ConsumeBytes(b)
			hasLast = true
		case num == wire.DevAppliedMsField && typ == protowire.VarintType:
			var v uint64
			v, n = protowire.ConsumeVarint(b)
			appliedMs = int64(v)
		case num == wire.DevOfflineField && typ == protowire.VarintType:
			var v uint64
			v, n = protowire.ConsumeVarint(b)
			offline = v != 0
		case (num == wire.DevHeadroomDischargeField || num == wire.DevHeadroomChargeField) && typ == protowire.Fixed64Type:
			var v uint64
			v, n = protowire.ConsumeFixed64(b)
			if num == wire.DevHeadroomDischargeField {
				hdis = math.Float64frombits(v)
			} else {
				hchg = math.Float64frombits(v)
			}
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return r, fmt.Errorf("device state field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
	}
	r.Devices = 1
	if offline {
		r.Offline = 1
	} else {
		r.Online = 1
		r.HeadroomDischargeMicroKW = ToMicro(hdis)
		r.HeadroomChargeMicroKW = ToMicro(hchg)
	}
	r.UpdatedMS = appliedMs
	if !hasLast {
		return r, nil
	}
	if err := reading.Parse(last); err != nil {
		return r, fmt.Errorf("device state reading: %w", err)
	}
	p := ToMicro(reading.PowerKw)
	r.NetMicroKW = p
	if p < 0 {
		r.ChargeMicroKW = -p
	} else {
		r.DischargeMicroKW = p
	}
	r.CapacityMicroKWh = ToMicro(reading.CapacityKwh)
	r.EnergyMicroKWh = ToMicro(reading.SocPct / 100 * reading.CapacityKwh)
	t := ToMicro(reading.TemperatureC)
	r.Temps = 1
	r.TempMinMicroC, r.TempMaxMicroC = t, t
	if a := reading.Alarms; a != 0 {
		r.Alarming = 1
		for a != 0 {
			i := bits.TrailingZeros32(a)
			r.Alarms[i] = 1
			a &^= 1 << i
		}
	}
	return r, nil
}

// decodeSite decodes a site record the tree kept; nil if it does not
// decode (the tree accepted it, so it does).
func decodeSite(raw []byte) *vppv1.SiteState {
	if raw == nil {
		return nil
	}
	var rec vppv1.StateRecord
	if err := proto.Unmarshal(raw, &rec); err != nil {
		return nil
	}
	CompleteSite(rec.GetSite())
	return rec.GetSite()
}

// CompleteSite gives each device reading of s the site's IDs where the
// record left them out: a site record does not repeat its site, substation
// and region in every device's reading (see SiteState.devices).
func CompleteSite(s *vppv1.SiteState) {
	for _, d := range s.GetDevices() {
		r := d.GetLast()
		if r == nil {
			continue
		}
		if r.SiteId == "" {
			r.SiteId = s.GetSiteId()
		}
		if r.SubstationId == "" {
			r.SubstationId = s.GetSubstationId()
		}
		if r.RegionId == "" {
			r.RegionId = s.GetRegionId()
		}
	}
}
