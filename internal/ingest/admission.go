package ingest

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vppctl/vpp/internal/auth"
)

// Reasons a WebSocket handshake is refused before the upgrade. They are
// stable: they key Stats.Refused and the refused counters.
const (
	// RefusedConnLimit: MaxConns connections are open (HTTP 503).
	RefusedConnLimit = "conn_limit"
	// RefusedIPConnLimit: MaxConnsPerIP connections from the remote IP are
	// open (HTTP 503).
	RefusedIPConnLimit = "ip_conn_limit"
	// RefusedTokenMissing: no bearer token (HTTP 401).
	RefusedTokenMissing = "token_missing"
	// RefusedTokenExpired: the token's exp has passed (HTTP 401).
	RefusedTokenExpired = "token_expired"
	// RefusedTokenInvalid: malformed, badly signed, wrong algorithm or
	// audience, or binding nothing (HTTP 401).
	RefusedTokenInvalid = "token_invalid"
)

// refusal indexes the refused counters.
type refusal uint8

const (
	refConnLimit refusal = iota
	refIPConnLimit
	refTokenMissing
	refTokenExpired
	refTokenInvalid
	numRefusals
)

func (r refusal) String() string {
	return [...]string{RefusedConnLimit, RefusedIPConnLimit, RefusedTokenMissing, RefusedTokenExpired, RefusedTokenInvalid}[r]
}

// admission counts connections, in total and per remote IP, from the
// moment a handshake is admitted until its connection ends. Its map holds
// only IPs with open connections, so it is bounded by maxTotal.
type admission struct {
	maxTotal, maxPerIP int

	mu    sync.Mutex
	total int
	perIP map[string]int
}

func newAdmission(maxTotal, maxPerIP int) *admission {
	return &admission{maxTotal: maxTotal, maxPerIP: maxPerIP, perIP: make(map[string]int)}
}

// acquire takes a connection slot for ip, or says which limit is reached.
func (a *admission) acquire(ip string) (refusal, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.total >= a.maxTotal {
		return refConnLimit, false
	}
	if a.perIP[ip] >= a.maxPerIP {
		return refIPConnLimit, false
	}
	a.total++
	a.perIP[ip]++
	return 0, true
}

// release gives back a slot of ip.
func (a *admission) release(ip string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.total--
	if a.perIP[ip]--; a.perIP[ip] <= 0 {
		delete(a.perIP, ip)
	}
}

// remoteIP is the IP of a request's remote address (the address itself
// when it has no port).
func remoteIP(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host
}

// authenticate verifies the request's token. It returns the grant, or
// writes a 401 with a WWW-Authenticate header and a short reason (never the
// token), counts the refusal and returns nil.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) *auth.Grant {
	g, err := s.cfg.Auth.Verify(auth.FromRequest(r))
	if err == nil {
		return g
	}
	ref, challenge, msg := refTokenInvalid, `Bearer realm="vpp-ingest", error="invalid_token"`, "token invalid"
	switch {
	case errors.Is(err, auth.ErrMissing):
		ref, challenge, msg = refTokenMissing, `Bearer realm="vpp-ingest"`, "bearer token required (Authorization: Bearer TOKEN or ?token=TOKEN)"
	case errors.Is(err, auth.ErrExpired):
		ref, challenge, msg = refTokenExpired, `Bearer realm="vpp-ingest", error="invalid_token", error_description="token expired"`, "token expired"
	}
	s.ctr.refused[ref].Add(1)
	s.log.Log(r.Context(), s.refuseLog.level(), "handshake refused", "remote", r.RemoteAddr, "reason", ref.String(), "err", err)
	w.Header().Set("WWW-Authenticate", challenge)
	http.Error(w, "401 unauthorized: "+msg, http.StatusUnauthorized)
	return nil
}

// refuseBusy answers 503 for a connection limit and counts it.
func (s *Server) refuseBusy(w http.ResponseWriter, r *http.Request, ref refusal) {
	s.ctr.refused[ref].Add(1)
	s.log.Log(r.Context(), s.refuseLog.level(), "handshake refused", "remote", r.RemoteAddr, "reason", ref.String())
	w.Header().Set("Retry-After", "5")
	limit := fmt.Sprintf("%d connections open", s.cfg.MaxConns)
	if ref == refIPConnLimit {
		limit = fmt.Sprintf("%d connections open from your address", s.cfg.MaxConnsPerIP)
	}
	http.Error(w, "503 service unavailable: "+limit, http.StatusServiceUnavailable)
}

// rateLog lets one refusal log line a second through at info level and
// demotes the rest to debug, so a flood of refused handshakes cannot flood
// the log.
type rateLog struct{ last atomic.Int64 }

func (l *rateLog) level() slog.Level {
	now := time.Now().UnixNano()
	last := l.last.Load()
	if now-last >= int64(time.Second) && l.last.CompareAndSwap(last, now) {
		return slog.LevelInfo
	}
	return slog.LevelDebug
}
