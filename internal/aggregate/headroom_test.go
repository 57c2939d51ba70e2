package aggregate

import (
	"math"
	"testing"
	"time"

	"github.com/vppctl/vpp/proto/vppv1"
)

func TestHeadroom(t *testing.T) {
	// A 10 kWh battery limited to 5 kW each way; over 15 minutes its energy
	// sustains 4x its kWh in kW.
	base := func(soc, power float64, mode vppv1.Mode) *vppv1.Reading {
		return &vppv1.Reading{SocPct: soc, PowerKw: power, CapacityKwh: 10, MaxChargeKw: 5, MaxDischargeKw: 5, Mode: mode}
	}
	const h15 = 15 * time.Minute
	tests := []struct {
		name         string
		r            *vppv1.Reading
		reserve      float64
		horizon      time.Duration
		wantDis, wCh float64
	}{
		{"idle, limits bind", base(50, 0, vppv1.Mode_MODE_IDLE), 10, h15, 5, 5},
		{"discharging uses discharge room, adds charge room", base(50, 3, vppv1.Mode_MODE_DISCHARGING), 10, h15, 2, 8},
		{"charging adds discharge room, uses charge room", base(50, -2, vppv1.Mode_MODE_CHARGING), 10, h15, 7, 3},
		{"near reserve, energy binds discharge", base(12, 0, vppv1.Mode_MODE_IDLE), 10, h15, 0.8, 5},
		{"below reserve, no discharge", base(5, 0, vppv1.Mode_MODE_IDLE), 10, h15, 0, 5},
		{"below reserve while discharging, clamps at 0", base(5, 1, vppv1.Mode_MODE_DISCHARGING), 10, h15, 0, 6},
		{"full, no charge unless it stops discharging", base(100, 2, vppv1.Mode_MODE_DISCHARGING), 10, h15, 3, 2},
		{"nearly full, energy binds charge", base(98, 0, vppv1.Mode_MODE_IDLE), 10, h15, 5, 0.8},
		{"long horizon, energy binds both", base(50, 0, vppv1.Mode_MODE_IDLE), 10, 4 * time.Hour, 1, 1.25},
		{"zero horizon, limits only", base(11, 0, vppv1.Mode_MODE_IDLE), 10, 0, 5, 5},
		{"no reserve", base(1, 0, vppv1.Mode_MODE_IDLE), 0, h15, 0.4, 5},
		{"fault", base(50, 0, vppv1.Mode_MODE_FAULT), 10, h15, 0, 0},
		{"standby", base(50, 0, vppv1.Mode_MODE_STANDBY), 10, h15, 0, 0},
		{"unspecified mode", base(50, 0, vppv1.Mode_MODE_UNSPECIFIED), 10, h15, 0, 0},
		{"nil reading", nil, 10, h15, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dis, ch := Headroom(tt.r, tt.reserve, tt.horizon)
			if math.Abs(dis-tt.wantDis) > 1e-9 || math.Abs(ch-tt.wCh) > 1e-9 {
				t.Errorf("Headroom = (%v, %v), want (%v, %v)", dis, ch, tt.wantDis, tt.wCh)
			}
			if dis < 0 || ch < 0 {
				t.Errorf("negative headroom (%v, %v)", dis, ch)
			}
		})
	}
}
