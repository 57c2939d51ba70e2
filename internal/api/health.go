package api

import (
	"encoding/json"
	"net/http"
)

// ReadyCheck reports whether one part of a process is ready to serve; when
// it is not, reason says why in a few words.
type ReadyCheck func() (ok bool, reason string)

// Health serves the health endpoints of a process:
//
//	GET /healthz  200 {"status":"ok"} while the process runs (liveness)
//	GET /readyz   200 {"status":"ready"} while every check passes, otherwise
//	              503 {"status":"not ready","reason":"…"} with the first
//	              failing check's reason (readiness)
//
// Other paths answer 404.
func Health(checks ...ReadyCheck) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeStatus(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		for _, c := range checks {
			if ok, reason := c(); !ok {
				writeStatus(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": reason})
				return
			}
		}
		writeStatus(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	return mux
}

// writeStatus writes v as a JSON body with status code.
func writeStatus(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
