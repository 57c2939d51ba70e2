package kafka

import (
	"bytes"
	"context"
	"crypto/sha512"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/vppctl/vpp/internal/tlsutil/tlstest"
)

func TestSecretNeverPrints(t *testing.T) {
	const pw = "hunter2-secret"
	o := Options{Security: Security{SASLMechanism: SASLScramSHA512, User: "vpp", Password: pw}}
	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("opts", "opts", o, "pw", o.Security.Password)
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("opts", "opts", o, "pw", o.Security.Password)
	js, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		fmt.Sprint(o), fmt.Sprintf("%+v", o), fmt.Sprintf("%#v", o), fmt.Sprintf("%s %q %x %d", o.Security.Password, o.Security.Password, o.Security.Password, o.Security.Password),
		fmt.Errorf("wrap: %v", o).Error(), string(js), logs.String(),
	} {
		if strings.Contains(s, pw) {
			t.Errorf("password printed: %s", s)
		}
	}
}

func TestSecurityValidate(t *testing.T) {
	for _, tc := range []struct {
		s    Security
		want string
	}{
		{Security{}, ""},
		{Security{TLS: true, CAFile: "ca.pem"}, ""},
		{Security{CAFile: "ca.pem"}, "need --kafka-tls"},
		{Security{TLS: true, CertFile: "c.pem"}, "both --kafka-cert and --kafka-key"},
		{Security{SASLMechanism: "GSSAPI", User: "u", Password: "p"}, "want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"},
		{Security{SASLMechanism: "scram-sha-512", Password: "p"}, "needs --kafka-user"},
		{Security{SASLMechanism: SASLPlain, User: "u"}, "VPP_KAFKA_PASSWORD or --kafka-password-file"},
		{Security{User: "u"}, "needs --kafka-sasl-mechanism"},
		{Security{Password: "from-the-environment"}, ""},
		{Security{SASLMechanism: SASLScramSHA256, User: "u", PasswordFile: "pw"}, ""},
	} {
		err := tc.s.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: got %v, want %q", tc.s, err, tc.want)
		}
	}
}

func TestSaramaConfigSecurity(t *testing.T) {
	dir := t.TempDir()
	pki := tlstest.Write(t, dir, "client")
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := Options{Version: DefaultVersion, Security: Security{TLS: true, CAFile: pki.CA, CertFile: pki.Cert, KeyFile: pki.Key,
		ServerName: "kafka.example", SASLMechanism: "SCRAM-SHA-512", User: "vpp", PasswordFile: pwFile}}
	cfg, err := o.SaramaConfig()
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Net.TLS.Enable || cfg.Net.TLS.Config.RootCAs == nil || len(cfg.Net.TLS.Config.Certificates) != 1 ||
		cfg.Net.TLS.Config.ServerName != "kafka.example" || cfg.Net.TLS.Config.InsecureSkipVerify {
		t.Errorf("tls config: %+v", cfg.Net.TLS)
	}
	if !cfg.Net.SASL.Enable || cfg.Net.SASL.Mechanism != sarama.SASLTypeSCRAMSHA512 || cfg.Net.SASL.User != "vpp" ||
		cfg.Net.SASL.Password != "from-file" || cfg.Net.SASL.SCRAMClientGeneratorFunc == nil {
		t.Errorf("sasl config: mechanism %s user %s", cfg.Net.SASL.Mechanism, cfg.Net.SASL.User)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("sarama rejects the config: %v", err)
	}
	// The environment's password wins over the file.
	o.Security.Password = "from-env"
	if cfg, err = o.SaramaConfig(); err != nil || cfg.Net.SASL.Password != "from-env" {
		t.Errorf("password from Password: %v", err)
	}
	o.Security.Password, o.Security.PasswordFile = "", filepath.Join(dir, "missing")
	if _, err := o.SaramaConfig(); err == nil || !strings.Contains(err.Error(), "read password file") {
		t.Errorf("missing password file: %v", err)
	}
	// SCRAM conversations start (the first message names the user).
	c := &scramClient{hash: sha512.New}
	if err := c.Begin("vpp", "pw", ""); err != nil {
		t.Fatal(err)
	}
	first, err := c.Step("")
	if err != nil || !strings.HasPrefix(first, "n,,n=vpp,r=") {
		t.Errorf("first SCRAM message %q, %v", first, err)
	}
}

func TestExplainAuthz(t *testing.T) {
	o := Options{Brokers: []string{"127.0.0.1:9093"}, Prefix: "vpp."}
	err := o.TopicDenied(sarama.ErrTopicAuthorizationFailed, "WRITE", "vpp.telemetry")
	want := `kafka 127.0.0.1:9093: not authorized to WRITE topic vpp.telemetry: grant the user Write on topic prefix "vpp."`
	if err == nil || !strings.HasPrefix(err.Error(), want) || !errors.Is(err, sarama.ErrTopicAuthorizationFailed) {
		t.Errorf("got %v, want %s…", err, want)
	}
	err = o.GroupDenied(fmt.Errorf("join: %w", sarama.ErrGroupAuthorizationFailed), "vpp.aggregate", "vpp.telemetry")
	if err == nil || !strings.Contains(err.Error(), `not authorized to READ group vpp.aggregate: grant the user Read on group "vpp.aggregate"`) {
		t.Errorf("group: %v", err)
	}
	if err := o.TopicDenied(sarama.ErrClusterAuthorizationFailed, "CREATE", "vpp.state"); err == nil ||
		!strings.Contains(err.Error(), "not authorized to CREATE the cluster: grant the user Create on the cluster") {
		t.Errorf("cluster: %v", err)
	}
	if err := o.TopicDenied(sarama.ErrNotLeaderForPartition, "WRITE", "t"); !errors.Is(err, sarama.ErrNotLeaderForPartition) {
		t.Errorf("other errors pass through: %v", err)
	}
}

func TestExplainConnectionErrors(t *testing.T) {
	o := Options{Security: Security{SASLMechanism: SASLScramSHA512, User: "vpp"}}
	for _, tc := range []struct {
		err   error
		fatal bool
		want  string
	}{
		{sarama.ErrSASLAuthenticationFailed, true, `authentication failed: user "vpp" unknown or wrong password for SCRAM-SHA-512`},
		{sarama.ErrUnsupportedSASLMechanism, true, "does not accept SASL mechanism SCRAM-SHA-512"},
		{tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, true, "does not speak TLS"},
		{sarama.PacketDecodingError{Info: "bad"}, true, "another protocol"},
		{&net.OpError{Op: "dial", Err: errors.New("connection refused")}, false, "connection refused"},
	} {
		got, fatal := o.Explain("127.0.0.1:9093", tc.err)
		if fatal != tc.fatal || !strings.Contains(got.Error(), tc.want) {
			t.Errorf("%v: got %v (fatal %v), want %q (fatal %v)", tc.err, got, fatal, tc.want, tc.fatal)
		}
		if tc.fatal && !strings.HasPrefix(got.Error(), "kafka 127.0.0.1:9093: ") {
			t.Errorf("%v: does not name the broker: %v", tc.err, got)
		}
	}
}

// TestPreflightFailsFast checks that a TLS certificate from an unknown
// authority, a plaintext listener under --kafka-tls and a TLS listener
// without it end Preflight within seconds, each with its cause.
func TestPreflightFailsFast(t *testing.T) {
	dir := t.TempDir()
	server := tlstest.Write(t, dir, "127.0.0.1")
	other := tlstest.Write(t, t.TempDir(), "other")
	cert, err := tls.LoadX509KeyPair(server.Cert, server.Key)
	if err != nil {
		t.Fatal(err)
	}
	tlsLn, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer tlsLn.Close()
	go serveTLSHandshakes(tlsLn)
	plainLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer plainLn.Close()
	go serveGarbage(plainLn)

	for _, tc := range []struct {
		name string
		addr string
		sec  Security
		want string
	}{
		{"unknown CA", tlsLn.Addr().String(), Security{TLS: true, CAFile: other.CA}, "certificate signed by an unknown authority"},
		{"plaintext listener", plainLn.Addr().String(), Security{TLS: true, CAFile: server.CA}, "does not speak TLS"},
		{"TLS listener, plaintext client", tlsLn.Addr().String(), Security{}, "TLS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			start := time.Now()
			err := Preflight(ctx, Options{Brokers: []string{tc.addr}, Version: DefaultVersion, Security: tc.sec})
			took := time.Since(start)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.addr) {
				t.Fatalf("got %v, want an error naming %s and %q", err, tc.addr, tc.want)
			}
			if took > 10*time.Second || ctx.Err() != nil {
				t.Errorf("took %s", took)
			}
			t.Logf("%s: %v (after %s)", tc.name, err, took.Round(time.Millisecond))
		})
	}
}

// serveTLSHandshakes completes TLS handshakes and then closes.
func serveTLSHandshakes(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			_ = c.(*tls.Conn).Handshake()
			_, _ = c.Read(make([]byte, 64))
		}()
	}
}

// serveGarbage answers every connection with bytes that are not TLS.
func serveGarbage(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			_, _ = c.Read(make([]byte, 512))
			_, _ = c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
		}()
	}
}
