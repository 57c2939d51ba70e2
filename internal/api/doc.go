// Package api is vpp's HTTP surface: the read-only JSON API over fleet
// snapshots and its JSON types, the live web page with its event stream,
// the health endpoints, and the guard in front of them all. NewMux puts
// them together; every command that serves HTTP uses it.
//
// The contract:
//
//   - Read-only. Only GET and HEAD are served; other methods answer 405
//     with a JSON error and Allow: GET, HEAD.
//   - JSON. Every /api/metrics/* answer, error or not, is a JSON body
//     (errors {"error": "..."}), with the fields and units of NodeJSON,
//     DeviceJSON and PipelineJSON: kW, kWh, percent, °C, times RFC 3339
//     UTC. NaN and infinities are sent as 0. `vpp top --once --json`
//     writes the same types.
//   - Snapshots. Handlers read an immutable fleet.Snapshot per request
//     from a fleet.SnapshotSource (the fleet reader); they never block the
//     reader and never see a half-applied update.
//   - Health. /healthz is 200 while the process runs; /readyz is 200 while
//     every ReadyCheck passes, else 503 with the first failing reason.
//     Both stay open when a token is set; /api/* and /metrics need it.
//   - CORS. Headers are sent only for the configured origin.
package api
