package owners

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/tcpadvisor/tcpadvisor/internal/cgrouptest"
	"github.com/tcpadvisor/tcpadvisor/internal/netnstest"
	"golang.org/x/sys/unix"
)

// helperEnv tells the re-executed test binary what TestHelperProcess does.
const helperEnv = "TCPADVISOR_OWNERS_HELPER"

// TestHelperProcess is no test: it is the body of the processes that the
// integration tests start from the test binary.
//
// "dial ADDRESS" waits for a line on stdin (the test moves it to a cgroup
// meanwhile), dials ADDRESS, says "connected", and holds the connection
// until stdin closes. "status" prints the Status of a Resolver over the
// real /proc and cgroup tree as JSON.
func TestHelperProcess(t *testing.T) {
	mode, arg, _ := strings.Cut(os.Getenv(helperEnv), " ")
	switch mode {
	case "":
		return
	case "dial":
		in := bufio.NewReader(os.Stdin)
		if _, err := in.ReadString('\n'); err != nil {
			os.Exit(2)
		}
		c, err := net.Dial("tcp4", arg)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Println("connected")
		io.Copy(io.Discard, in)
		c.Close()
	case "status":
		r := New(Options{CgroupPath: arg})
		r.Refresh(context.Background())
		// Every process read: the second Refresh cannot undo a full pass.
		r.Refresh(context.Background())
		if err := json.NewEncoder(os.Stdout).Encode(r.Status()); err != nil {
			os.Exit(2)
		}
	}
	os.Exit(0)
}

// socketInode returns the inode of the only socket that process pid holds.
func socketInode(t *testing.T, pid int) uint32 {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var inodes []uint32
	for _, e := range entries {
		link, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		if inode, ok := parseSocketLink([]byte(link)); ok {
			inodes = append(inodes, inode)
		}
	}
	if len(inodes) != 1 {
		t.Fatalf("process %d holds sockets %v, want one", pid, inodes)
	}
	return inodes[0]
}

// dumpCgroupIDs asks sock_diag for every IPv4 TCP socket and returns the
// INET_DIAG_CGROUP_ID of each, by inode: the test checks the kernel's id
// against the cgroup directory's inode rather than take it on trust.
func dumpCgroupIDs(t *testing.T) map[uint32]uint64 {
	t.Helper()
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_INET_DIAG)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	// struct nlmsghdr, then struct inet_diag_req_v2 (56 bytes).
	req := make([]byte, unix.NLMSG_HDRLEN+56)
	ne := binary.NativeEndian
	ne.PutUint32(req[0:4], uint32(len(req)))
	ne.PutUint16(req[4:6], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(req[6:8], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(req[8:12], 1)
	req[16], req[17] = unix.AF_INET, unix.IPPROTO_TCP
	ne.PutUint32(req[20:24], 0xfff) // every state
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		t.Fatal(err)
	}
	const (
		inetDiagMsgLen   = 72
		inetDiagCgroupID = 21 // INET_DIAG_CGROUP_ID
	)
	ids := map[uint32]uint64{}
	buf := make([]byte, 64<<10)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return ids
			case unix.NLMSG_ERROR:
				t.Fatalf("sock_diag dump refused: errno %d", -int32(ne.Uint32(m.Data[0:4])))
			}
			if len(m.Data) < inetDiagMsgLen {
				t.Fatalf("inet_diag_msg of %d bytes", len(m.Data))
			}
			inode := ne.Uint32(m.Data[68:72])
			for attrs := m.Data[inetDiagMsgLen:]; len(attrs) >= 4; {
				l, typ := int(ne.Uint16(attrs[0:2])), ne.Uint16(attrs[2:4])
				if l < 4 || l > len(attrs) {
					break
				}
				if typ == inetDiagCgroupID && l >= 12 {
					ids[inode] = ne.Uint64(attrs[4:12])
				}
				attrs = attrs[min((l+3)&^3, len(attrs)):]
			}
		}
	}
}

// TestIntegrationCgroupOwner puts a process in a cgroup v2 named as a
// service, has it open a TCP connection, and checks that Lookup names the
// service and the process from the socket's cgroup id, as the kernel
// reports it, and its inode.
func TestIntegrationCgroupOwner(t *testing.T) {
	unit := fmt.Sprintf("tcpadvisor-test-%d.service", os.Getpid())
	dir := cgrouptest.Child(t, unit)

	ln := netnstest.Serve(t, "127.0.0.1:0", netnstest.Discard)

	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), helperEnv+"=dial "+ln.Addr().String())
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Registered after cgrouptest.Child's removal, so run before it: the cgroup must be
	// empty to go.
	t.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
	})
	// A socket belongs to the cgroup of the task that made it: move the
	// helper before it dials.
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(stdin, "dial\n"); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "connected\n" {
		t.Fatalf("helper said %q (%v), want connected", line, err)
	}

	inode := socketInode(t, cmd.Process.Pid)
	cgroupID := inodeOf(t, dir)
	if got, ok := dumpCgroupIDs(t)[inode]; !ok || got != cgroupID {
		t.Fatalf("sock_diag gives socket %d cgroup id %d (found %v), want the inode of %s, %d", inode, got, ok, dir, cgroupID)
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	want := Owner{Unit: unit, Process: strings.TrimSpace(string(comm))}

	r := New(Options{CgroupPath: "/sys/fs/cgroup", ProcessesPerScrape: 1 << 16})
	r.Refresh(context.Background())
	if got := r.Lookup(cgroupID, inode); got != want {
		t.Errorf("Lookup(%d, %d) = %+v, want %+v", cgroupID, inode, got, want)
	}
	// Root has every capability, but a process may still refuse ptrace
	// access (a sandbox's PID 1 with capabilities root lacks, a security
	// module): that is told apart from a missing capability.
	s := r.Status()
	t.Logf("Status() as root: %+v", s)
	wantMissing := []string(nil)
	if s.ProcessesUnreadable > 0 {
		wantMissing = []string{"ptrace access"}
	}
	if !s.CgroupUp || s.ProcessUp != (s.ProcessesUnreadable == 0) || !slices.Equal(s.Missing, wantMissing) {
		t.Errorf("Status() as root = %+v, want cgroup up and Missing %q", s, wantMissing)
	}

	// A socket the scan has not read yet is named after the one process
	// of its cgroup.
	fresh := New(Options{CgroupPath: "/sys/fs/cgroup", ProcessesPerScrape: 1})
	fresh.Refresh(context.Background())
	if got := fresh.Lookup(cgroupID, inode); got.Unit != unit {
		t.Fatalf("Lookup(%d, %d) = %+v, want unit %s", cgroupID, inode, got, unit)
	}
	fresh.Refresh(context.Background())
	if got := fresh.Lookup(cgroupID, 0xfffffff0); got != want {
		t.Errorf("Lookup of a socket not read yet, in a cgroup of one process = %+v, want %+v", got, want)
	}

	if got := OwnerOfPID("/proc", cmd.Process.Pid); got != want {
		t.Errorf("OwnerOfPID(%d) = %+v, want %+v", cmd.Process.Pid, got, want)
	}
}

// TestIntegrationUnprivileged runs a Resolver as nobody with no capability:
// it cannot read the fd tables of root's processes, and Status says so and
// what to grant.
func TestIntegrationUnprivileged(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch to nobody with setpriv")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("needs setpriv (Debian package util-linux)")
	}
	// nobody must be able to execute a copy of the test binary.
	dir, err := os.MkdirTemp("", "owners-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	binary := filepath.Join(dir, "owners.test")
	data, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(binary, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
		binary, "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), helperEnv+"=status /sys/fs/cgroup")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the Resolver run as nobody failed: %v\n%s", err, out)
	}
	var s Status
	if err := json.Unmarshal(out, &s); err != nil {
		t.Fatalf("status %q: %v", out, err)
	}
	t.Logf("Status() as nobody: %+v", s)
	if s.ProcessUp || s.ProcessesUnreadable == 0 {
		t.Errorf("Status() as nobody: ProcessUp %v, %d unreadable; want false and some", s.ProcessUp, s.ProcessesUnreadable)
	}
	for _, c := range []string{"CAP_SYS_PTRACE", "CAP_DAC_READ_SEARCH"} {
		if !slices.Contains(s.Missing, c) {
			t.Errorf("Status().Missing as nobody = %q, want %s in it", s.Missing, c)
		}
	}
	if isCgroup2("/sys/fs/cgroup") || isCgroup2("/sys/fs/cgroup/unified") {
		if !s.CgroupUp {
			t.Errorf("Status().CgroupUp as nobody = false, want true: the cgroup tree is world-readable")
		}
	}
}

// TestShortLivedProcessesBounded starts 200 processes that exit at once
// while a Resolver refreshes over the real /proc with a small inode cap: it
// never holds more than the cap, nor more processes than live, and forgets
// every one of them.
func TestShortLivedProcessesBounded(t *testing.T) {
	truePath, err := exec.LookPath("true")
	if err != nil {
		t.Skip("needs true (coreutils)")
	}
	r := New(Options{ProcessesPerScrape: 20})
	r.maxInodes = 50
	started := map[int]bool{}
	for i := range 200 {
		cmd := exec.Command(truePath)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		started[cmd.Process.Pid] = true
		if i%2 == 0 {
			r.Refresh(context.Background())
		}
		if err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
		if len(r.inodes) > r.maxInodes || len(r.procs) > len(r.pids) {
			t.Fatalf("after %d processes: %d inodes (cap %d), %d processes known of %d listed",
				i+1, len(r.inodes), r.maxInodes, len(r.procs), len(r.pids))
		}
	}
	r.Refresh(context.Background())
	for pid := range r.procs {
		if started[int(pid)] {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
				t.Errorf("process %d exited and is still known", pid)
			}
		}
	}
}
