// Package netnstest runs a test inside a network namespace of its own, so
// that it can count every socket of the namespace, change its sysctls and
// use fixed loopback ports without touching the host; and serves and churns
// connections on that loopback.
package netnstest

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tcpadvisor/tcpadvisor/exporter/netns"
	"github.com/tcpadvisor/tcpadvisor/internal/sysctl"
)

// envVar tells the re-executed test binary which namespace it runs in.
const envVar = "TCPADVISOR_TEST_NETNS"

var counter atomic.Int32

// Enter runs the calling top-level test again, alone, in a new network
// namespace, and reports false: the caller returns at once. Inside that
// namespace Enter brings loopback up and reports true: the caller runs its
// body there. The namespace is deleted when the test ends.
//
// It skips the test where a namespace cannot be made (not root, no ip).
func Enter(t *testing.T) bool {
	t.Helper()
	if name := os.Getenv(envVar); name != "" {
		if err := netns.LoopbackUp(); err != nil {
			t.Fatalf("bring loopback up in %s: %v", name, err)
		}
		return true
	}
	if strings.Contains(t.Name(), "/") {
		t.Fatal("netnstest.Enter works for top-level tests only")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace; run ./test.sh as root")
	}
	ip, err := exec.LookPath("ip")
	if err != nil {
		t.Skip("needs ip (Debian package iproute2); ./test.sh installs it")
	}
	name := fmt.Sprintf("tcpadv-test-%d-%d", os.Getpid(), counter.Add(1))
	if out, err := exec.Command(ip, "netns", "add", name).CombinedOutput(); err != nil {
		t.Skipf("cannot create a network namespace: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command(ip, "netns", "delete", name).CombinedOutput(); err != nil {
			t.Errorf("delete network namespace %s: %v: %s", name, err, out)
		}
	})
	cmd := exec.Command(ip, "netns", "exec", name, os.Args[0],
		"-test.run", "^"+regexp.QuoteMeta(t.Name())+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), envVar+"="+name)
	out, err := cmd.CombinedOutput()
	t.Logf("%s, run in network namespace %s:\n%s", t.Name(), name, out)
	if err != nil {
		t.Fatalf("%s failed inside network namespace %s: %v", t.Name(), name, err)
	}
	if strings.Contains(string(out), "--- SKIP: "+t.Name()) {
		t.Skip("skipped inside the namespace (see the log)")
	}
	return false
}

// Sysctl writes value to a sysctl of the current network namespace, given
// as its dotted name.
func Sysctl(t *testing.T, name, value string) {
	t.Helper()
	if err := sysctl.Write(sysctl.DefaultProcPath, name, value); err != nil {
		t.Fatal(err)
	}
}

// Serve listens on addr, an IPv4 ADDRESS:PORT, and hands each connection to
// handle on a goroutine of its own, closing it after, until the test ends.
func Serve(t *testing.T, addr string, handle func(net.Conn)) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln
}

// Discard reads a connection until the peer closes it.
func Discard(c net.Conn) { io.Copy(io.Discard, c) }

// Churn opens n connections to addr, each closed by the client at once, as
// a client without a pool does, within 10 s.
func Churn(t *testing.T, addr string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for i := range n {
		if time.Now().After(deadline) {
			t.Fatalf("churn: %d connections in 10 s, want %d", i, n)
		}
		c, err := net.DialTimeout("tcp4", addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
}

// FreeAddress returns a 127.0.0.1 ADDRESS:PORT that nothing listens on.
func FreeAddress(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Add makes the named network namespace name (as ip netns add does), with
// loopback up and the sysctls given as name, value pairs set in it, for a
// test that runs programs in it while it stays in its own; the namespace is
// deleted when the test ends. It skips the test where a namespace cannot be
// made.
func Add(t *testing.T, name string, sysctls ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a network namespace; run ./test.sh as root")
	}
	ip, err := exec.LookPath("ip")
	if err != nil {
		t.Skip("needs ip (Debian package iproute2); ./test.sh installs it")
	}
	if out, err := exec.Command(ip, "netns", "add", name).CombinedOutput(); err != nil {
		t.Skipf("cannot make a network namespace: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command(ip, "netns", "delete", name).Run() })
	script := "ip link set lo up"
	for i := 0; i+1 < len(sysctls); i += 2 {
		path, err := sysctl.Path(sysctl.DefaultProcPath, sysctls[i])
		if err != nil {
			t.Fatal(err)
		}
		script += fmt.Sprintf(" && echo %q > %s", sysctls[i+1], path)
	}
	if out, err := exec.Command(ip, "netns", "exec", name, "sh", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("set up network namespace %s (%s): %v: %s", name, script, err, out)
	}
}
