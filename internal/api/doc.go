// Package api is vpp's HTTP surface: the read-only JSON API over fleet
// snapshots and its JSON types, the dispatch API, the live web page with its event stream,
// the health endpoints, and the guard in front of them all. NewMux puts
// them together; every command that serves HTTP uses it.
//
// The contract:
//
//   - Read-only but for dispatch. GET and HEAD are served; POST
//     /api/dispatches and DELETE /api/dispatches/{id} only with the
//     operator token (GuardOptions.OperatorToken: 403 when none is
//     configured, 401 when the request lacks it); other methods answer 405
//     with a JSON error and Allow: GET, HEAD.
//   - Dispatch. Creates and cancels return once the dispatch topic shows
//     them; 400 for a bad command (with the reason), 404 unknown ID, 409
//     an idempotency key reused for another request or a cancel after the
//     end, 503 until the dispatches and the fleet are loaded. A create
//     answers 201, or 200 with the existing dispatch when its
//     Idempotency-Key was seen with the same request.
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
