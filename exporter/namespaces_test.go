package exporter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tcpadvisor/tcpadvisor/exporter/netns"
	"golang.org/x/sys/unix"
)

// fakeCollector sends one gauge, or fails.
type fakeCollector struct {
	desc *prometheus.Desc
	err  error
}

func (c fakeCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, 1)
	return c.err
}

// TestNamespacesCollectorIsolatesFailures: a namespace that cannot be
// entered and a collector that fails in another report themselves failed,
// and every other namespace is still collected; namespaces that vanish
// lose their collectors.
func TestNamespacesCollectorIsolatesFailures(t *testing.T) {
	found := netns.Discovery{
		Namespaces: []netns.Namespace{{Name: "host", Inode: 1}, {Name: "gone", Inode: 2}, {Name: "app", Inode: 3}},
		Overflow:   4,
	}
	enter := func(_ context.Context, ns netns.Namespace, fn func() error) error {
		if ns.Name == "gone" {
			return netns.ErrGone
		}
		return fn()
	}
	built := map[string]int{}
	build := func(ns netns.Namespace) (map[string]Collector, error) {
		built[ns.Name]++
		desc := func(name string) *prometheus.Desc {
			return prometheus.NewDesc("tcpadvisor_test_"+name, "A test gauge.", nil, prometheus.Labels{NetnsLabel: ns.Name})
		}
		var err error
		if ns.Name == "app" {
			err = errors.New("sysctl unreadable")
		}
		return map[string]Collector{"sockets": fakeCollector{desc: desc("sockets")}, "sysctl": fakeCollector{desc: desc("sysctl"), err: err}}, nil
	}
	c := NewNamespacesCollector(func() (netns.Discovery, error) { return found, nil }, enter, build, nil, discard)
	e := New(map[string]Collector{"netns": c}, time.Second, discard)

	values := gather(t, e)
	expect(t, values, map[string]float64{
		`tcpadvisor_scrape_collector_success{collector="netns"}`:               1,
		`tcpadvisor_netns_discovered{}`:                                        7,
		`tcpadvisor_netns_over_limit{}`:                                        4,
		`tcpadvisor_netns_collector_success{collector="sockets",netns="host"}`: 1,
		`tcpadvisor_netns_collector_success{collector="sysctl",netns="host"}`:  1,
		`tcpadvisor_netns_collector_success{collector="sockets",netns="gone"}`: 0,
		`tcpadvisor_netns_collector_success{collector="sysctl",netns="gone"}`:  0,
		`tcpadvisor_netns_collector_success{collector="sockets",netns="app"}`:  1,
		`tcpadvisor_netns_collector_success{collector="sysctl",netns="app"}`:   0,
		`tcpadvisor_test_sockets{netns="host"}`:                                1,
		`tcpadvisor_test_sockets{netns="app"}`:                                 1,
		`tcpadvisor_test_sysctl{netns="app"}`:                                  1,
	})
	if _, ok := values[`tcpadvisor_test_sockets{netns="gone"}`]; ok {
		t.Error("a namespace that could not be entered has series")
	}

	found.Namespaces = found.Namespaces[:1]
	gather(t, e)
	if len(c.namespaces) != 1 || built["host"] != 1 {
		t.Errorf("after the others vanished: collectors of %d namespaces, host's built %d times; want 1 and 1", len(c.namespaces), built["host"])
	}
}

// namedNamespace creates a network namespace with ip netns, brings its
// loopback up and sets its ephemeral port range.
func namedNamespace(t *testing.T, name, portRange string) netns.Namespace {
	t.Helper()
	for _, args := range [][]string{
		{"netns", "add", name},
		{"-n", name, "link", "set", "lo", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Skipf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "delete", name).Run() })
	ns := netns.Namespace{Name: name, Path: "/run/netns/" + name}
	found, err := netns.Discover("/proc", "/run/netns", 1000, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range found.Namespaces {
		if n.Name == name {
			ns = n
		}
	}
	err = netns.Do(context.Background(), ns, func() error {
		return os.WriteFile("/proc/sys/net/ipv4/ip_local_port_range", []byte(portRange), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

// connectInside opens n connections to a listener on 127.0.0.1:6379 inside
// ns. The sockets keep their namespace after Do returns.
func connectInside(t *testing.T, ns netns.Namespace, n int) {
	t.Helper()
	err := netns.Do(context.Background(), ns, func() error {
		ln, err := net.Listen("tcp4", "127.0.0.1:6379")
		if err != nil {
			return err
		}
		t.Cleanup(func() { ln.Close() })
		for range n {
			c, err := net.Dial("tcp4", "127.0.0.1:6379")
			if err != nil {
				return err
			}
			t.Cleanup(func() { c.Close() })
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestIntegrationNetnsCollector creates two network namespaces, each with
// its own ephemeral port range and population, and checks that the exporter
// reports each apart, with its own range and port-pressure ratio.
func TestIntegrationNetnsCollector(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create and enter network namespaces; run ./test.sh as root")
	}
	prefix := fmt.Sprintf("tcpadv-nsc-%d-", os.Getpid())
	a := namedNamespace(t, prefix+"a", "40000 40999")
	b := namedNamespace(t, prefix+"b", "50000 50099")
	connectInside(t, a, 10)
	connectInside(t, b, 20)
	// An address of a's own, which b and the host do not have.
	if out, err := exec.Command("ip", "-n", a.Name, "addr", "add", "198.18.1.1/32", "dev", "lo").CombinedOutput(); err != nil {
		t.Fatalf("add an address in %s: %v: %s", a.Name, err, out)
	}

	e, err := NewFromOptions(Options{
		ProcPath: "/proc", Collectors: CollectorNames, Timeout: 5 * time.Second,
		Netns: true, NetnsMax: 1000, RunNetnsPath: "/run/netns",
	}, discard)
	if err != nil {
		t.Fatal(err)
	}
	toRedis := `destination_address="127.0.0.1",destination_port="6379",netns=%q,source_address="127.0.0.1"`
	expect(t, gather(t, e), map[string]float64{
		`tcpadvisor_scrape_collector_success{collector="netns"}`:                                  1,
		`tcpadvisor_netns_collector_success{collector="sockets",netns="host"}`:                    1,
		`tcpadvisor_netns_collector_success{collector="sysctl",netns="host"}`:                     1,
		fmt.Sprintf(`tcpadvisor_netns_collector_success{collector="sockets",netns=%q}`, a.Name):   1,
		fmt.Sprintf(`tcpadvisor_netns_collector_success{collector="netstat",netns=%q}`, a.Name):   1,
		fmt.Sprintf(`tcpadvisor_netns_collector_success{collector="sockstat",netns=%q}`, b.Name):  1,
		fmt.Sprintf(`tcpadvisor_ephemeral_ports_range_size{netns=%q}`, a.Name):                    1000,
		fmt.Sprintf(`tcpadvisor_ephemeral_ports_range_size{netns=%q}`, b.Name):                    100,
		fmt.Sprintf(`tcpadvisor_outbound_ephemeral_sockets{`+toRedis+`}`, a.Name):                 10,
		fmt.Sprintf(`tcpadvisor_outbound_ephemeral_sockets{`+toRedis+`}`, b.Name):                 20,
		fmt.Sprintf(`tcpadvisor_outbound_port_pressure_ratio{`+toRedis+`}`, a.Name):               0.01,
		fmt.Sprintf(`tcpadvisor_outbound_port_pressure_ratio{`+toRedis+`}`, b.Name):               0.2,
		fmt.Sprintf(`tcpadvisor_sockstat_tcp_inuse{family="ipv4",netns=%q}`, b.Name):              41,
		fmt.Sprintf(`tcpadvisor_netns_collector_success{collector="addresses",netns=%q}`, a.Name): 1,
		fmt.Sprintf(`tcpadvisor_local_address_info{address="198.18.1.1",netns=%q}`, a.Name):       1,
		fmt.Sprintf(`tcpadvisor_local_addresses{netns=%q}`, a.Name):                               1,
		fmt.Sprintf(`tcpadvisor_local_addresses{netns=%q}`, b.Name):                               0,
	})
}

// TestIntegrationNetnsCollectorIsBounded makes 200 network namespaces and
// collects with a cap of 50: 50 are collected, each fully, the rest are
// counted, and the scrape ends within its timeout.
func TestIntegrationNetnsCollectorIsBounded(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create and enter network namespaces; run ./test.sh as root")
	}
	const namespaces, limit = 200, 50
	prefix := fmt.Sprintf("tcpadv-many-%d-", os.Getpid())
	for i := range namespaces {
		name := fmt.Sprintf("%s%03d", prefix, i)
		if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
			t.Skipf("ip netns add: %v: %s", err, out)
		}
		t.Cleanup(func() { exec.Command("ip", "netns", "delete", name).Run() })
	}
	timeout := 10 * time.Second
	e, err := NewFromOptions(Options{
		ProcPath: "/proc", Collectors: CollectorNames, Timeout: timeout,
		Netns: true, NetnsMax: limit, RunNetnsPath: "/run/netns",
	}, discard)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	values := gather(t, e)
	elapsed := time.Since(start)
	// Namespaces of other tests running at the same time may vanish
	// under the scrape and report failure: only this test's own must
	// succeed.
	collected := map[string]bool{}
	for key, v := range values {
		if name, ok := strings.CutPrefix(key, `tcpadvisor_netns_collector_success{collector="sockets",netns="`); ok {
			name = strings.TrimSuffix(name, `"}`)
			collected[name] = true
			if (name == "host" || strings.HasPrefix(name, prefix)) && v != 1 {
				t.Errorf("the sockets collector failed in namespace %s", name)
			}
		}
	}
	if len(collected) != limit || !collected["host"] {
		t.Errorf("sockets collected in %d namespaces (host among them: %v), want %d", len(collected), collected["host"], limit)
	}
	if over := values["tcpadvisor_netns_over_limit{}"]; over < namespaces+1-limit {
		t.Errorf("tcpadvisor_netns_over_limit = %v, want at least %d", over, namespaces+1-limit)
	}
	if values[`tcpadvisor_scrape_collector_success{collector="netns"}`] != 1 || elapsed > timeout {
		t.Errorf("the scrape took %v (timeout %v), netns collector success %v", elapsed, timeout, values[`tcpadvisor_scrape_collector_success{collector="netns"}`])
	}
	t.Logf("%d namespaces discovered, %d collected in %v", int(values["tcpadvisor_netns_discovered{}"]), len(collected), elapsed)
}

// TestNamespacesCollectorNamesAMissingCapability: namespaces that cannot be
// entered for want of CAP_SYS_ADMIN are named in
// tcpadvisor_netns_privilege_missing at every scrape and in the log once.
func TestNamespacesCollectorNamesAMissingCapability(t *testing.T) {
	found := netns.Discovery{Namespaces: []netns.Namespace{{Name: "host", Inode: 1}, {Name: "app", Inode: 2}, {Name: "db", Inode: 3}}}
	enter := func(_ context.Context, ns netns.Namespace, fn func() error) error {
		if ns.Name != "host" {
			return fmt.Errorf("network namespace %s: setns: %w: %w", ns.Name, netns.ErrPermission, unix.EPERM)
		}
		return fn()
	}
	build := func(ns netns.Namespace) (map[string]Collector, error) {
		return map[string]Collector{"sockets": fakeCollector{desc: prometheus.NewDesc("tcpadvisor_test_sockets", "A test gauge.", nil, prometheus.Labels{NetnsLabel: ns.Name})}}, nil
	}
	var log bytes.Buffer
	c := NewNamespacesCollector(func() (netns.Discovery, error) { return found, nil }, enter, build, nil, slog.New(slog.NewTextHandler(&log, nil)))
	e := New(map[string]Collector{"netns": c}, time.Second, discard)
	for range 2 {
		expect(t, gather(t, e), map[string]float64{
			`tcpadvisor_netns_privilege_missing{missing="CAP_SYS_ADMIN"}`:          1,
			`tcpadvisor_netns_collector_success{collector="sockets",netns="host"}`: 1,
			`tcpadvisor_netns_collector_success{collector="sockets",netns="app"}`:  0,
		})
	}
	if n := strings.Count(log.String(), "level=WARN"); n != 1 || !strings.Contains(log.String(), "CAP_SYS_ADMIN") {
		t.Errorf("%d warnings over two scrapes, want one naming CAP_SYS_ADMIN:\n%s", n, log.String())
	}

	found.Namespaces = found.Namespaces[:1]
	if _, ok := gather(t, e)[`tcpadvisor_netns_privilege_missing{missing="CAP_SYS_ADMIN"}`]; ok {
		t.Error("CAP_SYS_ADMIN is still reported missing once no namespace needs entering")
	}
}
