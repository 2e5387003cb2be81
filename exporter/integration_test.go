package exporter

import (
	"bufio"
	"errors"
	"fmt"
	"io"
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

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tcpadvisor/tcpadvisor/exporter/census"
	"github.com/tcpadvisor/tcpadvisor/internal/cgrouptest"
	"github.com/tcpadvisor/tcpadvisor/internal/netnstest"
)

// population opens and holds loopback sockets in known states.
type population struct {
	t     *testing.T
	conns []net.Conn
	// localPorts holds the distinct local ports of every client socket
	// opened: the kernel may give one port to connections toward
	// different destinations.
	localPorts map[int]bool
}

func newPopulation(t *testing.T) *population {
	p := &population{t: t, localPorts: map[int]bool{}}
	t.Cleanup(func() {
		for _, c := range p.conns {
			c.Close()
		}
	})
	return p
}

func (p *population) listen(network, addr string) net.Listener {
	p.t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(func() { ln.Close() })
	return ln
}

// connect opens one connection to ln and returns both ends; the server end
// is nil when accept is false (the connection waits in the accept queue).
func (p *population) connect(ln net.Listener, accept bool) (client, server net.Conn, err error) {
	p.t.Helper()
	client, err = net.Dial(ln.Addr().Network(), ln.Addr().String())
	if err != nil {
		return nil, nil, err
	}
	p.conns = append(p.conns, client)
	p.localPorts[client.LocalAddr().(*net.TCPAddr).Port] = true
	if accept {
		if server, err = ln.Accept(); err != nil {
			p.t.Fatal(err)
		}
		p.conns = append(p.conns, server)
	}
	return client, server, nil
}

func (p *population) mustConnect(ln net.Listener, accept bool) (client, server net.Conn) {
	p.t.Helper()
	client, server, err := p.connect(ln, accept)
	if err != nil {
		p.t.Fatal(err)
	}
	return client, server
}

// established holds n connections open.
func (p *population) established(ln net.Listener, n int) {
	for range n {
		p.mustConnect(ln, true)
	}
}

// timeWait makes n client sockets in TIME_WAIT: the client closes first,
// the server reads the FIN and closes too.
func (p *population) timeWait(ln net.Listener, n int) {
	p.t.Helper()
	for range n {
		client, server := p.mustConnect(ln, true)
		client.Close()
		if _, err := io.Copy(io.Discard, server); err != nil {
			p.t.Fatal(err)
		}
		server.Close()
	}
}

// closeWait makes n server sockets in CLOSE_WAIT (and their clients in
// FIN_WAIT2): the client closes, the server never does.
func (p *population) closeWait(ln net.Listener, n int) {
	for range n {
		client, _ := p.mustConnect(ln, true)
		client.Close()
	}
}

// gather scrapes e and keys each sample as name{label="value",...}.
func gather(t *testing.T, e *Exporter) map[string]float64 {
	t.Helper()
	values, err := gatherValues(e)
	if err != nil {
		t.Fatal(err)
	}
	return values
}

// gatherValues scrapes e and keys each sample as name{label="value",...}.
func gatherValues(e *Exporter) (map[string]float64, error) {
	registry := prometheus.NewRegistry()
	registry.MustRegister(e)
	families, err := registry.Gather()
	if err != nil {
		return nil, err
	}
	values := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			key := "{" + strings.Join(labels, ",") + "}"
			if s := m.GetSummary(); s != nil {
				values[f.GetName()+"_count"+key] = float64(s.GetSampleCount())
				values[f.GetName()+"_sum"+key] = s.GetSampleSum()
				continue
			}
			values[f.GetName()+key] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	return values, nil
}

// waitFor scrapes until every key has its value, for at most 5 s: a closed
// connection takes a few round trips (and maybe a delayed ACK) to settle in
// FIN_WAIT2 or TIME_WAIT.
func waitFor(t *testing.T, e *Exporter, want map[string]float64) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		values := gather(t, e)
		settled := true
		for k, v := range want {
			settled = settled && values[k] == v
		}
		if settled || time.Now().After(deadline) {
			return values
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func realExporter(t *testing.T) *Exporter {
	t.Helper()
	e, err := NewFromOptions(Options{ProcPath: "/proc", Collectors: CollectorNames, Timeout: 5 * time.Second}, discard)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func expect(t *testing.T, values map[string]float64, want map[string]float64) {
	t.Helper()
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if got, ok := values[k]; !ok || got != want[k] {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, want[k])
		}
	}
}

// TestIntegrationPopulation opens a known population in a fresh network
// namespace and checks the exporter counts it exactly, and as ss does.
func TestIntegrationPopulation(t *testing.T) {
	if !netnstest.Enter(t) {
		return
	}
	p := newPopulation(t)
	web := p.listen("tcp4", "127.0.0.1:7000")
	leaky := p.listen("tcp4", "127.0.0.1:7002")
	slow := p.listen("tcp4", "127.0.0.1:7004")
	web6 := p.listen("tcp6", "[::1]:7001")
	debug := p.listen("tcp4", "127.0.0.1:45000") // inside the default ephemeral range

	p.established(web, 5)
	p.timeWait(web, 20)
	p.closeWait(leaky, 3)
	p.mustConnect(slow, false)
	p.mustConnect(slow, false)
	p.established(web6, 4)
	p.timeWait(web6, 6)
	p.established(debug, 1)

	e := realExporter(t)
	sock := func(family, state, class string) string {
		return fmt.Sprintf("tcpadvisor_sockets{class=%q,family=%q,state=%q}", class, family, state)
	}
	dest := func(src, dst, port, state string) string {
		return fmt.Sprintf("tcpadvisor_outbound_sockets{destination_address=%q,destination_port=%q,source_address=%q,state=%q}", dst, port, src, state)
	}
	values := waitFor(t, e, map[string]float64{
		sock("ipv4", "time_wait", "outbound_ephemeral"): 20,
		sock("ipv4", "fin_wait2", "outbound_ephemeral"): 3,
		sock("ipv6", "time_wait", "outbound_ephemeral"): 6,
	})
	expect(t, values, map[string]float64{
		sock("ipv4", "listen", "listener"):                4,
		sock("ipv4", "established", "outbound_ephemeral"): 5 + 2 + 1,
		sock("ipv4", "established", "inbound"):            5 + 2 + 1,
		sock("ipv4", "time_wait", "outbound_ephemeral"):   20,
		sock("ipv4", "time_wait", "inbound"):              0,
		sock("ipv4", "close_wait", "inbound"):             3,
		sock("ipv4", "fin_wait2", "outbound_ephemeral"):   3,
		sock("ipv4", "established", "outbound_bound"):     0,
		sock("ipv6", "listen", "listener"):                1,
		sock("ipv6", "established", "outbound_ephemeral"): 4,
		sock("ipv6", "established", "inbound"):            4,
		sock("ipv6", "time_wait", "outbound_ephemeral"):   6,

		dest("127.0.0.1", "127.0.0.1", "7000", "time_wait"):   20,
		dest("127.0.0.1", "127.0.0.1", "7000", "established"): 5,
		dest("127.0.0.1", "127.0.0.1", "7002", "fin_wait2"):   3,
		dest("127.0.0.1", "127.0.0.1", "7004", "established"): 2,
		dest("::1", "::1", "7001", "time_wait"):               6,
		dest("::1", "::1", "7001", "established"):             4,
		dest("other", "other", "other", "established"):        0,
		`tcpadvisor_outbound_ephemeral_sockets{destination_address="127.0.0.1",destination_port="7000",source_address="127.0.0.1"}`: 25,

		`tcpadvisor_inbound_sockets{port="7000",state="established"}`: 5,
		`tcpadvisor_inbound_sockets{port="7000",state="time_wait"}`:   0,
		`tcpadvisor_inbound_sockets{port="7002",state="close_wait"}`:  3,
		`tcpadvisor_inbound_sockets{port="7001",state="established"}`: 4,
		`tcpadvisor_inbound_peer_addresses{port="7000"}`:              1,
		`tcpadvisor_listen_queue_length{port="7004"}`:                 2,
		`tcpadvisor_listen_queue_length{port="7000"}`:                 0,
		`tcpadvisor_listen_port_in_ephemeral_range{port="45000"}`:     1,
		`tcpadvisor_listen_port_in_ephemeral_range{port="7000"}`:      0,
		`tcpadvisor_ephemeral_ports_listening{}`:                      1,
		`tcpadvisor_ephemeral_ports_in_use{}`:                         float64(len(p.localPorts)),
		`tcpadvisor_scrape_collector_success{collector="sockets"}`:    1,
		`tcpadvisor_scrape_collector_success{collector="sysctl"}`:     1,
		`tcpadvisor_scrape_collector_success{collector="netstat"}`:    1,
		`tcpadvisor_scrape_collector_success{collector="sockstat"}`:   1,
	})
	// Go listens with the somaxconn backlog, so each limit is somaxconn.
	if limit, max := values[`tcpadvisor_listen_queue_limit{port="7000"}`], values[`tcpadvisor_sysctl_net_core_somaxconn{}`]; limit != max || limit == 0 {
		t.Errorf("accept-queue limit of port 7000 = %v, want net.core.somaxconn = %v", limit, max)
	}
	// sockstat's tw counts both families' TIME_WAIT, and those orphaned
	// FIN_WAIT2 sockets that the kernel turned into timewait mini-sockets
	// (which depends on the timing of the peer's ACK: tcp_rcv_state_process).
	if tw := values[`tcpadvisor_sockstat_tcp_tw{}`]; tw < 20+6 || tw > 20+6+3 {
		t.Errorf("sockstat tw = %v, want 26 TIME_WAIT plus up to 3 FIN_WAIT2", tw)
	}

	// ss, in the same namespace, sees the same sockets by state.
	out, err := exec.Command("ss", "-tanH").Output()
	if err != nil {
		t.Skipf("ss (Debian package iproute2) did not run: %v", err)
	}
	fromSS := map[string]float64{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fromSS[ssState(strings.Fields(line)[0])]++
	}
	fromExporter := map[string]float64{}
	for k, v := range values {
		if strings.HasPrefix(k, "tcpadvisor_sockets{") {
			state := k[strings.Index(k, `state="`)+7:]
			fromExporter[state[:strings.Index(state, `"`)]] += v
		}
	}
	for state, n := range fromSS {
		if fromExporter[state] != n {
			t.Errorf("%s: ss counts %v sockets, tcpadvisor %v", state, n, fromExporter[state])
		}
	}
	for state, n := range fromExporter {
		if n != fromSS[state] {
			t.Errorf("%s: tcpadvisor counts %v sockets, ss %v", state, n, fromSS[state])
		}
	}
}

// ssState turns ss's state column (ESTAB, TIME-WAIT, FIN-WAIT-2) into the
// state label.
func ssState(s string) string {
	switch s = strings.ToLower(strings.ReplaceAll(s, "-", "_")); s {
	case "estab":
		return "established"
	case "unconn":
		return "close"
	case "fin_wait_1":
		return "fin_wait1"
	case "fin_wait_2":
		return "fin_wait2"
	}
	return s
}

// TestIntegrationPortPressure narrows the ephemeral range of a fresh
// namespace and fills it toward one destination: the ratio follows the ports
// held, and reaches 1 exactly when connect() fails with EADDRNOTAVAIL.
func TestIntegrationPortPressure(t *testing.T) {
	if !netnstest.Enter(t) {
		return
	}
	// Loopback defaults to tcp_tw_reuse=2, which would hand TIME_WAIT ports
	// out again and hide the exhaustion a real host sees.
	netnstest.Sysctl(t, "net.ipv4.tcp_tw_reuse", "0")
	netnstest.Sysctl(t, "net.ipv4.ip_local_port_range", "40000 40099")
	netnstest.Sysctl(t, "net.ipv4.ip_local_reserved_ports", "40010-40019")
	const usable = 90

	p := newPopulation(t)
	redis := p.listen("tcp4", "127.0.0.1:6379")
	p.timeWait(redis, 30)
	p.established(redis, 10)

	e := realExporter(t)
	const ratio = `tcpadvisor_outbound_port_pressure_ratio{destination_address="127.0.0.1",destination_port="6379",source_address="127.0.0.1"}`
	values := waitFor(t, e, map[string]float64{
		`tcpadvisor_outbound_sockets{destination_address="127.0.0.1",destination_port="6379",source_address="127.0.0.1",state="time_wait"}`: 30,
	})
	expect(t, values, map[string]float64{
		ratio: 40.0 / usable,
		`tcpadvisor_ephemeral_ports_range_size{}`:   100,
		`tcpadvisor_ephemeral_ports_reserved{}`:     10,
		`tcpadvisor_ephemeral_ports_in_use{}`:       40,
		`tcpadvisor_sysctl_net_ipv4_tcp_tw_reuse{}`: 0,
	})

	// Fill the rest of the range; connect() must fail past it.
	opened := 40
	for range 2 * usable {
		_, _, err := p.connect(redis, true)
		if err != nil {
			if !errors.Is(err, syscall.EADDRNOTAVAIL) {
				t.Fatalf("connect #%d: %v, want EADDRNOTAVAIL", opened+1, err)
			}
			break
		}
		opened++
	}
	if opened != usable {
		t.Errorf("connect() succeeded %d times toward one destination, want %d (the usable ports)", opened, usable)
	}
	expect(t, gather(t, e), map[string]float64{ratio: 1})
}

// ownerHelperEnv makes the test binary a client for
// startHolder starts cmd, the test binary, as a client that holds
// connections open toward addr until the test ends, and returns the
// function that has it connect and waits until it has. Cleanups run last
// first: the client ends before a cgroup made earlier goes.
func startHolder(t *testing.T, cmd *exec.Cmd, connections int, addr string) (connect func()) {
	t.Helper()
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", ownerHelperEnv, connections), ownerAddrEnv+"="+addr)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
	})
	return func() {
		t.Helper()
		fmt.Fprintln(stdin)
		if line, _ := bufio.NewReader(stdout).ReadString('\n'); line != "ok\n" {
			t.Fatalf("the client did not connect: %q", line)
		}
	}
}

// TestIntegrationOwners: it waits for a line on stdin, opens the number of
// connections the variable gives to the address in ownerAddrEnv, says "ok"
// and holds them until stdin closes.
const (
	ownerHelperEnv = "TCPADVISOR_TEST_OWNER_CONNECTIONS"
	ownerAddrEnv   = "TCPADVISOR_TEST_OWNER_ADDR"
)

func TestMain(m *testing.M) {
	if os.Getenv(connectClientEnv) != "" {
		os.Exit(runConnectClient())
	}
	if os.Getenv(tracerStatusEnv) != "" {
		os.Exit(runTracerStatus())
	}
	if addr := os.Getenv(churnAddrEnv); addr != "" {
		os.Exit(runChurn(addr))
	}
	if n, _ := strconv.Atoi(os.Getenv(ownerHelperEnv)); n > 0 {
		in := bufio.NewReader(os.Stdin)
		in.ReadString('\n')
		var conns []net.Conn
		for range n {
			c, err := net.Dial("tcp4", os.Getenv(ownerAddrEnv))
			if err != nil {
				fmt.Println(err)
				os.Exit(1)
			}
			conns = append(conns, c)
		}
		fmt.Println("ok")
		io.Copy(io.Discard, in)
		for _, c := range conns {
			c.Close()
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestIntegrationOwners starts a client process in a cgroup v2 of its own,
// named as a systemd service, and checks that the sockets it opens toward a
// local server are reported with that unit and the client's process name.
// It runs in the host's namespaces: ip netns exec, which netnstest.Enter
// uses, remounts /sys and hides the cgroup hierarchy. The destination is
// pinned so that it is reported however busy the host.
func TestIntegrationOwners(t *testing.T) {
	unit := fmt.Sprintf("tcpadvisor-test-%d.service", os.Getpid())
	cgroup := cgrouptest.Child(t, unit)

	ln := netnstest.Serve(t, "127.0.0.1:0", netnstest.Discard)
	const connections = 5
	client := exec.Command(os.Args[0])
	connect := startHolder(t, client, connections, ln.Addr().String())
	// A socket belongs to the cgroup of the task that creates it: move
	// the client before it connects.
	if err := os.WriteFile(filepath.Join(cgroup, "cgroup.procs"), []byte(strconv.Itoa(client.Process.Pid)), 0o644); err != nil {
		t.Skipf("cannot move a process into a cgroup v2 child: %v", err)
	}
	connect()

	server := netip.MustParseAddrPort(ln.Addr().String())
	e, err := NewFromOptions(Options{
		ProcPath: "/proc", Collectors: CollectorNames, Timeout: 5 * time.Second, Owners: true,
		Limits: census.Limits{PinnedDestinations: []netip.AddrPort{server}},
	}, discard)
	if err != nil {
		t.Fatal(err)
	}
	port := server.Port()
	key := fmt.Sprintf(`tcpadvisor_outbound_owner_sockets{destination_address="127.0.0.1",destination_port="%d",owner=%q,process=%q,source_address="127.0.0.1"}`,
		port, unit, filepath.Base(os.Args[0]))
	expect(t, gather(t, e), map[string]float64{
		key: connections,
		`tcpadvisor_owner_attribution_up{source="cgroup"}`:                                               1,
		fmt.Sprintf(`tcpadvisor_owner_runtime_info{process=%q,runtime="go"}`, filepath.Base(os.Args[0])): 1,
	})
}
