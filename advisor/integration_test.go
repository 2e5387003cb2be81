package advisor_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tcpadvisor/tcpadvisor/advisor"
	"github.com/tcpadvisor/tcpadvisor/advisor/engine"
	"github.com/tcpadvisor/tcpadvisor/exporter"
	"github.com/tcpadvisor/tcpadvisor/internal/netnstest"
	"github.com/tcpadvisor/tcpadvisor/rules"
)

var discard = slog.New(slog.DiscardHandler)

// timeScale shrinks the bundled rules' windows so that the tests take
// seconds: a for: 5m holds after 3 s, a for: 15m after 9 s.
const timeScale = 0.01

// newHostAdvisor runs the real exporter on this namespace and the bundled
// rules over it.
func newHostAdvisor(t *testing.T) (*engine.Engine, *advisor.Advisor) {
	t.Helper()
	exp, err := exporter.NewFromOptions(exporter.Options{ProcPath: "/proc", Collectors: exporter.CollectorNames, Timeout: 5 * time.Second}, discard)
	if err != nil {
		t.Fatal(err)
	}
	registry := prometheus.NewRegistry()
	registry.MustRegister(exp)
	eng, err := engine.New(engine.Options{Bundled: rules.Files, Interval: 250 * time.Millisecond, TimeScale: timeScale, Logger: discard}, registry)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	return eng, advisor.New(eng, discard)
}

// cycle runs the engine for d, a cycle every 250 ms, and returns the advice
// at the end; it returns early once until reports true.
func cycle(t *testing.T, eng *engine.Engine, adv *advisor.Advisor, d time.Duration, until func(advisor.Report) bool) advisor.Report {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(d)
	for {
		if err := eng.Cycle(ctx, time.Now()); err != nil {
			t.Fatal(err)
		}
		r := adv.Report(ctx, time.Now())
		if (until != nil && until(r)) || time.Now().After(deadline) {
			return r
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// serve answers each request line of every connection on addr with a
// line, until the test ends. Clients close first.
func serve(t *testing.T, addr string) net.Listener {
	return netnstest.Serve(t, addr, func(c net.Conn) {
		buf := make([]byte, 64)
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
			if _, err := c.Write([]byte("+OK\r\n")); err != nil {
				return
			}
		}
	})
}

// request sends one request on c and reads the answer.
func request(t *testing.T, c net.Conn) {
	t.Helper()
	if _, err := c.Write([]byte("GET 1\r\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAtLeast(c, make([]byte, 5), 5); err != nil {
		t.Fatal(err)
	}
}

// narrowRange makes 1% of the usable range 10 ports, and turns off the
// loopback TIME_WAIT reuse that would hide the churn a real host shows.
func narrowRange(t *testing.T) {
	netnstest.Sysctl(t, "net.ipv4.tcp_tw_reuse", "0")
	netnstest.Sysctl(t, "net.ipv4.ip_local_port_range", "40000 40999")
}

func find(r advisor.Report, id advisor.ID, key, value string) *advisor.Advice {
	for i := range r.Advice {
		if r.Advice[i].ID == id && r.Advice[i].Target[key] == value {
			return &r.Advice[i]
		}
	}
	return nil
}

// TestIntegrationConnectionPerRequestFiresPool: a client that opens a
// connection per request to a local "Redis" and closes it first gets the
// pool advice naming 127.0.0.1:6379.
func TestIntegrationConnectionPerRequestFiresPool(t *testing.T) {
	if !netnstest.Enter(t) {
		return
	}
	narrowRange(t)
	ln := serve(t, "127.0.0.1:6379")
	for range 200 {
		c, err := net.Dial("tcp4", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		request(t, c)
		c.Close()
	}
	eng, adv := newHostAdvisor(t)
	r := cycle(t, eng, adv, 30*time.Second, func(r advisor.Report) bool {
		return find(r, advisor.Pool, "destination_port", "6379") != nil
	})
	pool := find(r, advisor.Pool, "destination_port", "6379")
	if pool == nil {
		t.Fatalf("no pool advice toward 127.0.0.1:6379 within 30 s; report: %+v", r)
	}
	if pool.Target["destination_address"] != "127.0.0.1" || pool.Evidence[0].Value < 150 {
		t.Errorf("pool advice = %+v, want 127.0.0.1:6379 with ~200 TIME_WAIT in evidence", pool)
	}
	if !strings.Contains(pool.Fixes[0].Text, "redis.NewClient") {
		t.Errorf("the fix is not specialised for Redis: %+v", pool.Fixes)
	}
}

// TestIntegrationPooledClientFiresNothing: the same requests over a pool of
// kept connections fire neither pool nor keepalive advice.
func TestIntegrationPooledClientFiresNothing(t *testing.T) {
	if !netnstest.Enter(t) {
		return
	}
	narrowRange(t)
	ln := serve(t, "127.0.0.1:6379")
	var pool []net.Conn
	for range 10 {
		c, err := net.Dial("tcp4", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		pool = append(pool, c)
	}
	for i := range 200 {
		request(t, pool[i%len(pool)])
	}
	eng, adv := newHostAdvisor(t)
	// Long enough for the pool rule's scaled for: and windows several times.
	r := cycle(t, eng, adv, 8*time.Second, nil)
	for _, a := range append(r.Advice, r.Pending...) {
		if a.ID == advisor.Pool || a.ID == advisor.UpstreamKeepalive || a.ID == advisor.PortPressure {
			t.Errorf("a pooled client got %s advice: %+v", a.ID, a)
		}
	}
}

// TestIntegrationListenerInEphemeralRange: a service listening inside the
// ephemeral range gets the advice to reserve its port.
func TestIntegrationListenerInEphemeralRange(t *testing.T) {
	if !netnstest.Enter(t) {
		return
	}
	narrowRange(t)
	serve(t, "127.0.0.1:40500")
	eng, adv := newHostAdvisor(t)
	r := cycle(t, eng, adv, 30*time.Second, func(r advisor.Report) bool {
		return find(r, advisor.ServicePortInEphemeralRange, "port", "40500") != nil
	})
	a := find(r, advisor.ServicePortInEphemeralRange, "port", "40500")
	if a == nil {
		t.Fatalf("no service-port-in-ephemeral-range advice for port 40500 within 30 s; report: %+v", r)
	}
	if len(a.Sysctls) != 1 || a.Sysctls[0].Name != "net.ipv4.ip_local_reserved_ports" || a.Sysctls[0].Value != "40500" {
		t.Errorf("sysctls = %+v, want ip_local_reserved_ports=40500", a.Sysctls)
	}
}

// TestIntegrationApply writes a justified sysctl in a namespace of its own
// and prints it before and after.
func TestIntegrationApply(t *testing.T) {
	if !netnstest.Enter(t) {
		return
	}
	netnstest.Sysctl(t, "net.ipv4.tcp_tw_reuse", "2")
	var out strings.Builder
	err := advisor.Apply(&out, "/proc", []advisor.SysctlChange{{Name: "net.ipv4.tcp_tw_reuse", Value: "1"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "net.ipv4.tcp_tw_reuse: 2 -> 1\n" {
		t.Errorf("Apply printed %q", got)
	}
	if b, _ := os.ReadFile("/proc/sys/net/ipv4/tcp_tw_reuse"); strings.TrimSpace(string(b)) != "1" {
		t.Errorf("tcp_tw_reuse is %q after Apply", b)
	}
}
