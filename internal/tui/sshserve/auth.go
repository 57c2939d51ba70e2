package sshserve

import (
	"bufio"
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"

	"charm.land/ssh"
	gossh "golang.org/x/crypto/ssh"
)

// authorizedKeys is the allow-list of client keys read from an OpenSSH
// authorized_keys file, re-read whenever the file changes.
type authorizedKeys struct {
	path string
	log  *slog.Logger

	mu   sync.Mutex
	stat os.FileInfo         // of the file as last read; nil if unreadable
	keys map[string]struct{} // wire-format keys
}

// loadAuthorizedKeys reads path, which must exist and be readable.
func loadAuthorizedKeys(path string, log *slog.Logger) (*authorizedKeys, error) {
	a := &authorizedKeys{path: path, log: log}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("authorized keys: %w", err)
	}
	if err := a.reload(fi); err != nil {
		return nil, err
	}
	if len(a.keys) == 0 {
		log.Warn("authorized keys: no usable key, every client will be refused until the file changes", "path", path)
	}
	return a, nil
}

// reload reads the file whose current state is fi; on error the key set is
// left empty so that nobody gets in on a stale list.
func (a *authorizedKeys) reload(fi os.FileInfo) error {
	a.stat, a.keys = fi, nil
	data, err := os.ReadFile(a.path)
	if err != nil {
		return fmt.Errorf("authorized keys: %w", err)
	}
	a.keys = parseAuthorizedKeys(data, a.path, a.log)
	return nil
}

// allowed reports whether key is listed, re-reading the file first if it
// changed since it was last read. An unreadable file allows nobody.
func (a *authorizedKeys) allowed(key gossh.PublicKey) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	fi, err := os.Stat(a.path)
	if err != nil {
		if a.stat != nil || a.keys != nil {
			a.log.Error("authorized keys unreadable, refusing every key", "path", a.path, "err", err)
		}
		a.stat, a.keys = nil, nil
		return false
	}
	if a.stat == nil || !os.SameFile(a.stat, fi) || !fi.ModTime().Equal(a.stat.ModTime()) || fi.Size() != a.stat.Size() {
		if err := a.reload(fi); err != nil {
			a.log.Error("authorized keys unreadable, refusing every key", "path", a.path, "err", err)
			return false
		}
		a.log.Info("authorized keys reloaded", "path", a.path, "keys", len(a.keys))
	}
	_, ok := a.keys[string(key.Marshal())]
	return ok
}

// parseAuthorizedKeys parses an authorized_keys file, skipping (and
// logging) lines it cannot parse or whose options it cannot honour.
func parseAuthorizedKeys(data []byte, path string, log *slog.Logger) map[string]struct{} {
	keys := make(map[string]struct{})
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		key, _, options, _, err := ssh.ParseAuthorizedKey(line)
		if err != nil {
			log.Warn("authorized keys: line skipped", "path", path, "line", n, "err", err)
			continue
		}
		if bad := unsupportedOption(options); bad != "" {
			log.Warn("authorized keys: key skipped, option not supported", "path", path, "line", n,
				"option", bad, "fingerprint", gossh.FingerprintSHA256(key))
			continue
		}
		keys[string(key.Marshal())] = struct{}{}
	}
	if err := sc.Err(); err != nil {
		log.Warn("authorized keys: rest of file skipped", "path", path, "err", err)
	}
	return keys
}

// unsupportedOption returns the first option the server cannot honour.
//
// Options that only restrict what this server never offers (forwarding, rc
// files) are fine. Any other (from=, command=, expiry-time=, no-pty,
// cert-authority, ...) would be ignored silently, granting more than the
// file says, so a key carrying one is skipped.
func unsupportedOption(options []string) string {
	for _, o := range options {
		name, _, _ := strings.Cut(o, "=")
		switch strings.ToLower(name) {
		case "restrict", "no-port-forwarding", "no-agent-forwarding", "no-x11-forwarding", "no-user-rc":
		default:
			return o
		}
	}
	return ""
}

// authorize is the server's only authentication handler: the key must be
// in the authorized_keys file. Refusals are logged with the key's
// fingerprint.
func (s *Server) authorize(ctx ssh.Context, key ssh.PublicKey) bool {
	fp := gossh.FingerprintSHA256(key)
	if s.keys.allowed(key) {
		s.log.Debug("ssh key accepted", "remote", ctx.RemoteAddr().String(), "user", ctx.User(), "fingerprint", fp)
		return true
	}
	s.log.Warn("ssh key refused", "remote", ctx.RemoteAddr().String(), "user", ctx.User(),
		"fingerprint", fp, "type", key.Type())
	return false
}
