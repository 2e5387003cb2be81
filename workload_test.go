package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcpadvisor/tcpadvisor/workload"
)

// needWorkload skips the test unless it runs as root with the programs the
// workload will start.
func needWorkload(t *testing.T, programs ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the workload runs each arm in network namespaces of its own; run ./test.sh as root")
	}
	for _, p := range append([]string{"redis-server"}, programs...) {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("needs %s (Debian package %s); ./test.sh installs it", p, p)
		}
	}
}

// runWorkload runs `tcpadvisor workload --output json` with args and
// returns its report; anything but exit 0, or a file left in its TMPDIR,
// fails the test.
func runWorkload(t *testing.T, args ...string) workload.Report {
	t.Helper()
	return runWorkloadAt(t, 0, args...)
}

// runWorkloadAt is runWorkload at a niceness: below 0, the workload's
// servers and load take the CPU before the other test packages that go
// test runs meanwhile.
func runWorkloadAt(t *testing.T, niceness int, args ...string) workload.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	command := append([]string{binary, "workload", "--output=json"}, args...)
	if niceness != 0 {
		command = append([]string{"nice", "-n", strconv.Itoa(niceness)}, command...)
	}
	cmd := exec.CommandContext(ctx, command[0], command[1:]...)
	tmp := t.TempDir()
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	// Run from inside TMPDIR, which each arm's tmpfs hides: the servers
	// must not need the workload's working directory.
	cmd.Dir = tmp
	defer assertEmpty(t, tmp)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("workload %v: %v\nstderr:\n%s", args, err, stderr.String())
	}
	t.Logf("workload %v took %v", args, time.Since(start).Round(time.Second))
	var report workload.Report
	if err := json.Unmarshal(stdout.Bytes(), &report); err != nil {
		t.Fatalf("workload --output=json printed no report: %v\n%s", err, stdout.String())
	}
	var table bytes.Buffer
	workload.Text(&table, report)
	t.Logf("\n%s", table.String())
	return report
}

// arm returns arm n of the report.
func arm(t *testing.T, r workload.Report, n int) workload.ArmResult {
	t.Helper()
	for _, a := range r.Arms {
		if a.Arm == n {
			return a
		}
	}
	t.Fatalf("no arm %d in the report", n)
	return workload.ArmResult{}
}

// fired returns the advice of an arm with the given ID.
func fired(a workload.ArmResult, id string) []workload.FiredAdvice {
	var out []workload.FiredAdvice
	for _, f := range a.Advice {
		if f.ID == id {
			out = append(out, f)
		}
	}
	return out
}

// checkArms checks what the seed showed, in a run of the four arms: the
// advisor names the Redis server in arm 1 and the app's upstream in arm 3,
// and nothing of the kind in arms 2 and 4, which have far fewer TIME_WAIT
// and serve more requests per second.
func checkArms(t *testing.T, r workload.Report) {
	t.Helper()
	a1, a2, a3, a4 := arm(t, r, 1), arm(t, r, 2), arm(t, r, 3), arm(t, r, 4)
	if !slices.ContainsFunc(fired(a1, "pool"), func(f workload.FiredAdvice) bool {
		return f.Target["destination_address"]+":"+f.Target["destination_port"] == a1.Redis
	}) {
		t.Errorf("arm 1 fired %v, want pool toward Redis at %s", a1.Advice, a1.Redis)
	}
	checkArm3(t, a3, r.App)
	for _, a := range []workload.ArmResult{a2, a4} {
		for _, id := range []string{"pool", "upstream-keepalive", "port-pressure"} {
			if f := fired(a, id); len(f) > 0 {
				t.Errorf("arm %d fired %v", a.Arm, f)
			}
		}
		if a.Errors != 0 {
			t.Errorf("arm %d: %d errors", a.Arm, a.Errors)
		}
	}
	// Far fewer: a tenth at most.
	if most, least := max(a2.PeakTimeWait, a4.PeakTimeWait), min(a1.PeakTimeWait, a3.PeakTimeWait); most*10 > least {
		t.Errorf("peak TIME_WAIT of arms 2 and 4 (%v, %v) not far below arms 1 and 3 (%v, %v)",
			a2.PeakTimeWait, a4.PeakTimeWait, a1.PeakTimeWait, a3.PeakTimeWait)
	}
	for _, a := range r.Arms {
		if len(a.TimeWait) < 5 {
			t.Errorf("arm %d: %d TIME_WAIT samples", a.Arm, len(a.TimeWait))
		}
	}
	if a2.TPS <= a1.TPS {
		t.Errorf("TPS with a pool %.0f, without %.0f", a2.TPS, a1.TPS)
	}
	if a4.TPS <= a3.TPS {
		t.Errorf("TPS with upstream keepalive %.0f, without %.0f", a4.TPS, a3.TPS)
	}
	t.Logf("TPS with a pool %+.1f %%, with upstream keepalive %+.1f %%", 100*(a2.TPS/a1.TPS-1), 100*(a4.TPS/a3.TPS-1))
}

// checkArm3 checks the advice of arm 3, nginx → the app without upstream
// keepalive: one flow seen from both ends (nginx's TIME_WAIT toward the
// app, the app's on its service port) gives one advice, upstream-keepalive,
// naming the app's process, and nginx where the exporter names the client;
// never pool.
func checkArm3(t *testing.T, a3 workload.ArmResult, app string) {
	t.Helper()
	appPort := a3.App[strings.LastIndex(a3.App, ":")+1:]
	aboutApp := func(f workload.FiredAdvice) bool {
		// The client view (nginx toward the app) or the server view (the
		// app's service port, where the app, closing first, keeps most of
		// the TIME_WAIT).
		return f.Target["destination_address"]+":"+f.Target["destination_port"] == a3.App || f.Target["port"] == appPort
	}
	server := "gunicorn"
	if app == workload.AppGo {
		// The Go app is served by the workload's own process; the kernel
		// keeps 15 bytes of a process name.
		server = filepath.Base(binary)[:min(15, len(filepath.Base(binary)))]
	}
	named, clientNamed := false, false
	for _, f := range a3.Advice {
		if !aboutApp(f) {
			continue
		}
		if f.ID != "upstream-keepalive" {
			t.Errorf("arm 3 fired %s about the app at %s (%+v): one flow, one advice, upstream-keepalive", f.ID, a3.App, f)
		}
		// nginx's upstream connections live a few milliseconds: without
		// the connection tracer, the sock_diag snapshot rarely finds the
		// process of one before it is gone, and then names its unit only,
		// with process "unknown". Where it names a process, it must be
		// nginx.
		if f.Client != "" && f.Client != "unknown" && f.Client != "nginx" {
			t.Errorf("arm 3 advice %+v names client %s, want nginx", f, f.Client)
		}
		named = named || f.Server == server
		clientNamed = clientNamed || f.Client == "nginx"
	}
	if !named {
		t.Errorf("arm 3 fired %+v, want upstream-keepalive toward the app at %s naming its server %s", a3.Advice, a3.App, server)
	}
	// With the tracer, which sees nginx open every upstream connection, the
	// advice names both ends.
	if a3.Tracer != nil && !clientNamed {
		t.Errorf("arm 3 fired %+v with the connection tracer up, want the advice to name its client, nginx", a3.Advice)
	}
}

// checkPortRange checks arms 1 and 2 in a narrow port range without
// tcp_tw_reuse: without a pool the app runs out of ports toward Redis, with
// one it does not.
func checkPortRange(t *testing.T, r workload.Report, portRange string) {
	t.Helper()
	a1, a2 := arm(t, r, 1), arm(t, r, 2)
	for _, a := range []workload.ArmResult{a1, a2} {
		if a.PortRange != portRange || a.TwReuse != "0" {
			t.Errorf("arm %d ran with ip_local_port_range %s, tcp_tw_reuse %s; want %s and 0", a.Arm, a.PortRange, a.TwReuse, portRange)
		}
	}
	if a1.ConnectErrors == nil || *a1.ConnectErrors == 0 || a1.PeakPortPressure < 0.9 {
		t.Errorf("arm 1: connect errors %v, peak port pressure %.2f; want some, and near 1", a1.ConnectErrors, a1.PeakPortPressure)
	}
	if len(fired(a1, "port-pressure")) == 0 {
		t.Errorf("arm 1 fired %v, want port-pressure", a1.Advice)
	}
	if a2.ConnectErrors == nil || *a2.ConnectErrors != 0 || a2.Errors != 0 || a2.PeakPortPressure > 0.5 || len(a2.Advice) != 0 {
		t.Errorf("arm 2: %d errors (connect %v), peak port pressure %.2f, advice %v; want none, below 0.5, none",
			a2.Errors, a2.ConnectErrors, a2.PeakPortPressure, a2.Advice)
	}
	checkTracerPortRange(t, a1, a2)
}

// checkTracerPortRange checks the connection tracer's figures of arms 1
// and 2: every request that failed for want of a port made at least one
// connect() that failed with EADDRNOTAVAIL (the tracer counts each call:
// with the Go app, go-redis tries a command 4 times, dials 5 times each and
// Go's Dial calls connect() 3 times, so that a failed request is up to 60
// calls), and the pool's arm made none.
func checkTracerPortRange(t *testing.T, a1, a2 workload.ArmResult) {
	t.Helper()
	if a1.Tracer == nil || a2.Tracer == nil {
		t.Log("the connection tracer was not up: its figures are not checked")
		return
	}
	failed := a1.Tracer.ConnectFailures["EADDRNOTAVAIL"]
	t.Logf("arm 1: %v requests failed for want of a port; the tracer counted %v connect() calls failing with EADDRNOTAVAIL, %v opened (%.0f/s)",
		*a1.ConnectErrors, failed, a1.Tracer.Opened, a1.Tracer.OpensPerSecond)
	if failed < float64(*a1.ConnectErrors) || a1.Tracer.Opened == 0 {
		t.Errorf("arm 1: tracer EADDRNOTAVAIL %v, opened %v; want at least the %d connect errors, and some opened", failed, a1.Tracer.Opened, *a1.ConnectErrors)
	}
	if n := a2.Tracer.ConnectFailures["EADDRNOTAVAIL"]; n != 0 {
		t.Errorf("arm 2: tracer EADDRNOTAVAIL %v, want 0", n)
	}
}

// TestIntegrationWorkload runs the four arms with the Go app, and writes the
// report files.
func TestIntegrationWorkload(t *testing.T) {
	needWorkload(t, "nginx")
	before := workloadProcesses(t)
	out := t.TempDir()
	r := runWorkload(t, "--duration=6s", "--out="+out)
	checkArms(t, r)
	if r.Isolation != "namespace" || r.App != "go" || len(r.Arms) != 4 {
		t.Errorf("report of %s, app %s, %d arms", r.Isolation, r.App, len(r.Arms))
	}
	for _, a := range r.Arms {
		if a.LatencyP50 == nil || a.LatencyP99 == nil || *a.LatencyP50 <= 0 || *a.LatencyP99 < *a.LatencyP50 {
			t.Errorf("arm %d: latency p50 %v, p99 %v", a.Arm, a.LatencyP50, a.LatencyP99)
		}
	}
	for _, name := range []string{"report.json", "report.md", "chart.svg"} {
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil || len(b) == 0 {
			t.Errorf("--out wrote no %s: %v", name, err)
			continue
		}
		if name == "chart.svg" {
			if err := xml.Unmarshal(b, new(struct{})); err != nil {
				t.Errorf("chart.svg is not XML: %v", err)
			}
		}
	}
	assertNothingLeft(t, before)
}

// TestIntegrationWorkloadPortRange narrows the port range: the app without
// a pool runs out of ports.
func TestIntegrationWorkloadPortRange(t *testing.T) {
	needWorkload(t)
	before := workloadProcesses(t)
	r := runWorkload(t, "--arms=1,2", "--duration=3s", "--port-range=40000-40199")
	checkPortRange(t, r, "40000-40199")
	assertNothingLeft(t, before)
}

// TestIntegrationWorkloadFlaskPortRange narrows the port range with the
// seed's Flask app, whose redis-py calls connect() once per request and
// tries no more: the tracer's EADDRNOTAVAIL count of arm 1 is then exactly
// the load's connect errors.
func TestIntegrationWorkloadFlaskPortRange(t *testing.T) {
	needWorkload(t, "gunicorn")
	before := workloadProcesses(t)
	r := runWorkload(t, "--app=flask", "--arms=1", "--duration=3s", "--port-range=40000-40199")
	a1 := arm(t, r, 1)
	if a1.ConnectErrors == nil || *a1.ConnectErrors == 0 {
		t.Fatalf("arm 1: connect errors %v, want some", a1.ConnectErrors)
	}
	if a1.Tracer == nil {
		t.Skip("the connection tracer was not up: its figures are not checked")
	}
	if got := a1.Tracer.ConnectFailures["EADDRNOTAVAIL"]; got != float64(*a1.ConnectErrors) {
		t.Errorf("arm 1: tracer EADDRNOTAVAIL %v, load's connect errors %d; want them equal", got, *a1.ConnectErrors)
	}
	assertNothingLeft(t, before)
}

// TestIntegrationWorkloadFlask runs the seed's own app, under gunicorn, and
// checks it as the Go app.
//
// Its arms are longer than the Go app's, and interleaved. In Python a
// request costs far more than a connection on loopback, so that the gains
// in TPS are small (upstream keepalive's is +3 to +13 % in 12 s arms here,
// +6 to +13 % in 40 s arms; the pool's +40 to +60 %), and other work on the
// machine moves them by as much. The arms take turns of half a second, so
// that a change of that work over the run weighs on each alike, and run at
// niceness -10, so that the test packages go test runs meanwhile do not
// take the CPU from them (see docs/workload.md).
func TestIntegrationWorkloadFlask(t *testing.T) {
	needWorkload(t, "nginx", "gunicorn")
	before := workloadProcesses(t)
	r := runWorkloadAt(t, -10, "--app=flask", "--duration=36s", "--rounds=72")
	checkArms(t, r)
	if r.Rounds != 72 {
		t.Errorf("report of %d rounds, want 72", r.Rounds)
	}
	r = runWorkload(t, "--app=flask", "--arms=1,2", "--duration=3s", "--port-range=40000-40199")
	checkPortRange(t, r, "40000-40199")
	assertNothingLeft(t, before)
}

// TestIntegrationWorkloadUnusualPorts runs Redis and the app on ports that
// tell nothing of their kind (Redis from 16379, the app from 18002), with
// the Go and the Flask app: the advisor learns what serves from the
// listening process, gives the Redis fix naming redis-server in arm 1, and
// one upstream-keepalive advice naming nginx and the app in arm 3.
func TestIntegrationWorkloadUnusualPorts(t *testing.T) {
	for _, app := range []string{workload.AppGo, workload.AppFlask} {
		t.Run(app, func(t *testing.T) {
			needWorkload(t, "nginx", "gunicorn")
			before := workloadProcesses(t)
			r := runWorkload(t, "--app="+app, "--arms=1,3", "--service-ports=unusual", "--duration=6s")
			a1, a3 := arm(t, r, 1), arm(t, r, 3)
			if !strings.HasPrefix(a1.Redis, "127.0.0.1:163") || !strings.HasPrefix(a3.App, "127.0.0.1:180") {
				t.Errorf("Redis at %s, the app at %s: want ports from 16379 and 18002", a1.Redis, a3.App)
			}
			if !slices.ContainsFunc(fired(a1, "pool"), func(f workload.FiredAdvice) bool {
				return f.Target["destination_address"]+":"+f.Target["destination_port"] == a1.Redis && f.Server == "redis-server"
			}) {
				t.Errorf("arm 1 fired %+v, want pool toward Redis at %s naming redis-server", a1.Advice, a1.Redis)
			}
			checkArm3(t, a3, app)
			assertNothingLeft(t, before)
		})
	}
}

// TestIntegrationWorkloadSiege drives arm 1 with siege.
func TestIntegrationWorkloadSiege(t *testing.T) {
	needWorkload(t, "siege")
	before := workloadProcesses(t)
	r := runWorkload(t, "--load=siege", "--arms=1", "--duration=3s")
	a := arm(t, r, 1)
	if r.Load != "siege" || a.Requests == 0 || a.TPS == 0 || a.LatencyP50 != nil || a.ConnectErrors != nil {
		t.Errorf("siege arm: load %s, %d requests, TPS %.0f, p50 %v, connect errors %v; want siege's counts and no latency",
			r.Load, a.Requests, a.TPS, a.LatencyP50, a.ConnectErrors)
	}
	if len(fired(a, "pool")) == 0 {
		t.Errorf("arm 1 under siege fired %v, want pool", a.Advice)
	}
	assertNothingLeft(t, before)
}

// TestIntegrationWorkloadKilled kills the workload with SIGKILL in the middle
// of an arm: its servers and its namespaces go with it. SIGINT stops it
// too, exit 1, everything stopped.
func TestIntegrationWorkloadKilled(t *testing.T) {
	needWorkload(t, "nginx")
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			before := workloadProcesses(t)
			cmd := exec.Command(binary, "workload", "--arms=3", "--duration=60s")
			tmp := t.TempDir()
			cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			procs := waitFor(t, cmd, before, "nginx", "tcpadvisor workload arm")
			var netns string
			for pid, name := range procs {
				if name == "tcpadvisor workload arm" && before[pid] == "" {
					netns, _ = os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
				}
			}
			if !strings.HasPrefix(netns, "net:[") {
				t.Fatalf("the arm's network namespace is %q", netns)
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			err := cmd.Wait()
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("workload after %v: %v", sig, err)
			}
			if sig == syscall.SIGINT && (exit.ExitCode() != 1 || !strings.Contains(stderr.String(), "tcpadvisor: interrupted during arm 3; everything it started is stopped")) {
				t.Errorf("after SIGINT: exit %d, stderr %q", exit.ExitCode(), stderr.String())
			}
			assertNothingLeft(t, before)
			assertEmpty(t, tmp)
			// The arm's network namespace: no process is in it, and no
			// mount holds it, so the kernel has freed it.
			deadline := time.Now().Add(10 * time.Second)
			for netnsInUse(t, netns) {
				if time.Now().After(deadline) {
					t.Fatalf("network namespace %s still in use", netns)
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}

// TestIntegrationWorkloadUnprivileged runs the workload as nobody: on the
// host's loopback, saying so.
func TestIntegrationWorkloadUnprivileged(t *testing.T) {
	needWorkload(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("needs setpriv (Debian package util-linux)")
	}
	if err := os.Chmod(filepath.Dir(binary), 0o755); err != nil {
		t.Fatal(err)
	}
	before := workloadProcesses(t)
	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
		binary, "workload", "--arms=1,2", "--duration=3s", "--output=json")
	cmd.Dir = os.TempDir()
	// nobody cannot reach into t.TempDir(), which only root may enter.
	tmp, err := os.MkdirTemp("", "workload-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o1777); err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("workload as nobody: %v\n%s", err, stderr.String())
	}
	assertEmpty(t, tmp)
	if want := "tcpadvisor: not root: the arms run on the host's loopback and change no sysctl; they share the host's TIME_WAIT, so each arm gets fresh server ports; the connection tracer is off\n"; stderr.String() != want {
		t.Errorf("stderr %q, want %q", stderr.String(), want)
	}
	var r workload.Report
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("no report: %v\n%s", err, stdout.String())
	}
	a1, a2 := arm(t, r, 1), arm(t, r, 2)
	if r.Isolation != "host" || a1.Redis == a2.Redis || a1.App == a2.App {
		t.Errorf("isolation %s, Redis %s then %s, app %s then %s; want host and fresh ports", r.Isolation, a1.Redis, a2.Redis, a1.App, a2.App)
	}
	if len(fired(a1, "pool")) == 0 || len(fired(a2, "pool")) != 0 {
		t.Errorf("pool fired in arm 1: %v, in arm 2: %v; want arm 1 only", a1.Advice, a2.Advice)
	}

	// Killed, it still takes its servers with it: they get SIGINT from the
	// kernel when it dies. Its temporary files stay behind (docs/workload.md says
	// so): give it a TMPDIR this test removes.
	cmd = exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", binary, "workload", "--arms=3", "--duration=60s")
	cmd.Dir = os.TempDir()
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, cmd, before, "nginx")
	cmd.Process.Kill()
	cmd.Wait()
	assertNothingLeft(t, before)

	// No namespace, so no port range.
	cmd = exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", binary, "workload", "--port-range=40000-40199")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if want := "tcpadvisor: --port-range=40000-40199 needs root: it narrows ip_local_port_range in a network namespace of the workload's own; run as root or leave it out\n"; !errors.As(err, &exit) || exit.ExitCode() != 2 || string(out) != want {
		t.Errorf("--port-range as nobody: %v, %q; want exit 2 and %q", err, out, want)
	}
	assertNothingLeft(t, before)
}

// TestWorkloadBadInput checks each bad input: one line naming the input and
// the fix, exit 2, and nothing started.
func TestWorkloadBadInput(t *testing.T) {
	// A PATH with redis-server only, where it is installed: nginx is then
	// missing.
	onlyRedis := t.TempDir()
	if path, err := exec.LookPath("redis-server"); err == nil {
		if err := os.Symlink(path, filepath.Join(onlyRedis, "redis-server")); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		env  []string
		args []string
		want string
		// needs: the check comes after those of the flags and of
		// redis-server, and for the port range after a namespace is made.
		needs bool
	}{
		{"unknown arm", nil, []string{"--arms=5"}, `tcpadvisor: --arms="5": want arm numbers from 1 to 4 separated by commas, such as 1,2, try --help`, false},
		{"arms not numbers", nil, []string{"--arms=all"}, `tcpadvisor: --arms="all": want arm numbers from 1 to 4 separated by commas, such as 1,2, try --help`, false},
		{"zero duration", nil, []string{"--duration=0s"}, `tcpadvisor: --duration="0s": want a positive duration such as 10s or 500ms, try --help`, false},
		{"negative duration", nil, []string{"--duration=-5s"}, `tcpadvisor: --duration="-5s": want a positive duration such as 10s or 500ms, try --help`, false},
		{"zero concurrency", nil, []string{"--concurrency=0"}, `tcpadvisor: --concurrency="0": want a whole number of at least 1, try --help`, false},
		{"zero requests", nil, []string{"--requests=0"}, `tcpadvisor: --requests="0": want a whole number of at least 1, try --help`, false},
		{"port range reversed", nil, []string{"--port-range=40199-40000"}, `tcpadvisor: --port-range="40199-40000": want LOW-HIGH with 1 <= LOW <= HIGH <= 65535, such as 40000-40199, try --help`, false},
		{"port range one port", nil, []string{"--port-range=40000"}, `tcpadvisor: --port-range="40000": want LOW-HIGH with 1 <= LOW <= HIGH <= 65535, such as 40000-40199, try --help`, false},
		{"unknown app", nil, []string{"--app=rails"}, `tcpadvisor: enum value must be one of go,flask, got 'rails', try --help`, false},
		{"time scale", nil, []string{"--rules.time-scale=0"}, `tcpadvisor: --rules.time-scale="0": want a number above 0 and at most 1, such as 0.1, try --help`, false},
		{"requests with siege", nil, []string{"--load=siege", "--requests=100"}, `tcpadvisor: --requests works with the built-in load only: siege runs for --duration`, false},
		{"rounds with siege", nil, []string{"--load=siege", "--rounds=2"}, `tcpadvisor: --rounds works with the built-in load only: siege would reconnect at each turn`, false},
		{"turns too short", nil, []string{"--duration=1s", "--rounds=5"}, `tcpadvisor: --rounds=5: each turn of an arm would last 200ms, want at least 250ms: lower --rounds or raise --duration`, false},
		{"zero rounds", nil, []string{"--rounds=0"}, `tcpadvisor: --rounds="0": want a whole number of at least 1, try --help`, false},
		{"out under /proc", nil, []string{"--out=/proc/x"}, `tcpadvisor: --out=/proc/x: cannot be made (mkdir /proc/x: no such file or directory); choose a writable directory`, false},
		{"out is a file", nil, []string{"--out=/etc/hostname"}, `tcpadvisor: --out=/etc/hostname: cannot be made (mkdir /etc/hostname: not a directory); choose a writable directory`, false},
		{"no redis-server", []string{"PATH=" + t.TempDir()}, nil, `tcpadvisor: redis-server not found: install the Debian package redis-server`, false},
		{"no nginx", []string{"PATH=" + onlyRedis}, []string{"--arms=1,3"}, `tcpadvisor: nginx not found: install the Debian package nginx`, true},
		{"no siege", []string{"PATH=" + onlyRedis}, []string{"--arms=1", "--load=siege"}, `tcpadvisor: siege not found: install the Debian package siege`, true},
		{"no gunicorn", []string{"PATH=" + onlyRedis}, []string{"--arms=1", "--app=flask"}, `tcpadvisor: gunicorn not found: install the Debian package gunicorn`, true},
		{"port range the kernel refuses", nil, []string{"--arms=1", "--port-range=100-200"}, `tcpadvisor: --port-range=100-200: the kernel refuses it: the low end must be at least net.ipv4.ip_unprivileged_port_start (1024); choose a range such as 40000-40199`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.needs {
				needWorkload(t)
			}
			before := workloadProcesses(t)
			cmd := exec.Command(binary, append([]string{"workload"}, tt.args...)...)
			cmd.Env = append(os.Environ(), tt.env...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 2 {
				t.Errorf("exit %v, want 2", err)
			}
			if got := strings.TrimSuffix(stderr.String(), "\n"); got != tt.want {
				t.Errorf("stderr %q\nwant   %q", got, tt.want)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q, want nothing", stdout.String())
			}
			assertNothingLeft(t, before)
		})
	}
}

// workloadProcesses returns the processes, by PID, that a workload run
// could leave behind: its servers, siege, and its own processes.
func workloadProcesses(t *testing.T) map[int]string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	procs := map[int]string{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil {
			continue
		}
		name := strings.TrimSpace(string(comm))
		switch name {
		case "redis-server", "nginx", "siege":
			procs[pid] = name
		case "tcpadvisor":
			if cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); bytes.Contains(cmdline, []byte("--internal.workload-arm=")) {
				procs[pid] = "tcpadvisor workload arm"
			} else if bytes.Contains(cmdline, []byte("workload")) {
				procs[pid] = "tcpadvisor workload"
			}
		default:
			// gunicorn's processes are python3 running /usr/bin/gunicorn.
			if cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); bytes.Contains(cmdline, []byte("gunicorn")) {
				procs[pid] = "gunicorn"
			}
		}
	}
	return procs
}

// waitFor waits until cmd, a workload, runs processes of each of names that
// were not there before, then a second more for its load to run, and
// returns the processes. It kills cmd and fails the test after 20 s.
func waitFor(t *testing.T, cmd *exec.Cmd, before map[int]string, names ...string) map[int]string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		procs := workloadProcesses(t)
		started := newNames(before, procs)
		if !slices.ContainsFunc(names, func(n string) bool { return !slices.Contains(started, n) }) {
			time.Sleep(time.Second)
			return procs
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("after 20 s the workload runs %v, want %v", started, names)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// newNames returns the names of the processes in after and not in before.
func newNames(before, after map[int]string) []string {
	var names []string
	for pid, name := range after {
		if before[pid] != name {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// assertNothingLeft fails the test if processes a workload starts are
// still there, 10 s after it ended, that were not there before it.
func assertNothingLeft(t *testing.T, before map[int]string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := newNames(before, workloadProcesses(t))
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("left running after the workload: %v", left)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// assertEmpty fails the test if the workload left files in dir, its TMPDIR.
func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	if entries, err := os.ReadDir(dir); err != nil || len(entries) > 0 {
		t.Errorf("the workload left %v in its TMPDIR (%v)", entries, err)
	}
}

// netnsInUse reports whether a process is in the network namespace ns
// ("net:[4026532...]"), or a mount holds it (ip netns add would).
func netnsInUse(t *testing.T, ns string) bool {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if link, err := os.Readlink("/proc/" + e.Name() + "/ns/net"); err == nil && link == ns {
			return true
		}
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Contains(mounts, []byte(ns))
}
