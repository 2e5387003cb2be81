package owners

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// allCaps is the CapEff of root on a 6.x kernel.
const allCaps = "000001ffffffffff"

// fixture is a /proc and a cgroup v2 tree in a temporary directory.
type fixture struct {
	t      testing.TB
	proc   string
	cgroup string
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{t: t, proc: filepath.Join(dir, "proc"), cgroup: filepath.Join(dir, "cgroup")}
	for _, d := range []string{filepath.Join(f.proc, "self"), f.cgroup} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f.caps(allCaps)
	return f
}

func (f *fixture) write(path, content string) {
	f.t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

// caps sets the CapEff of the fixture's /proc/self/status.
func (f *fixture) caps(capEff string) {
	f.write(filepath.Join(f.proc, "self", "status"), "Name:\towners.test\nCapEff:\t"+capEff+"\n")
}

// process makes /proc/PID with a stat naming comm and start, a cgroup file
// placing it in cgroupPath, and an fd table holding the socket inodes (and a
// file and a pipe, which are no sockets).
func (f *fixture) process(pid int, comm string, start uint64, cgroupPath string, inodes ...uint32) {
	f.t.Helper()
	dir := filepath.Join(f.proc, strconv.Itoa(pid))
	if err := os.RemoveAll(dir); err != nil {
		f.t.Fatal(err)
	}
	f.write(filepath.Join(dir, "stat"), fmt.Sprintf("%d (%s) S 1 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 %d 0 0\n", pid, comm, start))
	f.write(filepath.Join(dir, "comm"), comm+"\n")
	f.write(filepath.Join(dir, "cgroup"), "0::"+cgroupPath+"\n")
	fd := filepath.Join(dir, "fd")
	if err := os.MkdirAll(fd, 0o700); err != nil {
		f.t.Fatal(err)
	}
	links := []string{"/dev/null", "pipe:[7]"}
	for _, inode := range inodes {
		links = append(links, fmt.Sprintf("socket:[%d]", inode))
	}
	for i, l := range links {
		if err := os.Symlink(l, filepath.Join(fd, strconv.Itoa(i))); err != nil {
			f.t.Fatal(err)
		}
	}
}

func (f *fixture) kill(pid int) {
	f.t.Helper()
	if err := os.RemoveAll(filepath.Join(f.proc, strconv.Itoa(pid))); err != nil {
		f.t.Fatal(err)
	}
}

// cgroupDir makes a cgroup, writes the PIDs given to its cgroup.procs, and
// returns its id: the inode number of its directory, as on cgroupfs.
func (f *fixture) cgroupDir(path string, pids ...int) uint64 {
	f.t.Helper()
	dir := filepath.Join(f.cgroup, path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		f.t.Fatal(err)
	}
	var procs strings.Builder
	for _, pid := range pids {
		fmt.Fprintln(&procs, pid)
	}
	f.write(filepath.Join(dir, "cgroup.procs"), procs.String())
	return inodeOf(f.t, dir)
}

func inodeOf(t testing.TB, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// clock is a settable time for the rate limit of cgroup walks.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

// resolver returns a Resolver over the fixture, whose cgroup root counts as
// a cgroup2 mount, and the clock it reads.
func (f *fixture) resolver(budget int) (*Resolver, *clock) {
	r := New(Options{ProcPath: f.proc, CgroupPath: f.cgroup, ProcessesPerScrape: budget})
	c := &clock{now: time.Unix(1e9, 0)}
	r.now = c.Now
	r.isCgroup2 = func(path string) bool { return path == f.cgroup }
	return r, c
}

func unknownOwner() Owner { return Owner{Unit: Unknown, Process: Unknown} }

func TestLookup(t *testing.T) {
	f := newFixture(t)
	root := inodeOf(t, f.cgroup)
	nginx := f.cgroupDir("system.slice/nginx.service", 100, 101)
	docker := f.cgroupDir("system.slice/docker-3f2a9c1b7d4e5f6071829.scope", 200)
	f.process(100, "nginx", 10, "/system.slice/nginx.service", 1000, 1001)
	f.process(101, "nginx", 11, "/system.slice/nginx.service", 1002)
	f.process(200, "redis-server", 20, "/system.slice/docker-3f2a9c1b7d4e5f6071829.scope", 2000)
	f.process(300, "python3", 30, "/system.slice/app.service", 3000)
	r, _ := f.resolver(0)
	r.Refresh(context.Background())

	for _, tc := range []struct {
		name     string
		cgroupID uint64
		inode    uint32
		want     Owner
	}{
		{"service", nginx, 1001, Owner{"nginx.service", "nginx"}},
		{"second process", nginx, 1002, Owner{"nginx.service", "nginx"}},
		{"container", docker, 2000, Owner{"docker:3f2a9c1b7d4e", "redis-server"}},
		{"root cgroup", root, 0, Owner{"host", Unknown}},
		{"TIME_WAIT: no cgroup id, no inode", 0, 0, unknownOwner()},
		{"no cgroup id: the unit of the process", 0, 3000, Owner{"app.service", "python3"}},
		{"unknown cgroup: the unit of the process", 999999999, 3000, Owner{"app.service", "python3"}},
		{"unknown cgroup and inode", 999999999, 4000, unknownOwner()},
		{"inode not seen yet", docker, 4000, Owner{"docker:3f2a9c1b7d4e", Unknown}},
	} {
		if got := r.Lookup(tc.cgroupID, tc.inode); got != tc.want {
			t.Errorf("%s: Lookup(%d, %d) = %+v, want %+v", tc.name, tc.cgroupID, tc.inode, got, tc.want)
		}
	}
	if s := r.Status(); !s.CgroupUp || !s.ProcessUp || s.ProcessesUnreadable != 0 || len(s.Missing) != 0 {
		t.Errorf("Status() = %+v, want all up and nothing missing", s)
	}
}

func TestOwnerOfPID(t *testing.T) {
	f := newFixture(t)
	f.process(100, "nginx", 10, "/system.slice/nginx.service")
	if got, want := OwnerOfPID(f.proc, 100), (Owner{"nginx.service", "nginx"}); got != want {
		t.Errorf("OwnerOfPID(100) = %+v, want %+v", got, want)
	}
	if got := OwnerOfPID(f.proc, 101); got != unknownOwner() {
		t.Errorf("OwnerOfPID of a PID that does not exist = %+v, want %+v", got, unknownOwner())
	}
}

// TestCgroupWalks checks that an unknown cgroup id prompts a new walk of the
// tree at the next Refresh, at most every cgroupWalkInterval, and that an id
// still unknown after a walk prompts no more.
func TestCgroupWalks(t *testing.T) {
	f := newFixture(t)
	r, c := f.resolver(0)
	r.Refresh(context.Background())
	web := f.cgroupDir("system.slice/web.service")
	if got := r.Lookup(web, 0).Unit; got != Unknown {
		t.Fatalf("a cgroup made after the walk is %q, want %q", got, Unknown)
	}
	c.now = c.now.Add(cgroupWalkInterval / 2)
	r.Refresh(context.Background())
	if got := r.Lookup(web, 0).Unit; got != Unknown {
		t.Errorf("walked again %v after the last walk: %q, want %q until %v", cgroupWalkInterval/2, got, Unknown, cgroupWalkInterval)
	}
	c.now = c.now.Add(cgroupWalkInterval / 2)
	r.Refresh(context.Background())
	if got := r.Lookup(web, 0).Unit; got != "web.service" {
		t.Errorf("after a walk, the new cgroup is %q, want web.service", got)
	}

	// A socket may outlive its cgroup: its id is looked for once.
	const gone = 987654321
	r.Lookup(gone, 0)
	c.now = c.now.Add(cgroupWalkInterval)
	r.Refresh(context.Background())
	if r.Lookup(gone, 0); r.nUnknown != 0 {
		t.Errorf("an id the last walk did not find is noted again for a walk: %v", r.unknownCgroups[:r.nUnknown])
	}
}

func TestCgroupsBounded(t *testing.T) {
	f := newFixture(t)
	for i := range 20 {
		f.cgroupDir(fmt.Sprintf("system.slice/s%d.service", i))
	}
	r, _ := f.resolver(0)
	r.maxCgroups = 8
	r.Refresh(context.Background())
	if len(r.cgroups) != r.maxCgroups {
		t.Errorf("%d cgroups named of 21, want the cap, %d", len(r.cgroups), r.maxCgroups)
	}
}

func TestCgroupV2Missing(t *testing.T) {
	f := newFixture(t)
	r, _ := f.resolver(0)
	r.isCgroup2 = func(string) bool { return false }
	r.Refresh(context.Background())
	s := r.Status()
	if s.CgroupUp || !slices.Equal(s.Missing, []string{"cgroup v2"}) {
		t.Errorf("Status() without cgroup2 = %+v, want CgroupUp false and Missing [cgroup v2]", s)
	}
}

// TestHybridCgroupRoot checks that the v2 hierarchy of a hybrid host, at the
// unified subdirectory of the cgroup mount, is the one walked.
func TestHybridCgroupRoot(t *testing.T) {
	f := newFixture(t)
	unified := filepath.Join(f.cgroup, "unified")
	id := f.cgroupDir("unified/system.slice/nginx.service")
	r, _ := f.resolver(0)
	r.isCgroup2 = func(path string) bool { return path == unified }
	r.Refresh(context.Background())
	if got := r.Lookup(id, 0).Unit; got != "nginx.service" || !r.Status().CgroupUp {
		t.Errorf("hybrid host: unit %q, cgroup up %v; want nginx.service, true", got, r.Status().CgroupUp)
	}
}

// TestScanBudget checks that each Refresh reads the fd tables of budget
// processes, resuming where the last one stopped and wrapping around.
func TestScanBudget(t *testing.T) {
	for _, tc := range []struct{ processes, budget int }{
		{10, 3},
		{10, 10},
		{10, 25},
		{7, 1},
		{12, 4},
	} {
		t.Run(fmt.Sprintf("%d processes, budget %d", tc.processes, tc.budget), func(t *testing.T) {
			f := newFixture(t)
			for i := range tc.processes {
				f.process(100+i, "p", 1, "/", uint32(1000+i))
			}
			r, _ := f.resolver(tc.budget)
			var reads []int32
			r.socketInodes = func(pid int32, buf []byte, fn func(uint32)) error {
				reads = append(reads, pid)
				return r.readSocketInodes(pid, buf, fn)
			}
			passes := (tc.processes + tc.budget - 1) / tc.budget
			for k := 1; k <= 2*passes+1; k++ {
				before := len(reads)
				// A socket no process is known to hold keeps the scan
				// going after the first pass.
				r.Lookup(0, 999_999)
				r.Refresh(context.Background())
				if got, want := len(reads)-before, min(tc.processes, tc.budget); got != want {
					t.Fatalf("Refresh %d read %d processes, want %d", k, got, want)
				}
				distinct := map[int32]bool{}
				for _, pid := range reads {
					distinct[pid] = true
				}
				if got, want := len(distinct), min(tc.processes, k*tc.budget); got != want {
					t.Errorf("after %d Refreshes, %d processes read, want %d", k, got, want)
				}
				if got, want := r.last.done, k >= passes; got != want {
					t.Errorf("after %d Refreshes, a full pass done: %v, want %v", k, got, want)
				}
			}
			// Round-robin: every process is read once before any is
			// read again.
			for i := tc.processes; i < len(reads); i++ {
				if reads[i] != reads[i%tc.processes] {
					t.Fatalf("read order %v does not cycle over the %d processes", reads, tc.processes)
				}
			}
			if got := len(r.inodes); got != tc.processes {
				t.Errorf("%d inodes known, want %d", got, tc.processes)
			}
		})
	}
}

// TestNoScanWhenWarm: once a full pass is done, a Refresh reads no fd table
// unless a Lookup met a socket no process is known to hold; then the next
// one does.
func TestNoScanWhenWarm(t *testing.T) {
	f := newFixture(t)
	for i := range 20 {
		f.process(100+i, "p", 1, "/", uint32(1000+i))
	}
	r, _ := f.resolver(5)
	reads := 0
	r.socketInodes = func(pid int32, buf []byte, fn func(uint32)) error {
		reads++
		return r.readSocketInodes(pid, buf, fn)
	}
	for range 4 {
		r.Refresh(context.Background())
	}
	if reads != 20 || !r.last.done {
		t.Fatalf("first pass: %d fd tables read, done %v; want 20, true", reads, r.last.done)
	}
	for i := range 20 {
		r.Lookup(0, uint32(1000+i))
	}
	r.Refresh(context.Background())
	if reads != 20 {
		t.Errorf("a Refresh after lookups that all hit read %d fd tables, want none", reads-20)
	}
	f.process(200, "late", 1, "/", 5000)
	if got := r.Lookup(0, 5000); got.Process != Unknown {
		t.Fatalf("an unread process's socket named %+v", got)
	}
	for range 5 {
		r.Lookup(0, 5000)
		r.Refresh(context.Background())
	}
	if got := r.Lookup(0, 5000).Process; got != "late" || reads <= 20 {
		t.Errorf("after misses, the socket's process %q with %d fd tables read; want late, some read", got, reads-20)
	}
}

// TestTargetedScan: a new socket from a known cgroup whose processes have
// several names makes the next Refresh read that cgroup's processes only,
// not the round robin over every process.
func TestTargetedScan(t *testing.T) {
	f := newFixture(t)
	for i := range 20 {
		f.process(100+i, "idle", 1, "/idle.slice", uint32(1000+i))
	}
	f.process(200, "cron", 1, "/cron.service")
	f.process(201, "report", 1, "/cron.service")
	cron := f.cgroupDir("/cron.service", 200, 201)
	f.cgroupDir("/idle.slice", 100)
	r, _ := f.resolver(5)
	var reads []int32
	r.socketInodes = func(pid int32, buf []byte, fn func(uint32)) error {
		reads = append(reads, pid)
		return r.readSocketInodes(pid, buf, fn)
	}
	for !r.last.done {
		r.Refresh(context.Background())
	}
	f.process(201, "report", 1, "/cron.service", 5000)
	if got := r.Lookup(cron, 5000); got != (Owner{Unit: "cron.service", Process: Unknown}) {
		t.Fatalf("a socket not read yet: %+v", got)
	}
	reads = reads[:0]
	r.Refresh(context.Background())
	if !slices.Equal(reads, []int32{200, 201}) {
		t.Errorf("the Refresh after the miss read the fd tables of %v, want the cgroup's [200 201] only", reads)
	}
	if got, want := r.Lookup(cron, 5000), (Owner{Unit: "cron.service", Process: "report"}); got != want {
		t.Errorf("after the targeted read: %+v, want %+v", got, want)
	}
}

// TestPIDReuse checks that a process that took the PID of one that exited
// is not given its sockets or its name.
func TestPIDReuse(t *testing.T) {
	f := newFixture(t)
	f.process(100, "old", 1, "/system.slice/old.service", 1000)
	r, _ := f.resolver(0)
	r.Refresh(context.Background())
	if got := r.Lookup(0, 1000).Process; got != "old" {
		t.Fatalf("Lookup(0, 1000).Process = %q, want old", got)
	}
	f.process(100, "new", 2, "/system.slice/new.service", 2000)
	r.Lookup(0, 2000) // a scrape meets the new socket: the next Refresh looks
	r.Refresh(context.Background())
	if got := r.Lookup(0, 1000); got != unknownOwner() {
		t.Errorf("the socket of the exited process: %+v, want %+v", got, unknownOwner())
	}
	if got, want := r.Lookup(0, 2000), (Owner{"new.service", "new"}); got != want {
		t.Errorf("the socket of the new process: %+v, want %+v", got, want)
	}
}

// TestDeadProcessesForgotten checks that a process that exited is forgotten
// with its sockets at the next Refresh, even when the scan is elsewhere.
func TestDeadProcessesForgotten(t *testing.T) {
	f := newFixture(t)
	for i := range 10 {
		f.process(100+i, "p", 1, "/", uint32(1000+i))
	}
	r, _ := f.resolver(0)
	r.Refresh(context.Background())
	r.budget = 1
	f.kill(100)
	f.kill(105)
	r.Refresh(context.Background())
	if len(r.procs) != 8 || len(r.inodes) != 8 {
		t.Errorf("%d processes and %d inodes known, want 8 and 8", len(r.procs), len(r.inodes))
	}
	for _, inode := range []uint32{1000, 1005} {
		if got := r.Lookup(0, inode); got != unknownOwner() {
			t.Errorf("socket %d of an exited process: %+v, want %+v", inode, got, unknownOwner())
		}
	}
}

// TestClosedSocketsForgotten checks that reading a process again replaces
// the sockets it held.
func TestClosedSocketsForgotten(t *testing.T) {
	f := newFixture(t)
	f.process(100, "p", 1, "/", 1000, 1001)
	r, _ := f.resolver(0)
	r.Refresh(context.Background())
	f.process(100, "p", 1, "/", 1001, 1002)
	r.Lookup(0, 1002)
	r.Refresh(context.Background())
	if got := slices.Sorted(maps.Keys(r.inodes)); !slices.Equal(got, []uint32{1001, 1002}) {
		t.Errorf("inodes known: %v, want [1001 1002]", got)
	}
}

// TestSharedSockets checks that a socket held by several processes (a
// listener inherited by forked workers) stays named while one of them lives.
func TestSharedSockets(t *testing.T) {
	f := newFixture(t)
	f.process(100, "master", 1, "/", 1000)
	f.process(101, "worker", 1, "/", 1000)
	r, _ := f.resolver(0)
	r.Refresh(context.Background())
	if got := r.Lookup(0, 1000).Process; got != "master" {
		t.Errorf("shared socket: process %q, want master, read first", got)
	}
	f.kill(100)
	// The scrape after the master exits finds the socket unnamed; the
	// one after names it again.
	r.Refresh(context.Background())
	r.Lookup(0, 1000)
	r.Refresh(context.Background())
	if got := r.Lookup(0, 1000).Process; got != "worker" {
		t.Errorf("shared socket after the first holder exited: process %q, want worker", got)
	}
}

func TestInodesBounded(t *testing.T) {
	f := newFixture(t)
	for i := range 3 {
		f.process(100+i, "p", 1, "/", uint32(1000+10*i), uint32(1001+10*i), uint32(1002+10*i), uint32(1003+10*i), uint32(1004+10*i))
	}
	r, _ := f.resolver(0)
	r.maxInodes = 10
	r.Refresh(context.Background())
	if len(r.inodes) != r.maxInodes {
		t.Errorf("%d inodes known of 15, want the cap, %d", len(r.inodes), r.maxInodes)
	}
	if got := r.Status().InodesDropped; got != 5 {
		t.Errorf("Status().InodesDropped = %d, want 5", got)
	}
}

// TestSharedComm checks that a socket opened since its process was last read
// is named after its cgroup's processes when they all have one name.
func TestSharedComm(t *testing.T) {
	f := newFixture(t)
	workers := f.cgroupDir("system.slice/nginx.service", 100, 101, 102)
	mixed := f.cgroupDir("system.slice/app.service", 200, 201)
	empty := f.cgroupDir("system.slice/empty.service")
	for i := range 3 {
		f.process(100+i, "nginx", 1, "/system.slice/nginx.service")
	}
	f.process(200, "gunicorn", 1, "/system.slice/app.service")
	f.process(201, "python3", 1, "/system.slice/app.service")
	r, _ := f.resolver(0)
	r.Refresh(context.Background())
	for _, tc := range []struct {
		name     string
		cgroupID uint64
		want     string
	}{
		{"one name", workers, "nginx"},
		{"two names", mixed, Unknown},
		{"no process", empty, Unknown},
	} {
		if got := r.Lookup(tc.cgroupID, 5000).Process; got != Unknown {
			t.Errorf("%s: before a Refresh, process %q, want %q", tc.name, got, Unknown)
		}
		r.Refresh(context.Background())
		if got := r.Lookup(tc.cgroupID, 5000).Process; got != tc.want {
			t.Errorf("%s: process %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestUnreadable checks what Status reports when fd tables cannot be read,
// for the capabilities the exporter may have.
func TestUnreadable(t *testing.T) {
	for _, tc := range []struct {
		name    string
		capEff  string
		missing []string
	}{
		{"no capability", "0000000000000000", []string{"CAP_SYS_PTRACE", "CAP_DAC_READ_SEARCH"}},
		{"CAP_DAC_READ_SEARCH only", "0000000000000004", []string{"CAP_SYS_PTRACE"}},
		{"CAP_DAC_OVERRIDE only", "0000000000000002", []string{"CAP_SYS_PTRACE"}},
		{"CAP_SYS_PTRACE only", "0000000000080000", []string{"CAP_DAC_READ_SEARCH"}},
		{"both: an LSM denies", "0000000000080004", []string{"ptrace access"}},
		{"capabilities unknown", "", []string{"CAP_SYS_PTRACE", "CAP_DAC_READ_SEARCH"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.caps(tc.capEff)
			for i := range 6 {
				f.process(100+i, "p", 1, "/", uint32(1000+i))
			}
			r, _ := f.resolver(4)
			r.socketInodes = func(pid int32, buf []byte, fn func(uint32)) error {
				switch pid {
				case 101:
					return unix.EACCES
				case 103:
					return unix.EPERM
				case 104:
					return syscall.ENOENT // exited: not unreadable
				}
				return r.readSocketInodes(pid, buf, fn)
			}
			r.Refresh(context.Background())
			r.Refresh(context.Background())
			s := r.Status()
			if s.ProcessUp || s.ProcessesUnreadable != 2 || !slices.Equal(s.Missing, tc.missing) {
				t.Errorf("Status() = %+v, want ProcessUp false, 2 unreadable, Missing %q", s, tc.missing)
			}
			if got := r.Lookup(0, 1002).Process; got != "p" {
				t.Errorf("a readable process's socket: process %q, want p", got)
			}
		})
	}
}

// TestStatusFirstPass checks that before the first full pass ends, Status
// tells what the pass under way has seen.
func TestStatusFirstPass(t *testing.T) {
	f := newFixture(t)
	for i := range 4 {
		f.process(100+i, "p", 1, "/")
	}
	r, _ := f.resolver(2)
	if s := r.Status(); s.ProcessUp {
		t.Errorf("Status() before any Refresh = %+v, want ProcessUp false", s)
	}
	r.socketInodes = func(int32, []byte, func(uint32)) error { return unix.EACCES }
	r.Refresh(context.Background())
	if s := r.Status(); s.ProcessUp || s.ProcessesUnreadable != 2 {
		t.Errorf("Status() half way through the first pass = %+v, want ProcessUp false, 2 unreadable", s)
	}
}

func TestLookupAllocations(t *testing.T) {
	f := newFixture(t)
	nginx := f.cgroupDir("system.slice/nginx.service", 100)
	f.process(100, "nginx", 1, "/system.slice/nginx.service", 1000)
	r, _ := f.resolver(0)
	r.Refresh(context.Background())
	for _, tc := range []struct {
		name     string
		cgroupID uint64
		inode    uint32
	}{
		{"hit", nginx, 1000},
		{"TIME_WAIT", 0, 0},
		{"unknown inode, noted for its cgroup", nginx, 5000},
		{"unknown cgroup, noted for a walk", 4242, 1000},
		{"nothing known", 4243, 5001},
	} {
		if n := testing.AllocsPerRun(1000, func() { r.Lookup(tc.cgroupID, tc.inode) }); n != 0 {
			t.Errorf("%s: Lookup allocates %v times, want 0", tc.name, n)
		}
	}
}

// TestRefreshStopsWithContext checks that a Refresh past the scrape's
// deadline reads no more processes.
func TestRefreshStopsWithContext(t *testing.T) {
	f := newFixture(t)
	for i := range 4 {
		f.process(100+i, "p", 1, "/", uint32(1000+i))
	}
	r, _ := f.resolver(0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r.Refresh(ctx)
	if len(r.inodes) != 0 {
		t.Errorf("a Refresh with its context done read %d sockets, want 0", len(r.inodes))
	}
}

// TestRuntime tells a Go program by its build information and an
// interpreter by its executable's name, once per process name.
func TestRuntime(t *testing.T) {
	python := filepath.Join(t.TempDir(), "python3.11")
	if err := os.WriteFile(python, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t)
	for _, p := range []struct {
		pid       int
		comm, exe string
	}{
		{100, "owners.test", self},
		{101, "gunicorn", python},
		{102, "nginx", "/dev/null"},
	} {
		f.process(p.pid, p.comm, 1, "/")
		if err := os.Symlink(p.exe, filepath.Join(f.proc, strconv.Itoa(p.pid), "exe")); err != nil {
			t.Fatal(err)
		}
	}
	r, _ := f.resolver(0)
	r.Refresh(context.Background())
	for process, want := range map[string]string{"owners.test": "go", "gunicorn": "python", "nginx": "", "absent": ""} {
		if got := r.Runtime(process); got != want {
			t.Errorf("Runtime(%q) = %q, want %q", process, got, want)
		}
	}
}
