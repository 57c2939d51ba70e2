package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestGuard(t *testing.T) {
	mux := http.NewServeMux()
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) })
	mux.Handle("GET /healthz", ok)
	mux.Handle("GET /api/metrics/fleet", ok)
	mux.Handle("GET /api/stream", ok)
	mux.Handle("/metrics", ok)
	mux.Handle("GET /{$}", ok)
	const tok = "0123456789abcdef-token"
	h := Guard(mux, GuardOptions{Token: tok, CORSOrigin: "https://ops.example"})
	for _, tc := range []struct {
		method, path, auth, origin string
		want                       int
	}{
		{"GET", "/healthz", "", "", 200},
		{"GET", "/", "", "", 200},
		{"GET", "/api/metrics/fleet", "", "", 401},
		{"GET", "/api/metrics/fleet", "Bearer wrong-token-wrong-token", "", 401},
		{"GET", "/api/metrics/fleet", "Bearer " + tok, "", 200},
		{"HEAD", "/api/metrics/fleet", "Bearer " + tok, "", 200},
		{"GET", "/metrics", "", "", 401},
		{"GET", "/metrics", "Bearer " + tok, "", 200},
		{"GET", "/api/stream?token=" + tok, "", "", 200},
		{"GET", "/api/metrics/fleet?token=" + tok, "", "", 401},
		{"POST", "/api/metrics/fleet", "Bearer " + tok, "", 405},
		{"PUT", "/metrics", "Bearer " + tok, "", 405},
		{"DELETE", "/healthz", "", "", 405},
		{"PATCH", "/", "", "", 405},
		{"OPTIONS", "/api/metrics/fleet", "", "", 405},
		{"OPTIONS", "/api/metrics/fleet", "", "https://ops.example", 204},
		{"OPTIONS", "/api/metrics/fleet", "", "https://evil.example", 405},
	} {
		r := httptest.NewRequest(tc.method, tc.path, nil)
		if tc.auth != "" {
			r.Header.Set("Authorization", tc.auth)
		}
		if tc.origin != "" {
			r.Header.Set("Origin", tc.origin)
			r.Header.Set("Access-Control-Request-Method", "GET")
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tc.want {
			t.Errorf("%s %s auth=%q origin=%q: %d, want %d", tc.method, tc.path, tc.auth, tc.origin, w.Code, tc.want)
		}
		if w.Code == 401 && !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("401 without a challenge")
		}
		if w.Code == 405 && w.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("405 without Allow")
		}
		if strings.Contains(w.Body.String(), tok) {
			t.Errorf("response echoes the token")
		}
	}
}

func TestCORSOffByDefault(t *testing.T) {
	h := Guard(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}), GuardOptions{})
	r := httptest.NewRequest("GET", "/api/metrics/fleet", nil)
	r.Header.Set("Origin", "https://evil.example")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 200 || w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("%d %v", w.Code, w.Header())
	}
	r.Header.Set("Origin", "https://ops.example")
	w = httptest.NewRecorder()
	Guard(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}), GuardOptions{CORSOrigin: "https://ops.example"}).ServeHTTP(w, r)
	if w.Header().Get("Access-Control-Allow-Origin") != "https://ops.example" {
		t.Fatalf("allowed origin not echoed: %v", w.Header())
	}
	if (GuardOptions{Token: "short"}).Validate() == nil {
		t.Fatal("short token accepted")
	}
}
