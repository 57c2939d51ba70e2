package ingest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vppctl/vpp/internal/kafka"
)

func TestHealthHandler(t *testing.T) {
	ready, reason := true, ""
	h := HealthHandler(func() (bool, string) { return ready, reason })
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

func TestServerReady(t *testing.T) {
	s, err := New(Config{Kafka: kafka.Options{Prefix: "test."}, Insecure: true}, &fakePub{})
	if err != nil {
		t.Fatal(err)
	}
	if ok, reason := s.Ready(); ok || reason != "not listening" {
		t.Errorf("before Listen: %v %q", ok, reason)
	}
	srv := startServer(t, Config{}, &fakePub{})
	deadline := time.Now().Add(5 * time.Second)
	for ok, _ := srv.Ready(); !ok; ok, _ = srv.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("not ready while serving")
		}
		time.Sleep(5 * time.Millisecond)
	}
	srv.ctr.kafkaDown.Store(true)
	if ok, reason := srv.Ready(); ok || !strings.Contains(reason, "kafka") {
		t.Errorf("kafka down: %v %q", ok, reason)
	}
	srv.ctr.kafkaDown.Store(false)
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}
	if ok, _ := srv.Ready(); ok {
		t.Error("ready after shutdown")
	}
}
