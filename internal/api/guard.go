package api

// guard.go wraps the read-only HTTP API: only GET and HEAD are served
// (other methods 405), /api/* and /metrics optionally need a bearer token,
// and CORS headers are sent only for an explicitly allowed origin.

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"

	"github.com/vppctl/vpp/internal/auth"
)

// MinTokenBytes is the shortest API token accepted.
const MinTokenBytes = 16

// GuardOptions configure Guard.
type GuardOptions struct {
	// Token, when set, is the bearer token /api/* and /metrics require
	// (401 otherwise). /healthz, /readyz and the page at / stay open.
	Token string
	// CORSOrigin, when set, is the origin allowed to read the API from a
	// browser ("*" for any); empty sends no CORS headers at all.
	CORSOrigin string
}

// Validate checks the options.
func (o GuardOptions) Validate() error {
	if o.Token != "" && len(o.Token) < MinTokenBytes {
		return errors.New("api token: want at least 16 characters")
	}
	return nil
}

// Guard returns h behind the guard. StreamPath is the one protected path
// that also takes the token as the token query parameter: a browser's
// EventSource cannot set headers.
func Guard(h http.Handler, o GuardOptions) http.Handler {
	g := &guard{next: h, cors: o.CORSOrigin}
	if o.Token != "" {
		sum := sha256.Sum256([]byte(o.Token))
		g.tokenSum = &sum
	}
	return g
}

type guard struct {
	next     http.Handler
	tokenSum *[32]byte
	cors     string
}

func (g *guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	corsOK := g.cors != "" && origin != "" && (g.cors == "*" || origin == g.cors)
	if corsOK {
		w.Header().Set("Access-Control-Allow-Origin", origin)
		w.Header().Add("Vary", "Origin")
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodOptions:
		if corsOK && r.Header.Get("Access-Control-Request-Method") != "" {
			w.Header().Set("Access-Control-Allow-Methods", "GET, HEAD")
			w.Header().Set("Access-Control-Allow-Headers", "Authorization")
			w.Header().Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		fallthrough
	default:
		w.Header().Set("Allow", "GET, HEAD")
		writeJSONError(w, http.StatusMethodNotAllowed, "method not allowed: the API is read-only")
		return
	}
	if g.tokenSum != nil && protected(r.URL.Path) && !g.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="vpp-api"`)
		writeJSONError(w, http.StatusUnauthorized, "unauthorized: bearer token required")
		return
	}
	g.next.ServeHTTP(w, r)
}

// protected reports whether path needs the token.
func protected(path string) bool {
	return path == "/metrics" || strings.HasPrefix(path, "/api/")
}

// authorized compares the request's token with the configured one in
// constant time (over their hashes, so the length leaks nothing either).
func (g *guard) authorized(r *http.Request) bool {
	tok := ""
	if h := r.Header.Get("Authorization"); h != "" {
		tok = auth.FromRequest(r)
	} else if r.URL.Path == StreamPath {
		tok = r.URL.Query().Get("token")
	}
	if tok == "" {
		return false
	}
	sum := sha256.Sum256([]byte(tok))
	return subtle.ConstantTimeCompare(sum[:], g.tokenSum[:]) == 1
}

func writeJSONError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(`{"error":"` + msg + `"}` + "\n"))
}
