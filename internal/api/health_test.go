package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestHealth(t *testing.T) {
	ready, reason := true, ""
	h := Health(func() (bool, string) { return ready, reason })
	get := func(path string) (int, map[string]string) {
		t.Helper()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		var m map[string]string
		if rec.Code != http.StatusNotFound {
			if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
				t.Fatalf("%s: body %q: %v", path, rec.Body, err)
			}
		}
		return rec.Code, m
	}
	if code, m := get("/healthz"); code != 200 || m["status"] != "ok" {
		t.Errorf("healthz: %d %v", code, m)
	}
	if code, m := get("/readyz"); code != 200 || m["status"] != "ready" {
		t.Errorf("readyz ready: %d %v", code, m)
	}
	ready, reason = false, "kafka unreachable"
	if code, m := get("/readyz"); code != 503 || m["reason"] != "kafka unreachable" {
		t.Errorf("readyz not ready: %d %v", code, m)
	}
	if code, _ := get("/nope"); code != 404 {
		t.Errorf("unknown path: %d", code)
	}
}
