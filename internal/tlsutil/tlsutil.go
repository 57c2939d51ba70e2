// Package tlsutil builds the TLS configurations of vpp's servers (ingest's
// wss://, aggregate's https://) and clients (sim, against a private CA).
// A server's certificate is reloaded without a restart when its files
// change.
package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// CertReloader serves a certificate and key from files, loading them again
// on a handshake after either file's modification time or size changed.
// A failed reload keeps the previous certificate and is logged. It is safe
// for concurrent use.
type CertReloader struct {
	certFile, keyFile string
	log               *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   fileStamp
	lastErr string
}

// fileStamp identifies a version of the certificate and key files.
type fileStamp struct {
	certMod, keyMod   time.Time
	certSize, keySize int64
}

// NewCertReloader loads certFile and keyFile (PEM) and returns a reloader
// serving them. log may be nil.
func NewCertReloader(certFile, keyFile string, log *slog.Logger) (*CertReloader, error) {
	if log == nil {
		log = slog.Default()
	}
	r := &CertReloader{certFile: certFile, keyFile: keyFile, log: log}
	st, err := r.statFiles()
	if err != nil {
		return nil, err
	}
	if err := r.load(st); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *CertReloader) statFiles() (fileStamp, error) {
	ci, err := os.Stat(r.certFile)
	if err != nil {
		return fileStamp{}, fmt.Errorf("tls certificate: %w", err)
	}
	ki, err := os.Stat(r.keyFile)
	if err != nil {
		return fileStamp{}, fmt.Errorf("tls key: %w", err)
	}
	return fileStamp{ci.ModTime(), ki.ModTime(), ci.Size(), ki.Size()}, nil
}

// load reads the pair; r.mu is held or r is not shared yet.
func (r *CertReloader) load(st fileStamp) error {
	c, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("load tls certificate %s and key %s: %w", r.certFile, r.keyFile, err)
	}
	r.cert, r.stamp = &c, st
	return nil
}

// GetCertificate is a tls.Config.GetCertificate: the current certificate,
// reloaded first when the files changed.
func (r *CertReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st, err := r.statFiles()
	if err == nil && st != r.stamp {
		if err = r.load(st); err == nil {
			r.log.Info("tls certificate reloaded", "cert", r.certFile)
			r.lastErr = ""
		}
	}
	if err != nil && err.Error() != r.lastErr {
		r.lastErr = err.Error()
		r.log.Warn("tls certificate reload failed; serving the previous one", "err", err)
	}
	return r.cert, nil
}

// ServerConfig returns a TLS 1.2+ server configuration serving certFile and
// keyFile, reloaded when they change.
func ServerConfig(certFile, keyFile string, log *slog.Logger) (*tls.Config, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("tls: both a certificate and a key file are required")
	}
	r, err := NewCertReloader(certFile, keyFile, log)
	if err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.GetCertificate}, nil
}

// ClientConfig returns a TLS client configuration that trusts the PEM
// certificates in caFile (in addition to none: only them); "" trusts the
// system roots.
func ClientConfig(caFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile == "" {
		return cfg, nil
	}
	b, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("CA %s: no PEM certificate in it", caFile)
	}
	cfg.RootCAs = pool
	return cfg, nil
}
