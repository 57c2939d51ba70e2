package flagval

import (
	"strings"
	"testing"
)

func TestParseCount(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
	}{
		{"0", 0},
		{"42", 42},
		{" 7 ", 7},
		{"2.5", 2.5},
		{"1e3", 1000},
		{"10k", 10_000},
		{"10K", 10_000},
		{"1.5M", 1_500_000},
		{"2m", 2_000_000},
		{"3G", 3e9},
		{"3g", 3e9},
		{"500/s", 500},
		{"20k/s", 20_000},
	} {
		got, err := ParseCount(tc.in)
		if err != nil {
			t.Errorf("ParseCount(%q): %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseCount(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestParseCountErrors(t *testing.T) {
	for _, in := range []string{
		"", " ", "/s", "k", "-1", "-1k", "NaN", "nan", "Inf", "+Inf", "-Inf", "1e400",
		"10x", "10kk", "10 k", "ten", "0x", "1,000", "10KiB",
	} {
		if v, err := ParseCount(in); err == nil {
			t.Errorf("ParseCount(%q) = %v, want an error", in, v)
		} else if !strings.Contains(err.Error(), "parse ") {
			t.Errorf("ParseCount(%q): error %q does not say what it parsed", in, err)
		}
	}
}

func TestParseBytes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"0", 0},
		{"512", 512},
		{"512B", 512},
		{"1KiB", 1 << 10},
		{"1.5KiB", 1536},
		{"64MiB", 64 << 20},
		{"2GiB", 2 << 30},
		{"1TiB", 1 << 40},
		{"1KB", 1000},
		{"10MB", 10_000_000},
		{"1GB", 1_000_000_000},
		{"2TB", 2_000_000_000_000},
		{"1k", 1000},
		{"1K", 1 << 10},
		{"4M", 4 << 20},
		{"1G", 1 << 30},
		{" 64 MiB ", 64 << 20},
	} {
		got, err := ParseBytes(tc.in)
		if err != nil {
			t.Errorf("ParseBytes(%q): %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseBytes(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestParseBytesErrors(t *testing.T) {
	for _, in := range []string{
		"", " ", "B", "MiB", "-1", "-1KiB", "NaN", "NaNMiB", "Inf", "InfGB", "-Inf",
		"1e400", "64XB", "64Mi", "64 mebibytes", "1,024", "64MiBs",
		"8EiB", "1e7TiB", "9.3e18",
	} {
		if v, err := ParseBytes(in); err == nil {
			t.Errorf("ParseBytes(%q) = %d, want an error", in, v)
		} else if !strings.Contains(err.Error(), "parse size") {
			t.Errorf("ParseBytes(%q): error %q does not say what it parsed", in, err)
		}
	}
}

func TestFormatCount(t *testing.T) {
	for _, tc := range []struct {
		in   float64
		want string
	}{
		{0, "0"},
		{1, "1"},
		{2.5, "2.5"},
		{999, "999"},
		{1000, "1k"},
		{10_000, "10k"},
		{12_345, "12.35k"},
		{1_500_000, "1.5M"},
		{3e9, "3G"},
		{2.5e12, "2500G"},
	} {
		if got := FormatCount(tc.in); got != tc.want {
			t.Errorf("FormatCount(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestFormatBytes(t *testing.T) {
	for _, tc := range []struct {
		in   int64
		want string
	}{
		{0, "0B"},
		{512, "512B"},
		{1 << 10, "1KiB"},
		{1536, "1536B"},
		{3 << 10, "3KiB"},
		{64 << 20, "64MiB"},
		{1<<20 + 1<<10, "1025KiB"},
		{2 << 30, "2GiB"},
		{1 << 40, "1024GiB"},
	} {
		if got := FormatBytes(tc.in); got != tc.want {
			t.Errorf("FormatBytes(%d) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestRoundTrip: what Format writes, Parse reads back as the same value,
// so a flag's default printed in --help is a valid value for the flag.
func TestRoundTrip(t *testing.T) {
	for _, n := range []float64{0, 1, 7.5, 999, 1000, 20_000, 1_500_000, 4e9} {
		got, err := ParseCount(FormatCount(n))
		if err != nil || got != n {
			t.Errorf("ParseCount(FormatCount(%v)) = %v, %v", n, got, err)
		}
	}
	for _, n := range []int64{0, 1, 1000, 1536, 1 << 10, 64 << 20, 1<<20 + 1<<10, 5 << 30} {
		got, err := ParseBytes(FormatBytes(n))
		if err != nil || got != n {
			t.Errorf("ParseBytes(FormatBytes(%d)) = %d, %v", n, got, err)
		}
	}
}

// TestValues: Count and Bytes behave as pflag.Values: Set parses, String
// formats, a bad Set leaves the value as it was.
func TestValues(t *testing.T) {
	c := Count{V: 5}
	if err := c.Set("20k"); err != nil || c.V != 20_000 || c.String() != "20k" {
		t.Errorf("Count.Set(20k): V %v, String %q, err %v", c.V, c.String(), err)
	}
	if err := c.Set("-3"); err == nil || c.V != 20_000 {
		t.Errorf("Count.Set(-3): V %v, err %v; want an error and V unchanged", c.V, err)
	}
	if c.Type() != "count" {
		t.Errorf("Count.Type() = %q", c.Type())
	}

	b := Bytes{V: 1}
	if err := b.Set("64MiB"); err != nil || b.V != 64<<20 || b.String() != "64MiB" {
		t.Errorf("Bytes.Set(64MiB): V %d, String %q, err %v", b.V, b.String(), err)
	}
	if err := b.Set("NaN"); err == nil || b.V != 64<<20 {
		t.Errorf("Bytes.Set(NaN): V %d, err %v; want an error and V unchanged", b.V, err)
	}
	if b.Type() != "size" {
		t.Errorf("Bytes.Type() = %q", b.Type())
	}
}

func TestParsePowerKW(t *testing.T) {
	for _, c := range []struct {
		in   string
		want float64
	}{
		{"5MW", 5000}, {"5mw", 5000}, {"-250kW", -250}, {"1.5", 1.5}, {"-2", -2},
		{"500W", 0.5}, {"1GW", 1e6}, {"1MW/s", 1000}, {" 3kW ", 3}, {"+4kW", 4},
	} {
		got, err := ParsePowerKW(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParsePowerKW(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{"", "5M", "abc", "5MWh", "NaN", "Inf", "kW", "--5", "5 kW x"} {
		if v, err := ParsePowerKW(in); err == nil {
			t.Errorf("ParsePowerKW(%q) = %v, want an error", in, v)
		}
	}
}

func TestFormatPowerKW(t *testing.T) {
	for kw, want := range map[float64]string{5000: "5MW", -250: "-250kW", 0.5: "500W", 0: "0kW", 2.5e6: "2.5GW", 1234.5: "1.235MW"} {
		if got := FormatPowerKW(kw); got != want {
			t.Errorf("FormatPowerKW(%v) = %q, want %q", kw, got, want)
		}
	}
}
