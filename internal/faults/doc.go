// Package faults holds vpp's fault-injection tests; it has no code of its
// own. Each test runs the pipeline — `vpp sim` (in process, fixed seed and
// count) → `vpp ingest` → Kafka → `vpp aggregate` → state topics — breaks
// one part while readings flow, and then proves the invariants of
// docs/design.md: every reading the simulator had acknowledged is in the
// telemetry topic, and the fleet totals folded from the state topics equal
// the simulator's ground truth to 1e-6 per device.
//
// The faults:
//
//   - TestBrokerOutage: the only Kafka broker is SIGKILLed for 20 s and
//     restarted on the same data; ingest rides it out on its spool.
//   - TestIngestCrash: the `vpp ingest` process is SIGKILLed mid-stream and
//     started again on the same spool; the simulator reconnects and
//     retransmits.
//   - TestAggregatorCrash: one of three `vpp aggregate` processes in a
//     group is SIGKILLed; the others take over its partitions.
//   - TestDuplicatesAndReordering: a raw WebSocket client resends old
//     frames and shuffles readings within frames.
//   - TestClusterBrokerLoss: one node of a three-node KRaft cluster
//     (replication 3, min.insync.replicas 2) is SIGKILLed mid-stream and
//     started again; it must rejoin every telemetry partition's ISR.
//   - TestHungBroker: the only broker is SIGSTOPped for 20 s (sockets
//     open, nothing answers); ingest's /readyz must notice and the spool
//     keep acking.
//   - TestIngestShutdownKafkaDown: `vpp ingest` with a spool gets SIGTERM
//     while its broker is down; it must exit within its shutdown timeout
//     and publish everything after a restart.
//   - TestSecuredKafka: a broker with a SASL_SSL listener only (SCRAM,
//     ACLs, nothing allowed without one): the pipeline as a user limited
//     to a topic and group prefix, an ACL revoked under a running ingest,
//     and wrong credentials, certificates, protocols and missing ACLs,
//     each failing within seconds with its cause.
//
// Tests that start brokers of their own use scripts/kafka.sh with
// VPP_KAFKA_DIR in a temporary directory: they need Java 17+ (and Maven the
// first time, to fetch the jars); without java they are skipped, except
// when CI=true. The others use VPP_TEST_BROKERS (CI's real broker) or an
// embedded broker. Each test logs its measurements one per line; with
// VPP_FAULT_REPORT=FILE it also appends them as a Markdown table row to
// FILE. All tests are skipped with -short.
//
// The disk-full (spool limit) and torn-spool faults are covered elsewhere:
// TestSpoolFullPushesBack and TestSpoolSurvivesIngestCrash in
// internal/pipeline, and the torn-tail and corruption tests of
// internal/spool.
package faults
