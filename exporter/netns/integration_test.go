package netns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcpadvisor/tcpadvisor/exporter/sockdiag"
)

// requireRoot skips the test unless it can make network namespaces.
func requireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root to create and enter network namespaces; run ./test.sh as root")
	}
	for _, cmd := range []string{"ip", "unshare"} {
		if _, err := exec.LookPath(cmd); err != nil {
			tb.Skipf("needs %s (Debian packages iproute2, util-linux)", cmd)
		}
	}
}

// addNamed makes a namespace under /run/netns with loopback up, deleted when
// the test ends, and returns its name.
func addNamed(tb testing.TB, suffix string) string {
	tb.Helper()
	name := fmt.Sprintf("tcpadvisor-test-%d-%s", os.Getpid(), suffix)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		tb.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	tb.Cleanup(func() { deleteNamed(tb, name) })
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		tb.Fatalf("bring loopback up in %s: %v: %s", name, err, out)
	}
	return name
}

// deleteNamed deletes a namespace of addNamed, if still there.
func deleteNamed(tb testing.TB, name string) {
	tb.Helper()
	if _, err := os.Stat(filepath.Join("/run/netns", name)); errors.Is(err, os.ErrNotExist) {
		return
	}
	if out, err := exec.Command("ip", "netns", "delete", name).CombinedOutput(); err != nil {
		tb.Errorf("ip netns delete %s: %v: %s", name, err, out)
	}
}

// holdNamespaces starts n processes, each in a new network namespace of its
// own, killed when the test ends, and returns their PIDs once every one is
// in its namespace. Each ends by itself within a minute, and with the
// thread that started it (so with the test process): a crashed test leaves
// nothing behind for long.
func holdNamespaces(tb testing.TB, n int) []int {
	tb.Helper()
	host := inodeOf(tb, "/proc/self/ns/net")
	cmds := make([]*exec.Cmd, 0, n)
	tb.Cleanup(func() {
		for _, cmd := range cmds {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	for range n {
		cmd := exec.Command("unshare", "--net", "sleep", "60")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			tb.Fatalf("unshare --net: %v", err)
		}
		cmds = append(cmds, cmd)
	}
	pids := make([]int, n)
	deadline := time.Now().Add(10 * time.Second)
	for i, cmd := range cmds {
		pids[i] = cmd.Process.Pid
		for {
			var st unix.Stat_t
			err := unix.Stat(fmt.Sprintf("/proc/%d/ns/net", pids[i]), &st)
			if err != nil {
				tb.Fatalf("process %d of unshare --net: %v", pids[i], err)
			}
			if st.Ino != host {
				break
			}
			if time.Now().After(deadline) {
				tb.Fatalf("process %d still in the host's namespace after 10 s", pids[i])
			}
			time.Sleep(time.Millisecond)
		}
	}
	return pids
}

// inodeOf returns the inode that path opens.
func inodeOf(tb testing.TB, path string) uint64 {
	tb.Helper()
	ino, err := statInode(path)
	if err != nil {
		tb.Fatal(err)
	}
	return ino
}

// statInode returns the inode that path opens; unlike inodeOf, it may be
// called off the test's goroutine, inside Do.
func statInode(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// discoverAll discovers every namespace of the host.
func discoverAll(tb testing.TB, namer func(int) string) Discovery {
	tb.Helper()
	d, err := Discover("/proc", "/run/netns", 1<<20, namer)
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

// byName returns the namespace called name.
func byName(tb testing.TB, d Discovery, name string) Namespace {
	tb.Helper()
	for _, ns := range d.Namespaces {
		if ns.Name == name {
			return ns
		}
	}
	tb.Fatalf("no namespace %s discovered", name)
	return Namespace{}
}

// byPID returns the namespaces held by pids, in their order.
func byPID(tb testing.TB, d Discovery, pids []int) []Namespace {
	tb.Helper()
	var nss []Namespace
	for _, pid := range pids {
		i := slices.IndexFunc(d.Namespaces, func(ns Namespace) bool { return ns.PID == pid })
		if i < 0 {
			tb.Fatalf("the namespace of process %d not discovered", pid)
		}
		nss = append(nss, d.Namespaces[i])
	}
	return nss
}

// foreignThreads returns the threads of this process that are not in the
// host's namespace, as "TID: inode".
func foreignThreads(t *testing.T, host uint64) []string {
	t.Helper()
	tasks, err := filepath.Glob("/proc/self/task/*/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	var foreign []string
	for _, task := range tasks {
		var st unix.Stat_t
		if err := unix.Stat(task, &st); err != nil {
			continue // the thread ended
		}
		if st.Ino != host {
			foreign = append(foreign, fmt.Sprintf("%s: %d", task, st.Ino))
		}
	}
	return foreign
}

// workload is what one test namespace serves.
type workload struct {
	portRange string
	ln        net.Listener
	inode     uint64 // the listener's socket inode
}

// serve sets the port range of ns and, inside it, listens on loopback and
// opens conns connections to the listener, all closed when the test ends.
// The sockets are made inside Do and used after it: they keep ns.
func serve(t *testing.T, ns Namespace, portRange string, conns int) workload {
	t.Helper()
	w := workload{portRange: portRange}
	err := Do(t.Context(), ns, func() error {
		if err := os.WriteFile("/proc/sys/net/ipv4/ip_local_port_range", []byte(portRange), 0o644); err != nil {
			return err
		}
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return err
		}
		t.Cleanup(func() { ln.Close() })
		w.ln = ln
		for range conns {
			c, err := net.Dial("tcp4", ln.Addr().String())
			if err != nil {
				return err
			}
			t.Cleanup(func() { c.Close() })
		}
		return nil
	})
	if err != nil {
		t.Fatalf("serve in %s: %v", ns.Name, err)
	}
	for range conns {
		c, err := w.ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
	raw, err := w.ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	raw.Control(func(fd uintptr) {
		var st unix.Stat_t
		if err := unix.Fstat(int(fd), &st); err != nil {
			t.Fatal(err)
		}
		w.inode = st.Ino
	})
	return w
}

// tcpInuse returns the "TCP: inuse" count of a sockstat file.
func tcpInuse(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "TCP:" && f[1] == "inuse" {
			return strconv.Atoi(f[2])
		}
	}
	return 0, fmt.Errorf("%s: no TCP inuse line in %q", path, b)
}

// hasSocket reports whether a /proc/net/tcp file lists the socket inode.
func hasSocket(path string, inode uint64) (bool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return false, err
	}
	for line := range strings.Lines(string(b)) {
		// sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
		if f := strings.Fields(line); len(f) > 9 && f[9] == strconv.FormatUint(inode, 10) {
			return true, nil
		}
	}
	return false, nil
}

func TestIntegrationNamespaces(t *testing.T) {
	requireRoot(t)
	const conns = 3
	names := []string{addNamed(t, "a"), addNamed(t, "b")}
	held := holdNamespaces(t, 1)[0]
	d := discoverAll(t, func(pid int) string {
		if pid == held {
			return "unit-under-test"
		}
		return ""
	})
	host := d.Namespaces[0]

	t.Run("process-held namespace named by the namer", func(t *testing.T) {
		ns := byName(t, d, "unit-under-test")
		if want := fmt.Sprintf("/proc/%d/ns/net", held); ns.PID != held || ns.Path != want || ns.Inode != inodeOf(t, want) {
			t.Errorf("%+v, want PID %d at %s", ns, held, want)
		}
	})

	workloads := map[string]workload{}
	for i, name := range names {
		ns := byName(t, d, name)
		if want := "/run/netns/" + name; ns.Path != want || ns.PID != 0 {
			t.Errorf("%+v, want path %s, PID 0", ns, want)
		}
		workloads[name] = serve(t, ns, fmt.Sprintf("%d %d", 20000+10000*i, 20999+10000*i), conns)
	}

	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			ns, w := byName(t, d, name), workloads[name]
			// The thread that runs Do must come back where it was.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			before := inodeOf(t, "/proc/thread-self/ns/net")
			var (
				portRange                  string
				inuse                      int
				inThreadSelf, inSelf       bool
				threadInode, leaderOfInode uint64
				conn                       sockdiag.Conn
			)
			err := Do(t.Context(), ns, func() error {
				b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
				if err != nil {
					return err
				}
				portRange = strings.Join(strings.Fields(string(b)), " ")
				if inuse, err = tcpInuse("/proc/thread-self/net/sockstat"); err != nil {
					return err
				}
				if inThreadSelf, err = hasSocket("/proc/thread-self/net/tcp", w.inode); err != nil {
					return err
				}
				if inSelf, err = hasSocket("/proc/self/net/tcp", w.inode); err != nil {
					return err
				}
				if threadInode, err = statInode("/proc/thread-self/ns/net"); err != nil {
					return err
				}
				if leaderOfInode, err = statInode("/proc/self/ns/net"); err != nil {
					return err
				}
				conn, err = sockdiag.Dial()
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if after := inodeOf(t, "/proc/thread-self/ns/net"); after != before || before != host.Inode {
				t.Errorf("calling thread in namespace %d before Do, %d after; the host's is %d", before, after, host.Inode)
			}
			if threadInode != ns.Inode || leaderOfInode != host.Inode {
				t.Errorf("inside Do: thread in %d, leader in %d; want %d, %d", threadInode, leaderOfInode, ns.Inode, host.Inode)
			}
			if portRange != w.portRange {
				t.Errorf("ip_local_port_range %q inside Do, want the namespace's %q", portRange, w.portRange)
			}
			// The listener, and each connection at both ends.
			if want := 1 + 2*conns; inuse != want {
				t.Errorf("/proc/thread-self/net/sockstat: TCP inuse %d, want %d", inuse, want)
			}
			if !inThreadSelf || inSelf {
				t.Errorf("the listener in /proc/thread-self/net/tcp: %t, in /proc/self/net/tcp: %t; want true, false", inThreadSelf, inSelf)
			}

			// Dumped after Do, from whatever thread: the socket kept ns.
			client := sockdiag.NewClient(conn)
			defer client.Close()
			port := netip.MustParseAddrPort(w.ln.Addr().String()).Port()
			lo, hi := portBounds(t, w.portRange)
			var sockets int
			err = client.Dump(t.Context(), unix.AF_INET, sockdiag.Only(sockdiag.Listen, sockdiag.Established), func(s *sockdiag.Socket) {
				sockets++
				switch {
				case s.Local.Port() == port && (s.State == sockdiag.Listen || s.Remote.Port() >= lo && s.Remote.Port() <= hi):
				case s.Remote.Port() == port && s.Local.Port() >= lo && s.Local.Port() <= hi:
				default:
					t.Errorf("socket %s %s -> %s is not of this namespace's workload", s.State, s.Local, s.Remote)
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			if want := 1 + 2*conns; sockets != want {
				t.Errorf("sock_diag dump: %d sockets, want %d", sockets, want)
			}
		})
	}
	if f := foreignThreads(t, host.Inode); len(f) > 0 {
		t.Errorf("threads left in other namespaces: %v", f)
	}
}

// portBounds parses an ip_local_port_range value.
func portBounds(t *testing.T, r string) (lo, hi uint16) {
	t.Helper()
	if _, err := fmt.Sscanf(r, "%d %d", &lo, &hi); err != nil {
		t.Fatalf("port range %q: %v", r, err)
	}
	return lo, hi
}

func TestIntegrationManyNamespaces(t *testing.T) {
	requireRoot(t)
	const n, max = 200, 50
	pids := holdNamespaces(t, n)
	procs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	d, err := Discover("/proc", "/run/netns", max, nil)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Discover: %d namespaces kept, %d over the cap, %d processes unreadable, among %d processes, in %v",
		len(d.Namespaces), d.Overflow, d.Unreadable, len(procs), took)
	// Other namespaces may exist besides the host's and ours.
	if len(d.Namespaces) != max || d.Overflow < n+1-max {
		t.Errorf("%d namespaces kept, %d over the cap; want %d, at least %d", len(d.Namespaces), d.Overflow, max, n+1-max)
	}

	all := byPID(t, discoverAll(t, nil), pids)
	start = time.Now()
	for _, ns := range all[:max] {
		var inode uint64
		if err := Do(t.Context(), ns, func() error {
			var err error
			inode, err = statInode("/proc/thread-self/ns/net")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if inode != ns.Inode {
			t.Errorf("%s: Do ran in namespace %d", ns.Name, inode)
		}
	}
	took = time.Since(start)
	t.Logf("Do on %d namespaces: %v, %v each", max, took, took/max)
	if took > 10*time.Second {
		t.Errorf("Do on %d namespaces took %v, want under 10 s", max, took)
	}
}

func TestIntegrationConcurrentDo(t *testing.T) {
	requireRoot(t)
	const goroutines, calls = 8, 50
	held := holdNamespaces(t, 16)
	nss := byPID(t, discoverAll(t, nil), held)
	host := inodeOf(t, "/proc/self/ns/net")
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range calls {
				ns := nss[(g*calls+i)%len(nss)]
				var inode uint64
				var onLeader bool
				err := Do(t.Context(), ns, func() error {
					onLeader = unix.Gettid() == unix.Getpid()
					var err error
					inode, err = statInode("/proc/thread-self/ns/net")
					return err
				})
				if err != nil {
					t.Error(err)
					return
				}
				if inode != ns.Inode || onLeader {
					t.Errorf("%s (inode %d): fn ran in namespace %d, on the leader thread: %t", ns.Name, ns.Inode, inode, onLeader)
				}
			}
		})
	}
	wg.Wait()
	if f := foreignThreads(t, host); len(f) > 0 {
		t.Errorf("threads left in other namespaces: %v", f)
	}
}

func TestIntegrationVanished(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name string
		// setup makes the namespaces: held by processes, or named.
		// vanish then makes one of those Discover found go away or change,
		// and returns it as found.
		setup  func(t *testing.T) (held []int, named string)
		vanish func(t *testing.T, d Discovery, held []int, named string) Namespace
	}{{
		name:  "deleted",
		setup: func(t *testing.T) ([]int, string) { return nil, addNamed(t, "deleted") },
		vanish: func(t *testing.T, d Discovery, _ []int, named string) Namespace {
			deleteNamed(t, named)
			return byName(t, d, named)
		},
	}, {
		name:  "deleted and added again under its name",
		setup: func(t *testing.T) ([]int, string) { return nil, addNamed(t, "readded") },
		vanish: func(t *testing.T, d Discovery, _ []int, named string) Namespace {
			deleteNamed(t, named)
			if out, err := exec.Command("ip", "netns", "add", named).CombinedOutput(); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			return byName(t, d, named)
		},
	}, {
		name:  "process exited",
		setup: func(t *testing.T) ([]int, string) { return holdNamespaces(t, 1), "" },
		vanish: func(t *testing.T, d Discovery, held []int, _ string) Namespace {
			p, err := os.FindProcess(held[0])
			if err != nil {
				t.Fatal(err)
			}
			p.Kill()
			p.Wait()
			return byPID(t, d, held)[0]
		},
	}, {
		name:  "PID now of a process in another namespace",
		setup: func(t *testing.T) ([]int, string) { return holdNamespaces(t, 2), "" },
		vanish: func(t *testing.T, d Discovery, held []int, _ string) Namespace {
			nss := byPID(t, d, held)
			ns := nss[0]
			ns.Path = nss[1].Path
			return ns
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			held, named := tt.setup(t)
			ns := tt.vanish(t, discoverAll(t, nil), held, named)
			ran := false
			err := Do(t.Context(), ns, func() error {
				ran = true
				return nil
			})
			if !errors.Is(err, ErrGone) || ran {
				t.Errorf("Do: %v, fn ran: %t; want ErrGone and not run", err, ran)
			}
			t.Log(err)
		})
	}
}

func TestIntegrationDoDeadline(t *testing.T) {
	requireRoot(t)
	held := holdNamespaces(t, 1)
	ns := byPID(t, discoverAll(t, nil), held)[0]
	host := inodeOf(t, "/proc/self/ns/net")
	release, seen := make(chan struct{}), make(chan uint64, 1)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := Do(ctx, ns, func() error {
		<-release
		inode, err := statInode("/proc/thread-self/ns/net")
		seen <- inode
		return err
	})
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Errorf("Do returned %v after %v, want the deadline's error after 50ms", err, time.Since(start))
	}
	if f := foreignThreads(t, host); len(f) != 1 {
		t.Errorf("while fn blocks, threads in other namespaces: %v; want fn's alone", f)
	}
	close(release)
	if inode := <-seen; inode != ns.Inode {
		t.Errorf("fn ran on in namespace %d, want %d", inode, ns.Inode)
	}
	deadline := time.Now().Add(2 * time.Second)
	for len(foreignThreads(t, host)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("2 s after fn ended, threads in other namespaces: %v", foreignThreads(t, host))
		}
		time.Sleep(time.Millisecond)
	}

	done, cancel := context.WithCancel(t.Context())
	cancel()
	ran := false
	if err := Do(done, ns, func() error { ran = true; return nil }); !errors.Is(err, context.Canceled) || ran {
		t.Errorf("Do with a done context: %v, fn ran: %t; want context.Canceled and not run", err, ran)
	}
}

// permissionEnv carries the namespace that the re-executed
// TestIntegrationPermission tries to enter without CAP_SYS_ADMIN.
const permissionEnv = "TCPADVISOR_NETNS_TEST_ENTER"

func TestIntegrationPermission(t *testing.T) {
	if v := os.Getenv(permissionEnv); v != "" {
		var ns Namespace
		if _, err := fmt.Sscanf(v, "%s %d %d", &ns.Path, &ns.Dev, &ns.Inode); err != nil {
			t.Fatal(err)
		}
		ns.Name = "held"
		ran := false
		err := Do(t.Context(), ns, func() error { ran = true; return nil })
		if !errors.Is(err, ErrPermission) || !errors.Is(err, unix.EPERM) || !strings.Contains(err.Error(), "needs CAP_SYS_ADMIN") || ran {
			t.Errorf("Do without CAP_SYS_ADMIN: %v, fn ran: %t; want ErrPermission and EPERM", err, ran)
		}
		t.Log(err)
		host := discoverAll(t, nil).Namespaces[0]
		if err := Do(t.Context(), host, func() error { ran = true; return nil }); err != nil || !ran {
			t.Errorf("Do in the host's namespace without CAP_SYS_ADMIN: %v, fn ran: %t; want it run", err, ran)
		}
		return
	}
	requireRoot(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("needs setpriv (Debian package util-linux) to drop CAP_SYS_ADMIN")
	}
	held := holdNamespaces(t, 1)
	ns := byPID(t, discoverAll(t, nil), held)[0]
	// Root keeps its other capabilities, so that it may still open the
	// namespace of a process it does not own.
	cmd := exec.Command(setpriv, "--inh-caps=-sys_admin", "--bounding-set=-sys_admin",
		os.Args[0], "-test.run=^TestIntegrationPermission$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d %d", permissionEnv, ns.Path, ns.Dev, ns.Inode))
	out, err := cmd.CombinedOutput()
	t.Logf("run without CAP_SYS_ADMIN:\n%s", out)
	if err != nil || !strings.Contains(string(out), "--- PASS: TestIntegrationPermission") {
		t.Errorf("without CAP_SYS_ADMIN: %v", err)
	}
}

func TestDoKeepsTheLeaderThread(t *testing.T) {
	host := discoverAll(t, nil).Namespaces[0]
	var nss []Namespace
	if os.Geteuid() == 0 {
		requireRoot(t)
		held := holdNamespaces(t, 1)
		nss = byPID(t, discoverAll(t, nil), held)
	}
	for _, ns := range append([]Namespace{host}, nss...) {
		var err error
		var tid, leaderAfter, inode uint64
		runOnLeader(func() {
			if unix.Gettid() != unix.Getpid() {
				err = errors.New("TestMain does not run on the leader thread")
				return
			}
			// What Do's goroutine runs, here as if it landed on the leader.
			err = inside(ns, func() error {
				tid = uint64(unix.Gettid())
				var err error
				inode, err = statInode("/proc/thread-self/ns/net")
				return err
			})
			if err == nil {
				leaderAfter, err = statInode("/proc/thread-self/ns/net")
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if tid == uint64(os.Getpid()) || inode != ns.Inode || leaderAfter != host.Inode {
			t.Errorf("%s: fn on thread %d (the leader is %d) in namespace %d, leader in %d after; want %d, %d",
				ns.Name, tid, os.Getpid(), inode, leaderAfter, ns.Inode, host.Inode)
		}
	}
}
