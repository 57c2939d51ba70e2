package fleet

import (
	"strconv"
	"strings"

	"github.com/vppctl/vpp/proto/vppv1"
)

// AlarmName is the short lower-case name of one alarm bit:
// ALARM_OVER_TEMPERATURE is "over_temperature"; a bit the contract does not
// name is "bit_N".
func AlarmName(bit uint32) string {
	if n, ok := vppv1.Alarm_name[int32(bit)]; ok && bit != 0 {
		return strings.ToLower(strings.TrimPrefix(n, "ALARM_"))
	}
	i := 0
	for b := bit; b > 1; b >>= 1 {
		i++
	}
	return "bit_" + strconv.Itoa(i)
}

// AlarmNames lists the names of the bits set in alarms, lowest bit first;
// nil when there is none.
func AlarmNames(alarms uint32) []string {
	var out []string
	for i := range AlarmBits {
		if b := uint32(1) << i; alarms&b != 0 {
			out = append(out, AlarmName(b))
		}
	}
	return out
}

// ModeName is the short lower-case name of an operating mode: MODE_CHARGING
// is "charging"; an unknown value is "mode_N".
func ModeName(m vppv1.Mode) string {
	if n, ok := vppv1.Mode_name[int32(m)]; ok {
		return strings.ToLower(strings.TrimPrefix(n, "MODE_"))
	}
	return "mode_" + strconv.Itoa(int(m))
}
