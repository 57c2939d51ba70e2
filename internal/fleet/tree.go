package fleet

import (
	"bytes"
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/vppctl/vpp/proto/vppv1"
)

// Kind is the level of a node in the hierarchy.
type Kind uint8

// The levels of the hierarchy, top down. Devices are not tree nodes (they
// live in their site's state); KindDevice names them where a level is
// needed, as in history series.
const (
	KindFleet Kind = iota
	KindRegion
	KindSubstation
	KindSite
	KindDevice
)

// String returns "fleet", "region", "substation", "site" or "device".
func (k Kind) String() string {
	switch k {
	case KindFleet:
		return "fleet"
	case KindRegion:
		return "region"
	case KindSubstation:
		return "substation"
	case KindSite:
		return "site"
	case KindDevice:
		return "device"
	}
	return "unknown"
}

// FleetID is the ID of the root node.
const FleetID = "fleet"

// tnode is a mutable node of the Tree. Children are kept sorted by ID.
type tnode struct {
	kind     Kind
	id       string
	parent   *tnode
	children []*tnode
	rollup   Rollup
	// Sites only: the site's state record as the state topic holds it,
	// decoded only when someone looks at the site's devices, and its
	// telemetry partition.
	raw       []byte
	partition int32
	// snap is the immutable copy of this node published by the last
	// Snapshot; dirty means the node or a descendant changed since.
	snap  *Node
	dirty bool
}

func (n *tnode) find(id string) (int, bool) {
	return slices.BinarySearchFunc(n.children, id, func(c *tnode, id string) int { return strings.Compare(c.id, id) })
}

func (n *tnode) child(id string) *tnode {
	if i, ok := n.find(id); ok {
		return n.children[i]
	}
	return nil
}

func (n *tnode) addChild(c *tnode) {
	i, _ := n.find(c.id)
	c.parent = n
	n.children = slices.Insert(n.children, i, c)
}

func (n *tnode) removeChild(id string) {
	if i, ok := n.find(id); ok {
		n.children[i].parent = nil
		n.children = slices.Delete(n.children, i, i+1)
	}
}

// replace swaps a descendant's contribution old for new in n's rollup and
// recomputes the extremes from the children when old may have held one.
// The children must already reflect the change.
func (n *tnode) replace(old, new *Rollup) {
	recompute := n.rollup.losesExtreme(old, new)
	n.rollup.Sub(old)
	n.rollup.Add(new)
	if recompute {
		n.recomputeExtremes()
	}
	n.dirty = true
}

// recomputeExtremes sets the temperature range and UpdatedMS from the
// children: O(children).
func (n *tnode) recomputeExtremes() {
	var e Rollup
	for _, c := range n.children {
		e.mergeExtremes(&c.rollup)
		e.Temps += c.rollup.Temps
	}
	n.rollup.TempMinMicroC, n.rollup.TempMaxMicroC, n.rollup.UpdatedMS = e.TempMinMicroC, e.TempMaxMicroC, e.UpdatedMS
}

// Tree is the mutable fleet hierarchy, fleet → regions → substations →
// sites → devices, with a rollup at every node, and the pipeline accounting.
// ApplySite costs O(depth) plus O(devices of the site) plus O(children) at a
// node whose temperature extreme or newest time the site held.
//
// A Tree is not safe for concurrent use: one goroutine folds updates into it
// and publishes immutable Snapshots that any number of goroutines may read.
type Tree struct {
	root       *tnode
	sites      map[string]*tnode
	partitions map[int32]*vppv1.PartitionState
	ingest     map[string]*vppv1.IngestStats
	version    uint64

	idx           *index // shared with every snapshot, kept up to date
	pipelineDirty bool
	pipeline      Pipeline
}

// NewTree returns an empty tree.
func NewTree() *Tree {
	return &Tree{
		root:          &tnode{kind: KindFleet, id: FleetID, dirty: true},
		sites:         make(map[string]*tnode),
		partitions:    make(map[int32]*vppv1.PartitionState),
		ingest:        make(map[string]*vppv1.IngestStats),
		idx:           &index{sites: make(map[string]siteLoc), substations: make(map[string]string)},
		pipelineDirty: true,
	}
}

// ApplySite replaces the state of site s.SiteId with s (last write wins, as
// in the compacted topic): ApplySiteRecord of its StateRecord. A nil state
// or one without a site ID is ignored.
func (t *Tree) ApplySite(s *vppv1.SiteState) {
	if s == nil || s.GetSiteId() == "" {
		return
	}
	b, err := proto.Marshal(&vppv1.StateRecord{Body: &vppv1.StateRecord_Site{Site: s}})
	if err != nil {
		return // not representable (invalid UTF-8): nothing a reader could have read
	}
	_ = t.ApplySiteRecord(s.GetSiteId(), b)
}

// ApplySiteRecord replaces the state of the site held in value, a
// serialized StateRecord of the state topic (last write wins, as in the
// compacted topic). A site whose region or substation changed moves;
// regions and substations left without sites are removed. The tree keeps
// a copy of value, not the messages in it: the rollup is read off the
// bytes, and the devices are decoded only when a snapshot's Node.Site or
// Devices asks for them, so a site costs its record's bytes and its node.
// It fails, changing nothing, when value does not decode, holds no site
// (ErrNotSite) or a site other than id (the record's key).
func (t *Tree) ApplySiteRecord(id string, value []byte) error {
	h, newR, err := parseSiteRecord(value)
	if err != nil {
		return err
	}
	if string(h.id) != id || id == "" {
		return fmt.Errorf("holds site %q", h.id)
	}
	t.version++
	raw := bytes.Clone(value)
	if old, ok := t.sites[string(h.id)]; ok {
		sub := old.parent
		if sub.id == string(h.substation) && sub.parent.id == string(h.region) {
			oldR := old.rollup
			old.rollup, old.raw, old.partition, old.dirty = newR, raw, h.partition, true
			for n := sub; n != nil; n = n.parent {
				n.replace(&oldR, &newR)
			}
			return nil
		}
		t.remove(old)
	}
	t.insert(&h, raw, &newR)
	return nil
}

// RemoveSite removes a site (a tombstone in the state topic). It reports
// whether the site was present.
func (t *Tree) RemoveSite(id string) bool {
	n, ok := t.sites[id]
	if !ok {
		return false
	}
	t.version++
	t.remove(n)
	return true
}

func (t *Tree) insert(h *siteHeader, raw []byte, r *Rollup) {
	reg := t.root.child(string(h.region))
	if reg == nil {
		reg = &tnode{kind: KindRegion, id: string(h.region)}
		t.root.addChild(reg)
	}
	sub := reg.child(string(h.substation))
	if sub == nil {
		sub = &tnode{kind: KindSubstation, id: string(h.substation)}
		reg.addChild(sub)
	}
	site := &tnode{kind: KindSite, id: string(h.id), raw: raw, partition: h.partition, rollup: *r, dirty: true}
	sub.addChild(site)
	t.sites[site.id] = site
	for n := sub; n != nil; n = n.parent {
		n.rollup.Add(r)
		n.dirty = true
	}
	t.idx.mu.Lock()
	t.idx.sites[site.id] = siteLoc{reg.id, sub.id}
	if _, dup := t.idx.substations[sub.id]; !dup {
		t.idx.substations[sub.id] = reg.id
	}
	t.idx.mu.Unlock()
}

func (t *Tree) remove(site *tnode) {
	r := site.rollup
	sub := site.parent
	sub.removeChild(site.id)
	delete(t.sites, site.id)
	var zero Rollup
	for n := sub; n != nil; n = n.parent {
		n.replace(&r, &zero)
	}
	reg := sub.parent
	t.idx.mu.Lock()
	delete(t.idx.sites, site.id)
	if len(sub.children) == 0 {
		reg.removeChild(sub.id)
		if len(reg.children) == 0 {
			t.root.removeChild(reg.id)
		}
		if t.idx.substations[sub.id] == reg.id {
			// Substation IDs are meant to be unique in the fleet; if
			// another region has one of the same ID, it takes the lookup.
			delete(t.idx.substations, sub.id)
			for _, other := range t.root.children {
				if other.child(sub.id) != nil {
					t.idx.substations[sub.id] = other.id
					break
				}
			}
		}
	}
	t.idx.mu.Unlock()
}

// Site returns the current state of a site, decoded, or nil.
func (t *Tree) Site(id string) *vppv1.SiteState {
	if n, ok := t.sites[id]; ok {
		return decodeSite(n.raw)
	}
	return nil
}

// Sites is the number of sites in the tree.
func (t *Tree) Sites() int { return len(t.sites) }

// Rollup is the fleet-wide rollup.
func (t *Tree) Rollup() Rollup { return t.root.rollup }

// ApplyPartition replaces the accounting of one telemetry partition. The
// tree keeps p: the caller must not modify it afterwards.
func (t *Tree) ApplyPartition(p *vppv1.PartitionState) {
	if p == nil {
		return
	}
	t.version++
	t.partitions[p.GetPartition()] = p
	t.pipelineDirty = true
}

// RemovePartition drops the accounting of a partition (a tombstone).
func (t *Tree) RemovePartition(partition int32) {
	if _, ok := t.partitions[partition]; ok {
		t.version++
		delete(t.partitions, partition)
		t.pipelineDirty = true
	}
}

// ApplyIngestStats replaces the accounting of one ingest instance, keyed by
// st.Instance. The tree keeps st: the caller must not modify it afterwards.
func (t *Tree) ApplyIngestStats(st *vppv1.IngestStats) {
	if st == nil {
		return
	}
	t.version++
	t.ingest[st.GetInstance()] = st
	t.pipelineDirty = true
}

// RemoveIngestStats drops the accounting of an ingest instance.
func (t *Tree) RemoveIngestStats(instance string) {
	if _, ok := t.ingest[instance]; ok {
		t.version++
		delete(t.ingest, instance)
		t.pipelineDirty = true
	}
}

// Version counts the updates applied to the tree.
func (t *Tree) Version() uint64 { return t.version }

// Snapshot returns an immutable view of the tree that stays valid while the
// tree moves on. Unchanged subtrees are shared with the previous snapshot
// and site states are shared by pointer, so a snapshot costs O(nodes on
// changed paths and their children), never O(devices).
func (t *Tree) Snapshot() *Snapshot {
	if t.pipelineDirty {
		t.pipeline = t.buildPipeline()
		t.pipelineDirty = false
	}
	return &Snapshot{
		Fleet:    build(t.root, "", ""),
		Pipeline: t.pipeline,
		Version:  t.version,
		idx:      t.idx,
		sites:    len(t.sites),
	}
}

func build(n *tnode, region, substation string) *Node {
	if !n.dirty && n.snap != nil {
		return n.snap
	}
	s := &Node{Kind: n.kind, ID: n.id, RegionID: region, SubstationID: substation, Rollup: n.rollup, Partition: n.partition, raw: n.raw}
	switch n.kind {
	case KindRegion:
		region = n.id
	case KindSubstation:
		substation = n.id
	}
	if len(n.children) > 0 {
		s.Children = make([]*Node, len(n.children))
		for i, c := range n.children {
			s.Children[i] = build(c, region, substation)
		}
	}
	n.snap, n.dirty = s, false
	return s
}

type siteLoc struct{ region, substation string }

// index locates sites and substations by ID. One index is kept up to date
// by the tree as sites appear, move and go (O(1) each, never a rebuild) and
// shared with every snapshot, which checks what it finds against its own
// nodes: a site that appeared after a snapshot is not in it, and one that
// moved or went since is looked for in the snapshot's substations (so an
// old snapshot still answers as of its time).
type index struct {
	mu          sync.RWMutex
	sites       map[string]siteLoc
	substations map[string]string
}

// Node is an immutable node of a Snapshot: the fleet, a region, a
// substation or a site. Do not modify a Node or the site state it holds.
type Node struct {
	// Kind is the level of the node.
	Kind Kind
	// ID is the node's ID (FleetID for the root).
	ID string
	// RegionID is the region above a substation or site; empty otherwise.
	RegionID string
	// SubstationID is the substation above a site; empty otherwise.
	SubstationID string
	// Rollup aggregates every device below the node.
	Rollup Rollup
	// Children are the nodes one level down, sorted by ID; nil for a site.
	Children []*Node
	// Partition is a site's telemetry partition; 0 above sites.
	Partition int32
	// raw is a site's state record (see Site); nil above sites.
	raw []byte
}

// Site decodes the site's state (devices sorted by device ID); nil above
// sites. Each call decodes the record again, O(devices of the site): the
// tree keeps sites as bytes, so that a fleet costs its records, not their
// messages. The result belongs to the caller.
func (n *Node) Site() *vppv1.SiteState {
	if n == nil {
		return nil
	}
	return decodeSite(n.raw)
}

// Child returns the child with the given ID, or nil.
func (n *Node) Child(id string) *Node {
	if n == nil {
		return nil
	}
	i, ok := slices.BinarySearchFunc(n.Children, id, func(c *Node, id string) int { return strings.Compare(c.ID, id) })
	if !ok {
		return nil
	}
	return n.Children[i]
}

// Devices returns a site's devices, decoded (nil above sites): see Site.
func (n *Node) Devices() []*vppv1.DeviceState { return n.Site().GetDevices() }

// Device returns the device of a site with the given ID, or nil.
func (n *Node) Device(id string) *vppv1.DeviceState {
	devs := n.Devices()
	i, ok := slices.BinarySearchFunc(devs, id, func(d *vppv1.DeviceState, id string) int {
		return strings.Compare(d.GetLast().GetDeviceId(), id)
	})
	if ok {
		return devs[i]
	}
	// The contract sorts devices by ID; fall back to a scan if a writer
	// did not.
	for _, d := range devs {
		if d.GetLast().GetDeviceId() == id {
			return d
		}
	}
	return nil
}

// Snapshot is an immutable view of the fleet and the pipeline accounting at
// one moment. It is safe for concurrent use.
type Snapshot struct {
	// Fleet is the root of the hierarchy; never nil.
	Fleet *Node
	// Pipeline is the accounting of ingest and aggregate.
	Pipeline Pipeline
	// Version is the tree's update count when the snapshot was taken.
	Version uint64
	// Load says whether the snapshot is complete; its source sets it (the
	// zero value, of a tree's own snapshot, is complete).
	Load  Load
	idx   *index
	sites int
}

// Load says how complete a snapshot is: whether its source is still
// loading the fleet (reading the state topic up to where it stood when the
// source started) and why it cannot read, if it cannot. The zero value is
// a complete snapshot.
type Load struct {
	// Loading is true until the source caught up: until then the totals
	// are those of part of the fleet.
	Loading bool
	// Partitions is the number of partitions to read, Done how many are
	// read up to their start-up high-water mark (0 and 0 before the
	// source reached Kafka).
	Partitions, Done int
	// Records is the number of records to read, Read how many are read.
	Records, Read int64
	// Percent is the share of Records read, 0 to 100.
	Percent float64
	// Err is why the source cannot read now (Kafka unreachable, a topic
	// missing, access refused); empty while it reads. The source keeps
	// retrying.
	Err string
}

// Started reports whether the source reached Kafka and knows how much
// there is to read.
func (l Load) Started() bool { return l.Partitions > 0 }

// Text says in a few words how far an incomplete snapshot's source is:
// "loading 12/64 partitions (41 %)", "connecting to Kafka", or why it
// cannot read. It is empty for a complete snapshot.
func (l Load) Text() string {
	switch {
	case l.Err != "":
		return l.Err
	case !l.Loading:
		return ""
	case !l.Started():
		return "connecting to Kafka"
	}
	return "loading " + strconv.Itoa(l.Done) + "/" + strconv.Itoa(l.Partitions) + " partitions (" + strconv.Itoa(int(math.Floor(l.Percent))) + " %)"
}

// EmptySnapshot returns the snapshot of an empty fleet.
func EmptySnapshot() *Snapshot { return NewTree().Snapshot() }

// Regions returns the regions, sorted by ID.
func (s *Snapshot) Regions() []*Node {
	if s.Fleet == nil {
		return nil
	}
	return s.Fleet.Children
}

// Region returns a region by ID, or nil.
func (s *Snapshot) Region(id string) *Node { return s.Fleet.Child(id) }

// Substation returns a substation by ID, or nil.
func (s *Snapshot) Substation(id string) *Node {
	if s.idx == nil || s.Fleet == nil {
		return nil
	}
	s.idx.mu.RLock()
	reg, ok := s.idx.substations[id]
	s.idx.mu.RUnlock()
	if ok {
		if n := s.Fleet.Child(reg).Child(id); n != nil {
			return n
		}
	}
	// Not where the index says now: gone or moved since this snapshot,
	// or never there. Look through the snapshot's own regions.
	for _, r := range s.Fleet.Children {
		if n := r.Child(id); n != nil {
			return n
		}
	}
	return nil
}

// Site returns a site by ID, or nil.
func (s *Snapshot) Site(id string) *Node {
	if s.idx == nil || s.Fleet == nil {
		return nil
	}
	s.idx.mu.RLock()
	loc, ok := s.idx.sites[id]
	s.idx.mu.RUnlock()
	if ok {
		if n := s.Fleet.Child(loc.region).Child(loc.substation).Child(id); n != nil {
			return n
		}
	}
	// Not where the index says now (see Substation): O(substations).
	for _, r := range s.Fleet.Children {
		for _, sub := range r.Children {
			if n := sub.Child(id); n != nil {
				return n
			}
		}
	}
	return nil
}

// Sites is the number of sites in the snapshot.
func (s *Snapshot) Sites() int { return s.sites }

// UpdatedAt is the time of the newest data in the snapshot (site states,
// device applications and pipeline accounting); zero when there is none.
func (s *Snapshot) UpdatedAt() time.Time {
	var ms int64
	if s.Fleet != nil {
		ms = s.Fleet.Rollup.UpdatedMS
	}
	if p := s.Pipeline.UpdatedAt; !p.IsZero() && p.UnixMilli() > ms {
		return p
	}
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// Pipeline is the accounting of the whole pipeline: ingest counters summed
// over ingest instances, aggregate counters summed over telemetry
// partitions.
type Pipeline struct {
	// Received is the number of readings ingest decoded from frames.
	Received uint64
	// Rejected counts rejected readings by reason.
	Rejected map[string]uint64
	// RejectedTotal is the sum of Rejected.
	RejectedTotal uint64
	// Published is the number of valid readings Kafka acknowledged.
	Published uint64
	// Acked is the number of readings acknowledged to their devices.
	Acked uint64
	// Frames is the number of frames received.
	Frames uint64
	// ProtocolErrors counts connections closed for a protocol error, by
	// close code.
	ProtocolErrors map[int32]uint64
	// Connections is the number of open WebSocket connections.
	Connections int64
	// Buffered and BufferCapacity are the records waiting in ingest buffers
	// and the buffers' capacity.
	Buffered, BufferCapacity int64
	// Instances are the ingest instances' own stats, sorted by instance.
	Instances []*vppv1.IngestStats

	// Consumed is the number of telemetry records the aggregators read.
	Consumed uint64
	// Applied is the number of readings applied to twins.
	Applied uint64
	// Duplicates is the number of readings dropped as duplicates.
	Duplicates uint64
	// Gaps is the number of sequence numbers that never arrived.
	Gaps uint64
	// Undecodable is the number of telemetry records that did not decode.
	Undecodable uint64
	// Lag is Σ max(0, high_water_mark − next_offset) over partitions.
	Lag int64
	// Partitions are the partitions' own states, sorted by partition.
	Partitions []*vppv1.PartitionState

	// UpdatedAt is the newest updated_ms of the ingest and partition
	// records; zero when there is none.
	UpdatedAt time.Time
}

// Unaccounted is Received − Published − RejectedTotal: readings in flight
// (buffered, being retried) or lost. It settles to 0 when the fleet is
// quiet.
func (p *Pipeline) Unaccounted() int64 {
	return int64(p.Received) - int64(p.Published) - int64(p.RejectedTotal)
}

// PartitionLag is a partition's lag: high_water_mark − next_offset, floored
// at 0.
func PartitionLag(p *vppv1.PartitionState) int64 {
	return max(0, p.GetHighWaterMark()-p.GetNextOffset())
}

func (t *Tree) buildPipeline() Pipeline {
	p := Pipeline{Rejected: make(map[string]uint64), ProtocolErrors: make(map[int32]uint64)}
	var newest int64
	for _, st := range t.ingest {
		p.Received += st.GetReceived()
		for reason, n := range st.GetRejected() {
			p.Rejected[reason] += n
			p.RejectedTotal += n
		}
		for code, n := range st.GetProtocolErrors() {
			p.ProtocolErrors[code] += n
		}
		p.Published += st.GetPublished()
		p.Acked += st.GetAcked()
		p.Frames += st.GetFrames()
		p.Connections += st.GetConnections()
		p.Buffered += st.GetBuffered()
		p.BufferCapacity += st.GetBufferCapacity()
		p.Instances = append(p.Instances, st)
		newest = max(newest, st.GetUpdatedMs())
	}
	slices.SortFunc(p.Instances, func(a, b *vppv1.IngestStats) int { return strings.Compare(a.GetInstance(), b.GetInstance()) })
	for _, ps := range t.partitions {
		p.Consumed += ps.GetConsumed()
		p.Applied += ps.GetApplied()
		p.Duplicates += ps.GetDuplicates()
		p.Gaps += ps.GetGaps()
		p.Undecodable += ps.GetUndecodable()
		p.Lag += PartitionLag(ps)
		p.Partitions = append(p.Partitions, ps)
		newest = max(newest, ps.GetUpdatedMs())
	}
	slices.SortFunc(p.Partitions, func(a, b *vppv1.PartitionState) int { return cmp.Compare(a.GetPartition(), b.GetPartition()) })
	if newest > 0 {
		p.UpdatedAt = time.UnixMilli(newest).UTC()
	}
	return p
}

// SnapshotSource is anything that serves fleet snapshots: a reader of the
// state topics, or a fixed snapshot in tests.
type SnapshotSource interface {
	// Snapshot returns the current snapshot; never nil.
	Snapshot() *Snapshot
}
