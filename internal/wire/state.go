package wire

// Field numbers of the state topic's records (proto/vpp/v1/state.proto)
// that the aggregator writes and the readers read without building the
// messages.
const (
	RecordSiteField      = 1 // StateRecord.site
	RecordPartitionField = 2 // StateRecord.partition

	SiteIDField         = 1 // SiteState.site_id
	SiteSubstationField = 2 // SiteState.substation_id
	SiteRegionField     = 3 // SiteState.region_id
	SiteDevicesField    = 4 // SiteState.devices
	SiteUpdatedField    = 5 // SiteState.updated_ms
	SitePartitionField  = 6 // SiteState.partition
	SiteThroughField    = 7 // SiteState.through_offset

	DevLastField              = 1 // DeviceState.last
	DevAppliedMsField         = 2 // DeviceState.applied_ms
	DevOfflineField           = 3 // DeviceState.offline
	DevAppliedField           = 4 // DeviceState.applied
	DevDuplicatesField        = 5 // DeviceState.duplicates
	DevGapsField              = 6 // DeviceState.gaps
	DevHeadroomDischargeField = 7 // DeviceState.headroom_discharge_kw
	DevHeadroomChargeField    = 8 // DeviceState.headroom_charge_kw
)
