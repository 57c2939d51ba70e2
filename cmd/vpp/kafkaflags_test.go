package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vppctl/vpp/internal/kafka"
)

// TestKafkaSecurityFlags checks the TLS and SASL flags of a Kafka command,
// from the command line, the environment and the config file, and that
// the password has no flag and never shows in --help.
func TestKafkaSecurityFlags(t *testing.T) {
	const pw = "s3cret-from-env"
	t.Setenv("VPP_KAFKA_PASSWORD", pw)
	t.Setenv("VPP_KAFKA_USER", "vpp-ingest")
	cfg := filepath.Join(t.TempDir(), "vpp.yaml")
	if err := os.WriteFile(cfg, []byte("kafka-tls: true\nkafka-ca: /etc/vpp/kafka-ca.pem\naggregate:\n  kafka-sasl-mechanism: SCRAM-SHA-512\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	runF, got := capture[aggregateOptions]()
	err := parseCmd(t, newAggregateCmd(runF), cfg, "--kafka-tls-server-name", "kafka.internal",
		"--kafka-cert", "c.pem", "--kafka-key", "k.pem", "--kafka-password-file", "/run/secrets/kafka")
	if err != nil || *got == nil {
		t.Fatalf("parse: %v", err)
	}
	want := kafka.Security{TLS: true, CAFile: "/etc/vpp/kafka-ca.pem", CertFile: "c.pem", KeyFile: "k.pem", ServerName: "kafka.internal",
		SASLMechanism: "SCRAM-SHA-512", User: "vpp-ingest", Password: pw, PasswordFile: "/run/secrets/kafka"}
	if g := (*got).cfg.Kafka.Security; g != want {
		t.Errorf("security %+v, want %+v", g, want)
	}

	for _, cmd := range []string{"ingest", "aggregate", "top", "demo", "bench"} {
		root := newRootCmd()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetArgs([]string{cmd, "--help"})
		if err := root.Execute(); err != nil {
			t.Fatal(err)
		}
		help := out.String()
		for _, f := range []string{"--kafka-tls", "--kafka-ca", "--kafka-cert", "--kafka-key", "--kafka-tls-server-name",
			"--kafka-sasl-mechanism", "--kafka-user", "--kafka-password-file", "VPP_KAFKA_PASSWORD", "[$VPP_KAFKA_USER]",
			"[$VPP_KAFKA_PASSWORD_FILE]"} {
			if !strings.Contains(help, f) {
				t.Errorf("vpp %s --help lacks %s", cmd, f)
			}
		}
		if strings.Contains(help, "--kafka-password ") || strings.Contains(help, pw) {
			t.Errorf("vpp %s --help offers or shows the password", cmd)
		}
	}
	runF3, got3 := capture[ingestOptions]()
	args := []string{"--kafka-ca", "ca.pem"} // without --kafka-tls
	wantUsageError(t, args, parseCmd(t, newIngestCmd(runF3), "", args...), *got3)
	runF2, got2 := capture[aggregateOptions]()
	if err := parseCmd(t, newAggregateCmd(runF2), "", "--kafka-password", pw); err == nil || *got2 != nil {
		t.Errorf("--kafka-password accepted: %v", err)
	}
}
