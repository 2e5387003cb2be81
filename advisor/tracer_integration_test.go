package advisor_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcpadvisor/tcpadvisor/advisor"
	"github.com/tcpadvisor/tcpadvisor/exporter"
	"github.com/tcpadvisor/tcpadvisor/exporter/census"
	"github.com/tcpadvisor/tcpadvisor/internal/cgrouptest"
	"github.com/tcpadvisor/tcpadvisor/internal/netnstest"
	"github.com/tcpadvisor/tcpadvisor/internal/pipeline"
	"github.com/tcpadvisor/tcpadvisor/internal/proctest"
)

// churnClientEnv makes the test binary a per-request client: it listens on
// 127.0.0.1:6379 of its network namespace and connects to it, closing
// first, every 5 ms for churnFor (at most churnAttempts times), and prints
// how many connects succeeded and how many failed with EADDRNOTAVAIL.
const (
	churnClientEnv = "TCPADVISOR_TEST_CHURN_CLIENT"
	churnFor       = 6 * time.Second
	churnAttempts  = 1200
	churnProcess   = "tcpadv-churner"
)

type churnResult struct{ Opened, AddrNotAvail int }

func TestMain(m *testing.M) {
	if os.Getenv(churnClientEnv) != "" {
		os.Exit(runChurnClient())
	}
	os.Exit(m.Run())
}

func runChurnClient() int {
	ln, err := net.Listen("tcp4", "127.0.0.1:6379")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	var r churnResult
	for end, i := time.Now().Add(churnFor), 0; time.Now().Before(end) && i < churnAttempts; i++ {
		// connect() itself: net.Dial retries on EADDRNOTAVAIL, and the
		// tracer counts every connect().
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		switch err := unix.Connect(fd, &unix.SockaddrInet4{Port: 6379, Addr: [4]byte{127, 0, 0, 1}}); {
		case err == nil:
			r.Opened++
		case errors.Is(err, unix.EADDRNOTAVAIL):
			r.AddrNotAvail++
		default:
			fmt.Fprintln(os.Stderr, "connect:", err)
			return 1
		}
		unix.Close(fd)
		time.Sleep(5 * time.Millisecond)
	}
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		return 1
	}
	return 0
}

// TestIntegrationTracerAdvice runs a per-request client, under a process
// name and a cgroup of its own, in a network namespace whose ephemeral range
// holds 10 ports and that reuses no TIME_WAIT port, while the daemon's
// pipeline, with the tracer and --collector.netns, runs in the host's. The
// connect-failures advice fires for its destination in its namespace and
// names it; the churn is one pool advice that names it too, from the
// tracer, although its connections live a millisecond.
func TestIntegrationTracerAdvice(t *testing.T) {
	netns := fmt.Sprintf("tcpadv-advice-%d", os.Getpid())
	netnstest.Add(t, netns, "net.ipv4.ip_local_port_range", "40000 40009", "net.ipv4.tcp_tw_reuse", "0")

	// The client's cgroup exists before the exporter's first walk of the
	// cgroup tree names every unit: a later one is named by a walk at most
	// every 10 s.
	unit := fmt.Sprintf("tcpadvisor-advicetest-%d.service", os.Getpid())
	cgroup := cgrouptest.Child(t, unit)
	p, err := pipeline.New(pipeline.Options{
		Exporter: exporter.Options{
			ProcPath: "/proc", Collectors: exporter.CollectorNames, Timeout: 5 * time.Second,
			Owners: true, Netns: true, NetnsMax: 1000, RunNetnsPath: "/run/netns",
			Limits: census.Limits{TopDestinations: 20, TopOwners: 3, MaxServicePorts: 100, TopPeers: 3},
		},
		Interval: 250 * time.Millisecond, TimeScale: timeScale, Logger: discard,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if tracerUp(t, p) != 1 {
		t.Skip("the connection tracer does not load here (see tcpadvisor_tracer_down_reason)")
	}

	cmd := exec.Command("ip", "netns", "exec", netns, proctest.Renamed(t, churnProcess))
	cmd.Env = append(os.Environ(), churnClientEnv+"=1")
	cmd.SysProcAttr = cgrouptest.Into(t, cgroup)
	cmd.Stderr = os.Stderr
	var out strings.Builder
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	// Cycle while the client churns, and a little after: the advice must
	// have fired by then, each in the client's namespace.
	var failures, pool *advisor.Advice
	deadline := time.Now().Add(churnFor + 10*time.Second)
	named := func(o *advisor.Owner) bool { return o != nil && o.Unit == unit && o.Process == churnProcess }
	for !(failures != nil && named(failures.Owner) && pool != nil && named(pool.Client)) && time.Now().Before(deadline) {
		if err := p.Cycle(t.Context(), time.Now()); err != nil {
			t.Logf("cycle: %v", err)
		}
		r := p.Report(t.Context(), time.Now())
		for i := range r.Advice {
			a := &r.Advice[i]
			if a.Scope["netns"] != netns || a.Target["destination_port"] != "6379" {
				continue
			}
			switch a.ID {
			case advisor.ConnectFailures:
				failures = a
			case advisor.Pool:
				pool = a
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	if err := <-exited; err != nil {
		t.Fatalf("the client failed: %v", err)
	}
	var r churnResult
	if err := json.Unmarshal([]byte(out.String()), &r); err != nil {
		t.Fatalf("the client said %q: %v", out.String(), err)
	}
	t.Logf("the client saw %+v", r)
	if r.AddrNotAvail == 0 {
		t.Fatalf("the client saw no EADDRNOTAVAIL in a 10-port range: %+v", r)
	}
	if failures == nil {
		t.Fatalf("no connect-failures advice toward 127.0.0.1:6379 in namespace %s", netns)
	}
	if failures.Severity != "critical" || !named(failures.Owner) {
		t.Errorf("connect-failures: severity %s, owner %+v; want critical, %s (process %s)", failures.Severity, failures.Owner, unit, churnProcess)
	}
	if !strings.Contains(failures.Recommendation, churnProcess) || !strings.Contains(failures.Recommendation, "EADDRNOTAVAIL") {
		t.Errorf("connect-failures recommendation does not name the process and the error: %q", failures.Recommendation)
	}
	if pool == nil || !named(pool.Client) {
		t.Errorf("pool advice %+v: want one naming %s (process %s) as its client", pool, unit, churnProcess)
	}
}

// tracerUp returns tcpadvisor_tracer_up after a first cycle.
func tracerUp(t *testing.T, p *pipeline.Pipeline) float64 {
	t.Helper()
	if err := p.Cycle(t.Context(), time.Now()); err != nil {
		t.Logf("cycle: %v", err)
	}
	samples, err := p.Query(t.Context(), "tcpadvisor_tracer_up")
	if err != nil || len(samples) == 0 {
		return 0
	}
	return samples[0].Value
}
