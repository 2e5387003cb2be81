package exporter

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcpadvisor/tcpadvisor/exporter/census"
	"github.com/tcpadvisor/tcpadvisor/exporter/tracer"
	"github.com/tcpadvisor/tcpadvisor/internal/cgrouptest"
	"github.com/tcpadvisor/tcpadvisor/internal/netnstest"
	"github.com/tcpadvisor/tcpadvisor/internal/proctest"
	"golang.org/x/sys/unix"
)

// The environment that makes the test binary a helper process.
const (
	// connectClientEnv: connect as runConnectClient says, and print what
	// it saw as JSON.
	connectClientEnv = "TCPADVISOR_TEST_CONNECT_CLIENT"
	// tracerStatusEnv: run an exporter with every collector, scrape it
	// once, and print the scrape as JSON.
	tracerStatusEnv = "TCPADVISOR_TEST_TRACER_STATUS"
)

// The connect client's listeners, in its network namespace, outside its
// ephemeral range (connectRange) of 10 ports.
const (
	clientFirstPort = 8080
	serverFirstPort = 8081
	refusedPort     = 9
	connectRange    = "40000 40009"
	connectAttempts = 50
)

// connectResult is what the connect client saw.
type connectResult struct {
	Refused, ServerFirst, Opened, AddrNotAvail int
	Other                                      []string
}

// runConnectClient serves and connects on loopback: 3 connections refused,
// 5 closed by the server first, then 50 attempts closed by the client first,
// most of which find no free port, as it is in a namespace whose range holds
// 10 ports and that reuses no TIME_WAIT port.
func runConnectClient() int {
	var r connectResult
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	clientFirst, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", clientFirstPort))
	if err != nil {
		return fail(err)
	}
	serverFirst, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", serverFirstPort))
	if err != nil {
		return fail(err)
	}
	serve := func(ln net.Listener, handle func(net.Conn)) {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				handle(c)
				c.Close()
			}()
		}
	}
	go serve(clientFirst, func(c net.Conn) { io.Copy(io.Discard, c) })
	go serve(serverFirst, func(net.Conn) {})

	for range 3 {
		_, err := net.Dial("tcp4", fmt.Sprintf("127.0.0.1:%d", refusedPort))
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return fail(fmt.Errorf("dial the closed port: %v, want ECONNREFUSED", err))
		}
		r.Refused++
	}
	for range 5 {
		c, err := net.Dial("tcp4", serverFirst.Addr().String())
		if err != nil {
			return fail(err)
		}
		io.Copy(io.Discard, c)
		c.Close()
		r.ServerFirst++
	}
	// connect() itself, not net.Dial: Dial tries twice more on
	// EADDRNOTAVAIL, and the tracer counts each connect().
	for range connectAttempts {
		switch err := connectAndClose(clientFirstPort); {
		case err == nil:
			r.Opened++
		case errors.Is(err, unix.EADDRNOTAVAIL):
			r.AddrNotAvail++
		default:
			r.Other = append(r.Other, err.Error())
		}
	}
	// Lets the servers see the last closes before the process ends.
	time.Sleep(200 * time.Millisecond)
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		return fail(err)
	}
	return 0
}

// connectAndClose connects to 127.0.0.1:port, once, and closes first.
func connectAndClose(port int) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Connect(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}})
}

// TestIntegrationConnections runs the connect client in a network namespace
// of its own, with 10 ephemeral ports and tcp_tw_reuse=0, in a cgroup of its
// own, under a process name of its own, and checks that the tracer counted
// exactly what the client saw, under its netns, unit and process. It runs in
// the host's namespaces, as the exporter does: the tracer sees every one.
func TestIntegrationConnections(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to load the tracer and make a network namespace")
	}
	unit := fmt.Sprintf("tcpadvisor-conntest-%d.service", os.Getpid())
	cgroup := cgrouptest.Child(t, unit)
	netnsName := fmt.Sprintf("tcpadv-conn-%d", os.Getpid())
	netnstest.Add(t, netnsName, "net.ipv4.ip_local_port_range", connectRange, "net.ipv4.tcp_tw_reuse", "0")

	e, err := NewFromOptions(Options{
		ProcPath: "/proc", Collectors: []string{"connections"}, Timeout: 5 * time.Second,
		Owners: true, Netns: true, NetnsMax: 1000, RunNetnsPath: "/run/netns",
		Limits: census.Limits{TopDestinations: 20, TopOwners: 3, MaxServicePorts: 100},
	}, discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	if v := gather(t, e)["tcpadvisor_tracer_up{}"]; v != 1 {
		t.Skipf("the tracer is not up here: %v", gather(t, e))
	}

	// The client runs under a name of its own, in its cgroup from its
	// first instruction on (clone3 with CLONE_INTO_CGROUP).
	process := "tcpadv-client"
	cmd := exec.Command("ip", "netns", "exec", netnsName, proctest.Renamed(t, process))
	cmd.Env = append(os.Environ(), connectClientEnv+"=1")
	cmd.SysProcAttr = cgrouptest.Into(t, cgroup)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("connect client: %v", err)
	}
	var r connectResult
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("connect client said %q: %v", out, err)
	}
	t.Logf("the client saw %+v", r)
	if r.AddrNotAvail == 0 || r.Opened == 0 || len(r.Other) > 0 {
		t.Fatalf("the client saw %+v, want both successes and EADDRNOTAVAIL, and no other error", r)
	}

	outbound := func(name string, port int, extra ...string) string {
		return series(name, append([]string{"destination_address", "127.0.0.1", "destination_port", strconv.Itoa(port),
			"netns", netnsName, "owner", unit, "process", process, "source_address", "127.0.0.1"}, extra...)...)
	}
	inbound := func(name string, port int, extra ...string) string {
		return series(name, append([]string{"netns", netnsName, "port", strconv.Itoa(port)}, extra...)...)
	}
	want := map[string]float64{
		outbound("tcpadvisor_outbound_connect_failures_total", clientFirstPort, "errno", "EADDRNOTAVAIL"): float64(r.AddrNotAvail),
		outbound("tcpadvisor_outbound_connections_opened_total", clientFirstPort):                         float64(r.Opened),
		outbound("tcpadvisor_outbound_connections_closed_total", clientFirstPort, "closed_by", "local"):   float64(r.Opened),
		outbound("tcpadvisor_outbound_connections_closed_total", clientFirstPort, "closed_by", "peer"):    0,
		outbound("tcpadvisor_outbound_connect_failures_total", clientFirstPort, "errno", "ECONNREFUSED"):  0,
		outbound("tcpadvisor_outbound_connect_failures_total", refusedPort, "errno", "ECONNREFUSED"):      float64(r.Refused),
		outbound("tcpadvisor_outbound_connect_failures_total", refusedPort, "errno", "EADDRNOTAVAIL"):     0,
		outbound("tcpadvisor_outbound_connections_opened_total", serverFirstPort):                         float64(r.ServerFirst),
		outbound("tcpadvisor_outbound_connections_closed_total", serverFirstPort, "closed_by", "peer"):    float64(r.ServerFirst),
		outbound("tcpadvisor_outbound_connections_closed_total", serverFirstPort, "closed_by", "local"):   0,
		outbound("tcpadvisor_outbound_connection_lifetime_seconds_count", clientFirstPort):                float64(r.Opened),
		inbound("tcpadvisor_inbound_connections_accepted_total", clientFirstPort):                         float64(r.Opened),
		inbound("tcpadvisor_inbound_connections_closed_total", clientFirstPort, "closed_by", "peer"):      float64(r.Opened),
		inbound("tcpadvisor_inbound_connections_accepted_total", serverFirstPort):                         float64(r.ServerFirst),
		inbound("tcpadvisor_inbound_connections_closed_total", serverFirstPort, "closed_by", "local"):     float64(r.ServerFirst),
	}
	values := waitFor(t, e, want)
	expect(t, values, want)
	if t.Failed() {
		for k, v := range values {
			if strings.Contains(k, netnsName) {
				t.Logf("%s %v", k, v)
			}
		}
	}
}

// series keys a sample as gather does, from its name and label pairs.
func series(name string, labels ...string) string {
	pairs := make([]string, 0, len(labels)/2)
	for i := 0; i+1 < len(labels); i += 2 {
		pairs = append(pairs, fmt.Sprintf("%s=%q", labels[i], labels[i+1]))
	}
	slices.Sort(pairs)
	return name + "{" + strings.Join(pairs, ",") + "}"
}

// runTracerStatus runs an exporter with every collector, the BTF file of
// the environment's TCPADVISOR_TEST_BTF_PATH, scrapes it once and prints the
// samples as JSON.
func runTracerStatus() int {
	e, err := NewFromOptions(Options{
		ProcPath: "/proc", Collectors: CollectorNames, Timeout: 5 * time.Second,
		Tracer: tracer.Options{BTFPath: os.Getenv(btfPathEnv)},
	}, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer e.Close()
	values, err := gatherValues(e)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := json.NewEncoder(os.Stdout).Encode(values); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

const btfPathEnv = "TCPADVISOR_TEST_BTF_PATH"

// TestIntegrationTracerDown runs an exporter where the tracer cannot load:
// without CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN (setpriv), and with its
// BTF file missing. Each serves every other collector and says why.
func TestIntegrationTracerDown(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to drop capabilities with setpriv")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("needs setpriv (Debian package util-linux)")
	}
	tests := []struct {
		name    string
		command []string
		btfPath string
		reason  string
	}{
		{name: "no CAP_BPF", reason: "no_privileges",
			command: []string{setpriv, "--bounding-set=-bpf,-perfmon,-sys_admin", "--inh-caps=-all", "--", os.Args[0]}},
		{name: "no BTF", reason: "no_btf", btfPath: filepath.Join(t.TempDir(), "missing-vmlinux"),
			command: []string{os.Args[0]}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(tt.command[0], tt.command[1:]...)
			cmd.Env = append(os.Environ(), tracerStatusEnv+"=1", btfPathEnv+"="+tt.btfPath)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("exporter: %v\n%s", err, stderr.String())
			}
			var values map[string]float64
			if err := json.Unmarshal(out, &values); err != nil {
				t.Fatalf("exporter said %q: %v", out, err)
			}
			want := map[string]float64{
				`tcpadvisor_tracer_up{}`: 0,
				fmt.Sprintf(`tcpadvisor_tracer_down_reason{reason=%q}`, tt.reason): 1,
			}
			for _, name := range CollectorNames {
				want[fmt.Sprintf(`tcpadvisor_scrape_collector_success{collector=%q}`, name)] = 1
			}
			expect(t, values, want)
			if n := strings.Count(stderr.String(), "connection tracer off"); n != 1 {
				t.Errorf("the log says %d times that the tracer is off, want once:\n%s", n, stderr.String())
			}
		})
	}
}

// churnAddrEnv makes the test binary connect to the address it names
// churnConnections times, closing each first, and exit.
const (
	churnAddrEnv      = "TCPADVISOR_TEST_CHURN_ADDR"
	churnConnections  = 20
	churnProcessName  = "tcpadv-churner"
	timeWaitOwnerUnit = "tcpadvisor-twtest-%d.service"
)

func runChurn(addr string) int {
	for range churnConnections {
		c, err := net.Dial("tcp4", addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		c.Close()
	}
	return 0
}

// TestIntegrationTimeWaitOwner runs a client that opens connections to a
// local server, closes each first and exits before any scrape: its
// TIME_WAIT sockets have no owner in sock_diag, and the census never saw it
// hold a socket. With the connection tracer, they are the client's, which
// the tracer saw closing first; without it, unknown.
func TestIntegrationTimeWaitOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to load the tracer")
	}
	unit := fmt.Sprintf(timeWaitOwnerUnit, os.Getpid())
	cgroup := cgrouptest.Child(t, unit)
	ln := netnstest.Serve(t, "127.0.0.1:0", netnstest.Discard)
	server := netip.MustParseAddrPort(ln.Addr().String())
	exporter := func(collectors ...string) *Exporter {
		e, err := NewFromOptions(Options{
			ProcPath: "/proc", Collectors: collectors, Timeout: 5 * time.Second, Owners: true,
			Limits: census.Limits{PinnedDestinations: []netip.AddrPort{server}},
		}, discard)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(e.Close)
		return e
	}
	traced, untraced := exporter("connections", "sockets"), exporter("sockets")
	if gather(t, traced)["tcpadvisor_tracer_up{}"] != 1 {
		t.Skip("the tracer is not up here")
	}

	cmd := exec.Command(proctest.Renamed(t, churnProcessName))
	cmd.Env = append(os.Environ(), churnAddrEnv+"="+ln.Addr().String())
	cmd.SysProcAttr = cgrouptest.Into(t, cgroup)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("client: %v: %s", err, out)
	}

	dest := []string{"destination_address", "127.0.0.1", "destination_port", strconv.Itoa(int(server.Port())), "source_address", "127.0.0.1"}
	timeWait := series("tcpadvisor_outbound_sockets", append(dest, "state", "time_wait")...)
	owned := series("tcpadvisor_outbound_owner_sockets", append(dest, "owner", unit, "process", churnProcessName)...)
	unknown := series("tcpadvisor_outbound_owner_sockets", append(dest, "owner", "unknown", "process", "unknown")...)
	// The first scrape drains the tracer; the census reads it from the
	// next on.
	values := waitFor(t, traced, map[string]float64{owned: churnConnections})
	if tw := values[timeWait]; tw == 0 || values[owned] != tw {
		t.Errorf("with the tracer: %v TIME_WAIT sockets, %v of them the client's; want all of them:\n%s", tw, values[owned], grepValues(values, "outbound_owner_sockets"))
	}
	values = gather(t, untraced)
	if tw := values[timeWait]; tw == 0 || values[unknown] != tw {
		t.Errorf("without the tracer: %v TIME_WAIT sockets, %v unknown; want all unknown:\n%s", tw, values[unknown], grepValues(values, "outbound_owner_sockets"))
	}
}

// grepValues lists the samples whose key contains s.
func grepValues(values map[string]float64, s string) string {
	var lines []string
	for k, v := range values {
		if strings.Contains(k, s) {
			lines = append(lines, fmt.Sprintf("%s %v", k, v))
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// TestIntegrationTracedOwner runs a client in a cgroup it shares with a
// process of another name, so that the cgroup names no process: the
// connections it opens after the exporter started are named after it from
// the first scrape on, from what the tracer recorded at connect(), without
// the fd tables of the cgroup's processes.
func TestIntegrationTracedOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to load the tracer")
	}
	unit := fmt.Sprintf("tcpadvisor-sharedtest-%d.service", os.Getpid())
	cgroup := cgrouptest.Child(t, unit)
	inCgroup := cgrouptest.Into(t, cgroup)
	// The other process of the cgroup, as a shell beside an application.
	neighbour := exec.Command("sleep", "60")
	neighbour.SysProcAttr = inCgroup
	if err := neighbour.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		neighbour.Process.Kill()
		neighbour.Wait()
	})

	ln := netnstest.Serve(t, "127.0.0.1:0", netnstest.Discard)
	server := netip.MustParseAddrPort(ln.Addr().String())
	e, err := NewFromOptions(Options{
		ProcPath: "/proc", Collectors: []string{"connections", "sockets"}, Timeout: 5 * time.Second, Owners: true,
		Limits: census.Limits{PinnedDestinations: []netip.AddrPort{server}},
	}, discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	if gather(t, e)["tcpadvisor_tracer_up{}"] != 1 {
		t.Skip("the tracer is not up here")
	}

	const connections, process = 5, "tcpadv-holder"
	cmd := exec.Command(proctest.Renamed(t, process))
	cmd.SysProcAttr = inCgroup
	startHolder(t, cmd, connections, ln.Addr().String())()
	key := series("tcpadvisor_outbound_owner_sockets", "destination_address", "127.0.0.1", "destination_port", strconv.Itoa(int(server.Port())),
		"owner", unit, "process", process, "source_address", "127.0.0.1")
	if values := gather(t, e); values[key] != connections {
		t.Errorf("%s = %v, want %d at the first scrape:\n%s", key, values[key], connections, grepValues(values, "outbound_owner_sockets"))
	}
}

// TestIntegrationConnectionsBounded opens connections toward more
// destinations than the kernel map and the series caps hold: the overflow
// is counted, the series stay within the caps, and the opened counters
// still add up to every connection.
func TestIntegrationConnectionsBounded(t *testing.T) {
	if !netnstest.Enter(t) {
		return
	}
	const destinations = 12
	limits := census.Limits{TopDestinations: 3, TopOwners: 1, MaxServicePorts: 2}
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &st); err != nil {
		t.Fatal(err)
	}
	c := NewConnectionsCollector(ConnectionsSources{
		Load: func() (ConnectionTracer, error) {
			t, err := tracer.Load(tracer.Options{Netns: uint32(st.Ino), MaxOutbound: 4, MaxInbound: 4})
			if err != nil {
				return nil, err
			}
			return t, nil
		},
	}, limits, 1, discard)
	t.Cleanup(c.Close)
	e := New(map[string]Collector{"connections": c}, 5*time.Second, discard)
	if gather(t, e)["tcpadvisor_tracer_up{}"] != 1 {
		t.Skip("the tracer is not up here")
	}
	for range destinations {
		ln := netnstest.Serve(t, "127.0.0.1:0", netnstest.Discard)
		netnstest.Churn(t, ln.Addr().String(), 1)
	}
	// Repeated scrapes add up; the last one holds the totals.
	var values map[string]float64
	deadline := time.Now().Add(5 * time.Second)
	for {
		values = gather(t, e)
		if sumOf(values, "tcpadvisor_inbound_connections_closed_total{") >= destinations || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := sumOf(values, "tcpadvisor_outbound_connections_opened_total{"); got != destinations {
		t.Errorf("opened, summed over every series: %v, want %d", got, destinations)
	}
	if got := sumOf(values, "tcpadvisor_inbound_connections_accepted_total{"); got != destinations {
		t.Errorf("accepted, summed over every series: %v, want %d", got, destinations)
	}
	// Top destinations and "other", one owner each (the test's).
	if n := countOf(values, "tcpadvisor_outbound_connections_opened_total{"); n > limits.TopDestinations+1 {
		t.Errorf("%d opened series, want at most %d", n, limits.TopDestinations+1)
	}
	if n := countOf(values, "tcpadvisor_inbound_connections_accepted_total{"); n > limits.MaxServicePorts+1 {
		t.Errorf("%d accepted series, want at most %d", n, limits.MaxServicePorts+1)
	}
	for _, event := range []string{"outbound_map_full", "inbound_map_full"} {
		if v := values[series("tcpadvisor_tracer_events_total", "event", event)]; v == 0 {
			t.Errorf("tcpadvisor_tracer_events_total{event=%q} = 0, want the overflow counted", event)
		}
	}
}

func sumOf(values map[string]float64, prefix string) float64 {
	var sum float64
	for k, v := range values {
		if strings.HasPrefix(k, prefix) {
			sum += v
		}
	}
	return sum
}

func countOf(values map[string]float64, prefix string) int {
	n := 0
	for k := range values {
		if strings.HasPrefix(k, prefix) {
			n++
		}
	}
	return n
}
