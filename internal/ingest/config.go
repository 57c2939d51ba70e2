package ingest

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"math"
	"os"
	"time"

	"github.com/vppctl/vpp/internal/auth"
	"github.com/vppctl/vpp/internal/buffer"
	"github.com/vppctl/vpp/internal/kafka"
)

// Config configures a Server. Start from DefaultConfig and change what
// differs. For convenience New also takes a zero field that has no meaning
// of its own (a size, a bound, an interval, the address) as its default;
// PowerTolerance and DeviceRate, whose zero means something, are used as
// given, so a Config literal that leaves them out has no power tolerance
// and no rate limit.
type Config struct {
	// Listen is the TCP address to serve on, e.g. 127.0.0.1:8080 (":0" or
	// "127.0.0.1:0" for a free port).
	Listen string
	// Kafka configures the Kafka producer and topic names (the prefix is
	// used as given: set it, e.g. to kafka.DefaultPrefix).
	Kafka kafka.Options
	// NoSetpoints turns off the setpoint reader: no setpoints reach the
	// devices through this instance (for tests of the uplink alone).
	NoSetpoints bool
	// Instance identifies this ingest instance in the stats topic
	// (default hostname-pid).
	Instance string
	// MaxFrameBytes bounds one WebSocket message (default 1 MiB); a larger
	// one closes the connection with 1009.
	MaxFrameBytes int64
	// MaxReadingsPerFrame bounds the readings of one frame (default 10000);
	// a frame with more is rejected whole and the connection is closed
	// with 1008.
	MaxReadingsPerFrame int
	// BufferRecords is the capacity in records of the bounded buffer
	// (default 100000). It also bounds a connection's ack bookkeeping.
	BufferRecords int
	// BufferBytes is the capacity in bytes of the bounded buffer (default
	// 64 MiB).
	BufferBytes int64
	// Buffer replaces the in-memory buffer (for a durable spool); nil uses
	// buffer.NewMemoryBuffer(BufferRecords, BufferBytes).
	Buffer buffer.Buffer
	// MaxClockSkew is how far in the future a reading's timestamp may lie
	// (default 5m).
	MaxClockSkew time.Duration
	// MaxAge is how old a reading's timestamp may be (default 24h).
	MaxAge time.Duration
	// PowerTolerance is the fraction above the device's own power limits
	// still accepted (default 0.05; 0 accepts nothing above the limits).
	PowerTolerance float64
	// MaxIDLength bounds every ID in bytes (default 64).
	MaxIDLength int
	// AckInterval is how often acks are flushed to a connection (default
	// 20ms).
	AckInterval time.Duration
	// StatsInterval is how often IngestStats is published (default 1s).
	StatsInterval time.Duration
	// ShutdownTimeout bounds the drain into Kafka on shutdown (default 30s).
	ShutdownTimeout time.Duration
	// PingInterval is how often a connection is pinged; a peer silent for
	// 2.5 intervals (no message, no pong) is dropped (default 20s).
	PingInterval time.Duration
	// Logger receives structured logs (default slog.Default()).
	Logger *slog.Logger

	// Auth verifies the bearer token of every WebSocket handshake; readings
	// of devices and sites the token does not cover are rejected with
	// device_not_authorized. nil requires Insecure.
	Auth *auth.Verifier
	// Insecure accepts connections without a token (Auth nil); New logs a
	// warning. Without Auth or Insecure, New fails.
	Insecure bool
	// TLS, when set, serves wss:// (the listener is wrapped in TLS).
	TLS *tls.Config
	// MaxConns bounds open connections (and handshakes in progress)
	// in total (default 10000); more are answered 503 before the upgrade.
	MaxConns int
	// MaxConnsPerIP bounds open connections from one remote IP (default
	// 1000); more are answered 503 before the upgrade.
	MaxConnsPerIP int
	// HandshakeTimeout bounds the TLS handshake and the HTTP request of the
	// WebSocket handshake (default 10s).
	HandshakeTimeout time.Duration
	// ReadIdleTimeout closes a connection with 1008 when no complete
	// message arrived for this long (default 2m): idle and slowloris
	// connections are cut; pongs do not count.
	ReadIdleTimeout time.Duration
	// DeviceRate is the sustained readings per second read per device ID
	// (default DefaultDeviceRate; 0 or +Inf disables the limit). A device
	// beyond it and the burst is slowed down, never rejected: its
	// connection stops reading until the device is within its rate again
	// (a gateway's connection until the slowest of the frame's devices is).
	DeviceRate float64
	// DeviceBurst is the bucket size of DeviceRate: readings a device may
	// send at once, e.g. a retransmit after a reconnect (default 5000).
	DeviceBurst int
	// DeviceRateTable is the buckets of the rate limit (default 131072), a
	// table fixed at start: a bucket refilled to its burst makes room for
	// another device at no loss; beyond that the bucket closest to full
	// of a set is given up (see rateLimiter).
	DeviceRateTable int
}

// Defaults of Config that other packages and the command line name.
const (
	// DefaultListen is the address ingest serves on.
	DefaultListen = "127.0.0.1:8080"
	// DefaultDeviceRate is the sustained readings per second read per
	// device ID before its connection is slowed down.
	DefaultDeviceRate = 100
)

// DefaultConfig returns the Config with every default, and no Kafka
// brokers and no device authentication: set Kafka, and Auth or Insecure,
// then change what differs. The defaults are those stated on each field;
// the flags of vpp ingest are registered from these values.
func DefaultConfig() Config {
	lim := DefaultLimits()
	return Config{
		Listen:              DefaultListen,
		MaxFrameBytes:       1 << 20,
		MaxReadingsPerFrame: 10_000,
		BufferRecords:       100_000,
		BufferBytes:         64 << 20,
		MaxClockSkew:        lim.MaxClockSkew,
		MaxAge:              lim.MaxAge,
		PowerTolerance:      lim.PowerTolerance,
		MaxIDLength:         lim.MaxIDLength,
		AckInterval:         20 * time.Millisecond,
		StatsInterval:       time.Second,
		ShutdownTimeout:     30 * time.Second,
		PingInterval:        20 * time.Second,
		MaxConns:            10_000,
		MaxConnsPerIP:       1000,
		HandshakeTimeout:    10 * time.Second,
		ReadIdleTimeout:     2 * time.Minute,
		DeviceRate:          DefaultDeviceRate,
		DeviceBurst:         5000,
		DeviceRateTable:     1 << 17,
	}
}

// withDefaults returns cfg with every zero field that has no meaning of
// its own taken from DefaultConfig, or an error for a negative one.
// PowerTolerance and DeviceRate are used as given: 0 is no tolerance and
// no rate limit.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.MaxFrameBytes < 0 || cfg.MaxReadingsPerFrame < 0 || cfg.BufferRecords < 0 || cfg.BufferBytes < 0 ||
		cfg.MaxClockSkew < 0 || cfg.MaxAge < 0 || cfg.PowerTolerance < 0 || cfg.MaxIDLength < 0 ||
		cfg.AckInterval < 0 || cfg.StatsInterval < 0 || cfg.ShutdownTimeout < 0 || cfg.PingInterval < 0 ||
		cfg.MaxConns < 0 || cfg.MaxConnsPerIP < 0 || cfg.HandshakeTimeout < 0 || cfg.ReadIdleTimeout < 0 ||
		cfg.DeviceRate < 0 || math.IsNaN(cfg.DeviceRate) || cfg.DeviceBurst < 0 || cfg.DeviceRateTable < 0 {
		return cfg, fmt.Errorf("ingest config: limits and intervals must not be negative")
	}
	if cfg.Auth == nil && !cfg.Insecure {
		return cfg, fmt.Errorf("ingest config: no device authentication: give a token key (--auth-key) or explicitly run --insecure")
	}
	def := DefaultConfig()
	setDefault(&cfg.Listen, def.Listen)
	setDefault(&cfg.MaxFrameBytes, def.MaxFrameBytes)
	setDefault(&cfg.MaxReadingsPerFrame, def.MaxReadingsPerFrame)
	setDefault(&cfg.BufferRecords, def.BufferRecords)
	setDefault(&cfg.BufferBytes, def.BufferBytes)
	setDefault(&cfg.MaxClockSkew, def.MaxClockSkew)
	setDefault(&cfg.MaxAge, def.MaxAge)
	setDefault(&cfg.MaxIDLength, def.MaxIDLength)
	setDefault(&cfg.AckInterval, def.AckInterval)
	setDefault(&cfg.StatsInterval, def.StatsInterval)
	setDefault(&cfg.ShutdownTimeout, def.ShutdownTimeout)
	setDefault(&cfg.PingInterval, def.PingInterval)
	setDefault(&cfg.MaxConns, def.MaxConns)
	setDefault(&cfg.MaxConnsPerIP, def.MaxConnsPerIP)
	setDefault(&cfg.HandshakeTimeout, def.HandshakeTimeout)
	setDefault(&cfg.ReadIdleTimeout, def.ReadIdleTimeout)
	setDefault(&cfg.DeviceBurst, def.DeviceBurst)
	setDefault(&cfg.DeviceRateTable, def.DeviceRateTable)
	if cfg.Instance == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "ingest"
		}
		cfg.Instance = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg, nil
}

func setDefault[T comparable](p *T, def T) {
	var zero T
	if *p == zero {
		*p = def
	}
}

// limits returns the validation limits of the config.
func (cfg Config) limits() Limits {
	return Limits{
		MaxClockSkew:   cfg.MaxClockSkew,
		MaxAge:         cfg.MaxAge,
		PowerTolerance: cfg.PowerTolerance,
		MaxIDLength:    cfg.MaxIDLength,
	}
}
