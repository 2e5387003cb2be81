package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcpadvisor/tcpadvisor/internal/buildtest"
	"github.com/tcpadvisor/tcpadvisor/internal/netnstest"
	"github.com/tcpadvisor/tcpadvisor/internal/proctest"
)

// binary is the tcpadvisor built once for these tests.
var binary string

func TestMain(m *testing.M) { buildtest.Main(m, &binary) }

// runBinary runs tcpadvisor with args for at most 10 s.
func runBinary(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return proctest.Run(t, exec.CommandContext(ctx, binary, args...))
}

// TestBadInput gives each bad input and checks for one line on stderr that
// names the input and the fix, a non-zero exit, and no stack trace.
func TestBadInput(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.yml")
	badConfig := filepath.Join(t.TempDir(), "web.yml")
	if err := os.WriteFile(badConfig, []byte("tls_server_config:\n  cert_file: /nonexistent.crt\n  key_file: /nonexistent.key\nnot_a_field: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badRules := filepath.Join(t.TempDir(), "bad.rules.yml")
	if err := os.WriteFile(badRules, []byte("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: rate(x[5m] > 0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	occupied, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer occupied.Close()

	tests := []struct {
		name string
		args []string
		want string
		code int
	}{
		{"unknown flag", []string{"--no-such-flag"}, `tcpadvisor: unknown long flag '--no-such-flag', try --help`, 2},
		{"unknown command", []string{"frobnicate"}, `tcpadvisor: unexpected argument "frobnicate": the commands are serve, advise, fleet, workload and version, try --help`, 2},
		{"top destinations zero", []string{"--collector.sockets.top-destinations=0"}, `tcpadvisor: --collector.sockets.top-destinations="0": want a whole number of at least 1, try --help`, 2},
		{"top destinations negative", []string{"--collector.sockets.top-destinations=-5"}, `--collector.sockets.top-destinations="-5": want a whole number of at least 1`, 2},
		{"top destinations not a number", []string{"--collector.sockets.top-destinations=many"}, `--collector.sockets.top-destinations="many": want a whole number of at least 1`, 2},
		{"max service ports zero", []string{"--collector.sockets.max-service-ports=0"}, `--collector.sockets.max-service-ports="0": want a whole number of at least 1`, 2},
		{"pin destination without port", []string{"--collector.sockets.pin-destination=10.0.0.5"}, `tcpadvisor: --collector.sockets.pin-destination="10.0.0.5": want ADDRESS:PORT with a literal IP and a port from 1 to 65535, such as 10.0.0.5:6379 or [2001:db8::5]:6379`, 2},
		{"pin destination port zero", []string{"--collector.sockets.pin-destination=10.0.0.5:0"}, `--collector.sockets.pin-destination="10.0.0.5:0": want ADDRESS:PORT with a literal IP and a port from 1 to 65535`, 2},
		{"telemetry path empty", []string{"--web.telemetry-path="}, `tcpadvisor: --web.telemetry-path="": want a path such as /metrics`, 2},
		{"telemetry path relative", []string{"--web.telemetry-path=foo"}, `--web.telemetry-path="foo": want a path such as /metrics`, 2},
		{"telemetry path is the advice", []string{"--web.telemetry-path=/advice"}, `--web.telemetry-path="/advice": want a path such as /metrics`, 2},
		{"telemetry path with a space", []string{"--web.telemetry-path=/a b"}, `--web.telemetry-path="/a b": want a path such as /metrics`, 2},
		{"telemetry path with a wildcard", []string{"--web.telemetry-path=/{x}"}, `--web.telemetry-path="/{x}": want a path such as /metrics`, 2},
		{"pin destination with a hostname", []string{"--collector.sockets.pin-destination=redis:6379"}, `--collector.sockets.pin-destination="redis:6379": want ADDRESS:PORT`, 2},
		{"pin port out of range", []string{"--collector.sockets.pin-service-port=70000"}, `--collector.sockets.pin-service-port="70000": want a port number from 1 to 65535`, 2},
		{"timeout not a duration", []string{"--collector.timeout=soon"}, `--collector.timeout="soon": want a positive duration`, 2},
		{"log level unknown", []string{"--log.level=loud"}, `loud`, 2},
		{"timeout zero", []string{"--collector.timeout=0s"}, `--collector.timeout="0s": want a positive duration such as 10s or 500ms`, 2},
		{"procfs missing", []string{"--path.procfs=/nonexistent", "--web.listen-address=" + netnstest.FreeAddress(t)}, `--path.procfs=/nonexistent:`, 1},
		{"web config missing", []string{"--web.config.file=" + missing, "--web.listen-address=" + netnstest.FreeAddress(t)}, `--web.config.file=` + missing + `:`, 1},
		{"web config invalid", []string{"--web.config.file=" + badConfig, "--web.listen-address=" + netnstest.FreeAddress(t)}, `--web.config.file=` + badConfig + `:`, 1},
		{"listen address occupied", []string{"--web.listen-address=" + occupied.Addr().String()}, `--web.listen-address=` + occupied.Addr().String() + `: address already in use; stop what listens there or choose another address`, 1},
		{"second listen address occupied", []string{"--web.listen-address=" + netnstest.FreeAddress(t), "--web.listen-address=" + occupied.Addr().String()}, `--web.listen-address=` + occupied.Addr().String() + `: address already in use`, 1},
		{"listen address malformed", []string{"--web.listen-address=nope"}, `--web.listen-address=[nope]`, 1},
		{"rule file with a bad expression", []string{"--rules.file=" + badRules, "--web.listen-address=" + netnstest.FreeAddress(t)}, badRules + `:5: group "g", rule 1: could not parse expression`, 1},
		{"max requests negative", []string{"--web.max-requests=-1"}, `--web.max-requests="-1": want a whole number of at least 0`, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, code := runBinary(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit code %d, want %d", code, tt.code)
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			last := lines[len(lines)-1]
			if !strings.Contains(last, tt.want) {
				t.Errorf("last stderr line %q, want it to contain %q", last, tt.want)
			}
			if !strings.HasPrefix(last, "tcpadvisor: ") {
				t.Errorf("last stderr line %q does not start with the program name", last)
			}
			if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic") {
				t.Errorf("stack trace on stderr:\n%s", stderr)
			}
		})
	}
}

func TestHelpExitsZeroWithoutServing(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"serve", "--help"}, {"help"}, {"--version"}} {
		stdout, stderr, code := runBinary(t, args...)
		if code != 0 || stdout == "" || stderr != "" {
			t.Errorf("%v: exit code %d, stdout %d bytes, stderr %q; want 0, usage, nothing", args, code, len(stdout), stderr)
		}
	}
}

func TestVersion(t *testing.T) {
	stdout, _, code := runBinary(t, "version")
	if code != 0 || !strings.HasPrefix(stdout, "tcpadvisor, version ") {
		t.Errorf("version printed %q with exit code %d", stdout, code)
	}
	// Every field says something, "unknown" at worst: the tests build with
	// go build, which embeds the revision unless GOFLAGS has -buildvcs=false.
	if regexp.MustCompile(`(branch: ,|:\s*\n)`).MatchString(stdout + "\n") {
		t.Errorf("version has an empty field:\n%s", stdout)
	}
}

// TestIntegrationServe runs the daemon with no subcommand on the real kernel
// and scrapes it: every collector succeeds, and the landing page links the
// metrics.
func TestIntegrationServe(t *testing.T) {
	metrics := serveAndScrape(t, binary)
	if os.Geteuid() == 0 && !strings.Contains(metrics, "tcpadvisor_tracer_up 1") {
		t.Errorf("run as root, the connection tracer is not up:\n%s", grepLines(metrics, "tcpadvisor_tracer_"))
	}
}

// TestIntegrationServeUnprivileged runs the daemon as nobody with no
// capability at all: sock_diag and /proc need none, so every collector still
// succeeds, and the owners collector says which capabilities it lacks to name
// other users' processes.
func TestIntegrationServeUnprivileged(t *testing.T) {
	nobody := asNobody(t)
	metrics := serveAndScrape(t, nobody[0], append(nobody[1:], binary)...)
	for _, want := range []string{
		`tcpadvisor_scrape_collector_success{collector="owners"} 1`,
		`tcpadvisor_owner_attribution_up{source="process"} 0`,
		`tcpadvisor_owner_attribution_missing{missing="CAP_SYS_PTRACE"} 1`,
		`tcpadvisor_owner_attribution_missing{missing="CAP_DAC_READ_SEARCH"} 1`,
		`tcpadvisor_scrape_collector_success{collector="connections"} 1`,
		`tcpadvisor_tracer_up 0`,
		`tcpadvisor_tracer_down_reason{reason="no_privileges"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if !regexp.MustCompile(`(?m)^tcpadvisor_owner_processes_unreadable [1-9]`).MatchString(metrics) {
		t.Error("metrics do not count the processes nobody cannot read")
	}
}

// asNobody returns the command line prefix that runs a program as nobody
// with no capability at all, or skips the test where that cannot be done.
func asNobody(t *testing.T) []string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch to nobody with setpriv")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("needs setpriv (Debian package util-linux)")
	}
	// nobody must be able to execute the binary from its temporary dir.
	if err := os.Chmod(filepath.Dir(binary), 0o755); err != nil {
		t.Fatal(err)
	}
	return []string{setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"}
}

// TestIntegrationServeStopsCleanly sends SIGTERM to the daemon: it exits 0
// and leaves no store of the advisor behind in its TMPDIR.
func TestIntegrationServeStopsCleanly(t *testing.T) {
	tmp := t.TempDir()
	addr := netnstest.FreeAddress(t)
	cmd := exec.Command(binary, "--web.listen-address="+addr, "--log.level=warn")
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("the daemon did not serve within 10 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if entries, _ := os.ReadDir(tmp); len(entries) == 0 {
		t.Fatal("the advisor keeps no store in TMPDIR: this test would prove nothing")
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("after SIGTERM the daemon exited with %v, want 0", err)
		}
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the daemon did not exit within 15 s of SIGTERM")
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Errorf("the daemon left %v in its TMPDIR", entries)
	}
}

// serveAndScrape starts command (the daemon, or a wrapper then the daemon),
// checks what it serves, and returns its metrics.
func serveAndScrape(t *testing.T, command string, args ...string) string {
	addr := netnstest.FreeAddress(t)
	cmd := exec.Command(command, append(args, "--web.listen-address="+addr, "--log.level=warn")...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		// SIGTERM, so that the daemon removes the advisor's store.
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	get := func(path string) string {
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, err := http.Get("http://" + addr + path)
			if err == nil {
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != 200 {
					t.Fatalf("GET %s: %s", path, resp.Status)
				}
				return string(body)
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s: %v\nstderr:\n%s", path, err, stderr.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// The advisor's first collection may be under way when the test connects,
	// and a scrape that joins it sees the sockets from before the connection:
	// scrape again until the test's own connection shows.
	ownConnection := `tcpadvisor_inbound_sockets{port="` + addr[strings.LastIndex(addr, ":")+1:] + `",state="established"} 1`
	metrics := get("/metrics")
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(metrics, ownConnection) && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		metrics = get("/metrics")
	}
	for _, name := range []string{"netstat", "sockets", "sockstat", "sysctl"} {
		if want := fmt.Sprintf("tcpadvisor_scrape_collector_success{collector=%q} 1", name); !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	for _, want := range []string{"tcpadvisor_build_info{", "go_goroutines ", "process_resident_memory_bytes ", ownConnection,
		// The advisor's own health, under the names Prometheus gives it.
		"prometheus_rule_evaluations_total{", "prometheus_rule_evaluation_failures_total{", "prometheus_rule_group_last_duration_seconds{"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	landing := get("/")
	for _, link := range []string{`href="/metrics"`, `href="/advice"`, `href="/docs/advice.md"`} {
		if !regexp.MustCompile(link).MatchString(landing) {
			t.Errorf("landing page lacks %s:\n%s", link, landing)
		}
	}
	if page := get("/advice"); !strings.Contains(page, "<title>tcpadvisor: advice</title>") {
		t.Errorf("/advice is not the advice page:\n%s", page)
	}
	if report := get("/advice?format=json"); !strings.Contains(report, `"generated_at"`) || !strings.Contains(report, `"advice": [`) {
		t.Errorf("/advice?format=json is not a report:\n%s", report)
	}
	if page := get("/docs/advice.md"); !strings.Contains(page, `<h2 id="pool">`) {
		t.Errorf("/docs/advice.md is not the advice reference:\n%.500s", page)
	}
	if regexp.MustCompile(`tcpadvisor_build_info\{[^}]*(branch|revision|version)=""`).MatchString(metrics) {
		t.Errorf("tcpadvisor_build_info has an empty label:\n%s", regexp.MustCompile(`tcpadvisor_build_info.*`).FindString(metrics))
	}
	return metrics
}

// TestIntegrationAdvise runs the daemon in a namespace of its own with the
// rules' windows scaled down, makes a client churn toward a local Redis
// port, and asks for the advice with `advise --url`, then by sampling.
func TestIntegrationAdvise(t *testing.T) {
	if !netnstest.Enter(t) {
		return
	}
	netnstest.Sysctl(t, "net.ipv4.tcp_tw_reuse", "0")
	netnstest.Sysctl(t, "net.ipv4.ip_local_port_range", "40000 40999")
	netnstest.Serve(t, "127.0.0.1:6379", netnstest.Discard)
	netnstest.Churn(t, "127.0.0.1:6379", 200)

	addr := "127.0.0.1:10067"
	cmd := exec.Command(binary, "--web.listen-address="+addr, "--log.level=warn", "--rules.time-scale=0.01", "--rules.evaluation-interval=250ms")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		// SIGTERM, so that the daemon removes the advisor's store.
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()

	dropIn := filepath.Join(t.TempDir(), "90-tcpadvisor.conf")
	var stdout string
	var code int
	deadline := time.Now().Add(30 * time.Second)
	var stderr string
	for {
		stdout, stderr, code = runBinary(t, "advise", "--url="+addr, "--output=json", "--sysctl-file="+dropIn)
		if code == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if !strings.HasPrefix(stderr, "tcpadvisor: wrote ") || !strings.Contains(stderr, dropIn+" ") {
		t.Errorf("advise --sysctl-file said %q, want what it wrote where", stderr)
	}
	// Without --url, advise asks the daemon on the default port, and says so.
	if out, stderr, code := runBinary(t, "advise", "--output=json"); code != 1 || !strings.Contains(out, `"id": "pool"`) ||
		stderr != "tcpadvisor: the advice of the daemon at http://127.0.0.1:10067 (--duration samples this host instead)\n" {
		t.Errorf("advise without --url exited %d, stderr %q:\n%s\nwant 1, the daemon's pool advice, and where it came from", code, stderr, out)
	}
	if code != 1 || !strings.Contains(stdout, `"id": "pool"`) || !strings.Contains(stdout, `"destination_port": "6379"`) {
		t.Fatalf("advise --url exited %d with:\n%s\nwant exit 1 and the pool advice toward port 6379", code, stdout)
	}
	// The daemon's runbook links lead to its own copy of the advice
	// reference.
	if want := `/docs/advice.md#pool"`; !strings.Contains(stdout, want) || strings.Contains(stdout, "github.com") {
		t.Errorf("the daemon's advice links its runbook elsewhere than %s:\n%s", want, stdout)
	}
	if b, err := os.ReadFile(dropIn); err != nil || !strings.HasPrefix(string(b), "# Written by tcpadvisor advise") {
		t.Errorf("--sysctl-file wrote %q, %v", b, err)
	}

	// Without --url, advise samples this namespace itself.
	stdout, _, code = runBinary(t, "advise", "--duration=4s")
	if code != 1 || !strings.Contains(stdout, "[warning] pool: 127.0.0.1 -> 127.0.0.1:6379") {
		t.Errorf("advise --duration=4s exited %d with:\n%s\nwant exit 1 and the pool advice", code, stdout)
	}
}

// TestIntegrationAdviseQuietHost: nothing to advise exits 0.
func TestIntegrationAdviseQuietHost(t *testing.T) {
	if !netnstest.Enter(t) {
		return
	}
	stdout, stderr, code := runBinary(t, "advise", "--duration=2s")
	if code != 0 || stdout != "tcpadvisor: no advice: nothing to change.\n" {
		t.Errorf("advise on a quiet namespace exited %d with %q (stderr %q), want 0 and no advice", code, stdout, stderr)
	}
}

// TestIntegrationAdviseSamplesWithoutADaemon runs advise with neither
// --url nor --duration where no daemon answers: it says so and samples this
// host; interrupted, it reports what it sampled.
func TestIntegrationAdviseSamplesWithoutADaemon(t *testing.T) {
	if !netnstest.Enter(t) {
		return
	}
	cmd := exec.Command(binary, "advise")
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(stderr).ReadString('\n')
	if want := "tcpadvisor: no daemon answers at http://127.0.0.1:10067; sampling this host for 1m0s\n"; err != nil || line != want {
		t.Fatalf("advise without a daemon said %q (%v), want %q", line, err, want)
	}
	time.Sleep(time.Second)
	cmd.Process.Signal(os.Interrupt)
	if err := cmd.Wait(); err != nil || !strings.HasPrefix(stdout.String(), "tcpadvisor: ") {
		t.Errorf("advise interrupted: %v, stdout %q; want exit 0 and the advice so far", err, stdout.String())
	}
}

// TestHelpShowsEachCommandsFlagsFirst checks that --help shows the
// daemon's flags before the collectors', and each command's --help its own
// flags first.
func TestHelpShowsEachCommandsFlagsFirst(t *testing.T) {
	for _, tt := range []struct {
		args []string
		own  []string
	}{
		{[]string{"--help"}, []string{"--web.listen-address", "--web.config.file", "--web.telemetry-path", "--alertmanager.url", "--rules.evaluation-interval", "--rules.time-scale"}},
		{[]string{"serve", "--help"}, []string{"--web.listen-address", "--alertmanager.url"}},
		{[]string{"advise", "--help"}, []string{"--url", "--duration", "--sysctl-file", "--apply"}},
		{[]string{"workload", "--help"}, []string{"--arms"}},
		{[]string{"fleet", "--help"}, []string{"--prometheus.url", "--web.listen-address"}},
	} {
		stdout, _, code := runBinary(t, tt.args...)
		shared := strings.Index(stdout, "--collector.timeout")
		if code != 0 || shared < 0 || !strings.Contains(stdout, "--rules.file") {
			t.Errorf("%v: exit %d; want the shared flags, --collector.timeout and --rules.file, in:\n%s", tt.args, code, stdout)
			continue
		}
		for _, flag := range tt.own {
			// A flag's line starts with it, or with --[no-] for a boolean.
			at := regexp.MustCompile(`(?m)^\s+` + regexp.QuoteMeta(flag) + `\b|^\s+--\[no-\]` + regexp.QuoteMeta(flag[2:]) + `\b`).FindStringIndex(stdout)
			if at == nil || at[0] > shared {
				t.Errorf("%v: %s is not among the first flags:\n%s", tt.args, flag, stdout)
			}
		}
	}
}

func TestAdviseBadInput(t *testing.T) {
	closed := netnstest.FreeAddress(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"advise", "--url=http://" + closed}, "--url=http://" + closed + ": "},
		{[]string{"advise", "--url=" + closed}, "--url=" + closed + ": "},
		{[]string{"advise", "--url=ftp://host:21"}, `--url="ftp://host:21": want a daemon's address, such as 127.0.0.1:10067 or https://host:10067`},
		{[]string{"advise", "--url=http://" + closed, "--output=yaml"}, `enum value must be one of text,json, got 'yaml'`},
		{[]string{"advise", "--duration=0s"}, `--duration="0s": want a positive duration`},
		{[]string{"advise", "--rules.file=/nonexistent.yml"}, `--rules.file="/nonexistent.yml": want a readable rule file`},
		{[]string{"--alertmanager.url=localhost:9093"}, `--alertmanager.url="localhost:9093": want an http:// or https:// URL`},
		{[]string{"--rules.time-scale=2"}, `--rules.time-scale="2": want a number above 0 and at most 1`},
		// Checked before the minute of sampling: runBinary gives 10 s.
		{[]string{"advise", "--duration=60s", "--sysctl-file=/nonexistent/x"}, `--sysctl-file=/nonexistent/x: cannot be created (open /nonexistent/.tcpadvisor-check-`},
		{[]string{"advise", "--duration=60s", "--sysctl-file=/proc/x"}, `--sysctl-file=/proc/x: cannot be created (open /proc/.tcpadvisor-check-`},
		{[]string{"advise", "--duration=60s", "--sysctl-file=/etc"}, `--sysctl-file=/etc: not a regular file`},
	}
	for _, tt := range tests {
		_, stderr, code := runBinary(t, tt.args...)
		if code != 2 || !strings.Contains(stderr, tt.want) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("%v: exit %d, stderr %q; want 2 and one line containing %q", tt.args, code, stderr, tt.want)
		}
	}
}

// TestIntegrationApplyRefusedWithoutRoot runs advise --apply as nobody.
func TestIntegrationApplyRefusedWithoutRoot(t *testing.T) {
	nobody := asNobody(t)
	out, err := exec.Command(nobody[0], append(nobody[1:], binary, "advise", "--apply", "--duration=1s")...).CombinedOutput()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 2 || !strings.Contains(string(out), "--apply writes /proc/sys and needs root") {
		t.Errorf("advise --apply as nobody: %v, output %q; want exit 2 and the refusal", err, out)
	}
}

// TestManPage checks that --help-man writes a man page that man reads
// without a warning, with a one-line .TH and a NAME line for whatis.
func TestManPage(t *testing.T) {
	stdout, stderr, code := runBinary(t, "--help-man")
	if code != 0 || stderr != "" {
		t.Fatalf("--help-man: exit code %d, stderr %q", code, stderr)
	}
	lines := strings.SplitN(stdout, "\n", 4)
	if len(lines) < 4 || !regexp.MustCompile(`^\.TH TCPADVISOR 1 "\d{4}-\d\d-\d\d" "tcpadvisor \S+" "User Commands"$`).MatchString(lines[0]) ||
		lines[1] != `.SH "NAME"` || !strings.HasPrefix(lines[2], `tcpadvisor \- `) {
		t.Errorf("the man page starts\n%s\nwant .TH TCPADVISOR 1 \"DATE\" \"tcpadvisor VERSION\" \"User Commands\", then NAME: tcpadvisor \\- summary", strings.Join(lines[:3], "\n"))
	}
	groff, err := exec.LookPath("groff")
	if err != nil {
		t.Skip("no groff (Debian package groff-base) to read the man page with")
	}
	cmd := exec.Command(groff, "-K", "utf8", "-man", "-z", "-ww")
	cmd.Stdin = strings.NewReader(stdout)
	if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("groff -man -ww on the man page: %v\n%s", err, out)
	}
}

// TestFlagsAreDocumented checks that docs/flags.md names every flag of
// every command.
func TestFlagsAreDocumented(t *testing.T) {
	doc, err := os.ReadFile("docs/flags.md")
	if err != nil {
		t.Fatal(err)
	}
	flag := regexp.MustCompile(`(?m)^\s+(?:-\w, )?--(?:\[no-\])?([a-z0-9][a-z0-9.-]*)`)
	for _, args := range [][]string{{"--help"}, {"advise", "--help"}, {"workload", "--help"}, {"fleet", "--help"}} {
		stdout, _, _ := runBinary(t, args...)
		for _, m := range flag.FindAllStringSubmatch(stdout, -1) {
			name := m[1]
			if name == "help" || name == "version" || name == "help-long" || name == "help-man" {
				continue
			}
			if !strings.Contains(string(doc), "`--"+name) && !strings.Contains(string(doc), "`--[no-]"+name) {
				t.Errorf("docs/flags.md does not document --%s (%v)", name, args)
			}
		}
	}
}

// TestIntegrationApplySaysItLastsUntilReboot asks a daemon for advice that
// justifies a sysctl (a fixture report, served on loopback) with --apply,
// in a network namespace of its own, whose tcp_tw_reuse is the test's:
// advise writes it, prints it before and after, and says on stderr that the
// change lasts until the next reboot and how to keep it.
func TestIntegrationApplySaysItLastsUntilReboot(t *testing.T) {
	if !netnstest.Enter(t) {
		return
	}
	netnstest.Sysctl(t, "net.ipv4.tcp_tw_reuse", "0")
	report := `{"generated_at": "2026-12-02T12:00:00Z", "advice": [{"id": "port-pressure", "alert": "TcpadvisorEphemeralPortPressure",
		"severity": "critical", "state": "firing", "since": "2026-12-02T11:50:00Z", "target": {"destination_address": "127.0.0.1"},
		"sysctls": [{"name": "net.ipv4.tcp_tw_reuse", "value": "1", "current": "0", "reason": "relief"}]}], "pending": []}`
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, report)
	})}
	go server.Serve(listener)
	defer server.Close()

	stdout, stderr, code := runBinary(t, "advise", "--url="+listener.Addr().String(), "--apply")
	if code != 1 || !strings.Contains(stdout, "net.ipv4.tcp_tw_reuse: 0 -> 1") {
		t.Fatalf("advise --apply exited %d with:\n%s\nstderr %q; want 1 and the sysctl before and after", code, stdout, stderr)
	}
	if want := "tcpadvisor: these changes last until the next reboot; to keep them: tcpadvisor advise --sysctl-file /etc/sysctl.d/90-tcpadvisor.conf, then sysctl --system\n"; stderr != want {
		t.Errorf("advise --apply said %q on stderr, want %q", stderr, want)
	}
}
