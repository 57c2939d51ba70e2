package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func newTestCmd() (*cobra.Command, *string, *int, *string) {
	var brokers, listen string
	var records int
	cmd := &cobra.Command{Use: "ingest"}
	cmd.Flags().StringVar(&brokers, "brokers", "default:9092", "")
	cmd.Flags().IntVar(&records, "buffer-records", 100, "")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "")
	return cmd, &brokers, &records, &listen
}

func TestSettingsPrecedence(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "vpp.yaml")
	if err := os.WriteFile(cfg, []byte("brokers: file:9092\nlisten: file-top:1\ningest:\n  buffer-records: 7\n  listen: file-section:2\nsim:\n  buffer-records: 99\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("VPP_BROKERS", "env:9092")
	cmd, brokers, records, listen := newTestCmd()
	if err := cmd.ParseFlags([]string{"--listen", "flag:3"}); err != nil {
		t.Fatal(err)
	}
	if err := applySettings(cmd, cfg); err != nil {
		t.Fatal(err)
	}
	if *brokers != "env:9092" {
		t.Errorf("brokers = %q, want the environment's", *brokers)
	}
	if *records != 7 {
		t.Errorf("buffer-records = %d, want 7 from the ingest section (not the sim section)", *records)
	}
	if *listen != "flag:3" {
		t.Errorf("listen = %q, want the command line's", *listen)
	}

	cmd, _, _, listen = newTestCmd()
	t.Setenv("VPP_CONFIG", cfg)
	if err := applySettings(cmd, ""); err != nil {
		t.Fatal(err)
	}
	if *listen != "file-section:2" {
		t.Errorf("listen = %q, want the section's value over the top level's", *listen)
	}
}

func TestSettingsErrors(t *testing.T) {
	t.Setenv("VPP_BUFFER_RECORDS", "lots")
	cmd, _, _, _ := newTestCmd()
	err := applySettings(cmd, "")
	if err == nil || !strings.Contains(err.Error(), "VPP_BUFFER_RECORDS") {
		t.Fatalf("bad env value: got %v, want an error naming the variable", err)
	}
	if _, ok := err.(usageError); !ok {
		t.Errorf("error %T is not a usage error (exit code 2)", err)
	}
	os.Unsetenv("VPP_BUFFER_RECORDS")
	cmd, _, _, _ = newTestCmd()
	if err := applySettings(cmd, filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Fatal("missing config file: no error")
	}
}

func TestEnvDocumentedInHelp(t *testing.T) {
	root := newRootCmd()
	ingest, _, err := root.Find([]string{"ingest"})
	if err != nil {
		t.Fatal(err)
	}
	if u := ingest.Flags().Lookup("max-frame-bytes").Usage; !strings.Contains(u, "$VPP_MAX_FRAME_BYTES") {
		t.Errorf("usage %q does not name its environment variable", u)
	}
}
