package faults_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/internal/sim"
	"github.com/vppctl/vpp/internal/testutil"
	"github.com/vppctl/vpp/internal/tlsutil/tlstest"
)

// secureBroker is a broker of the test's own with a SASL_SSL listener
// only: SCRAM-SHA-512, a test CA, the StandardAuthorizer and no access
// without an ACL.
type secureBroker struct {
	brokers    []string
	controller string        // the plaintext controller listener
	ca         string        // the CA that signed the broker's certificate
	otherCA    string        // a CA the broker's certificate does not chain to
	pki        tlstest.Files // the broker's CA and certificate, also a client certificate it trusts
	dir        string
	passwords  map[string]string // user → password
	admin      sarama.ClusterAdmin
}

// ingestTopicACLs are userIngest's ACLs on the topics of prefix.
func ingestTopicACLs(prefix string) *sarama.ResourceAcls {
	acl := func(op sarama.AclOperation) *sarama.Acl {
		return &sarama.Acl{Principal: "User:" + userIngest, Host: "*", Operation: op, PermissionType: sarama.AclPermissionAllow}
	}
	return &sarama.ResourceAcls{
		Resource: sarama.Resource{ResourceType: sarama.AclResourceTopic, ResourceName: prefix, ResourcePatternType: sarama.AclPatternPrefixed},
		Acls:     []*sarama.Acl{acl(sarama.AclOperationDescribe), acl(sarama.AclOperationCreate), acl(sarama.AclOperationRead), acl(sarama.AclOperationWrite)},
	}
}

// The users of the secure broker: vpp may do everything under its topic
// and group prefix (and nothing on the cluster); vpp-ingest, vpp-aggregate
// and vpp-top have exactly the ACLs docs/operations.md lists for their
// command, on the topic prefix and the aggregator's group; nogroup may use
// the topics but join no group; nowrite may describe and read the topics
// only; notelemetry may do everything but write the telemetry topic;
// noacl has no ACL at all.
const (
	userVPP         = "vpp"
	userIngest      = "vpp-ingest"
	userAggregate   = "vpp-aggregate"
	userTop         = "vpp-top"
	userNoGroup     = "nogroup"
	userNoWrite     = "nowrite"
	userNoTelemetry = "notelemetry"
	userNoACL       = "noacl"
)

// startSecureBroker starts the secure broker (the test stops it) and
// grants the users' ACLs on prefix (see userVPP).
func startSecureBroker(t *testing.T, ctx context.Context, prefix string) *secureBroker {
	t.Helper()
	dir := t.TempDir()
	pki := tlstest.Write(t, dir, "127.0.0.1")
	other := tlstest.Write(t, t.TempDir(), "impostor")
	sb := &secureBroker{ca: pki.CA, otherCA: other.CA, pki: pki, dir: dir, passwords: map[string]string{}}
	var users []string
	for _, u := range []string{"admin", userVPP, userIngest, userAggregate, userTop, userNoGroup, userNoWrite, userNoTelemetry, userNoACL} {
		b := make([]byte, 12)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		sb.passwords[u] = u + "-pw-" + hex.EncodeToString(b)
		if u != "admin" {
			users = append(users, u+":"+sb.passwords[u])
		}
	}
	ports := freePorts(t, 2)
	k := newKafkaScript(t, fmt.Sprintf("KAFKA_PORT=%d", ports[0]), fmt.Sprintf("KAFKA_CONTROLLER_PORT=%d", ports[1]),
		"KAFKA_SSL_CERT="+pki.Cert, "KAFKA_SSL_KEY="+pki.Key, "KAFKA_SSL_CA="+pki.CA,
		"KAFKA_SCRAM_USERS="+strings.Join(users, " "), "KAFKA_ADMIN_PASSWORD="+sb.passwords["admin"])
	t.Cleanup(func() {
		if _, err := k.run(context.Background(), "stop"); err != nil {
			t.Errorf("stop broker: %v", err)
		}
	})
	started := time.Now()
	sb.brokers = strings.Split(k.must(t, ctx, "secure-start"), ",")
	sb.controller = fmt.Sprintf("127.0.0.1:%d", ports[1])
	t.Logf("secure broker %v up in %s", sb.brokers, time.Since(started).Round(100*time.Millisecond))

	admin := sb.options("admin", prefix, 1)
	cfg, err := admin.SaramaConfig()
	if err != nil {
		t.Fatal(err)
	}
	var ca sarama.ClusterAdmin
	testutil.WaitFor(ctx, t, 60*time.Second, 500*time.Millisecond, "the admin connects", func() (bool, string) {
		ca, err = sarama.NewClusterAdmin(sb.brokers, cfg)
		return err == nil, fmt.Sprint(err)
	})
	t.Cleanup(func() { _ = ca.Close() })
	sb.admin = ca
	allow := func(user string, op sarama.AclOperation) *sarama.Acl {
		return &sarama.Acl{Principal: "User:" + user, Host: "*", Operation: op, PermissionType: sarama.AclPermissionAllow}
	}
	res := func(typ sarama.AclResourceType, name string, pattern sarama.AclResourcePatternType) sarama.Resource {
		return sarama.Resource{ResourceType: typ, ResourceName: name, ResourcePatternType: pattern}
	}
	deny := allow(userNoTelemetry, sarama.AclOperationWrite)
	deny.PermissionType = sarama.AclPermissionDeny
	acls := []*sarama.ResourceAcls{
		ingestTopicACLs(prefix),
		{Resource: res(sarama.AclResourceTopic, prefix, sarama.AclPatternPrefixed), Acls: []*sarama.Acl{
			allow(userVPP, sarama.AclOperationAll), allow(userNoGroup, sarama.AclOperationAll), allow(userNoTelemetry, sarama.AclOperationAll),
			allow(userNoWrite, sarama.AclOperationDescribe), allow(userNoWrite, sarama.AclOperationRead),
			allow(userAggregate, sarama.AclOperationDescribe), allow(userAggregate, sarama.AclOperationCreate),
			allow(userAggregate, sarama.AclOperationRead), allow(userAggregate, sarama.AclOperationWrite),
			allow(userTop, sarama.AclOperationDescribe), allow(userTop, sarama.AclOperationRead)}},
		{Resource: res(sarama.AclResourceGroup, prefix+"aggregate", sarama.AclPatternLiteral), Acls: []*sarama.Acl{allow(userAggregate, sarama.AclOperationRead)}},
		{Resource: res(sarama.AclResourceTopic, prefix+"telemetry", sarama.AclPatternLiteral), Acls: []*sarama.Acl{deny}},
		{Resource: res(sarama.AclResourceGroup, prefix, sarama.AclPatternPrefixed), Acls: []*sarama.Acl{
			allow(userVPP, sarama.AclOperationAll), allow(userNoWrite, sarama.AclOperationAll), allow(userNoTelemetry, sarama.AclOperationAll)}},
	}
	testutil.WaitFor(ctx, t, 60*time.Second, 500*time.Millisecond, "the ACLs are created", func() (bool, string) {
		err := ca.CreateACLs(acls)
		return err == nil, fmt.Sprint(err)
	})
	return sb
}

// options are the Kafka options of user: TLS with the test CA, SCRAM with
// the user's password in a file.
func (sb *secureBroker) options(user, prefix string, partitions int32) kafka.Options {
	pw := filepath.Join(sb.dir, user+".password")
	if err := os.WriteFile(pw, []byte(sb.passwords[user]+"\n"), 0o600); err != nil {
		panic(err) // the test's own temporary directory
	}
	o := kafkaOptions(sb.brokers, "", partitions, 1)
	o.Prefix = prefix
	o.Security = kafka.Security{TLS: true, CAFile: sb.ca, SASLMechanism: kafka.SASLScramSHA512, User: user, PasswordFile: pw}
	return o
}

// withMechanism is o with SASL mechanism mech.
func withMechanism(o kafka.Options, mech string) kafka.Options {
	o.Security.SASLMechanism = mech
	return o
}

// failure is one misconfigured command: it must exit non-zero, soon, with
// an error that names the broker and says each of want.
type failure struct {
	name   string
	args   []string
	env    []string
	want   []string
	broker string // the address the error names, when not the secure listener's
}

// run runs the failure's command and checks its exit and its error.
func (f failure) run(t *testing.T, ctx context.Context, bin, broker string) (time.Duration, string) {
	t.Helper()
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(cctx, bin, f.args...)
	cmd.Env = append(os.Environ(), append([]string{"VPP_CONFIG="}, f.env...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || cctx.Err() != nil {
		t.Errorf("%s: want a non-zero exit, got %v after %s\n%s", f.name, err, took, out.String())
	}
	if took > 10*time.Second {
		t.Errorf("%s: exited after %s, want within 10 s", f.name, took.Round(time.Millisecond))
	}
	text := out.String()
	if f.broker != "" {
		broker = f.broker
	}
	for _, w := range append([]string{"kafka " + broker}, f.want...) {
		if !strings.Contains(text, w) {
			t.Errorf("%s: output lacks %q:\n%s", f.name, w, text)
		}
	}
	return took, text
}

// TestSecuredKafka runs vpp against a broker that allows nothing but
// SASL_SSL with SCRAM-SHA-512 and ACLs: the pipeline end to end (sim →
// ingest → Kafka → aggregate, totals equal to the truth) and vpp top
// --once --json as a user limited to a topic and group prefix; then a
// wrong password, an untrusted CA, a plaintext client, a user without
// ACLs and one without a group ACL, each failing within seconds with its
// cause. No password may appear in any output.
func TestSecuredKafka(t *testing.T) {
	skipShort(t)
	requireJava(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const prefix = "sec."
	sb := startSecureBroker(t, ctx, prefix)
	opts := sb.options(userVPP, prefix, 4)

	// The pipeline, every process as a user with the ACLs its command
	// needs and no more (the topics created by userVPP first, so that
	// the test does not depend on which process creates them).
	started := time.Now()
	if err := kafka.EnsureTopics(ctx, opts); err != nil {
		t.Fatal(err)
	}
	topOpts := sb.options(userTop, prefix, 4)
	rg := &rig{dir: t.TempDir(), bin: testutil.BuildVPP(ctx, t), opts: sb.options(userIngest, prefix, 4), listen: freeAddr(t), httpAddr: freeAddr(t)}
	rg.startIngest(t, ctx)
	startAggregate(t, rg.dir, rg.bin, sb.options(userAggregate, prefix, 4), prefix+"aggregate", "a0")
	rg.r = startReader(t, ctx, topOpts)
	const count = 10_000
	s := newSim(t, rg.listen, sim.Config{Devices: 100, Rate: 2500, Count: count, Seed: 41, Conns: 4})
	end := waitSim(t, ctx, s, runSim(ctx, s))
	truth := s.Truth()
	if truth.ReadingsSent != count || truth.ReadingsAcked != count {
		t.Fatalf("sim sent %d, acked %d of %d", truth.ReadingsSent, truth.ReadingsAcked, count)
	}
	tel := waitTelemetry(t, ctx, opts, truth.ReadingsAcked, 60*time.Second)
	checkAcked(t, tel, truth)
	conv, _, ok := waitTotals(t, ctx, rg.r, truth, end, 60*time.Second)
	pipelineTook := time.Since(started)
	var notes []string

	// The running ingest loses its topic ACLs (Write and Create imply
	// Describe, so all of them): it stays up, /readyz says why, and it is
	// ready again once they are back.
	ingACLs := ingestTopicACLs(prefix)
	principal, name := "User:"+userIngest, ingACLs.Resource.ResourceName
	revoke := time.Now()
	if _, err := sb.admin.DeleteACL(sarama.AclFilter{ResourceType: ingACLs.Resource.ResourceType, ResourceName: &name,
		ResourcePatternTypeFilter: ingACLs.Resource.ResourcePatternType, Principal: &principal, Operation: sarama.AclOperationAny,
		PermissionType: sarama.AclPermissionAllow}, false); err != nil {
		t.Fatalf("revoke the topic ACL: %v", err)
	}
	var lostReason string
	testutil.WaitFor(ctx, t, 30*time.Second, 50*time.Millisecond, "/readyz says the topic ACL is missing", func() (bool, string) {
		code, body, err := httpStatus(ctx, "http://"+rg.httpAddr+"/readyz")
		lostReason = body
		return err == nil && code == 503 && strings.Contains(body, "not authorized to DESCRIBE topic "+prefix+"telemetry"), fmt.Sprintf("%d %s %v", code, body, err)
	})
	lostAfter := time.Since(revoke)
	if err := sb.admin.CreateACLs([]*sarama.ResourceAcls{ingACLs}); err != nil {
		t.Fatalf("grant the topic ACL again: %v", err)
	}
	regrant := time.Now()
	testutil.WaitFor(ctx, t, 30*time.Second, 50*time.Millisecond, "ingest ready again", func() (bool, string) {
		code, body, err := httpStatus(ctx, "http://"+rg.httpAddr+"/readyz")
		return err == nil && code == 200, fmt.Sprintf("%d %s %v", code, body, err)
	})
	backAfter := time.Since(regrant)
	if rg.ing.exited() {
		t.Errorf("ingest exited when it lost its ACL")
	}
	t.Logf("running ingest lost its topic ACL: /readyz 503 after %s (%s), ready %s after the grant",
		lostAfter.Round(time.Millisecond), strings.TrimSpace(lostReason), backAfter.Round(time.Millisecond))

	// vpp top --once --json, the password from the environment this time.
	topArgs := append([]string{"top", "--once", "--json"}, testutil.KafkaFlags(topOpts)...)
	for i, a := range topArgs {
		if a == "--kafka-password-file" {
			topArgs = append(topArgs[:i:i], topArgs[i+2:]...)
			break
		}
	}
	top := exec.CommandContext(ctx, rg.bin, topArgs...)
	top.Env = append(os.Environ(), "VPP_CONFIG=", "VPP_KAFKA_PASSWORD="+sb.passwords[userTop])
	var topErr bytes.Buffer
	top.Stderr = &topErr
	topStart := time.Now()
	topOut, err := top.Output()
	topTook := time.Since(topStart)
	if err != nil {
		t.Fatalf("vpp top --once --json: %v\n%s", err, topErr.String())
	}
	var tree struct {
		Devices int64   `json:"devices"`
		PowerKW float64 `json:"power_kw"`
	}
	if err := json.Unmarshal(topOut, &tree); err != nil {
		t.Fatalf("vpp top --json output: %v\n%s", err, topOut)
	}
	if tree.Devices != int64(truth.Fleet.Devices) || !within(tree.PowerKW, truth.Fleet.PowerKW, truth.Fleet.Devices) {
		t.Errorf("vpp top: %d devices, %.6f kW; the truth: %d devices, %.6f kW", tree.Devices, tree.PowerKW, truth.Fleet.Devices, truth.Fleet.PowerKW)
	}

	var outputs []string // everything the processes printed, checked for passwords

	// The other mechanisms, same user, same TLS; and mutual TLS with a
	// client certificate the broker trusts.
	mtls := topOpts
	mtls.Security.CertFile, mtls.Security.KeyFile = sb.pki.Cert, sb.pki.Key
	for _, mo := range []kafka.Options{withMechanism(topOpts, kafka.SASLScramSHA256), withMechanism(topOpts, kafka.SASLPlain), mtls} {
		mech := mo.Security.SASLMechanism
		if mo.Security.CertFile != "" {
			mech += " and a client certificate"
		}
		out, err := exec.CommandContext(ctx, rg.bin, append([]string{"top", "--once", "--json"}, testutil.KafkaFlags(mo)...)...).CombinedOutput()
		var got struct {
			Devices int64 `json:"devices"`
		}
		if err != nil || json.Unmarshal(out, &got) != nil || got.Devices != int64(truth.Fleet.Devices) {
			t.Errorf("vpp top --once --json with %s: %v, %d devices, want %d\n%s", mech, err, got.Devices, truth.Fleet.Devices, out)
		}
		outputs = append(outputs, string(out))
	}

	// The failures, each a command of its own.
	broker := sb.brokers[0]
	flags := func(o kafka.Options) []string { return testutil.KafkaFlags(o) }
	wrongPW := sb.options(userVPP, prefix, 4)
	wrongPW.Security.PasswordFile = filepath.Join(sb.dir, "wrong.password")
	if err := os.WriteFile(wrongPW.Security.PasswordFile, []byte("not-"+sb.passwords[userVPP]), 0o600); err != nil {
		t.Fatal(err)
	}
	untrusted := opts
	untrusted.Security.CAFile = sb.otherCA
	plaintext := opts
	plaintext.Security = kafka.Security{}
	noACL := sb.options(userNoACL, prefix, 4)
	noGroup := sb.options(userNoGroup, prefix, 4)
	insecure := []string{}
	if help, _ := exec.CommandContext(ctx, rg.bin, "ingest", "--help").CombinedOutput(); strings.Contains(string(help), "--insecure") {
		insecure = []string{"--insecure"} // the failures are Kafka's, not the devices'
	}
	ingestArgs := func(o kafka.Options) []string {
		return append(append([]string{"ingest", "--listen", freeAddr(t), "--status=false"}, insecure...), flags(o)...)
	}
	aggregateArgs := func(o kafka.Options) []string {
		return append([]string{"aggregate", "--group", prefix + "aggregate-denied", "--quiet"}, flags(o)...)
	}
	tlsOnPlain := opts
	tlsOnPlain.Brokers = []string{sb.controller}
	unknownUser := sb.options(userVPP, prefix, 4)
	unknownUser.Security.User = "nobody"
	failures := []failure{
		{name: "wrong password (ingest)", args: ingestArgs(wrongPW), want: []string{"authentication failed", `user "vpp"`}},
		{name: "unknown user (top)", args: append([]string{"top", "--once"}, flags(unknownUser)...), want: []string{"authentication failed", `user "nobody"`}},
		{name: "untrusted CA (aggregate)", args: aggregateArgs(untrusted), want: []string{"certificate signed by an unknown authority"}},
		{name: "plaintext client on the TLS listener (top)", args: append([]string{"top", "--once"}, flags(plaintext)...), want: []string{"--kafka-tls"}},
		{name: "user without ACLs (ingest)", args: ingestArgs(noACL), want: []string{"not authorized to DESCRIBE topic " + prefix + "telemetry", `grant the user Describe on topic prefix "` + prefix + `"`}},
		{name: "user without a group ACL (aggregate)", args: aggregateArgs(noGroup), want: []string{"not authorized to READ group " + prefix + "aggregate-denied", "grant the user Read on group"}},
		{name: "--kafka-tls on a plaintext listener (top)", args: append([]string{"top", "--once"}, flags(tlsOnPlain)...), broker: sb.controller,
			want: []string{"TLS", "not a TLS listener?"}},
		{name: "user without Create, topics missing (ingest)", args: ingestArgs(sb.options(userNoWrite, prefix+"new.", 4)),
			want: []string{"not authorized to CREATE topic " + prefix + "new.telemetry", "or pre-create the topic"}},
		{name: "user who may write no topic (ingest)", args: ingestArgs(sb.options(userNoWrite, prefix, 4)), want: []string{"not authorized to IDEMPOTENT_WRITE the cluster", `grant the user Write on topic prefix "` + prefix + `"`}},
	}
	outputs = append(outputs, string(topOut), topErr.String(), lostReason)
	notes = append(notes, fmt.Sprintf("running ingest lost its topic ACL: /readyz 503 after %s, ready %s after the grant",
		lostAfter.Round(10*time.Millisecond), backAfter.Round(10*time.Millisecond)))
	for _, f := range failures {
		took, out := f.run(t, ctx, rg.bin, broker)
		outputs = append(outputs, out)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		t.Logf("%s: exit after %s: %s", f.name, took.Round(time.Millisecond), lines[len(lines)-1])
		notes = append(notes, fmt.Sprintf("%s: exit after %s", f.name, took.Round(10*time.Millisecond)))
	}

	// A user who may write everything but telemetry: ingest starts, and
	// the first reading makes /readyz and the log say what is missing.
	denyDir := t.TempDir()
	listen, httpAddr := freeAddr(t), freeAddr(t)
	ing := startIngest(t, ctx, denyDir, rg.bin, sb.options(userNoTelemetry, prefix, 4), listen, httpAddr)
	sctx, stopSim := context.WithCancel(ctx)
	ds := newSim(t, listen, sim.Config{Devices: 5, Rate: 50, Count: 50, Seed: 3, Conns: 1, DrainTimeout: time.Second})
	simDone := runSim(sctx, ds)
	sent := time.Now()
	wantDenied := "not authorized to WRITE topic " + prefix + "telemetry"
	var readyz string
	testutil.WaitFor(ctx, t, 30*time.Second, 50*time.Millisecond, "/readyz names the missing Write", func() (bool, string) {
		code, body, err := httpStatus(ctx, "http://"+httpAddr+"/readyz")
		readyz = body
		return err == nil && code == 503 && strings.Contains(body, wantDenied), fmt.Sprintf("%d %s %v", code, body, err)
	})
	deniedAfter := time.Since(sent)
	stopSim()
	<-simDone
	t.Logf("user who may not write telemetry (ingest): /readyz 503 after %s: %s", deniedAfter.Round(time.Millisecond), strings.TrimSpace(readyz))
	if l := tail(ing.logPath, 50); !strings.Contains(l, wantDenied) {
		t.Errorf("ingest log does not say %q:\n%s", wantDenied, l)
	}
	ing.kill()
	notes = append(notes, fmt.Sprintf("user who may not write telemetry: /readyz says so %s after the first reading", deniedAfter.Round(10*time.Millisecond)))
	if b, err := os.ReadFile(ing.logPath); err == nil {
		outputs = append(outputs, string(b))
	}
	outputs = append(outputs, readyz)

	// No password in any output or log.
	logs, _ := filepath.Glob(filepath.Join(rg.dir, "*.log"))
	for _, l := range logs {
		b, err := os.ReadFile(l)
		if err != nil {
			t.Fatal(err)
		}
		outputs = append(outputs, string(b))
	}
	for i, out := range outputs {
		for u, pw := range sb.passwords {
			if strings.Contains(out, pw) {
				t.Errorf("output %d shows the password of %s", i, u)
			}
		}
	}
	rg.ing.stop(t)
	result{
		Fault: "SASL_SSL broker (SCRAM-SHA-512, TLS, ACLs on a prefix)", Broker: "Apache Kafka (SASL_SSL only)",
		Sent: truth.ReadingsSent, Acked: truth.ReadingsAcked, InKafka: tel.distinct, Records: tel.records,
		Match: ok, Converge: conv,
		Notes: append([]string{fmt.Sprintf("pipeline %s, vpp top --once --json %s", pipelineTook.Round(100*time.Millisecond), topTook.Round(10*time.Millisecond))}, notes...),
	}.report(t)
}
