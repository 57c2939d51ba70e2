package dispatch

import (
	"fmt"
	"strconv"
	"strings"
)

// Key prefixes of the dispatch topic.
const (
	prefixDispatch   = "d/"
	prefixAllocation = "a/"
	prefixReport     = "r/"
	prefixStatus     = "t/"
)

// Kind is what a dispatch-topic record holds, from its key.
type Kind int

// The kinds of record in the dispatch topic.
const (
	KindUnknown Kind = iota
	KindDispatch
	KindAllocation
	KindReport
	KindStatus
)

// DispatchKey is the key of dispatch id's request record.
func DispatchKey(id string) string { return prefixDispatch + id }

// AllocationKey is the key of dispatch id's allocation record.
func AllocationKey(id string) string { return prefixAllocation + id }

// StatusKey is the key of dispatch id's status record.
func StatusKey(id string) string { return prefixStatus + id }

// ReportKey is the key of the report of telemetry partition p on dispatch id.
func ReportKey(id string, p int32) string {
	return prefixReport + id + "/" + strconv.Itoa(int(p))
}

// ParseKey says what the record with key holds, and for which dispatch and
// (for reports) partition.
func ParseKey(key string) (kind Kind, id string, partition int32, err error) {
	switch {
	case strings.HasPrefix(key, prefixDispatch):
		kind, id = KindDispatch, key[len(prefixDispatch):]
	case strings.HasPrefix(key, prefixAllocation):
		kind, id = KindAllocation, key[len(prefixAllocation):]
	case strings.HasPrefix(key, prefixStatus):
		kind, id = KindStatus, key[len(prefixStatus):]
	case strings.HasPrefix(key, prefixReport):
		rest := key[len(prefixReport):]
		i := strings.LastIndexByte(rest, '/')
		if i < 0 {
			return KindUnknown, "", 0, fmt.Errorf("dispatch key %q: no partition", key)
		}
		p, perr := strconv.ParseInt(rest[i+1:], 10, 32)
		if perr != nil || p < 0 {
			return KindUnknown, "", 0, fmt.Errorf("dispatch key %q: bad partition", key)
		}
		kind, id, partition = KindReport, rest[:i], int32(p)
	default:
		return KindUnknown, "", 0, fmt.Errorf("dispatch key %q: unknown kind", key)
	}
	if err := ValidID(id); err != nil {
		return KindUnknown, "", 0, fmt.Errorf("dispatch key %q: %w", key, err)
	}
	return kind, id, partition, nil
}

// ValidID checks a dispatch ID: 1..64 bytes of [A-Za-z0-9._-].
func ValidID(id string) error {
	if id == "" || len(id) > 64 {
		return fmt.Errorf("dispatch ID must be 1..64 characters, got %d", len(id))
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("dispatch ID %q: character %q not allowed (use A-Z a-z 0-9 . _ -)", id, c)
		}
	}
	return nil
}
