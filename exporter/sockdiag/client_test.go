package sockdiag_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcpadvisor/tcpadvisor/exporter/sockdiag"
	"github.com/tcpadvisor/tcpadvisor/exporter/sockdiag/sockdiagtest"
	"github.com/tcpadvisor/tcpadvisor/internal/cgrouptest"
	"golang.org/x/sys/unix"
)

var sock = sockdiagtest.NewSocket

func dumpAll(t *testing.T, c *sockdiag.Client, family uint8, states sockdiag.StateSet) ([]sockdiag.Socket, error) {
	t.Helper()
	var got []sockdiag.Socket
	err := c.Dump(context.Background(), family, states, func(s *sockdiag.Socket) { got = append(got, *s) })
	return got, err
}

func TestDumpFiltersByFamilyAndState(t *testing.T) {
	population := []sockdiag.Socket{
		sock(sockdiag.Listen, "0.0.0.0:80", "0.0.0.0:0"),
		sock(sockdiag.Established, "10.0.0.1:80", "10.0.0.2:40000"),
		sock(sockdiag.TimeWait, "10.0.0.1:41000", "10.0.0.5:6379"),
		sock(sockdiag.Established, "[2001:db8::1]:80", "[2001:db8::2]:40000"),
	}
	population[0].RecvQueue, population[0].SendQueue = 3, 4096
	tests := []struct {
		name   string
		family uint8
		states sockdiag.StateSet
		want   []sockdiag.Socket
	}{
		{"ipv4 listeners", unix.AF_INET, sockdiag.Only(sockdiag.Listen), population[:1]},
		{"ipv4 all but listeners", unix.AF_INET, sockdiag.AllStates.Without(sockdiag.Listen), population[1:3]},
		{"ipv6 everything", unix.AF_INET6, sockdiag.AllStates, population[3:]},
		{"time_wait only", unix.AF_INET, sockdiag.Only(sockdiag.TimeWait), population[2:3]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := &sockdiagtest.Conn{Sockets: population}
			got, err := dumpAll(t, sockdiag.NewClient(conn), tt.family, tt.states)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d sockets %v, want %v", len(got), got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("socket %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestDumpSpansManyDatagrams(t *testing.T) {
	const n = 5000 // about 14 datagrams of 32 KiB
	population := make([]sockdiag.Socket, n)
	for i := range population {
		population[i] = sock(sockdiag.TimeWait, "127.0.0.1:40000", "127.0.0.1:6379")
		population[i].Local = netip.AddrPortFrom(population[i].Local.Addr(), uint16(30000+i))
	}
	got, err := dumpAll(t, sockdiag.NewClient(&sockdiagtest.Conn{Sockets: population}), unix.AF_INET, sockdiag.AllStates)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("got %d sockets, want %d", len(got), n)
	}
	if got[n-1].Local.Port() != 30000+n-1 {
		t.Errorf("last socket %v, want local port %d", got[n-1], 30000+n-1)
	}
}

func TestDumpFaults(t *testing.T) {
	population := []sockdiag.Socket{sock(sockdiag.Established, "10.0.0.1:80", "10.0.0.2:40000")}
	tests := []struct {
		name string
		conn *sockdiagtest.Conn
		want error
	}{
		{"permission denied replied by the kernel", &sockdiagtest.Conn{Errno: unix.EPERM}, unix.EPERM},
		{"no buffer space on receive", &sockdiagtest.Conn{ReceiveErr: unix.ENOBUFS}, unix.ENOBUFS},
		{"send refused", &sockdiagtest.Conn{SendErr: unix.EACCES}, unix.EACCES},
		{"interrupted dump", &sockdiagtest.Conn{Interrupt: true}, sockdiag.ErrDumpInterrupted},
		{"family not supported", &sockdiagtest.Conn{Errno: unix.ENOENT}, unix.ENOENT},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.conn.Sockets = population
			_, err := dumpAll(t, sockdiag.NewClient(tt.conn), unix.AF_INET, sockdiag.AllStates)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestDumpHonoursDeadline(t *testing.T) {
	conn := &sockdiagtest.Conn{Block: true}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := sockdiag.NewClient(conn).Dump(ctx, unix.AF_INET, sockdiag.AllStates, func(*sockdiag.Socket) {})
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("err = %v, want a deadline error", err)
	}
}

func TestDumpAllocatesNothingPerSocket(t *testing.T) {
	population := make([]sockdiag.Socket, 10000)
	for i := range population {
		population[i] = sock(sockdiag.TimeWait, "127.0.0.1:40000", "127.0.0.1:6379")
	}
	client := sockdiag.NewClient(&sockdiagtest.Conn{Sockets: population})
	count := 0
	fn := func(*sockdiag.Socket) { count++ }
	allocs := testing.AllocsPerRun(5, func() {
		if err := client.Dump(context.Background(), unix.AF_INET, sockdiag.AllStates, fn); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 1 {
		t.Errorf("a dump of 10,000 sockets made %.0f allocations, want at most 1", allocs)
	}
}

func TestStateSet(t *testing.T) {
	if got, want := sockdiag.AllStates, sockdiag.StateSet(0xffe); got != want {
		t.Errorf("AllStates = %#x, want %#x (TCPF_ALL less the unused bit 0)", got, want)
	}
	if got, want := sockdiag.AllStates.Without(sockdiag.Listen), sockdiag.StateSet(0xffe&^(1<<10)); got != want {
		t.Errorf("AllStates.Without(Listen) = %#x, want %#x", got, want)
	}
	var labels []string
	for _, s := range sockdiag.States {
		labels = append(labels, s.String())
	}
	want := []string{"established", "syn_sent", "syn_recv", "fin_wait1", "fin_wait2", "time_wait", "close", "close_wait", "last_ack", "listen", "closing"}
	if !slices.Equal(labels, want) {
		t.Errorf("state labels = %v, want %v", labels, want)
	}
	if got := sockdiag.State(12).String(); got != "state_12" {
		t.Errorf("unknown state label = %q", got)
	}
}

// kernelClient returns a client of the real kernel's sock_diag, closed at the
// end of the test, or skips the test where it cannot be opened.
func kernelClient(t *testing.T) *sockdiag.Client {
	t.Helper()
	conn, err := sockdiag.Dial()
	if err != nil {
		t.Skipf("cannot open NETLINK_SOCK_DIAG here: %v", err)
	}
	c := sockdiag.NewClient(conn)
	t.Cleanup(func() { c.Close() })
	return c
}

// dialLoopback returns a listener on a free loopback port and a connection
// to it, both closed at the end of the test.
func dialLoopback(t *testing.T) (net.Listener, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	client, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return ln, client
}

// TestIntegrationDumpFindsLoopbackSockets dumps the real kernel and finds a
// listener and both ends of a connection this test opened.
func TestIntegrationDumpFindsLoopbackSockets(t *testing.T) {
	ln, client := dialLoopback(t)
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()

	c := kernelClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	want := map[string]sockdiag.State{
		ln.Addr().String() + " " + "0.0.0.0:0":                           sockdiag.Listen,
		client.LocalAddr().String() + " " + client.RemoteAddr().String(): sockdiag.Established,
		server.LocalAddr().String() + " " + server.RemoteAddr().String(): sockdiag.Established,
	}
	for _, states := range []sockdiag.StateSet{sockdiag.Only(sockdiag.Listen), sockdiag.AllStates.Without(sockdiag.Listen)} {
		err = c.Dump(ctx, unix.AF_INET, states, func(s *sockdiag.Socket) {
			key := s.Local.String() + " " + s.Remote.String()
			if state, ok := want[key]; ok && state == s.State {
				delete(want, key)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(want) > 0 {
		t.Errorf("sockets not found in the dump: %v", want)
	}
}

func TestIntegrationDumpOfUnknownFamilyIsRefused(t *testing.T) {
	c := kernelClient(t)
	err := c.Dump(context.Background(), unix.AF_UNIX+100, sockdiag.AllStates, func(*sockdiag.Socket) {})
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		t.Fatalf("err = %v, want a kernel errno", err)
	}
}

func TestDumpReadsCgroupIDOnlyWhenAsked(t *testing.T) {
	full := sock(sockdiag.Established, "10.0.0.1:41000", "10.0.0.5:6379")
	full.Inode, full.CgroupID = 4711, 8123
	timeWait := sock(sockdiag.TimeWait, "10.0.0.1:41001", "10.0.0.5:6379")
	population := []sockdiag.Socket{full, timeWait}
	for _, read := range []bool{false, true} {
		c := sockdiag.NewClient(&sockdiagtest.Conn{Sockets: population})
		c.ReadCgroupIDs(read)
		got, err := dumpAll(t, c, unix.AF_INET, sockdiag.AllStates)
		if err != nil {
			t.Fatal(err)
		}
		wantFull := full
		if !read {
			wantFull.CgroupID = 0
		}
		if len(got) != 2 || got[0] != wantFull || got[1] != timeWait {
			t.Errorf("ReadCgroupIDs(%v): got %+v, want %+v and %+v", read, got, wantFull, timeWait)
		}
	}
}

// TestIntegrationDumpReportsInodeAndCgroup finds this test's own connection
// in the real kernel's dump with the inode of its descriptor and the ID of
// the test's cgroup v2.
func TestIntegrationDumpReportsInodeAndCgroup(t *testing.T) {
	_, client := dialLoopback(t)
	file, err := client.(*net.TCPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(file.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	wantCgroup := ownCgroupID(t)

	c := kernelClient(t)
	c.ReadCgroupIDs(true)
	var found *sockdiag.Socket
	err = c.Dump(context.Background(), unix.AF_INET, sockdiag.Only(sockdiag.Established), func(s *sockdiag.Socket) {
		if s.Local.String() == client.LocalAddr().String() {
			found = new(*s)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case found == nil:
		t.Fatal("the test's connection is not in the dump")
	case uint64(found.Inode) != st.Ino:
		t.Errorf("inode %d, want %d (fstat of the descriptor)", found.Inode, st.Ino)
	case found.CgroupID != wantCgroup:
		t.Errorf("cgroup ID %d, want %d (inode of this process's cgroup v2 directory)", found.CgroupID, wantCgroup)
	}
}

// ownCgroupID returns the ID of the test process's cgroup v2: the inode
// number of its directory in the cgroup v2 hierarchy.
func ownCgroupID(t *testing.T) uint64 {
	t.Helper()
	root := cgrouptest.Root(t)
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Skipf("no /proc/self/cgroup: %v", err)
	}
	var path string
	for line := range strings.Lines(string(b)) {
		if p, ok := strings.CutPrefix(strings.TrimSpace(line), "0::"); ok {
			path = p
		}
	}
	if path == "" {
		t.Skip("this process has no cgroup v2")
	}
	var st unix.Stat_t
	if err := unix.Stat(root+path, &st); err != nil {
		t.Skipf("cgroup v2 directory of this process: %v", err)
	}
	return st.Ino
}
