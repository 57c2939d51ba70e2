// Package flagval parses and formats the human quantities vpp's flags accept:
// counts and rates with SI suffixes (10k, 1.5M) and byte sizes (64MiB, 1GB).
package flagval

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ParseCount parses a non-negative number with an optional SI suffix:
// k (1e3), M (1e6), G (1e9), case-insensitive for k. "10k" is 10000,
// "1.5M" is 1500000. A trailing "/s" is allowed for rates.
func ParseCount(s string) (float64, error) {
	t := strings.TrimSpace(s)
	t = strings.TrimSuffix(t, "/s")
	if t == "" {
		return 0, fmt.Errorf("parse %q: empty", s)
	}
	mult := 1.0
	switch t[len(t)-1] {
	case 'k', 'K':
		mult = 1e3
	case 'M', 'm':
		mult = 1e6
	case 'G', 'g':
		mult = 1e9
	}
	if mult != 1 {
		t = t[:len(t)-1]
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil {
		return 0, fmt.Errorf("parse %q: not a number", s)
	}
	v *= mult
	if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("parse %q: must be a finite number >= 0", s)
	}
	return v, nil
}

// ParseBytes parses a byte size: a plain number, or one with a suffix
// B, KB/MB/GB/TB (powers of 1000) or KiB/MiB/GiB/TiB (powers of 1024);
// a bare k is 1000, a bare K, M or G a power of 1024. Sizes that do not
// fit an int64 are an error.
func ParseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   float64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
		{"k", 1e3}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30},
		{"B", 1},
	}
	mult := 1.0
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			mult = u.mult
			t = strings.TrimSpace(strings.TrimSuffix(t, u.suffix))
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("parse size %q: want a number with an optional unit such as 64MiB", s)
	}
	if v*mult >= math.MaxInt64 {
		return 0, fmt.Errorf("parse size %q: more than %d bytes", s, int64(math.MaxInt64))
	}
	return int64(v * mult), nil
}

// Count is a pflag.Value for a count or rate with SI suffixes.
type Count struct{ V float64 }

// String implements pflag.Value.
func (c *Count) String() string { return FormatCount(c.V) }

// Set implements pflag.Value.
func (c *Count) Set(s string) error {
	v, err := ParseCount(s)
	if err != nil {
		return err
	}
	c.V = v
	return nil
}

// Type implements pflag.Value.
func (c *Count) Type() string { return "count" }

// Bytes is a pflag.Value for a byte size.
type Bytes struct{ V int64 }

// String implements pflag.Value.
func (b *Bytes) String() string { return FormatBytes(b.V) }

// Set implements pflag.Value.
func (b *Bytes) Set(s string) error {
	v, err := ParseBytes(s)
	if err != nil {
		return err
	}
	b.V = v
	return nil
}

// Type implements pflag.Value.
func (b *Bytes) Type() string { return "size" }

// FormatCount formats n with an SI suffix: 10000 → "10k".
func FormatCount(n float64) string {
	switch {
	case n >= 1e9:
		return strconv.FormatFloat(n/1e9, 'g', 4, 64) + "G"
	case n >= 1e6:
		return strconv.FormatFloat(n/1e6, 'g', 4, 64) + "M"
	case n >= 1e3:
		return strconv.FormatFloat(n/1e3, 'g', 4, 64) + "k"
	}
	return strconv.FormatFloat(n, 'g', 4, 64)
}

// FormatBytes formats n in binary units: 67108864 → "64MiB".
func FormatBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + "GiB"
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "KiB"
	}
	return strconv.FormatInt(n, 10) + "B"
}

// ParsePowerKW parses a signed power in kW: a bare number is kW, and a
// number with the unit W, kW, MW or GW (case-insensitive for the unit's
// letter after the SI prefix) is converted: "5MW" is 5000, "-250kW" is
// -250, "1.5" is 1.5. A trailing "/s" is allowed for ramp rates ("1MW/s").
// SI prefixes without W ("5M") are refused: a bare number is kW, and
// "5M" would read as 5 million kW.
func ParsePowerKW(s string) (float64, error) {
	t := strings.TrimSpace(s)
	t = strings.TrimSuffix(t, "/s")
	neg := false
	if strings.HasPrefix(t, "-") {
		neg, t = true, t[1:]
	} else {
		t = strings.TrimPrefix(t, "+")
	}
	if strings.HasPrefix(t, "-") || strings.HasPrefix(t, "+") {
		return 0, fmt.Errorf("power %q: more than one sign", s)
	}
	var v float64
	if u := strings.TrimRight(t, "wW"); len(u) == len(t)-1 {
		n, err := ParseCount(u)
		if err != nil {
			return 0, fmt.Errorf("power %q: want a number with W, kW, MW or GW, or a bare number of kW", s)
		}
		v = n / 1e3
	} else {
		n, err := strconv.ParseFloat(t, 64)
		if err != nil || strings.TrimSpace(t) != t || t == "" {
			return 0, fmt.Errorf("power %q: want a number with W, kW, MW or GW, or a bare number of kW", s)
		}
		v = n
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("power %q: must be finite", s)
	}
	if neg {
		v = -v
	}
	return v, nil
}

// FormatPowerKW formats a power given in kW with the largest unit that
// keeps it at or above 1: 5000 → "5MW", -250 → "-250kW", 0.5 → "500W".
func FormatPowerKW(kw float64) string {
	a := math.Abs(kw)
	f := func(v float64, unit string) string {
		return strconv.FormatFloat(math.Copysign(v, kw), 'f', -1, 64) + unit
	}
	switch {
	case a >= 1e6:
		return f(math.Round(a/1e6*1000)/1000, "GW")
	case a >= 1e3:
		return f(math.Round(a/1e3*1000)/1000, "MW")
	case a >= 1 || a == 0:
		return f(math.Round(a*1000)/1000, "kW")
	default:
		return f(math.Round(a*1e3*1000)/1000, "W")
	}
}
