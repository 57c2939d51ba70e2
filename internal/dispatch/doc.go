// Package dispatch is the contract of vpp's dispatch records and the
// operator's side of dispatch: node IDs, the keys of the compacted dispatch
// topic, the validation of a request, the store that writes requests and
// the view that reads the whole topic back.
//
// The dispatch topic holds, under one partition, four kinds of record (see
// proto/vpp/v1/dispatch.proto): the request "d/<id>" (never deleted: the
// audit trail), the coordinator's allocation "a/<id>", each partition
// owner's report "r/<id>/<partition>" and the tracking status "t/<id>".
// Operators (this package's Store, through Service) write only "d/"
// records; the engine in internal/aggregate writes the others.
//
// The contract:
//
//   - Validation. Build turns a Request into a Dispatch or refuses it with
//     an error wrapping ErrInvalid that says why: a node ID of unknown
//     format, a power that is not finite or beyond ±10 GW, a duration that
//     is not positive or longer than 31 days, a start more than 30 s in
//     the past, a negative ramp or priority, a malformed ID. Whether the
//     node exists is CheckNode's question, against a fleet snapshot
//     (ErrUnknownNode).
//   - IDs. Random ("d-" and 12 base32 characters from crypto/rand), or,
//     with an idempotency key, derived from (creator, key): a retried
//     create returns the existing dispatch when SameRequest holds, and is
//     an ErrConflict when it does not.
//   - Writes. Store writes with an idempotent producer, acks from all
//     in-sync replicas, and never creates the topic. A cancel rewrites the
//     "d/" record with cancelled_ms and cancelled_by; a dispatch that
//     ended or was cancelled cannot be cancelled (ErrConflict). Service
//     serializes creates and cancels and returns once its View shows the
//     write.
//   - Reads. View follows the topic with internal/follow from its oldest
//     offset and folds every kind into an Entry per ID; readers get the
//     latest records, which nobody modifies. Entry.State is the status
//     shown to a user: cancelled once cancelled_ms is set, else the
//     coordinator's DispatchStatus state, else derived from the time
//     (pending, active, completed).
package dispatch
