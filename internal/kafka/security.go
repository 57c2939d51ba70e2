package kafka

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"os"
	"strings"

	"github.com/IBM/sarama"
	"github.com/xdg-go/scram"
)

// SASL mechanisms vpp speaks.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// Secret is a password: it prints, formats and logs as "[redacted]", so
// that no log line, error or dump of Options shows it.
type Secret string

const redacted = "[redacted]"

// String implements fmt.Stringer.
func (s Secret) String() string { return redacted }

// GoString implements fmt.GoStringer.
func (s Secret) GoString() string { return redacted }

// Format implements fmt.Formatter: every verb prints "[redacted]".
func (s Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText implements encoding.TextMarshaler (JSON, YAML).
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Security are the TLS and SASL settings of every connection to Kafka.
// The zero value is plaintext without authentication.
type Security struct {
	// TLS turns TLS on.
	TLS bool
	// CAFile is a PEM bundle of the certificate authorities to trust (""
	// trusts the system roots).
	CAFile string
	// CertFile and KeyFile are a PEM client certificate and key for
	// mutual TLS (both or neither).
	CertFile, KeyFile string
	// ServerName is the name the broker certificates must be valid for
	// ("" is the host of each broker address).
	ServerName string
	// SASLMechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 ("" is no
	// SASL).
	SASLMechanism string
	// User is the SASL user name.
	User string
	// Password is the SASL password; when empty, PasswordFile is read.
	Password Secret
	// PasswordFile holds the SASL password (one line; surrounding
	// whitespace is dropped).
	PasswordFile string
}

// Enabled reports whether any TLS or SASL setting is on.
func (s Security) Enabled() bool { return s.TLS || s.SASLMechanism != "" }

// Flags are the vpp command-line flags that give a child process these
// settings. The password has no flag: it reaches the child through
// PasswordFile, or through $VPP_KAFKA_PASSWORD, which the child inherits.
func (s Security) Flags() []string {
	var args []string
	if s.TLS {
		args = append(args, "--kafka-tls")
	}
	for _, f := range []struct{ flag, v string }{
		{"--kafka-ca", s.CAFile}, {"--kafka-cert", s.CertFile}, {"--kafka-key", s.KeyFile},
		{"--kafka-tls-server-name", s.ServerName}, {"--kafka-sasl-mechanism", s.SASLMechanism},
		{"--kafka-user", s.User}, {"--kafka-password-file", s.PasswordFile},
	} {
		if f.v != "" {
			args = append(args, f.flag, f.v)
		}
	}
	return args
}

// Validate checks the settings for contradictions without reading files.
func (s Security) Validate() error {
	if !s.TLS && (s.CAFile != "" || s.CertFile != "" || s.KeyFile != "" || s.ServerName != "") {
		return errors.New("kafka: --kafka-ca, --kafka-cert, --kafka-key and --kafka-tls-server-name need --kafka-tls")
	}
	if (s.CertFile == "") != (s.KeyFile == "") {
		return errors.New("kafka: mutual TLS needs both --kafka-cert and --kafka-key")
	}
	switch strings.ToUpper(s.SASLMechanism) {
	case "":
		// A password alone (a VPP_KAFKA_PASSWORD in the environment) is
		// harmless; a user is a half-configured SASL.
		if s.User != "" {
			return errors.New("kafka: --kafka-user needs --kafka-sasl-mechanism")
		}
		return nil
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
	default:
		return fmt.Errorf("kafka: SASL mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", s.SASLMechanism)
	}
	if s.User == "" {
		return errors.New("kafka: --kafka-sasl-mechanism needs --kafka-user")
	}
	if s.Password == "" && s.PasswordFile == "" {
		return errors.New("kafka: --kafka-sasl-mechanism needs a password: set VPP_KAFKA_PASSWORD or --kafka-password-file")
	}
	return nil
}

// apply turns the settings on in cfg.
func (s Security) apply(cfg *sarama.Config) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if s.TLS {
		tc, err := s.tlsConfig()
		if err != nil {
			return err
		}
		cfg.Net.TLS.Enable = true
		cfg.Net.TLS.Config = tc
	}
	mech := strings.ToUpper(s.SASLMechanism)
	if mech == "" {
		return nil
	}
	pw, err := s.password()
	if err != nil {
		return err
	}
	cfg.Net.SASL.Enable = true
	cfg.Net.SASL.Handshake = true
	cfg.Net.SASL.User = s.User
	cfg.Net.SASL.Password = pw
	switch mech {
	case SASLPlain:
		cfg.Net.SASL.Mechanism = sarama.SASLTypePlaintext
	case SASLScramSHA256:
		cfg.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA256
		cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: sha256.New} }
	case SASLScramSHA512:
		cfg.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
		cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: sha512.New} }
	}
	return nil
}

// password returns Password, else the content of PasswordFile.
func (s Security) password() (string, error) {
	if s.Password != "" {
		return string(s.Password), nil
	}
	b, err := os.ReadFile(s.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("kafka: read password file: %w", err)
	}
	pw := strings.TrimSpace(string(b))
	if pw == "" {
		return "", fmt.Errorf("kafka: password file %s is empty", s.PasswordFile)
	}
	return pw, nil
}

// tlsConfig is the client TLS configuration of the settings.
func (s Security) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: s.ServerName}
	if s.CAFile != "" {
		b, err := os.ReadFile(s.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kafka: read CA bundle: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("kafka: CA bundle %s: no PEM certificate in it", s.CAFile)
		}
		tc.RootCAs = pool
	}
	if s.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("kafka: client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// scramClient is sarama's SCRAM client on github.com/xdg-go/scram.
type scramClient struct {
	hash func() hash.Hash
	conv *scram.ClientConversation
}

// Begin implements sarama.SCRAMClient.
func (c *scramClient) Begin(user, password, authzID string) error {
	client, err := scram.HashGeneratorFcn(c.hash).NewClient(user, password, authzID)
	if err != nil {
		return fmt.Errorf("scram: %w", err)
	}
	c.conv = client.NewConversation()
	return nil
}

// Step implements sarama.SCRAMClient.
func (c *scramClient) Step(challenge string) (string, error) { return c.conv.Step(challenge) }

// Done implements sarama.SCRAMClient.
func (c *scramClient) Done() bool { return c.conv.Done() }
