package ingest

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/vppctl/vpp/internal/smallmap"
	"github.com/vppctl/vpp/internal/wire"
)

// errTooManyReadings is returned by splitFrame when a frame holds more
// readings than allowed.
var errTooManyReadings = errors.New("too many readings in frame")

// frameReadingsField is the field number of Frame.readings.
const frameReadingsField = 1

// splitFrame appends to dst the serialized readings of a serialized Frame,
// as sub-slices of frame (no copy), and returns it. Unknown fields are
// skipped. It fails when frame is not well-formed protobuf or holds more
// than maxReadings readings (errTooManyReadings).
func splitFrame(dst [][]byte, frame []byte, maxReadings int) ([][]byte, error) {
	for len(frame) > 0 {
		num, typ, n := protowire.ConsumeTag(frame)
		if n < 0 {
			return dst, fmt.Errorf("frame tag: %w", protowire.ParseError(n))
		}
		frame = frame[n:]
		if num == frameReadingsField {
			if typ != protowire.BytesType {
				return dst, fmt.Errorf("frame readings: wire type %d, want bytes", typ)
			}
			v, n := protowire.ConsumeBytes(frame)
			if n < 0 {
				return dst, fmt.Errorf("frame reading: %w", protowire.ParseError(n))
			}
			if len(dst) >= maxReadings {
				return dst, errTooManyReadings
			}
			dst = append(dst, v)
			frame = frame[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, frame)
		if n < 0 {
			return dst, fmt.Errorf("frame field %d: %w", num, protowire.ParseError(n))
		}
		frame = frame[n:]
	}
	return dst, nil
}

// decodedReading is the outcome of decoding and validating one reading.
type decodedReading struct {
	raw    []byte // the serialized reading, a sub-slice of the frame
	device string // device ID ("" when missing or not valid UTF-8)
	site   string // site ID ("" when missing, any ID is not valid UTF-8, or not asked for: decoder.noSites)
	// siteKey is the site ID as sent, a sub-slice of the frame: the key of
	// a valid reading's record.
	siteKey []byte
	seq     uint64
	reason  reason // reasonOK when valid
	// rawDevice is the device ID as sent, for the rejected record's header.
	rawDevice []byte
	// dev is the device's entry in the decoder's table (nil when the ID
	// is not interned).
	dev *devEntry
}

// devEntry is what a connection's decoder keeps of a device it read: the
// interned ID, and what the later steps of a reading would otherwise look
// up by that ID in maps of their own, so that a reading costs one lookup
// by device ID instead of four. It lives as long as the decoder (which a
// connection idle for a ping interval lets go of).
type devEntry struct {
	id string
	// site is the interned site ID of the device's last reading: a device
	// keeps its site, so its readings need no lookup of the site ID.
	site string
	// hash is the ID's hash with the server's seed (Server.idHash): the
	// key of the device in the rate limiter and the setpoint holders,
	// computed once per entry.
	hash uint64
	// granted is set once the connection's grant allowed the device at
	// site: its later readings there need no lookup in the grant (a
	// connection's grant does not change). A new site clears it.
	granted bool
	// acks is the device's ack state when it was last registered; it is
	// current only while its id is still this entry's (see
	// ackTracker.addFrame). Guarded by the ack tracker's mutex.
	acks *deviceAcks
}

// idReason reports whether rs rejects a reading for one of its IDs
// (missing, too long or not UTF-8): such a reading cannot be authorized or
// rate limited by device.
func idReason(rs reason) bool { return rs >= rDeviceIDMissing && rs <= rIDInvalidUTF8 }

// maxInterned bounds the device IDs a decoder interns, and maxSites apart
// from them its site IDs, so that a connection's tables cost at most about
// 250 KB however many devices it carries (most carry one device, and cost
// a few hundred bytes). A connection that sends more distinct device IDs
// (a large gateway) gets the first maxInterned from the table and
// allocates the ID of the others per reading, entering them in the
// setpoint holders again (a lookup in a table without pointers): about
// 0.2 µs more per reading than a table that held them all, which would
// cost some 200 bytes per device (BenchmarkIngestFleet). The tables start
// over only when 4·maxInterned such misses passed without a single hit:
// the connection's devices changed, and the tables follow the IDs it
// sends now; a gateway of more devices than the table keeps it (starting
// over at every window of misses would allocate the same share of entries
// anew, again and again, and a gateway cycling through its devices would
// never hit). A connection with more sites than maxSites allocates the
// site IDs of the devices beyond them once per device entry
// (devEntry.site); the sites do not count against the devices, so a
// gateway of maxInterned devices at as many sites is interned whole.
const (
	maxInterned = 1024
	maxSites    = 1024
)

// decoder decodes and validates frames. It reuses its scratch space, so it
// belongs to one goroutine (one connection).
type decoder struct {
	maxReadings int
	limits      Limits
	raws        [][]byte
	out         []decodedReading
	scratch     wire.Reading
	// devs interns the device IDs of the connection and ids its site IDs,
	// so that a reading of a known device costs no allocation; they hold
	// at most maxInterned and maxSites IDs. While devs holds few devices
	// (smallmap.MaxFew, no map) their sites are found through them and
	// ids is not made: most connections carry one device. misses counts
	// the IDs not interned since the tables filled up (or last looked at
	// starting over), hits the IDs found meanwhile.
	devs   smallmap.Map[*devEntry]
	ids    map[string]string
	misses int
	hits   int
	// admit, when set, decides on every reading whose IDs are valid (e is
	// the device's entry, or nil): reasonOK, or a reason (not
	// authorized) that overrides the content checks.
	// h is the device ID's hash (0: not hashed, no hash func).
	admit func(device, site string, e *devEntry, h uint64, nowMS int64) reason
	// met, when set, is told the ID and hash of every device the decoder
	// interns (once per entry) or cannot intern (every reading): the
	// connection holds the device for its setpoints.
	met func(device string, h uint64)
	// hash, when set, is the server's hash of device IDs (devEntry.hash).
	hash func(string) uint64
	// noSites is set when nothing asks for a reading's site ID as a
	// string (no grant to check it against): a device that is not
	// interned then costs no site ID (decodedReading.site is "").
	noSites bool
}

func newDecoder(maxReadings int, lim Limits) *decoder {
	return &decoder{maxReadings: maxReadings, limits: lim}
}

// intern returns b, a site ID, as a string: the one the connection's
// devices already hold, or from the table when it is there. A connection
// with few devices (no maps) allocates a site ID once per device, which
// keeps it (devEntry.site). IDs longer than the limit (rejected anyway) are
// not interned.
func (d *decoder) intern(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	for _, e := range d.devs.Few() {
		if e.site == string(b) {
			return e.site
		}
	}
	if s, ok := d.ids[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(b) > d.limits.MaxIDLength || !d.devs.Mapped() {
		return s
	}
	if d.ids == nil {
		d.ids = make(map[string]string)
	}
	if len(d.ids) >= maxSites {
		return s
	}
	d.ids[s] = s
	return s
}

// room reports whether one more device ID may be interned. Once the table
// is full, it counts a miss; after 4·maxInterned misses without a hit it
// empties the tables, so that they follow the IDs the connection sends
// now (see maxInterned).
func (d *decoder) room() bool {
	if d.devs.Len() < maxInterned {
		return true
	}
	d.misses++
	if d.misses < 4*maxInterned {
		return false
	}
	hit := d.hits > 0
	d.misses, d.hits = 0, 0
	if hit {
		return false
	}
	clear(d.ids)
	d.devs.Clear()
	return true
}

// device returns b, a device ID, as a string, its entry (nil when it is
// not interned: too long, or the tables are full) and its hash (0 when too
// long, or without a hash func).
func (d *decoder) device(b []byte) (string, *devEntry, uint64) {
	if len(b) == 0 {
		return "", nil, 0
	}
	if e, ok := d.devs.GetBytes(b); ok {
		if d.misses > 0 {
			d.hits++
		}
		return e.id, e, e.hash
	}
	s := string(b)
	if len(b) > d.limits.MaxIDLength {
		return s, nil, 0
	}
	var h uint64
	if d.hash != nil {
		h = d.hash(s)
	}
	if d.met != nil {
		d.met(s, h)
	}
	if !d.room() {
		return s, nil, h
	}
	e := &devEntry{id: s, hash: h}
	few := d.devs.Few()
	d.devs.Put(s, e)
	if few != nil && d.devs.Mapped() {
		// One device more than few: from now on sites are interned in
		// ids, starting with those the devices hold.
		d.ids = make(map[string]string, len(few))
		for _, f := range few {
			if f.site != "" {
				d.ids[f.site] = f.site
			}
		}
	}
	return s, e, h
}

// site returns b, the site ID of a reading of e's device, as a string.
func (d *decoder) site(e *devEntry, b []byte) string {
	if e == nil {
		return d.intern(b)
	}
	if e.site == "" || string(b) != e.site {
		e.site = d.intern(b)
		e.granted = false
	}
	return e.site
}

// decode splits a frame into readings and validates each one. The result
// is valid until the next call. An error means the frame as a whole is
// undecodable (or errTooManyReadings); nothing of it may be accepted then.
func (d *decoder) decode(frame []byte, nowMS int64) ([]decodedReading, error) {
	var err error
	d.raws, err = splitFrame(d.raws[:0], frame, d.maxReadings)
	if err != nil {
		return nil, err
	}
	d.out = d.out[:0]
	w := &d.scratch
	for _, raw := range d.raws {
		err := w.Parse(raw)
		// An ID that is not UTF-8 rejects the reading (with a reason), not
		// the frame: proto.Unmarshal would refuse it.
		badUTF8 := errors.Is(err, wire.ErrInvalidUTF8)
		if err != nil && !badUTF8 {
			return nil, err
		}
		dr := decodedReading{raw: raw, seq: w.Seq, rawDevice: w.DeviceID}
		if badUTF8 {
			dr.reason = rIDInvalidUTF8
			if utf8.Valid(w.DeviceID) {
				dr.device, dr.dev, _ = d.device(w.DeviceID)
			}
		} else {
			dr.reason = validateWire(w, nowMS, d.limits)
			var h uint64
			dr.device, dr.dev, h = d.device(w.DeviceID)
			if dr.dev != nil || !d.noSites {
				dr.site = d.site(dr.dev, w.SiteID)
			}
			dr.siteKey = w.SiteID
			if d.admit != nil && !idReason(dr.reason) {
				if rs := d.admit(dr.device, dr.site, dr.dev, h, nowMS); rs != reasonOK {
					dr.reason = rs
				}
			}
		}
		d.out = append(d.out, dr)
	}
	return d.out, nil
}
