// Package fakesb runs a Service Bus-shaped AMQP 1.0 peer (fakesb.js, on the npm library rhea)
// for tests, so the unmodified azservicebus SDK can be driven over 127.0.0.1 without Azure or
// Docker.
//
// The peer speaks the wire contract the SDK needs (CBS, $management, peek-lock with lock
// tokens, dispositions, dead-letter queues); the queue semantics are our model of Service Bus.
// Everything it does not implement is refused and recorded, and Start's cleanup fails the test
// on any such record, because the SDK would otherwise retry it silently until a timeout.
//
// The peer needs Node.js and its node_modules: run `npm ci --prefix internal/fakesb` once (make
// test does it). Control calls (Send, Stats, ...) must be made from the test's goroutine: they
// stop the test with t.Fatal when the peer does not answer.
package fakesb

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Options configures a Broker. Zero values take the defaults.
type Options struct {
	// Queues are the queue names the broker knows (default ["events"]). Each has a dead-letter
	// queue at "<queue>/$DeadLetterQueue". Any other entity is not found (CodeNotFound).
	Queues []string
	// LockDuration is every queue's peek-lock duration (default 30s); see Broker.Configure.
	LockDuration time.Duration
	// MaxDeliveryCount is how many deliveries a message gets before it is dead-lettered with
	// reason MaxDeliveryCountExceeded (default 10).
	MaxDeliveryCount int
	// StateFile, when set, keeps the queues in this file so that they survive Restart, as a Service
	// Bus namespace's do (see fakesb.js).
	StateFile string
	// Quiet leaves node's log out of the test log (a long run with many connections).
	Quiet bool
}

// Broker is a running fakesb peer. It lives until the end of the test that started it.
type Broker struct {
	node, dir string
	args      []string // node's arguments but the ports
	logf      func(format string, args ...any)

	proc                  *process
	amqpPort, controlPort int
	controlBase           string
	http                  *http.Client
}

// Stats are an entity's counters as the peer sees them.
type Stats struct {
	Active       int `json:"active"`       // available to receive
	Locked       int `json:"locked"`       // delivered in peek-lock mode and not yet settled
	DeadLettered int `json:"deadLettered"` // now in the queue's dead-letter queue
	Completed    int `json:"completed"`    // settled with complete
	Abandoned    int `json:"abandoned"`    // settled with abandon
	Released     int `json:"released"`     // released (the SDK's releaser returning prefetched messages)
	Delivered    int `json:"delivered"`    // transfers sent to receivers, redeliveries included
	Expired      int `json:"expired"`      // locks that ran out (or were expired with ExpireLocks)
	Consumers    int `json:"consumers"`    // receiver links attached to the entity
}

// DeadLetter is a message in a queue's dead-letter queue.
type DeadLetter struct {
	Body                  []byte         `json:"body"`
	Reason                string         `json:"reason"`
	Description           string         `json:"description"`
	DeliveryCount         int            `json:"deliveryCount"`
	ApplicationProperties map[string]any `json:"applicationProperties"`
	MessageID             string         `json:"messageId"`
	SequenceNumber        int64          `json:"sequenceNumber"`
}

// startTimeout bounds how long node may take to print its ports.
const startTimeout = 15 * time.Second

// Start runs a fakesb peer on 127.0.0.1 with free ports and stops it when the test ends. The
// cleanup fails the test if the peer recorded any problem (an unimplemented operation, a
// protocol error). Node's stderr goes to the test log.
func Start(t testing.TB, opts Options) *Broker {
	t.Helper()
	dir := sourceDir(t)
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("fakesb: node is not on PATH; install Node.js 18 or later, then run from the repository root: npm ci --prefix internal/fakesb")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "rhea", "package.json")); err != nil {
		t.Fatalf("fakesb: %s/node_modules is missing; run from the repository root: npm ci --prefix internal/fakesb", dir)
	}

	queues := opts.Queues
	if len(queues) == 0 {
		queues = []string{"events"}
	}
	lock := opts.LockDuration
	if lock == 0 {
		lock = 30 * time.Second
	}
	maxDelivery := opts.MaxDeliveryCount
	if maxDelivery == 0 {
		maxDelivery = 10
	}
	b := &Broker{
		node: node, dir: dir,
		args: []string{filepath.Join(dir, "fakesb.js"), "--host", "127.0.0.1",
			"--queues", strings.Join(queues, ","),
			"--lock-ms", strconv.FormatInt(lock.Milliseconds(), 10),
			"--max-delivery", strconv.Itoa(maxDelivery),
			"--exit-on-stdin-eof"},
		http: &http.Client{Timeout: 10 * time.Second},
	}
	if opts.StateFile != "" {
		b.args = append(b.args, "--state-file", opts.StateFile)
	}
	if opts.Quiet {
		b.logf = func(string, ...any) {}
	} else {
		b.logf = t.Logf
	}
	if err := b.launch(0, 0); err != nil {
		t.Fatalf("fakesb: %v", err)
	}
	t.Cleanup(func() {
		var problems []string
		err := b.call(http.MethodGet, "/problems", nil, &problems)
		b.proc.stop()
		if err != nil {
			t.Errorf("fakesb: could not read problems: %v", err)
		}
		for _, p := range problems {
			t.Errorf("fakesb problem: %s", p)
		}
	})
	return b
}

// process is one run of node.
type process struct {
	cmd     *exec.Cmd
	stdin   io.Closer
	readers sync.WaitGroup
}

// stop kills node and waits for it and for its output readers.
func (p *process) stop() {
	_ = p.cmd.Process.Kill()
	_ = p.stdin.Close()
	p.readers.Wait()
	_ = p.cmd.Wait()
}

// launch starts node on the given ports (0: free ones) and waits for it to listen.
func (b *Broker) launch(amqpPort, controlPort int) error {
	args := append(slices.Clone(b.args), "--port", strconv.Itoa(amqpPort), "--control-port", strconv.Itoa(controlPort))
	cmd := exec.Command(b.node, args...)
	cmd.Dir = b.dir
	p := &process{cmd: cmd}
	// Held open for the peer's lifetime: if this process dies, node sees EOF and exits.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	p.stdin = stdin
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start node: %w", err)
	}

	// Both readers run until node exits; stop waits for them so nothing logs after the test.
	p.readers.Add(2)
	logf := b.logf
	go func() {
		defer p.readers.Done()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			logf("%s", sc.Text())
		}
	}()
	ports := make(chan string, 1)
	go func() {
		defer p.readers.Done()
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			ports <- sc.Text()
		}
		close(ports)
		for sc.Scan() {
			logf("fakesb stdout: %s", sc.Text())
		}
	}()

	var line string
	select {
	case l, ok := <-ports:
		if !ok {
			p.stop()
			return fmt.Errorf("node exited before printing its ports (see the log above)")
		}
		line = l
	case <-time.After(startTimeout):
		p.stop()
		return fmt.Errorf("node printed no ports within %s", startTimeout)
	}
	var ps struct{ AMQP, Control int }
	if err := json.Unmarshal([]byte(line), &ps); err != nil || ps.AMQP == 0 || ps.Control == 0 {
		p.stop()
		return fmt.Errorf("unexpected first line from node: %q", line)
	}
	b.proc, b.amqpPort, b.controlPort = p, ps.AMQP, ps.Control
	b.controlBase = fmt.Sprintf("http://127.0.0.1:%d", ps.Control)
	return nil
}

// Restart kills the peer's process (SIGKILL: no goodbye to its clients) and starts it again on the
// same ports, as a broker node restarting under its clients. With Options.StateFile the queues and
// their messages survive; without it they start empty. Problems recorded before the restart are
// checked first and fail the test.
func (b *Broker) Restart(t testing.TB) {
	t.Helper()
	var problems []string
	if err := b.call(http.MethodGet, "/problems", nil, &problems); err != nil {
		t.Errorf("fakesb: could not read problems before the restart: %v", err)
	}
	for _, p := range problems {
		t.Errorf("fakesb problem: %s", p)
	}
	b.proc.stop()
	// The ports were ours a moment ago; another process taking one in between is unlikely on
	// loopback, and retried a few times.
	var err error
	for range 20 {
		if err = b.launch(b.amqpPort, b.controlPort); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("fakesb: restart: %v", err)
}

// sourceDir is the directory holding fakesb.js, found from this file's path so that tests in
// any package can start the peer.
func sourceDir(t testing.TB) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatalf("fakesb: cannot locate the fakesb source directory")
	}
	dir := filepath.Dir(file)
	if _, err := os.Stat(filepath.Join(dir, "fakesb.js")); err != nil {
		t.Fatalf("fakesb: %s/fakesb.js not found (built with -trimpath?): %v", dir, err)
	}
	return dir
}

// ConnectionString is the Service Bus connection string for this peer. UseDevelopmentEmulator
// makes the SDK use plain amqp:// to the given port.
func (b *Broker) ConnectionString() string {
	return fmt.Sprintf("Endpoint=sb://127.0.0.1:%d;SharedAccessKeyName=test;SharedAccessKey=test;UseDevelopmentEmulator=true", b.amqpPort)
}

// Send enqueues a message on queue directly, as another producer (Dataverse) would post it. The
// body goes in one data section. Property values may be strings, booleans, integers (sent as
// AMQP long, int64 on receipt), other numbers (double) and nil.
func (b *Broker) Send(t testing.TB, queue string, body []byte, props map[string]any) {
	t.Helper()
	b.must(t, http.MethodPost, "/send", map[string]any{
		"queue":                 queue,
		"bodyBase64":            body,
		"applicationProperties": props,
	}, nil)
}

// Stats returns the counters of queue, or of its dead-letter queue when queue ends in
// "/$DeadLetterQueue".
func (b *Broker) Stats(t testing.TB, queue string) Stats {
	t.Helper()
	var s Stats
	b.must(t, http.MethodGet, "/stats?queue="+url.QueryEscape(queue), nil, &s)
	return s
}

// DeadLetters returns the messages in queue's dead-letter queue, oldest first.
func (b *Broker) DeadLetters(t testing.TB, queue string) []DeadLetter {
	t.Helper()
	var d []DeadLetter
	b.must(t, http.MethodGet, "/deadletters?queue="+url.QueryEscape(queue), nil, &d)
	return d
}

// ExpireLocks makes every lock held on queue (and its dead-letter queue) expire now, as if the
// lock duration had passed: each message counts a delivery and is redelivered or dead-lettered.
func (b *Broker) ExpireLocks(t testing.TB, queue string) {
	t.Helper()
	b.must(t, http.MethodPost, "/expire-locks", map[string]any{"queue": queue}, nil)
}

// DropConnections closes every AMQP connection with amqp:connection:forced. Queues, messages
// and locks are kept; the SDK reconnects by itself.
func (b *Broker) DropConnections(t testing.TB) {
	t.Helper()
	b.must(t, http.MethodPost, "/drop-connections", nil, nil)
}

// Pause stops accepting AMQP connections and drops the existing ones, as if the namespace were
// unreachable. State is kept. Resume listens again on the same port.
func (b *Broker) Pause(t testing.TB) {
	t.Helper()
	b.must(t, http.MethodPost, "/pause", nil, nil)
}

// Resume undoes Pause.
func (b *Broker) Resume(t testing.TB) {
	t.Helper()
	b.must(t, http.MethodPost, "/resume", nil, nil)
}

// Configure sets queue's lock duration and max delivery count. Locks already held keep their
// expiry; the new duration applies to the next delivery or renewal.
func (b *Broker) Configure(t testing.TB, queue string, lock time.Duration, maxDelivery int) {
	t.Helper()
	b.must(t, http.MethodPost, "/config", map[string]any{
		"queue":            queue,
		"lockDurationMs":   lock.Milliseconds(),
		"maxDeliveryCount": maxDelivery,
	}, nil)
}

// TakeProblems returns the problems recorded so far and forgets them, for tests that provoke
// one on purpose; the cleanup check then only sees later ones.
func (b *Broker) TakeProblems(t testing.TB) []string {
	t.Helper()
	var p []string
	b.must(t, http.MethodPost, "/problems/clear", nil, &p)
	return p
}

func (b *Broker) must(t testing.TB, method, path string, in, out any) {
	t.Helper()
	if err := b.call(method, path, in, out); err != nil {
		t.Fatalf("fakesb: %v", err)
	}
}

func (b *Broker) call(method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, b.controlBase+path, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		_ = json.Unmarshal(data, &e)
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, e.Error)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decode %q: %w", method, path, data, err)
	}
	return nil
}
