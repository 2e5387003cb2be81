package exporter

import (
	"bytes"
	"context"
	"flag"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/procfs"
	"github.com/tcpadvisor/tcpadvisor/exporter/census"
	"github.com/tcpadvisor/tcpadvisor/exporter/sockdiag"
	"github.com/tcpadvisor/tcpadvisor/exporter/sockdiag/sockdiagtest"
	"golang.org/x/sys/unix"
)

var update = flag.Bool("update", false, "rewrite testdata/metrics.golden from this run")

const goldenPath = "testdata/metrics.golden"

var discard = slog.New(slog.DiscardHandler)

// fixtureSockets reads testdata/sockets.txt.
func fixtureSockets(t testing.TB) []sockdiag.Socket {
	t.Helper()
	sockets, err := sockdiagtest.ReadFixture("testdata/sockets.txt")
	if err != nil {
		t.Fatal(err)
	}
	return sockets
}

// fixtureExporter builds every collector over testdata/proc and conn.
func fixtureExporter(t testing.TB, procPath string, conn *sockdiagtest.Conn, limits census.Limits) *Exporter {
	t.Helper()
	fs, err := procfs.NewFS(procPath)
	if err != nil {
		t.Fatal(err)
	}
	src := hostSources(fs, procPath, conn.Dial, ownerFixture{})
	src.netDir = filepath.Join(procPath, "net")
	e, err := newExporter(Options{Collectors: CollectorNames, Timeout: 2 * time.Second, Limits: limits}, src, discard)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// ownerFixture names the owners of the cgroups of testdata/sockets.txt.
type ownerFixture struct{}

func (ownerFixture) Refresh(context.Context) {}

func (ownerFixture) Runtime(process string) string {
	return map[string]string{"gunicorn": "python", "python3": "python", "warmer": "go"}[process]
}

func (ownerFixture) Lookup(cgroupID uint64, _ uint32) census.Owner {
	switch cgroupID {
	case 10:
		return census.Owner{Unit: "nginx.service", Process: "nginx"}
	case 20:
		return census.Owner{Unit: "app.service", Process: "gunicorn"}
	case 30:
		return census.Owner{Unit: "ssh.service", Process: "sshd"}
	case 40:
		return census.Owner{Unit: "debug.service", Process: "python3"}
	case 50:
		return census.Owner{Unit: "cache-warmer.service", Process: "warmer"}
	case 60:
		return census.Owner{Unit: "session-1.scope", Process: "curl"}
	}
	return census.UnknownOwner
}

// scrape serves e's metrics over HTTP, as Prometheus would read them.
func scrape(t testing.TB, e *Exporter) string {
	t.Helper()
	registry := prometheus.NewRegistry()
	registry.MustRegister(e)
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(registry, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}).
		ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("scrape answered %d: %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

var durationLine = regexp.MustCompile(`(?m)^(tcpadvisor_scrape_collector_duration_seconds\{[^}]*\}) .*$`)

// TestGolden scrapes the fixture host and compares the exposition with
// testdata/metrics.golden. Durations are zeroed: they are the one value a
// fixture cannot fix. Run with -update to rewrite the file.
func TestGolden(t *testing.T) {
	e := fixtureExporter(t, "testdata/proc", &sockdiagtest.Conn{Sockets: fixtureSockets(t)},
		census.Limits{TopDestinations: 3, MaxServicePorts: 4, PinnedPorts: []uint16{22}})
	got := durationLine.ReplaceAllString(scrape(t, e), "$1 0")
	if *update {
		if err := os.WriteFile(goldenPath, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatalf("%v (run go test ./exporter -run TestGolden -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("exposition differs from %s; if the change is meant, rerun with -update and review the diff.\n%s", goldenPath, lineDiff(string(want), got))
	}
}

// lineDiff lists the lines only in want (-) and only in got (+).
func lineDiff(want, got string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	w, g := in(want), in(got)
	var b strings.Builder
	for _, l := range strings.Split(want, "\n") {
		if !g[l] {
			b.WriteString("- " + l + "\n")
		}
	}
	for _, l := range strings.Split(got, "\n") {
		if !w[l] {
			b.WriteString("+ " + l + "\n")
		}
	}
	return b.String()
}

// TestGoldenPassesPromtool lints the golden exposition with promtool, which
// enforces the naming conventions (units, _total on counters).
func TestGoldenPassesPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not found (Debian package prometheus); ./test.sh installs it")
	}
	golden, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(golden)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

func collectorSuccess(t *testing.T, exposition string) map[string]string {
	t.Helper()
	got := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^tcpadvisor_scrape_collector_success\{collector="(\w+)"\} (\d)$`).FindAllStringSubmatch(exposition, -1) {
		got[m[1]] = m[2]
	}
	return got
}

// TestFaults breaks one source at a time: the scrape still answers, the
// broken collector reports 0 and every other one 1.
func TestFaults(t *testing.T) {
	tests := []struct {
		name     string
		conn     *sockdiagtest.Conn
		procPath string
		failed   string
		present  string // a metric that must still be served
	}{
		{"sock_diag refused with EPERM", &sockdiagtest.Conn{Errno: unix.EPERM}, "testdata/proc", "sockets", "tcpadvisor_sysctl_net_ipv4_tcp_tw_reuse 2"},
		{"sock_diag receive fails with ENOBUFS every time", &sockdiagtest.Conn{ReceiveErr: unix.ENOBUFS}, "testdata/proc", "sockets", "tcpadvisor_tcpext_tw_total"},
		{"every dump interrupted", &sockdiagtest.Conn{Interrupt: true}, "testdata/proc", "sockets", "tcpadvisor_sockstat_tcp_tw 1507"},
		{"socket cannot be sent to", &sockdiagtest.Conn{SendErr: unix.EACCES}, "testdata/proc", "sockets", "tcpadvisor_sockstat_tcp_tw 1507"},
		{"netstat and snmp unreadable", &sockdiagtest.Conn{}, "testdata/broken/no-netstat", "netstat", "tcpadvisor_sockets{class=\"inbound\""},
		{"sysctl file is garbage", &sockdiagtest.Conn{}, "testdata/broken/bad-sysctl", "sysctl", "tcpadvisor_sysctl_net_core_somaxconn 4096"},
		{"sockstat missing", &sockdiagtest.Conn{}, "testdata/broken/no-sockstat", "sockstat", "tcpadvisor_tcpext_tw_total"},
		{"fib_trie missing", &sockdiagtest.Conn{}, "testdata/broken/no-fib-trie", "addresses", "tcpadvisor_sockstat_tcp_tw 1507"},
		{"port range unreadable fails sockets and sysctl", &sockdiagtest.Conn{}, "testdata/broken/no-port-range", "sockets,sysctl", "tcpadvisor_sockstat_tcp_tw 1507"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.conn.Sockets = fixtureSockets(t)
			out := scrape(t, fixtureExporter(t, tt.procPath, tt.conn, census.Limits{}))
			success := collectorSuccess(t, out)
			for _, name := range CollectorNames {
				if name == "connections" {
					// Loads an eBPF program, not fixtures: see
					// TestIntegrationTracerDown.
					continue
				}
				want := "1"
				if strings.Contains(","+tt.failed+",", ","+name+",") {
					want = "0"
				}
				if success[name] != want {
					t.Errorf("collector %s success = %q, want %s", name, success[name], want)
				}
			}
			if !strings.Contains(out, tt.present) {
				t.Errorf("scrape lacks %q", tt.present)
			}
			if failedDump := tt.failed == "sockets" && !tt.conn.Interrupt; failedDump != tt.conn.Closed {
				t.Errorf("sock_diag socket closed = %v after the dump; want it closed after a failed dump, kept otherwise", tt.conn.Closed)
			}
		})
	}
}

func TestInterruptedDumpIsRetried(t *testing.T) {
	conn := &sockdiagtest.Conn{Sockets: fixtureSockets(t), Interrupt: true, FailDumps: []int{2}}
	out := scrape(t, fixtureExporter(t, "testdata/proc", conn, census.Limits{}))
	if s := collectorSuccess(t, out)["sockets"]; s != "1" {
		t.Fatalf("sockets success = %s after one interrupted dump, want 1", s)
	}
	if conn.Dumps != 6 {
		t.Errorf("made %d dump requests, want 6: 2 until the interrupted second one, then all 4 again", conn.Dumps)
	}
	if !strings.Contains(out, "tcpadvisor_sock_diag_dump_retries_total 1\n") {
		t.Error("retry counter is not 1")
	}
	// Nothing of the interrupted attempt is counted twice.
	if !strings.Contains(out, `tcpadvisor_sockets{class="outbound_ephemeral",family="ipv4",state="time_wait"} 7`) {
		t.Errorf("outbound ephemeral TIME_WAIT is not 7:\n%s", grep(out, "outbound_ephemeral"))
	}
}

func TestDeadlineBoundsTheCollection(t *testing.T) {
	conn := &sockdiagtest.Conn{Block: true}
	fs, _ := procfs.NewFS("testdata/proc")
	e, err := newExporter(Options{Collectors: CollectorNames, Timeout: 100 * time.Millisecond}, hostSources(fs, "testdata/proc", conn.Dial, nil), discard)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out := scrape(t, e)
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("scrape took %v with a 100ms collection deadline", elapsed)
	}
	if s := collectorSuccess(t, out); s["sockets"] != "0" || s["sysctl"] != "1" {
		t.Errorf("success = %v, want sockets 0 and the rest 1", s)
	}
}

func grep(s, substr string) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

// countingCollector counts its updates and blocks each until released.
type countingCollector struct {
	updates atomic.Int32
	release chan struct{}
}

func (c *countingCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	c.updates.Add(1)
	<-c.release
	ch <- prometheus.MustNewConstMetric(prometheus.NewDesc("test_value", "A test value.", nil, nil), prometheus.GaugeValue, 1)
	return nil
}

func TestConcurrentScrapesShareOneCollection(t *testing.T) {
	c := &countingCollector{release: make(chan struct{})}
	e := New(map[string]Collector{"counting": c}, time.Second, discard)
	const scrapes = 10
	var wg sync.WaitGroup
	results := make([]int, scrapes)
	for i := range scrapes {
		wg.Go(func() { results[i] = testutil.CollectAndCount(e) })
	}
	// Let every scrape reach the collection before releasing it.
	deadline := time.Now().Add(5 * time.Second)
	for c.updates.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	close(c.release)
	wg.Wait()
	if n := c.updates.Load(); n < 1 || n > 2 {
		// Two when a goroutine was scheduled only after the first
		// collection ended; never one per scrape.
		t.Errorf("%d concurrent scrapes ran %d collections, want 1 (2 at most)", scrapes, n)
	}
	for i, n := range results {
		if n != 3 {
			t.Errorf("scrape %d got %d metrics, want 3 (value, success, duration)", i, n)
		}
	}
	// A scrape after the collection ended runs a new one.
	testutil.CollectAndCount(e)
	if n := c.updates.Load(); n < 2 {
		t.Errorf("a later scrape reused a finished collection")
	}
}
