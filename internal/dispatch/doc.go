// Package dispatch is the contract of vpp's dispatch records: node IDs, the
// keys of the compacted dispatch topic and the validation of a request.
//
// The dispatch topic holds, under one partition, four kinds of record (see
// proto/vpp/v1/dispatch.proto): the request "d/<id>" (never deleted: the
// audit trail), the coordinator's allocation "a/<id>", each partition
// owner's report "r/<id>/<partition>" and the tracking status "t/<id>".
package dispatch
