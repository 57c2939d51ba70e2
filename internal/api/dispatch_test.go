package api

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vppctl/vpp/internal/dispatch"
	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/internal/kafka/kafkatest"
	"github.com/vppctl/vpp/internal/testutil"
)

const (
	testReadToken     = "read-token-0123456789"
	testOperatorToken = "operator-token-0123456789"
)

// dispatchServer serves the dispatch API over a running view of a fresh
// dispatch topic, with the fleet of apiFleet.
func dispatchServer(t *testing.T, guard GuardOptions) *httptest.Server {
	t.Helper()
	opts := kafkatest.Options(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, opts); err != nil {
		t.Fatal(err)
	}
	st, err := dispatch.NewStore(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	v, err := dispatch.NewView(opts, testutil.Logger(slog.LevelDebug))
	if err != nil {
		t.Fatal(err)
	}
	vctx, vcancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- v.Run(vctx) }()
	t.Cleanup(func() { vcancel(); <-done })
	if err := v.WaitCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	src := fixedSource{apiFleet().Snapshot()}
	svc := &dispatch.Service{Writer: st, View: v, Fleet: src, Logger: testutil.Logger(slog.LevelDebug)}
	srv := httptest.NewServer(NewMux(MuxConfig{Fleet: src, Dispatch: svc, Guard: guard}))
	t.Cleanup(srv.Close)
	return srv
}

type reply struct {
	code int
	body string
}

func call(t *testing.T, srv *httptest.Server, method, path, token, idem, body string) reply {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if idem != "" {
		req.Header.Set("Idempotency-Key", idem)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, string(b)}
}

func decodeDispatch(t *testing.T, r reply) DispatchJSON {
	t.Helper()
	var j DispatchJSON
	if err := json.Unmarshal([]byte(r.body), &j); err != nil {
		t.Fatalf("decode %q: %v", r.body, err)
	}
	return j
}

func TestDispatchAPI(t *testing.T) {
	srv := dispatchServer(t, GuardOptions{Token: testReadToken, OperatorToken: testOperatorToken})
	create := `{"node":"region/r1","power":"5MW","duration":"30m","ramp":"1MW/s","priority":2}`

	if r := call(t, srv, "POST", DispatchesPath, "", "", create); r.code != http.StatusUnauthorized {
		t.Errorf("POST without a token: %d %s", r.code, r.body)
	}
	if r := call(t, srv, "POST", DispatchesPath, testReadToken, "", create); r.code != http.StatusUnauthorized {
		t.Errorf("POST with the read token: %d %s", r.code, r.body)
	}
	if r := call(t, srv, "GET", DispatchesPath, "", "", ""); r.code != http.StatusUnauthorized {
		t.Errorf("GET without a token: %d %s", r.code, r.body)
	}

	// Bad commands: 400 with the reason, nothing written.
	for body, reason := range map[string]string{
		`{"node":"north","power":"5MW","duration":"30m"}`:                               `node \"north\"`,
		`{"node":"region/nosuch","power":"5MW","duration":"30m"}`:                       "region/nosuch is not in the fleet",
		`{"node":"region/r1","power":"5MW","duration":"0s"}`:                            "duration must be positive",
		`{"node":"region/r1","power":"5MW"}`:                                            "duration is required",
		`{"node":"region/r1","power":"20GW","duration":"1m"}`:                           "beyond ±10 GW",
		`{"node":"region/r1","power":"5M","duration":"1m"}`:                             "power",
		`{"node":"region/r1","power":5,"duration":"1m","ramp":-1}`:                      "ramp must be",
		`{"node":"region/r1","power":5,"duration":"1m","start":"2020-01-01T00:00:00Z"}`: "in the past",
		`{"node":"region/r1","power":5,"duration":"1m","colour":"red"}`:                 "unknown field",
		`not json`: "body",
	} {
		r := call(t, srv, "POST", DispatchesPath, testOperatorToken, "", body)
		if r.code != http.StatusBadRequest || !strings.Contains(r.body, reason) {
			t.Errorf("POST %s: %d %s, want 400 with %q", body, r.code, r.body, reason)
		}
	}
	if r := call(t, srv, "GET", DispatchesPath, testReadToken, "", ""); r.code != 200 || strings.TrimSpace(r.body) != "[]" {
		t.Fatalf("after bad commands: %d %s", r.code, r.body)
	}

	// Idempotent create: 201, then 200 with the same dispatch.
	r := call(t, srv, "POST", DispatchesPath, testOperatorToken, "key-1", create)
	if r.code != http.StatusCreated {
		t.Fatalf("POST: %d %s", r.code, r.body)
	}
	d := decodeDispatch(t, r)
	if d.Node != "region/r1" || d.TargetKW != 5000 || d.RampKWPerS != 1000 || d.Priority != 2 || d.Status != "active" ||
		d.CreatedBy != DefaultOperator || d.Source != "api" || d.ID != dispatch.IdempotentID(DefaultOperator, "key-1") {
		t.Errorf("created %+v", d)
	}
	r = call(t, srv, "POST", DispatchesPath, testOperatorToken, "key-1", create)
	if r.code != http.StatusOK || decodeDispatch(t, r).ID != d.ID {
		t.Errorf("retry: %d %s", r.code, r.body)
	}
	r = call(t, srv, "POST", DispatchesPath, testOperatorToken, "key-1", strings.Replace(create, "5MW", "4MW", 1))
	if r.code != http.StatusConflict || !strings.Contains(r.body, "another request") {
		t.Errorf("key reused: %d %s", r.code, r.body)
	}
	r = call(t, srv, "GET", DispatchesPath, testOperatorToken, "", "")
	var list []DispatchJSON
	if err := json.Unmarshal([]byte(r.body), &list); err != nil || len(list) != 1 || list[0].ID != d.ID {
		t.Fatalf("list: %d %s", r.code, r.body)
	}

	if r := call(t, srv, "GET", DispatchesPath+"/"+d.ID, testReadToken, "", ""); r.code != 200 || decodeDispatch(t, r).ID != d.ID {
		t.Errorf("show: %d %s", r.code, r.body)
	}
	if r := call(t, srv, "GET", DispatchesPath+"/d-nosuch", testReadToken, "", ""); r.code != http.StatusNotFound {
		t.Errorf("show unknown: %d %s", r.code, r.body)
	}
	if r := call(t, srv, "DELETE", DispatchesPath+"/"+d.ID, testReadToken, "", ""); r.code != http.StatusUnauthorized {
		t.Errorf("DELETE with the read token: %d", r.code)
	}
	r = call(t, srv, "DELETE", DispatchesPath+"/"+d.ID, testOperatorToken, "", "")
	if c := decodeDispatch(t, r); r.code != 200 || c.Status != "cancelled" || c.CancelledBy != DefaultOperator || c.CancelledAt == "" {
		t.Errorf("DELETE: %d %s", r.code, r.body)
	}
	if r := call(t, srv, "DELETE", DispatchesPath+"/"+d.ID, testOperatorToken, "", ""); r.code != http.StatusConflict {
		t.Errorf("second DELETE: %d %s", r.code, r.body)
	}
	if r := call(t, srv, "DELETE", DispatchesPath+"/d-nosuch", testOperatorToken, "", ""); r.code != http.StatusNotFound {
		t.Errorf("DELETE unknown: %d %s", r.code, r.body)
	}
	if r := call(t, srv, "PUT", DispatchesPath+"/"+d.ID, testOperatorToken, "", ""); r.code != http.StatusMethodNotAllowed {
		t.Errorf("PUT: %d", r.code)
	}
	if r := call(t, srv, "POST", "/api/metrics/fleet", testOperatorToken, "", "{}"); r.code != http.StatusMethodNotAllowed {
		t.Errorf("POST elsewhere: %d", r.code)
	}
}

func TestDispatchWritesNeedOperatorToken(t *testing.T) {
	srv := dispatchServer(t, GuardOptions{})
	r := call(t, srv, "POST", DispatchesPath, "", "", `{"node":"fleet","power":1,"duration":"1m"}`)
	if r.code != http.StatusForbidden || !strings.Contains(r.body, "--operator-token") {
		t.Errorf("POST without an operator token configured: %d %s", r.code, r.body)
	}
	if r := call(t, srv, "DELETE", DispatchesPath+"/d-x", "anything-at-all-long", "", ""); r.code != http.StatusForbidden {
		t.Errorf("DELETE: %d", r.code)
	}
	if r := call(t, srv, "GET", DispatchesPath, "", "", ""); r.code != 200 {
		t.Errorf("GET open: %d %s", r.code, r.body)
	}
}

func TestGuardOperatorTokenValidate(t *testing.T) {
	if err := (GuardOptions{OperatorToken: "short"}).Validate(); err == nil {
		t.Error("short operator token accepted")
	}
	if err := (GuardOptions{Token: testReadToken, OperatorToken: testReadToken}).Validate(); err == nil {
		t.Error("operator token equal to the API token accepted")
	}
}
