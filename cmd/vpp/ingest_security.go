package main

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/pflag"

	"github.com/vppctl/vpp/internal/auth"
	"github.com/vppctl/vpp/internal/flagval"
	"github.com/vppctl/vpp/internal/ingest"
	"github.com/vppctl/vpp/internal/tlsutil"
)

// ingestSecurityFlags are vpp ingest's flags for who may connect and how
// much one client may take: device tokens, TLS and the connection and rate
// limits.
type ingestSecurityFlags struct {
	authKey   string
	insecure  bool
	leeway    time.Duration
	tlsCert   string
	tlsKey    string
	maxConns  int
	maxPerIP  int
	handshake time.Duration
	idle      time.Duration
	rate      flagval.Count
	burst     int
	rateTable int
}

// register adds the flags to fs with the defaults of def.
func (f *ingestSecurityFlags) register(fs *pflag.FlagSet, def ingest.Config) {
	f.rate = flagval.Count{V: def.DeviceRate}
	fs.StringVar(&f.authKey, "auth-key", "", "verify device tokens with this `file`: an HMAC-SHA256 secret or an Ed25519 public key (PEM); see vpp token")
	fs.BoolVar(&f.insecure, "insecure", false, "accept devices without a token (development only; logs a warning)")
	fs.DurationVar(&f.leeway, "auth-leeway", auth.DefaultLeeway, "clock skew allowed on a token's exp, nbf and iat")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "serve wss:// with this certificate `file` (PEM; reloaded when it changes)")
	fs.StringVar(&f.tlsKey, "tls-key", "", "private key `file` of --tls-cert (PEM)")
	fs.IntVar(&f.maxConns, "max-conns", def.MaxConns, "most open device connections; more are refused with HTTP 503")
	fs.IntVar(&f.maxPerIP, "max-conns-per-ip", def.MaxConnsPerIP, "most open connections from one remote IP; more are refused with HTTP 503")
	fs.DurationVar(&f.handshake, "handshake-timeout", def.HandshakeTimeout, "bound on the TLS and WebSocket handshake")
	fs.DurationVar(&f.idle, "read-idle-timeout", def.ReadIdleTimeout, "close a connection (1008) that sent no complete message for this long")
	fs.Var(&f.rate, "device-rate", "readings per second read per device ID; beyond it and --device-burst the device's connection stops reading until it is within its rate again (0: no limit)")
	fs.IntVar(&f.burst, "device-burst", def.DeviceBurst, "readings a device may send at once (e.g. a retransmit after a reconnect)")
	fs.IntVar(&f.rateTable, "device-rate-table", def.DeviceRateTable, "buckets of the per-device rate limit (fixed, 24 bytes each); a bucket refilled to its burst is reused for another device at no loss, else the one closest to full")
}

// validate checks the flags and sets cfg's plain security fields: Insecure,
// the connection limits and the device rate limit. Errors are usage errors
// (exit 2).
func (f *ingestSecurityFlags) validate(cfg *ingest.Config) error {
	switch {
	case f.authKey != "" && f.insecure:
		return usageError{errors.New("--auth-key and --insecure: choose one")}
	case f.authKey == "" && !f.insecure:
		return usageError{errors.New("no device authentication configured: give --auth-key FILE (see vpp token keygen), or --insecure to accept unauthenticated devices (development only)")}
	}
	if f.maxConns < 1 || f.maxPerIP < 1 || f.burst < 1 || f.rateTable < 1 || f.handshake <= 0 || f.idle <= 0 {
		return usageError{errors.New("--max-conns, --max-conns-per-ip, --device-burst, --device-rate-table, --handshake-timeout and --read-idle-timeout must be positive")}
	}
	cfg.Insecure = f.insecure
	cfg.MaxConns, cfg.MaxConnsPerIP = f.maxConns, f.maxPerIP
	cfg.HandshakeTimeout, cfg.ReadIdleTimeout = f.handshake, f.idle
	cfg.DeviceRate, cfg.DeviceBurst, cfg.DeviceRateTable = f.rate.V, f.burst, f.rateTable
	return nil
}

// apply loads the token key and the TLS certificate into cfg (after
// validate). Errors are usage errors (exit 2).
func (f *ingestSecurityFlags) apply(cfg *ingest.Config, log *slog.Logger) error {
	if f.authKey != "" {
		key, err := auth.LoadKey(f.authKey)
		if err != nil {
			return usageError{fmt.Errorf("--auth-key: %w", err)}
		}
		cfg.Auth = auth.NewVerifier(key, auth.VerifierOptions{Leeway: f.leeway})
	}
	if f.tlsCert != "" || f.tlsKey != "" {
		tc, err := tlsutil.ServerConfig(f.tlsCert, f.tlsKey, log)
		if err != nil {
			return usageError{fmt.Errorf("--tls-cert/--tls-key: %w", err)}
		}
		cfg.TLS = tc
	}
	if cfg.DeviceRate == 0 {
		log.Warn("per-device rate limit is off (--device-rate 0)")
	}
	return nil
}
