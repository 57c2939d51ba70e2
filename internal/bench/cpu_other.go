//go:build !unix

package bench

import "time"

// selfCPU is unknown here: the measurements need Linux.
func selfCPU() time.Duration { return 0 }
