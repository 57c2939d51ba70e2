package sim

import "fmt"

// Shape is the grid hierarchy of a simulated fleet: regions, substations per
// region and sites per substation. Devices are spread round-robin over the
// sites.
type Shape struct {
	Regions, SubstationsPerRegion, SitesPerSubstation int
}

// Sites returns the number of sites in the shape.
func (s Shape) Sites() int { return s.Regions * s.SubstationsPerRegion * s.SitesPerSubstation }

// Place returns the IDs of device index i: its device, site, substation and
// region IDs. They are stable for a given shape, and a site always has the
// same substation and region.
func (s Shape) Place(i int) (device, site, substation, region string) {
	siteIdx := i % s.Sites()
	subIdx := siteIdx / s.SitesPerSubstation
	regIdx := subIdx / s.SubstationsPerRegion
	return DeviceID(i), fmt.Sprintf("site-%04d", siteIdx), fmt.Sprintf("sub-%02d", subIdx), RegionID(regIdx)
}

// DeviceID returns the ID of device index i, such as dev-000123.
func DeviceID(i int) string { return fmt.Sprintf("dev-%06d", i) }

// RegionID returns the ID of region index r: north, south, east, west,
// central, then region-5, region-6 and so on.
func RegionID(r int) string {
	switch r {
	case 0:
		return "north"
	case 1:
		return "south"
	case 2:
		return "east"
	case 3:
		return "west"
	case 4:
		return "central"
	}
	return fmt.Sprintf("region-%d", r)
}
