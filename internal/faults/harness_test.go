package faults_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"google.golang.org/protobuf/proto"

	"github.com/vppctl/vpp/internal/fleet"
	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/internal/kafka/kafkatest"
	"github.com/vppctl/vpp/internal/reader"
	"github.com/vppctl/vpp/internal/sim"
	"github.com/vppctl/vpp/internal/testutil"
	"github.com/vppctl/vpp/proto/vppv1"
)

// simStart is the simulated clock origin of every test: fixed, so a seed
// gives the same readings on every run.
func simStart() time.Time { return time.Date(2026, 6, 1, 18, 0, 0, 0, time.UTC) }

// skipShort skips t under -short: every fault test runs for tens of seconds.
func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("fault tests run for tens of seconds")
	}
}

// requireJava skips t when java is missing, unless CI=true, where the
// fault tests on real brokers must run.
func requireJava(t *testing.T) {
	t.Helper()
	testutil.RequireTool(t, "java", "the test starts Apache Kafka brokers of its own")
}

// repoRoot is the module root.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// freePorts returns n distinct free TCP ports on 127.0.0.1.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		lns = append(lns, ln)
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	return ports
}

// freeAddr returns a free 127.0.0.1:PORT.
func freeAddr(t *testing.T) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
}

// proc is a vpp process the test started; t.Cleanup kills it.
type proc struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
	err     error
}

// startProc runs bin with args, its output appended to DIR/name.log.
func startProc(t *testing.T, dir, name, bin string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(lf, "---- start %s %s\n", name, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = append(os.Environ(), "VPP_CONFIG=")
	if err := cmd.Start(); err != nil {
		lf.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		lf.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("%s log (tail):\n%s", name, tail(logPath, 40))
		}
	})
	return p
}

// kill SIGKILLs the process (if it still runs) and waits for it.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and waits up to 30 s; a process still running then
// gets SIGQUIT, so that its goroutines are dumped into its log, and then
// SIGKILL.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Errorf("%s did not stop on SIGTERM (goroutine dump in %s)", p.name, p.logPath)
		_ = p.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
		}
		p.kill()
	}
}

// exited reports whether the process ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// logSize is the size of a log file now (0 if missing).
func logSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logSince returns what was appended to a log file after offset off.
func logSince(path string, off int64) string {
	b, err := os.ReadFile(path)
	if err != nil || off > int64(len(b)) {
		return ""
	}
	return string(b[off:])
}

// httpStatus GETs url and returns the status code and body.
func httpStatus(ctx context.Context, url string) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// waitUntil polls cond every 50 ms until it holds, the timeout passes
// (fatal) or ctx ends (fatal).
func waitUntil(t *testing.T, ctx context.Context, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(ctx, t, timeout, 50*time.Millisecond, what, func() (bool, string) { return cond(), "" })
}

// waitReady waits until an ingest's /readyz answers 200.
func waitReady(t *testing.T, ctx context.Context, httpAddr string, p *proc) {
	t.Helper()
	waitUntil(t, ctx, 90*time.Second, p.name+" ready", func() bool {
		if p.exited() {
			t.Fatalf("%s exited: %v\n%s", p.name, p.err, tail(p.logPath, 40))
		}
		code, _, err := httpStatus(ctx, "http://"+httpAddr+"/readyz")
		return err == nil && code == http.StatusOK
	})
}

// kafkaScript drives scripts/kafka.sh with its own VPP_KAFKA_DIR, so that
// brokers a test starts, kills and restarts never touch CI's broker.
type kafkaScript struct {
	path string
	env  []string
	log  string
}

// newKafkaScript returns a script runner for a fresh temporary directory;
// extra are added to its environment (ports).
func newKafkaScript(t *testing.T, extra ...string) *kafkaScript {
	t.Helper()
	requireJava(t)
	root := repoRoot(t)
	dir := t.TempDir()
	lib := os.Getenv("VPP_KAFKA_LIB")
	if lib == "" {
		// The jars CI's broker uses (scripts/kafka.sh fetches them there
		// when missing).
		lib = filepath.Join(root, ".kafka", "lib")
	}
	env := append(os.Environ(), "VPP_KAFKA_DIR="+dir, "VPP_KAFKA_LIB="+lib)
	return &kafkaScript{path: filepath.Join(root, "scripts", "kafka.sh"), env: append(env, extra...), log: filepath.Join(dir, "script.log")}
}

// run runs the script with args and returns its trimmed stdout.
func (k *kafkaScript) run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "bash", append([]string{k.path}, args...)...)
	cmd.Env = k.env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if lf, ferr := os.OpenFile(k.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640); ferr == nil {
		fmt.Fprintf(lf, "$ kafka.sh %s\n%s", strings.Join(args, " "), errb.String())
		lf.Close()
	}
	if err != nil {
		return "", fmt.Errorf("kafka.sh %s: %w\n%s", strings.Join(args, " "), err, errb.String())
	}
	return strings.TrimSpace(out.String()), nil
}

// must runs the script and fails the test on an error.
func (k *kafkaScript) must(t *testing.T, ctx context.Context, args ...string) string {
	t.Helper()
	out, err := k.run(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// startBroker starts a single-node broker of the test's own; the test
// stops it.
func startBroker(t *testing.T, ctx context.Context) (*kafkaScript, []string) {
	t.Helper()
	ports := freePorts(t, 2)
	k := newKafkaScript(t, fmt.Sprintf("KAFKA_PORT=%d", ports[0]), fmt.Sprintf("KAFKA_CONTROLLER_PORT=%d", ports[1]))
	t.Cleanup(func() {
		if _, err := k.run(context.Background(), "stop"); err != nil {
			t.Errorf("stop broker: %v", err)
		}
	})
	brokers := k.must(t, ctx, "start")
	return k, strings.Split(brokers, ",")
}

// startCluster starts an n-node KRaft cluster of the test's own; the test
// stops it.
func startCluster(t *testing.T, ctx context.Context, n int) (*kafkaScript, []string) {
	t.Helper()
	ports := freePorts(t, 2*n)
	var bp, cp []string
	for i := range n {
		bp = append(bp, fmt.Sprint(ports[2*i]))
		cp = append(cp, fmt.Sprint(ports[2*i+1]))
	}
	k := newKafkaScript(t, "KAFKA_CLUSTER_PORTS="+strings.Join(bp, " "), "KAFKA_CLUSTER_CONTROLLER_PORTS="+strings.Join(cp, " "))
	t.Cleanup(func() {
		if _, err := k.run(context.Background(), "cluster-stop"); err != nil {
			t.Errorf("stop cluster: %v", err)
		}
	})
	brokers := k.must(t, ctx, "cluster-start", fmt.Sprint(n))
	return k, strings.Split(brokers, ",")
}

// kafkaOptions are the Kafka options of a test: its brokers and a topic
// prefix of its own.
func kafkaOptions(brokers []string, name string, partitions int32, replication int16) kafka.Options {
	return kafka.Options{Brokers: brokers, Prefix: kafkatest.Prefix(name), Version: kafka.DefaultVersion,
		Partitions: partitions, Replication: replication, ClientID: "vpp-faults"}
}

// brokerKind names the broker of a test in the report.
func brokerKind(own string) string {
	if own != "" {
		return own
	}
	if kafkatest.Real() {
		return "Apache Kafka (CI broker)"
	}
	return "embedded kfake"
}

// startIngest runs `vpp ingest` on listen with /readyz on httpAddr and waits
// until it is ready; extra are more flags (--spool-dir …).
func startIngest(t *testing.T, ctx context.Context, dir, bin string, opts kafka.Options, listen, httpAddr string, extra ...string) *proc {
	t.Helper()
	args := append([]string{"ingest", "--listen", listen, "--http", httpAddr, "--status=false",
		"--instance", "faults", "--shutdown-timeout", "10s"}, testutil.KafkaFlags(opts)...)
	if out, _ := exec.CommandContext(ctx, bin, "ingest", "--help").CombinedOutput(); strings.Contains(string(out), "--insecure") {
		// Device authentication is required once ingest has it; the
		// simulator here sends no token.
		args = append(args, "--insecure")
	}
	p := startProc(t, dir, "ingest", bin, append(args, extra...)...)
	waitReady(t, ctx, httpAddr, p)
	return p
}

// rig is the pipeline most fault tests break: the topics of opts, one
// `vpp ingest` (with a spool when asked) serving devices on listen and
// /readyz on httpAddr, one `vpp aggregate` and a fleet reader.
type rig struct {
	dir, bin         string
	opts             kafka.Options
	listen, httpAddr string
	ingestArgs       []string
	ing              *proc
	r                *reader.Reader
}

// startRig creates the topics of opts and starts the rig's processes.
func startRig(t *testing.T, ctx context.Context, opts kafka.Options, withSpool bool) *rig {
	t.Helper()
	if err := kafka.EnsureTopics(ctx, opts); err != nil {
		t.Fatal(err)
	}
	rg := &rig{dir: t.TempDir(), bin: testutil.BuildVPP(ctx, t), opts: opts, listen: freeAddr(t), httpAddr: freeAddr(t)}
	if withSpool {
		rg.ingestArgs = []string{"--spool-dir", filepath.Join(rg.dir, "spool")}
	}
	rg.startIngest(t, ctx)
	startAggregate(t, rg.dir, rg.bin, opts, opts.Prefix+"aggregate", "a0")
	rg.r = startReader(t, ctx, opts)
	return rg
}

// startIngest starts the rig's ingest (again, after a kill or stop: same
// address, same spool) and waits until it is ready.
func (rg *rig) startIngest(t *testing.T, ctx context.Context) {
	t.Helper()
	rg.ing = startIngest(t, ctx, rg.dir, rg.bin, rg.opts, rg.listen, rg.httpAddr, rg.ingestArgs...)
}

// startAggregate runs a `vpp aggregate` process with a static instance ID.
func startAggregate(t *testing.T, dir, bin string, opts kafka.Options, group, instance string) *proc {
	t.Helper()
	args := append([]string{"aggregate", "--group", group, "--instance-id", instance, "--quiet"}, testutil.KafkaFlags(opts)...)
	return startProc(t, dir, "aggregate-"+instance, bin, args...)
}

// newSim returns a simulator sending to the ingest on addr.
func newSim(t *testing.T, addr string, cfg sim.Config) *sim.Sim {
	t.Helper()
	cfg.URL = "ws://" + addr + "/v1/telemetry"
	cfg.Start = simStart()
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = 120 * time.Second
	}
	cfg.Logger = testutil.Logger(slog.LevelWarn)
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// runSim starts s; the returned channel yields Run's result.
func runSim(ctx context.Context, s *sim.Sim) <-chan error {
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	return done
}

// waitSim waits for the simulator to finish with every reading acked and
// returns when it did.
func waitSim(t *testing.T, ctx context.Context, s *sim.Sim, done <-chan error) time.Time {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("sim: %v (stats %+v)", err, s.Stats())
		}
	case <-ctx.Done():
		t.Fatalf("sim did not finish: %v (stats %+v)", ctx.Err(), s.Stats())
	}
	return time.Now()
}

// startReader folds the state topics like every dashboard does.
func startReader(t *testing.T, ctx context.Context, opts kafka.Options) *reader.Reader {
	t.Helper()
	ropts := opts
	ropts.ClientID = "vpp-faults-reader"
	r, err := reader.New(ropts, testutil.Logger(slog.LevelWarn))
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := r.Run(rctx); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("fleet reader: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return r
}

// within reports whether got equals want to 1e-6 per device (1 mW, 1 mWh).
func within(got, want float64, devices int) bool {
	return math.Abs(got-want) <= 1e-6*float64(max(devices, 1))
}

// totalsMatch reports whether the snapshot's fleet totals equal the truth.
func totalsMatch(s *fleet.Snapshot, truth sim.Truth) bool {
	r := s.Fleet.Rollup
	n := truth.Fleet.Devices
	return r.Devices == int64(n) &&
		within(r.PowerKW(), truth.Fleet.PowerKW, n) &&
		within(r.EnergyKWh(), truth.Fleet.EnergyKWh, n) &&
		within(r.CapacityKWh(), truth.Fleet.CapacityKWh, n)
}

// waitTotals waits up to timeout for the fleet totals to equal the truth
// and returns the time from "from" (the end of the stream) until they did;
// on a timeout it reports the difference.
func waitTotals(t *testing.T, ctx context.Context, r *reader.Reader, truth sim.Truth, from time.Time, timeout time.Duration) (time.Duration, *fleet.Snapshot, bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := r.Snapshot()
		if totalsMatch(s, truth) {
			return time.Since(from), s, true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			ro := s.Fleet.Rollup
			t.Errorf("fleet totals differ from the truth after %s: devices %d/%d, power %.6f/%.6f kW, energy %.6f/%.6f kWh, capacity %.6f/%.6f kWh",
				timeout, ro.Devices, truth.Fleet.Devices, ro.PowerKW(), truth.Fleet.PowerKW, ro.EnergyKWh(), truth.Fleet.EnergyKWh,
				ro.CapacityKWh(), truth.Fleet.CapacityKWh)
			return time.Since(from), s, false
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// telemetry is what the telemetry topic holds.
type telemetry struct {
	records  int
	distinct int
	devices  map[string]map[uint64]struct{}
}

// readTelemetry reads the whole telemetry topic.
func readTelemetry(ctx context.Context, opts kafka.Options) (telemetry, error) {
	out := telemetry{devices: make(map[string]map[uint64]struct{})}
	client, err := opts.NewClient()
	if err != nil {
		return out, err
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return out, fmt.Errorf("consumer: %w", err)
	}
	defer consumer.Close()
	topic := opts.Topics().Telemetry()
	parts, err := client.Partitions(topic)
	if err != nil {
		return out, fmt.Errorf("partitions of %s: %w", topic, err)
	}
	for _, p := range parts {
		oldest, err1 := client.GetOffset(topic, p, sarama.OffsetOldest)
		newest, err2 := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err := errors.Join(err1, err2); err != nil {
			return out, fmt.Errorf("offsets of %s/%d: %w", topic, p, err)
		}
		if newest <= oldest {
			continue
		}
		if err := readPartition(ctx, consumer, topic, p, oldest, newest, &out); err != nil {
			return out, err
		}
	}
	return out, nil
}

// readPartition adds partition p's records oldest…newest-1 to out.
func readPartition(ctx context.Context, consumer sarama.Consumer, topic string, p int32, oldest, newest int64, out *telemetry) error {
	pc, err := consumer.ConsumePartition(topic, p, oldest)
	if err != nil {
		return fmt.Errorf("consume %s/%d: %w", topic, p, err)
	}
	defer pc.Close()
	timeout := time.NewTimer(60 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case m := <-pc.Messages():
			var r vppv1.Reading
			if err := proto.Unmarshal(m.Value, &r); err != nil {
				return fmt.Errorf("telemetry record %s/%d@%d: %w", topic, p, m.Offset, err)
			}
			out.records++
			seqs := out.devices[r.GetDeviceId()]
			if seqs == nil {
				seqs = make(map[uint64]struct{})
				out.devices[r.GetDeviceId()] = seqs
			}
			if _, dup := seqs[r.GetSeq()]; !dup {
				out.distinct++
				seqs[r.GetSeq()] = struct{}{}
			}
			if m.Offset+1 >= newest {
				return nil
			}
		case <-timeout.C:
			return fmt.Errorf("reading %s/%d timed out", topic, p)
		case <-ctx.Done():
			return fmt.Errorf("reading %s/%d: %w", topic, p, ctx.Err())
		}
	}
}

// waitTelemetry reads the telemetry topic until it holds at least want
// distinct readings or the timeout passes, and returns the last read.
func waitTelemetry(t *testing.T, ctx context.Context, opts kafka.Options, want int64, timeout time.Duration) telemetry {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		tel, err := readTelemetry(ctx, opts)
		if err != nil {
			t.Logf("read telemetry: %v", err)
		}
		if err == nil && int64(tel.distinct) >= want || time.Now().After(deadline) || ctx.Err() != nil {
			return tel
		}
		time.Sleep(time.Second)
	}
}

// checkAcked fails unless the telemetry holds every reading the simulator
// had acked: acks are cumulative per device (seq 1…n), so for every device
// the topic must hold seq 1 to its last, and as many distinct readings as
// were acked.
func checkAcked(t *testing.T, tel telemetry, truth sim.Truth) {
	t.Helper()
	if int64(tel.distinct) != truth.ReadingsAcked {
		t.Errorf("telemetry holds %d distinct readings (%d records); the sim had %d acked", tel.distinct, tel.records, truth.ReadingsAcked)
	}
	if len(tel.devices) != truth.Devices {
		t.Errorf("telemetry holds %d devices, the sim has %d", len(tel.devices), truth.Devices)
	}
	missing := 0
	for dev, seqs := range tel.devices {
		for s := uint64(1); s <= uint64(len(seqs)); s++ {
			if _, ok := seqs[s]; !ok {
				if missing < 5 {
					t.Errorf("device %s: acked seq %d missing from telemetry (has %d readings)", dev, s, len(seqs))
				}
				missing++
				break
			}
		}
	}
}

// result is one row of the failure table in docs/operations.md.
type result struct {
	Fault      string
	Broker     string
	Sent       int64
	Acked      int64
	InKafka    int // distinct (device, seq) in the telemetry topic
	Records    int // telemetry records, duplicates included
	Duplicates uint64
	Match      bool
	Converge   time.Duration
	Notes      []string
}

// report logs the result one measurement per line and, with
// VPP_FAULT_REPORT=FILE, appends it to FILE as a Markdown table row.
func (r result) report(t *testing.T) {
	t.Helper()
	t.Logf("fault: %s (%s)", r.Fault, r.Broker)
	t.Logf("readings sent: %d", r.Sent)
	t.Logf("acked: %d", r.Acked)
	t.Logf("found in Kafka: %d distinct (%d records)", r.InKafka, r.Records)
	t.Logf("duplicates dropped: %d", r.Duplicates)
	t.Logf("totals match: %v", r.Match)
	t.Logf("time to converge: %s", r.Converge.Round(10*time.Millisecond))
	for _, n := range r.Notes {
		t.Logf("note: %s", n)
	}
	path := os.Getenv("VPP_FAULT_REPORT")
	if path == "" {
		return
	}
	match := "no"
	if r.Match {
		match = "yes"
	}
	row := fmt.Sprintf("| %s | %d | %d | %d (%d records) | %d | %s | %s | %s |\n", r.Fault, r.Sent, r.Acked, r.InKafka, r.Records,
		r.Duplicates, match, r.Converge.Round(10*time.Millisecond), strings.Join(r.Notes, "; "))
	if err := appendFile(path, row); err != nil {
		t.Errorf("fault report: %v", err)
	}
}

// appendFile appends s to path (the fault tests do not run in parallel).
func appendFile(path, s string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	_, err = f.WriteString(s)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("append to %s: %w", path, err)
	}
	return nil
}

// waitAccounting waits up to timeout until the aggregators' accounting
// covers every telemetry record (consumed ≥ records) and returns it.
func waitAccounting(ctx context.Context, r *reader.Reader, records int, timeout time.Duration) fleet.Pipeline {
	deadline := time.Now().Add(timeout)
	for {
		p := r.Snapshot().Pipeline
		if p.Consumed >= uint64(records) || time.Now().After(deadline) || ctx.Err() != nil {
			return p
		}
		time.Sleep(50 * time.Millisecond)
	}
}
