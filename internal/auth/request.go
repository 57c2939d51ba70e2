package auth

import (
	"net/http"
	"strings"
)

// FromRequest returns the bearer token of r: the Authorization header's
// "Bearer TOKEN", else the token query parameter (for gateways and
// browsers that cannot set headers on a WebSocket handshake). "" when
// there is none.
func FromRequest(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(tok)
		}
		return ""
	}
	return r.URL.Query().Get("token")
}
