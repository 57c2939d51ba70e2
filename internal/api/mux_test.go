package api

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestNewMux checks the routes every command gets from NewMux: health and
// readiness always, /metrics when given, the page and the JSON API with a
// fleet, and the guard in front of everything.
func TestNewMux(t *testing.T) {
	ready, reason := false, "catching up"
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "metric 1\n") })
	do := func(h http.Handler, method, path, token string) (int, string) {
		t.Helper()
		req := httptest.NewRequest(method, path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}

	// A process without a fleet (ingest).
	h := NewMux(MuxConfig{Metrics: metrics, Ready: []ReadyCheck{func() (bool, string) { return ready, reason }}})
	for _, tc := range []struct {
		method, path string
		code         int
		body         string
	}{
		{"GET", "/healthz", 200, `"ok"`},
		{"GET", "/readyz", 503, `"reason":"catching up"`},
		{"GET", "/metrics", 200, "metric 1"},
		{"GET", "/", 404, ""},
		{"GET", "/api/metrics/fleet", 404, ""},
		{"POST", "/healthz", 405, "read-only"},
	} {
		if code, body := do(h, tc.method, tc.path, ""); code != tc.code || !strings.Contains(body, tc.body) {
			t.Errorf("no fleet: %s %s: %d %q, want %d containing %q", tc.method, tc.path, code, body, tc.code, tc.body)
		}
	}
	ready = true
	if code, body := do(h, "GET", "/readyz", ""); code != 200 || !strings.Contains(body, `"ready"`) {
		t.Errorf("readyz once ready: %d %q", code, body)
	}

	// A reader (aggregate --http, the demo), with a token.
	const tok = "0123456789abcdef-token"
	h = NewMux(MuxConfig{Fleet: fixedSource{apiFleet().Snapshot()}, Metrics: metrics, Guard: GuardOptions{Token: tok}})
	for _, tc := range []struct {
		method, path, token string
		code                int
		body                string
	}{
		{"GET", "/healthz", "", 200, `"ok"`},
		{"GET", "/readyz", "", 200, `"ready"`},
		{"GET", "/", "", 200, "<!doctype html>"},
		{"GET", "/api/metrics/fleet", "", 401, "unauthorized"},
		{"GET", "/api/metrics/fleet", tok, 200, `"devices":`},
		{"GET", "/metrics", "", 401, "unauthorized"},
		{"GET", "/metrics", tok, 200, "metric 1"},
		{"GET", "/nope", tok, 404, `"error"`},
		{"DELETE", "/api/metrics/fleet", tok, 405, "read-only"},
	} {
		if code, body := do(h, tc.method, tc.path, tc.token); code != tc.code || !strings.Contains(body, tc.body) {
			t.Errorf("fleet: %s %s: %d %.80q, want %d containing %q", tc.method, tc.path, code, body, tc.code, tc.body)
		}
	}
}
