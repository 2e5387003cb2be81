package main

// The probe: the built daemon under slow clients, a hung /proc, hostile
// names, SIGTERM during scrapes, dead and black-hole Alertmanagers, and
// --collector.netns without CAP_SYS_ADMIN. Each test bounds its own time.

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/tcpadvisor/tcpadvisor/internal/cgrouptest"
	"github.com/tcpadvisor/tcpadvisor/internal/netnstest"
	"github.com/tcpadvisor/tcpadvisor/internal/proctest"
	"github.com/tcpadvisor/tcpadvisor/internal/tlstest"
	"golang.org/x/sys/unix"
)

// probedDaemon is a daemon started by a probe test.
type probedDaemon struct {
	addr   string
	cmd    *exec.Cmd
	stderr *proctest.SyncBuffer
	exited chan error
}

// startProbed starts tcpadvisor with args (the daemon, or a command and
// its flags), behind the command line prefix wrapper (setpriv, prlimit)
// when given, on a free port, and waits until it serves. It is killed when
// the test ends if it still runs.
func startProbed(t *testing.T, wrapper []string, args ...string) *probedDaemon {
	t.Helper()
	d := &probedDaemon{addr: netnstest.FreeAddress(t), stderr: &proctest.SyncBuffer{}, exited: make(chan error, 1)}
	argv := append(append(append([]string{}, wrapper...), binary), append(args, "--web.listen-address="+d.addr)...)
	d.cmd = exec.Command(argv[0], argv[1:]...)
	d.cmd.Stderr = d.stderr
	d.cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir())
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.exited <- d.cmd.Wait() }()
	t.Cleanup(func() {
		d.cmd.Process.Kill()
		<-d.exited
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", d.addr, time.Second)
		if err == nil {
			conn.Close()
			return d
		}
		select {
		case err := <-d.exited:
			t.Fatalf("the daemon exited (%v) before serving:\n%s", err, d.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon did not listen within 15 s:\n%s", d.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// get fetches path from the daemon within timeout.
func (d *probedDaemon) get(path string, timeout time.Duration) (int, string, error) {
	client := &http.Client{Timeout: timeout}
	resp, err := client.Get("http://" + d.addr + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// stop sends SIGTERM and returns the exit error, failing the test past
// within.
func (d *probedDaemon) stop(t *testing.T, within time.Duration) error {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-d.exited:
		d.exited <- err // for the cleanup
		return err
	case <-time.After(within):
		t.Fatalf("the daemon did not exit within %v of SIGTERM:\n%s", within, d.stderr)
		return nil
	}
}

// parseExposition parses a scrape, failing the test when it is not valid
// Prometheus text.
func parseExposition(t *testing.T, body string) map[string]*familyOf {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("the scrape is not valid exposition: %v", err)
	}
	out := map[string]*familyOf{}
	for name, f := range families {
		fam := &familyOf{}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			value := m.GetGauge().GetValue() + m.GetCounter().GetValue() + m.GetUntyped().GetValue()
			fam.series = append(fam.series, seriesOf{labels, value})
		}
		out[name] = fam
	}
	return out
}

type familyOf struct{ series []seriesOf }

type seriesOf struct {
	labels map[string]string
	value  float64
}

// stuckProcfs returns a copy of exporter/testdata/proc whose
// tcp_fin_timeout is a FIFO nobody writes: opening it blocks, as a read of
// a hung /proc does. release lets the one open under way return.
func stuckProcfs(t *testing.T) (dir string, release func()) {
	t.Helper()
	dir = t.TempDir()
	if out, err := exec.Command("cp", "-a", "exporter/testdata/proc/.", dir).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	fifo := filepath.Join(dir, "sys/net/ipv4/tcp_fin_timeout")
	if err := os.Remove(fifo); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	release = func() {
		w, err := os.OpenFile(fifo, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		w.WriteString("60\n")
		time.Sleep(100 * time.Millisecond)
		w.Close()
	}
	return dir, release
}

// openClients opens up to n connections to addr, each sending start (the
// beginning of a request, or nothing) and no more, until one cannot
// connect (the backlog is full); it fails the test with fewer than least,
// which would prove nothing. They are closed when the test ends.
func openClients(t *testing.T, addr string, n, least int, start string) []net.Conn {
	t.Helper()
	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for range n {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			break
		}
		conns = append(conns, c)
		io.WriteString(c, start)
	}
	if len(conns) < least {
		t.Fatalf("only %d of %d clients connected: the test would prove nothing", len(conns), n)
	}
	return conns
}

// TestIntegrationProbeSlowClients runs the daemon with 1024 file
// descriptors and opens 1500 half-sent requests: a scrape is still answered
// within the collector timeout, with every collector succeeding, and the
// daemon never holds more than its connection cap.
func TestIntegrationProbeSlowClients(t *testing.T) {
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("needs prlimit (Debian package util-linux)")
	}
	d := startProbed(t, []string{prlimit, "--nofile=1024:1024"}, "--collector.timeout=5s", "--log.level=error")
	const slow = 1500
	conns := openClients(t, d.addr, slow, 1100, "GET /metrics HTTP/1.1\r\nHost: x\r\n")
	code, body, err := d.get("/metrics", 5*time.Second)
	if err != nil || code != 200 {
		t.Fatalf("scrape behind %d slow clients: %d, %v\n%s", len(conns), code, err, d.stderr)
	}
	for _, name := range []string{"netstat", "sockets", "sockstat", "sysctl", "owners"} {
		if want := fmt.Sprintf("tcpadvisor_scrape_collector_success{collector=%q} 1", name); !strings.Contains(body, want) {
			t.Errorf("behind slow clients the scrape lacks %s", want)
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", d.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if len(fds) > 512+64 {
		t.Errorf("the daemon holds %d descriptors, past its cap of 512 connections and the collectors' own", len(fds))
	}
}

// TestIntegrationProbeStuckProcfs points the daemon at a /proc whose
// sysctl file blocks: scrapes answer within the collector timeout with the
// sysctl collector failed and the rest served; abandoned scrapes do not
// keep --web.max-requests slots, and goroutines do not grow per scrape.
func TestIntegrationProbeStuckProcfs(t *testing.T) {
	proc, release := stuckProcfs(t)
	d := startProbed(t, nil, "--path.procfs="+proc, "--collector.timeout=1s", "--web.max-requests=2",
		"--no-collector.sockets.owners", "--log.level=error")
	defer release()

	goroutines := func() float64 {
		code, body, err := d.get("/metrics", 3*time.Second)
		if err != nil || code != 200 {
			t.Fatalf("scrape during the hang: %d, %v", code, err)
		}
		if !strings.Contains(body, `tcpadvisor_scrape_collector_success{collector="sysctl"} 0`) ||
			!strings.Contains(body, `tcpadvisor_scrape_collector_success{collector="sockstat"} 1`) {
			t.Fatalf("during the hang want sysctl failed and sockstat served:\n%s", grepLines(body, "collector_success"))
		}
		for _, s := range parseExposition(t, body)["go_goroutines"].series {
			return s.value
		}
		t.Fatal("no go_goroutines")
		return 0
	}
	before := goroutines()
	// Twenty scrapes given up after 100 ms, ten times the slots.
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() { d.get("/metrics", 100*time.Millisecond) })
	}
	wg.Wait()
	time.Sleep(1500 * time.Millisecond)
	for range 5 {
		start := time.Now()
		goroutines()
		if elapsed := time.Since(start); elapsed > 2500*time.Millisecond {
			t.Errorf("a scrape took %v with a 1 s collector timeout", elapsed)
		}
	}
	if after := goroutines(); after > before+20 {
		t.Errorf("goroutines grew from %.0f to %.0f over 26 scrapes of a stuck /proc", before, after)
	}
}

// TestIntegrationProbeSIGTERMDuringScrapes sends SIGTERM while five
// scrapes wait on a slow collection: each gets its full reply, and the
// daemon then exits 0.
func TestIntegrationProbeSIGTERMDuringScrapes(t *testing.T) {
	proc, release := stuckProcfs(t)
	d := startProbed(t, nil, "--path.procfs="+proc, "--collector.timeout=3s", "--rules.evaluation-interval=1h",
		"--no-collector.sockets.owners", "--log.level=error")
	// The advisor's first collection is stuck on the FIFO: let it go, so
	// that the scrapes' collection is the one to wait its 3 s.
	release()
	time.Sleep(200 * time.Millisecond)

	type reply struct {
		code int
		body string
		err  error
	}
	replies := make(chan reply, 5)
	for range 5 {
		go func() {
			code, body, err := d.get("/metrics", 10*time.Second)
			replies <- reply{code, body, err}
		}()
	}
	time.Sleep(1 * time.Second)
	stopped := make(chan error, 1)
	go func() { stopped <- d.stop(t, 15*time.Second) }()
	for range 5 {
		r := <-replies
		if r.err != nil || r.code != 200 {
			t.Errorf("a scrape under way at SIGTERM got %d, %v", r.code, r.err)
			continue
		}
		if !strings.Contains(r.body, `tcpadvisor_scrape_collector_success{collector="sysctl"} 0`) || !strings.Contains(r.body, "process_start_time_seconds") {
			t.Errorf("a scrape under way at SIGTERM got a partial reply (%d bytes)", len(r.body))
		}
	}
	if err := <-stopped; err != nil {
		t.Errorf("after SIGTERM the daemon exited with %v, want 0:\n%s", err, d.stderr)
	}
	release() // the scrapes' collection, stuck again
}

// TestIntegrationProbeHostileNames names a process, its cgroup and a
// network namespace with quotes, braces, a newline and terminal escapes:
// the exposition stays valid and carries the names as they are, the advice
// is valid JSON, and the log holds no raw control character.
func TestIntegrationProbeHostileNames(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("needs python3 to name a process with prctl")
	}
	const unit = `q"x{y="1"}.service`
	cgroup := cgrouptest.Child(t, unit)
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip (Debian package iproute2)")
	}
	const netnsName = `probe"ns{a="b"}`
	if out, err := exec.Command("ip", "netns", "add", netnsName).CombinedOutput(); err != nil {
		t.Skipf("ip netns add: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", netnsName).Run() })

	ln := netnstest.Serve(t, "127.0.0.1:0", netnstest.Discard)
	// A process named "\x1b[31mred\n}" holding a connection, in the
	// hostile cgroup: it moves itself there before it connects.
	script := fmt.Sprintf(`
import ctypes, socket, sys, time
open(%q, "w").write(str(__import__("os").getpid()))
ctypes.CDLL(None).prctl(15, b"\x1b[31mred\n}\"", 0, 0, 0)
s = socket.create_connection(("127.0.0.1", %d))
print("connected", flush=True)
sys.stdin.read()
`, filepath.Join(cgroup, "cgroup.procs"), ln.Addr().(*net.TCPAddr).Port)
	holder := exec.Command(python, "-c", script)
	stdin, _ := holder.StdinPipe()
	stdout, _ := holder.StdoutPipe()
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		holder.Process.Kill()
		holder.Wait()
	})
	line := make([]byte, 16)
	if n, _ := io.ReadAtLeast(stdout, line, len("connected")); !strings.HasPrefix(string(line[:n]), "connected") {
		t.Fatalf("the hostile process did not connect: %q", line[:n])
	}

	d := startProbed(t, nil, "--collector.netns", "--collector.sockets.pin-destination="+ln.Addr().String(), "--log.level=debug")
	var metrics map[string]*familyOf
	found := false
	for deadline := time.Now().Add(10 * time.Second); !found && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		code, body, err := d.get("/metrics", 10*time.Second)
		if err != nil || code != 200 {
			t.Fatalf("scrape: %d, %v", code, err)
		}
		metrics = parseExposition(t, body)
		found = hasLabel(metrics, "tcpadvisor_outbound_owner_sockets", "owner", unit)
	}
	if !found {
		t.Errorf("no outbound owner series names the unit %q", unit)
	}
	if !hasLabel(metrics, "tcpadvisor_netns_collector_success", "netns", netnsName) {
		t.Errorf("no series names the namespace %q", netnsName)
	}
	for name, f := range metrics {
		for _, s := range f.series {
			for l, v := range s.labels {
				if strings.ContainsAny(v, "\x1b\n") {
					t.Errorf("%s{%s=%q}: a label value holds a raw control character", name, l, v)
				}
			}
		}
	}
	code, report, err := d.get("/advice?format=json", 10*time.Second)
	if err != nil || code != 200 || !json.Valid([]byte(report)) {
		t.Errorf("/advice?format=json: %d, %v, valid JSON %v", code, err, json.Valid([]byte(report)))
	}
	d.stop(t, 20*time.Second)
	if log := d.stderr.String(); strings.ContainsRune(log, '\x1b') {
		t.Errorf("the log holds a raw ESC:\n%q", log)
	}
}

// hasLabel reports whether a series of family has label set to value.
func hasLabel(metrics map[string]*familyOf, family, label, value string) bool {
	if f := metrics[family]; f != nil {
		for _, s := range f.series {
			if s.labels[label] == value {
				return true
			}
		}
	}
	return false
}

// TestIntegrationProbeAlertmanagers gives the daemon a dead Alertmanager
// (nothing listens) and a black hole (accepts, never answers) while an
// alert fires: scrapes are answered as quickly as ever, alerts reach the
// black hole's door, and SIGTERM still ends the daemon promptly.
func TestIntegrationProbeAlertmanagers(t *testing.T) {
	dead := netnstest.FreeAddress(t)
	blackHole, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer blackHole.Close()
	var accepted sync.WaitGroup
	accepted.Add(1)
	var once sync.Once
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := blackHole.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
			once.Do(accepted.Done)
		}
	}()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	}()
	// The black hole listens inside the ephemeral range, which fires
	// TcpadvisorServicePortInEphemeralRange once its for: has passed:
	// 15m scaled by 0.005, 4.5 s.
	d := startProbed(t, nil, "--alertmanager.url=http://"+dead, "--alertmanager.url=http://"+blackHole.Addr().String(),
		"--rules.evaluation-interval=1s", "--rules.time-scale=0.005", "--log.level=error")
	reached := make(chan struct{})
	go func() {
		accepted.Wait()
		close(reached)
	}()
	for deadline := time.Now().Add(30 * time.Second); ; {
		start := time.Now()
		code, _, err := d.get("/metrics", 5*time.Second)
		if err != nil || code != 200 {
			t.Fatalf("scrape with a dead and a black-hole Alertmanager: %d, %v", code, err)
		}
		if elapsed := time.Since(start); elapsed > 3*time.Second {
			t.Errorf("a scrape took %v with a black-hole Alertmanager", elapsed)
		}
		select {
		case <-reached:
		default:
			if time.Now().After(deadline) {
				t.Fatalf("no alert reached the black hole within 30 s:\n%s", d.stderr)
			}
			time.Sleep(500 * time.Millisecond)
			continue
		}
		break
	}
	if err := d.stop(t, 30*time.Second); err != nil {
		t.Errorf("after SIGTERM the daemon exited with %v, want 0:\n%s", err, d.stderr)
	}
}

// TestIntegrationProbeNetnsWithoutCapSysAdmin runs --collector.netns as
// root without CAP_SYS_ADMIN: the other namespaces cannot be entered, and
// the daemon says so once in its log and in
// tcpadvisor_netns_privilege_missing.
func TestIntegrationProbeNetnsWithoutCapSysAdmin(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to drop one capability with setpriv")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("needs setpriv (Debian package util-linux)")
	}
	name := "tcpadv-probe-" + strconv.Itoa(os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Skipf("ip netns add: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })

	d := startProbed(t, []string{setpriv, "--inh-caps=-sys_admin", "--bounding-set=-sys_admin"}, "--collector.netns", "--log.level=warn")
	for range 2 {
		code, body, err := d.get("/metrics", 10*time.Second)
		if err != nil || code != 200 {
			t.Fatalf("scrape: %d, %v", code, err)
		}
		for _, want := range []string{
			`tcpadvisor_netns_privilege_missing{missing="CAP_SYS_ADMIN"} 1`,
			`tcpadvisor_netns_collector_success{collector="sockets",netns="` + name + `"} 0`,
			`tcpadvisor_netns_collector_success{collector="sockets",netns="host"} 1`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("metrics lack %s", want)
			}
		}
	}
	if n := strings.Count(d.stderr.String(), "--collector.netns needs CAP_SYS_ADMIN"); n != 1 {
		t.Errorf("the log names the missing CAP_SYS_ADMIN %d times over two scrapes, want once:\n%s", n, d.stderr)
	}
}

func grepLines(s, substr string) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

// TestIntegrationProbeTLSSlowClients serves TLS from --web.config.file with
// 256 file descriptors (a cap of 128 connections) and opens 300 connections
// that never send their TLS hello: an HTTPS scrape is still answered.
func TestIntegrationProbeTLSSlowClients(t *testing.T) {
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("needs prlimit (Debian package util-linux)")
	}
	server := tlstest.WriteServer(t, "")
	d := startProbed(t, []string{prlimit, "--nofile=256:256"}, "--web.config.file="+server.WebConfig, "--log.level=error")
	conns := openClients(t, d.addr, 300, 200, "")
	client := server.Client(5 * time.Second)
	resp, err := client.Get("https://" + d.addr + "/metrics")
	if err != nil {
		t.Fatalf("HTTPS scrape behind %d silent clients: %v\n%s", len(conns), err, d.stderr)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `tcpadvisor_scrape_collector_success{collector="sockets"} 1`) {
		t.Errorf("HTTPS scrape behind silent clients: %s, sockets collector success missing", resp.Status)
	}
}

// TestIntegrationProbeServerErrorsAreLogged: what the HTTP server itself
// reports, such as clients that connect to the TLS port and close before
// their hello (a port scanner, a load balancer's TCP check), is logged as
// the daemon logs, one JSON object per line with --log.format=json, not in
// the standard log's format.
func TestIntegrationProbeServerErrorsAreLogged(t *testing.T) {
	d := startProbed(t, nil, "--web.config.file="+tlstest.WriteServer(t, "").WebConfig, "--log.format=json", "--log.level=error")
	for range 3 {
		c, err := net.DialTimeout("tcp", d.addr, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(d.stderr.String(), "TLS handshake error") {
		if time.Now().After(deadline) {
			t.Fatalf("no TLS handshake error logged within 5 s of 3 aborted handshakes:\n%s", d.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, line := range strings.Split(strings.TrimSpace(d.stderr.String()), "\n") {
		var entry struct{ Level, Msg string }
		if err := json.Unmarshal([]byte(line), &entry); err != nil || entry.Level == "" || entry.Msg == "" {
			t.Errorf("stderr line %q is not a JSON log entry with a level and a msg (%v)", line, err)
		}
	}
}

// TestIntegrationProbeFleetSlowClients gives tcpadvisor fleet 64 file
// descriptors (a cap of 32 connections) and opens 100 half-sent requests:
// its landing page is still served, as the daemon's is behind the same
// limits.
func TestIntegrationProbeFleetSlowClients(t *testing.T) {
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("needs prlimit (Debian package util-linux)")
	}
	// The page answers without the server: only /advice asks it.
	d := startProbed(t, []string{prlimit, "--nofile=64:64"}, "fleet", "--prometheus.url=http://"+netnstest.FreeAddress(t), "--log.level=error")
	conns := openClients(t, d.addr, 100, 80, "GET / HTTP/1.1\r\nHost: x\r\n")
	code, body, err := d.get("/", 5*time.Second)
	if err != nil || code != 200 || !strings.Contains(body, "tcpadvisor fleet") {
		t.Fatalf("fleet landing page behind %d slow clients: %d, %v\n%s", len(conns), code, err, d.stderr)
	}
}

// TestIntegrationProbeSIGHUPReloadsTheRules: SIGHUP loads --rules.file
// again; a file that fails to load is logged, exported as
// prometheus_config_last_reload_successful 0 and leaves the daemon serving
// with the rules it had; a good file then loads, with the new rule counted.
func TestIntegrationProbeSIGHUPReloadsTheRules(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.yml")
	rule := func(name string) string {
		return "      - alert: " + name + "\n        expr: tcpadvisor_sockets > 1e12\n        labels:\n          severity: warning\n"
	}
	write := func(content string) {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("groups:\n  - name: probe\n    rules:\n" + rule("ProbeOne"))
	d := startProbed(t, nil, "--rules.file="+path, "--rules.evaluation-interval=1s")
	// waitFor scrapes until the body has want, for 10 s at most.
	waitFor := func(want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			code, body, err := d.get("/metrics", 5*time.Second)
			if err == nil && code == 200 && strings.Contains(body, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %q in a scrape within 10 s (%d, %v)\n%s", want, code, err, d.stderr)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitFor("prometheus_config_last_reload_successful 1")
	waitFor(`prometheus_rule_group_rules{rule_group="` + path + `;probe"} 1`)

	write("groups:\n  - name: probe\n    rules:\n      - alert: Broken\n        expr: rate(x[5m] > 0\n")
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor("prometheus_config_last_reload_successful 0")
	waitFor(`prometheus_rule_group_rules{rule_group="` + path + `;probe"} 1`)
	if !strings.Contains(d.stderr.String(), "reload of the rule files failed") || !strings.Contains(d.stderr.String(), path) {
		t.Errorf("no log line of the failed reload naming %s:\n%s", path, d.stderr)
	}

	write("groups:\n  - name: probe\n    rules:\n" + rule("ProbeOne") + rule("ProbeTwo"))
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor("prometheus_config_last_reload_successful 1")
	waitFor(`prometheus_rule_group_rules{rule_group="` + path + `;probe"} 2`)
	select {
	case err := <-d.exited:
		t.Fatalf("the daemon exited after SIGHUP: %v\n%s", err, d.stderr)
	default:
	}
}
