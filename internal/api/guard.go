package api

// guard.go wraps the HTTP API: GET and HEAD are served, and POST and
// DELETE only on the dispatch API with the operator token (other methods
// 405); /api/* and /metrics optionally need a bearer token, and CORS
// headers are sent only for an explicitly allowed origin.

import (
	"context"
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
	// OperatorToken, when set, is the bearer token the dispatch API's
	// writes require (POST /api/dispatches, DELETE /api/dispatches/{id}:
	// 401 otherwise); it also reads what Token reads. Unset, those writes
	// answer 403.
	OperatorToken string
	// CORSOrigin, when set, is the origin allowed to read the API from a
	// browser ("*" for any); empty sends no CORS headers at all.
	CORSOrigin string
}

// Validate checks the options.
func (o GuardOptions) Validate() error {
	if o.Token != "" && len(o.Token) < MinTokenBytes {
		return errors.New("api token: want at least 16 characters")
	}
	if o.OperatorToken != "" && len(o.OperatorToken) < MinTokenBytes {
		return errors.New("operator token: want at least 16 characters")
	}
	if o.OperatorToken != "" && o.OperatorToken == o.Token {
		return errors.New("operator token: must differ from the API token (whoever reads could dispatch)")
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
	if o.OperatorToken != "" {
		sum := sha256.Sum256([]byte(o.OperatorToken))
		g.operatorSum = &sum
	}
	return g
}

type guard struct {
	next        http.Handler
	tokenSum    *[32]byte
	operatorSum *[32]byte
	cors        string
}

func (g *guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	corsOK := g.cors != "" && origin != "" && (g.cors == "*" || origin == g.cors)
	if corsOK {
		w.Header().Set("Access-Control-Allow-Origin", origin)
		w.Header().Add("Vary", "Origin")
	}
	if isDispatchWrite(r) {
		switch {
		case g.operatorSum == nil:
			writeJSONError(w, http.StatusForbidden, "forbidden: dispatch writes are disabled (no operator token configured: --operator-token)")
		case !g.authorized(r, g.operatorSum):
			w.Header().Set("WWW-Authenticate", `Bearer realm="vpp-operator"`)
			writeJSONError(w, http.StatusUnauthorized, "unauthorized: operator bearer token required")
		default:
			g.next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), operatorKey{}, DefaultOperator)))
		}
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodOptions:
		if corsOK && r.Header.Get("Access-Control-Request-Method") != "" {
			w.Header().Set("Access-Control-Allow-Methods", "GET, HEAD, POST, DELETE")
			w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Idempotency-Key")
			w.Header().Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		fallthrough
	default:
		w.Header().Set("Allow", "GET, HEAD")
		writeJSONError(w, http.StatusMethodNotAllowed, "method not allowed: the API is read-only but for POST and DELETE on /api/dispatches")
		return
	}
	if g.tokenSum != nil && protected(r.URL.Path) && !g.authorized(r, g.tokenSum) && (g.operatorSum == nil || !g.authorized(r, g.operatorSum)) {
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

// authorized compares the request's token with the configured one (sum)
// in constant time (over their hashes, so the length leaks nothing either).
func (g *guard) authorized(r *http.Request, want *[32]byte) bool {
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
	return subtle.ConstantTimeCompare(sum[:], want[:]) == 1
}

func writeJSONError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(`{"error":"` + msg + `"}` + "\n"))
}
