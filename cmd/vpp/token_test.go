package main

import (
	"slices"
	"testing"
	"time"
)

func TestTokenKeygenFlags(t *testing.T) {
	runF, got := capture[tokenKeygenOptions]()
	if err := parseCmd(t, newTokenKeygenCmd(runF), "", "--out", "ingest.key"); err != nil {
		t.Fatal(err)
	}
	if o := *got; o.typ != "ed25519" || o.out != "ingest.key" || o.force {
		t.Errorf("options %+v", o)
	}
	for _, args := range [][]string{{}, {"--out", "k", "--type", "rsa"}} {
		runF, got := capture[tokenKeygenOptions]()
		wantUsageError(t, args, parseCmd(t, newTokenKeygenCmd(runF), "", args...), *got)
	}
}

func TestTokenIssueFlags(t *testing.T) {
	runF, got := capture[tokenIssueOptions]()
	if err := parseCmd(t, newTokenIssueCmd(runF), "", "--key", "ingest.key", "--device", "dev-1"); err != nil {
		t.Fatal(err)
	}
	if o := *got; o.keyFile != "ingest.key" || o.device != "dev-1" || o.subject != "dev-1" || o.ttl != 24*time.Hour {
		t.Errorf("options %+v: want sub from --device and a 24h TTL", o)
	}
	runF, got = capture[tokenIssueOptions]()
	err := parseCmd(t, newTokenIssueCmd(runF), "", "--key", "k", "--devices", " gw-a, ,gw-b", "--sites", "s1", "--subject", "gw7", "--ttl", "1h")
	if err != nil {
		t.Fatal(err)
	}
	if o := *got; !slices.Equal(o.devices, []string{"gw-a", "gw-b"}) || !slices.Equal(o.sites, []string{"s1"}) || o.subject != "gw7" || o.ttl != time.Hour {
		t.Errorf("options %+v", o)
	}
	for _, args := range [][]string{
		{"--device", "d"},
		{"--key", "k"},
		{"--key", "k", "--devices", " , "},
		{"--key", "k", "--device", "d", "--ttl", "0s"},
	} {
		runF, got := capture[tokenIssueOptions]()
		wantUsageError(t, args, parseCmd(t, newTokenIssueCmd(runF), "", args...), *got)
	}
}
