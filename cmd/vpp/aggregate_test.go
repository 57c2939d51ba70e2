package main

import (
	"reflect"
	"testing"
	"time"

	"github.com/vppctl/vpp/internal/aggregate"
)

func TestAggregateFlags(t *testing.T) {
	runF, got := capture[aggregateOptions]()
	if err := parseCmd(t, newAggregateCmd(runF), ""); err != nil {
		t.Fatal(err)
	}
	want := aggregate.DefaultConfig()
	want.Kafka = (*got).cfg.Kafka
	if !reflect.DeepEqual((*got).cfg, want) {
		t.Errorf("config from the default flags\n got %+v\nwant %+v", (*got).cfg, want)
	}
	if (*got).cfg.ReserveSoCPct != 10 || (*got).cfg.Kafka.ClientID != "vpp-aggregate" {
		t.Errorf("reserve %v, client %q", (*got).cfg.ReserveSoCPct, (*got).cfg.Kafka.ClientID)
	}
	runF, got = capture[aggregateOptions]()
	if err := parseCmd(t, newAggregateCmd(runF), "", "--reserve-soc", "0", "--group", "g2", "--offline-after", "1m", "--quiet"); err != nil {
		t.Fatal(err)
	}
	if c := (*got).cfg; c.ReserveSoCPct != 0 || c.Group != "g2" || c.OfflineAfter != time.Minute || !(*got).quiet {
		t.Errorf("config %+v: want a reserve of 0 kept as 0", c)
	}
}
