// Package owners tells who owns a TCP socket of a sock_diag dump: the
// systemd unit or container, from the socket's cgroup, and the process,
// from the process that holds the socket open.
//
// The kernel tags each full socket with the id of the cgroup v2 of the task
// that created it (INET_DIAG_CGROUP_ID), and that id is the inode number of
// the cgroup's directory in cgroupfs: a walk of the cgroup tree names every
// id. The process is found from the socket's inode, which appears as a
// "socket:[N]" symlink under /proc/PID/fd of each process that holds it.
// Reading every fd of every process at each scrape would cost more than the
// dump itself on a busy host, so a Resolver reads a bounded number of
// processes per scrape, round-robin, and keeps what it read.
package owners

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Unknown is the unit or process of a socket that cannot be attributed:
// TIME_WAIT and SYN_RECV sockets, which carry neither a cgroup id nor an
// inode, and sockets no source names yet.
const Unknown = "unknown"

// UnknownOwner is the Owner of a socket that cannot be attributed.
var UnknownOwner = Owner{Unit: Unknown, Process: Unknown}

// Owner is who holds a socket, as label values.
type Owner struct {
	// Unit is the systemd unit or container, e.g. "nginx.service",
	// "docker:3f2a9c1b7d4e", "pod:<uid>", or Unknown.
	Unit string `json:"unit"`
	// Process is the process name (/proc/PID/comm), e.g. "nginx",
	// "python3", or Unknown.
	Process string `json:"process"`
}

const (
	// DefaultProcessesPerScrape is the default of Options.ProcessesPerScrape.
	DefaultProcessesPerScrape = 500

	// maxInodes caps the socket inodes remembered: at about 40 bytes an
	// entry with its share of the map, 1<<20 of them take some 40 MiB at
	// most. Sockets past the cap are counted in Status.InodesDropped and
	// attributed from their cgroup only.
	maxInodes = 1 << 20

	// maxCgroups caps the cgroups named: 1<<16 is ten times what a large
	// Kubernetes node holds. Cgroups past the cap (in walk order) are
	// unknown.
	maxCgroups = 1 << 16

	// maxPendingCgroups caps the cgroups whose process name Lookup asks
	// the next Refresh to find from their cgroup.procs.
	maxPendingCgroups = 1024

	// maxUnknownCgroups caps the unknown cgroup ids remembered: those that
	// Lookup met, to look for after the next walk of the tree, and those
	// still unknown after a walk, which no longer prompt one (a socket
	// may outlive its cgroup).
	maxUnknownCgroups = 64
	maxAbsentCgroups  = 4096

	// maxRuntimes caps the process names whose runtime is remembered.
	maxRuntimes = 4096

	// cgroupWalkInterval rate-limits the walks of the cgroup tree that an
	// unknown cgroup id prompts, on a host where containers come and go.
	cgroupWalkInterval = 10 * time.Second
)

// Options tells a Resolver where to read from.
type Options struct {
	// ProcPath is where procfs is mounted: "/proc", or "/host/proc" in a
	// container.
	ProcPath string
	// CgroupPath is where the cgroup v2 hierarchy is mounted:
	// "/sys/fs/cgroup". On a hybrid host, whose /sys/fs/cgroup holds the
	// v1 controllers, the v2 hierarchy at its "unified" subdirectory is
	// used.
	CgroupPath string
	// ProcessesPerScrape bounds how many processes' /proc/PID/fd are read
	// per Refresh (default DefaultProcessesPerScrape): on a busy host the
	// inode to process map is rebuilt over several scrapes, never by a full
	// walk every scrape.
	ProcessesPerScrape int
}

// Status says which attribution sources work with the current privileges,
// so that a half-blind exporter is visible.
type Status struct {
	// CgroupUp is true when cgroup ids map to cgroup v2 paths: cgroup2 is
	// mounted and readable at Options.CgroupPath.
	CgroupUp bool
	// ProcessUp is true when every process's /proc/PID/fd was readable in
	// the last full scan (or in the scan under way, before the first one
	// ends).
	ProcessUp bool
	// ProcessesUnreadable counts the processes whose fd table could not be
	// read (EACCES, EPERM) in that scan.
	ProcessesUnreadable int
	// InodesDropped counts the sockets of that scan that were not
	// remembered because the inode map was at its cap.
	InodesDropped int
	// Missing says what to grant or fix: "cgroup v2", "CAP_SYS_PTRACE",
	// "CAP_DAC_READ_SEARCH", or "ptrace access" when the capabilities are
	// there and reading fd tables still fails (a Linux security module or
	// a user namespace denies it).
	Missing []string
}

// Resolver names the owners of sockets. Its methods are safe for concurrent
// use; Refresh holds a lock for its whole run, so Lookups wait for it.
type Resolver struct {
	procPath     string
	cgroupPath   string
	budget       int
	maxInodes    int
	maxCgroups   int
	now          func() time.Time
	isCgroup2    func(path string) bool
	socketInodes func(pid int32, buf []byte, fn func(inode uint32)) error

	// mu guards all below, and the buffers reused by each Refresh.
	mu            sync.Mutex
	readBuf       []byte
	direntBuf     []byte
	cgroupWalked  bool
	lastCgroupRun time.Time
	// cgroups maps a cgroup id to its unit, and to the name its processes
	// share, if they do. cgroupUp says the last walk read a cgroup2 tree,
	// unifiedPath is where.
	cgroups  map[uint64]*cgroup
	cgroupUp bool
	// unknownCgroups holds cgroup ids Lookup met and the map lacks, for the
	// next Refresh to look for; absentCgroups those that the last walk did
	// not find either.
	unknownCgroups [maxUnknownCgroups]uint64
	nUnknown       int
	absentCgroups  map[uint64]struct{}
	// pending holds the cgroups whose sockets Lookup could not attribute to
	// a process, for the next Refresh to read their cgroup.procs.
	pending []*cgroup

	// inodes maps a socket inode to the PID holding it; procs holds what
	// was read of each live process.
	inodes map[uint32]int32
	procs  map[int32]*process
	// pids lists the processes of the last Refresh, in order; cursor is the
	// PID the round-robin scan resumes at.
	pids   []int32
	cursor int32
	// scan counts the pass under way over all processes, last the last full
	// one.
	scan, last pass
	caps       capabilities
	capsKnown  bool
	// runtimes maps a process name to the language runtime of the first
	// process read with that name: see Runtime.
	runtimes map[string]string
	// unresolved counts the Lookups since the last Refresh whose socket
	// had an inode that no process read so far holds and no known cgroup:
	// only they make a Refresh read fd tables round robin once a full pass
	// is done. Those with a known cgroup have it read in pending instead.
	unresolved  int
	newInodes   []uint32
	cgroupProcs []int32
}

type cgroup struct {
	path string
	unit string
	// comm is the name all the processes of the cgroup shared when last
	// looked, or "" if they did not or none was there.
	comm    string
	pending bool
}

type process struct {
	start uint64
	comm  string
	// unit is the owner named by /proc/PID/cgroup: the fallback for
	// sockets whose cgroup id is not in the map.
	unit string
	// inodes lists the entries of Resolver.inodes that name this process.
	inodes []uint32
}

type pass struct {
	done                         bool
	scanned, unreadable, dropped int
}

// New returns a Resolver that reads from the paths of opts. It reads nothing
// until the first Refresh.
func New(opts Options) *Resolver {
	if opts.ProcPath == "" {
		opts.ProcPath = "/proc"
	}
	if opts.CgroupPath == "" {
		opts.CgroupPath = "/sys/fs/cgroup"
	}
	if opts.ProcessesPerScrape <= 0 {
		opts.ProcessesPerScrape = DefaultProcessesPerScrape
	}
	r := &Resolver{
		procPath:      opts.ProcPath,
		cgroupPath:    filepath.Clean(opts.CgroupPath),
		budget:        opts.ProcessesPerScrape,
		maxInodes:     maxInodes,
		maxCgroups:    maxCgroups,
		now:           time.Now,
		isCgroup2:     isCgroup2,
		readBuf:       make([]byte, 4096),
		direntBuf:     make([]byte, 32<<10),
		cgroups:       map[uint64]*cgroup{},
		absentCgroups: map[uint64]struct{}{},
		pending:       make([]*cgroup, 0, maxPendingCgroups),
		inodes:        map[uint32]int32{},
		runtimes:      map[string]string{},
		procs:         map[int32]*process{},
	}
	r.socketInodes = r.readSocketInodes
	return r
}

func isCgroup2(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}

// Lookup returns the owner of a socket from its INET_DIAG_CGROUP_ID (0 if
// absent) and its inode (idiag_inode, 0 for TIME_WAIT). It does no syscall
// and no allocation; what it could not attribute is remembered for the next
// Refresh to look for.
func (r *Resolver) Lookup(cgroupID uint64, inode uint32) Owner {
	r.mu.Lock()
	defer r.mu.Unlock()
	o := Owner{Unit: Unknown, Process: Unknown}
	var cg *cgroup
	if cgroupID != 0 {
		if cg = r.cgroups[cgroupID]; cg != nil {
			o.Unit = cg.unit
		} else {
			r.noteUnknownCgroup(cgroupID)
		}
	}
	if inode != 0 {
		if pid, ok := r.inodes[inode]; ok {
			if p := r.procs[pid]; p != nil {
				o.Process = p.comm
				if cg == nil {
					o.Unit = p.unit
				}
				return o
			}
		}
	}
	if inode != 0 && cg == nil {
		r.unresolved++
	}
	if cg != nil && inode != 0 {
		// A socket opened since its process was last read: its cgroup's
		// processes may all have one name.
		if cg.comm != "" {
			o.Process = cg.comm
		}
		if !cg.pending && len(r.pending) < cap(r.pending) {
			cg.pending = true
			r.pending = append(r.pending, cg)
		}
	}
	return o
}

func (r *Resolver) noteUnknownCgroup(id uint64) {
	if _, absent := r.absentCgroups[id]; absent {
		return
	}
	for _, u := range r.unknownCgroups[:r.nUnknown] {
		if u == id {
			return
		}
	}
	if r.nUnknown < len(r.unknownCgroups) {
		r.unknownCgroups[r.nUnknown] = id
		r.nUnknown++
	}
}

// Refresh is called once at the start of each scrape, before the Lookups: it
// advances the bounded scan of /proc, and walks the cgroup tree again if a
// Lookup since the last Refresh met an unknown cgroup id, at most every 10
// seconds. It stops early when ctx is done.
func (r *Resolver) Refresh(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n, err := readFile(r.procPath+"/self/status", r.readBuf); err == nil {
		r.caps, r.capsKnown = parseCapEff(r.readBuf[:n])
	}
	if now := r.now(); !r.cgroupWalked || (r.nUnknown > 0 && now.Sub(r.lastCgroupRun) >= cgroupWalkInterval) {
		r.walkCgroups()
		r.cgroupWalked, r.lastCgroupRun = true, now
	}
	r.scanProcesses(ctx)
	r.nameCgroups(ctx)
}

// walkCgroups maps the id of every cgroup to its unit. A cgroup's id is the
// inode number of its directory (the kernfs node id).
func (r *Resolver) walkCgroups() {
	// The pending cgroups are entries of the map about to be replaced.
	for _, cg := range r.pending {
		cg.pending = false
	}
	r.pending = r.pending[:0]
	root := r.cgroupPath
	if !r.isCgroup2(root) {
		root += "/unified"
	}
	r.cgroupUp = r.isCgroup2(root)
	if !r.cgroupUp {
		// Not even a hybrid host: the ids of the sockets name no
		// directory that can be read.
		clear(r.cgroups)
		return
	}
	cgroups := make(map[uint64]*cgroup, len(r.cgroups))
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == root {
				return err
			}
			// A cgroup removed under the walk, or one not readable:
			// the rest of the tree is still worth naming.
			return nil
		}
		if !d.IsDir() {
			return nil
		}
		if len(cgroups) >= r.maxCgroups {
			return filepath.SkipAll
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		cg := &cgroup{path: path, unit: UnitFromCgroupPath(path[len(root):])}
		if old := r.cgroups[st.Ino]; old != nil && old.path == path {
			cg.comm = old.comm
		}
		cgroups[st.Ino] = cg
		return nil
	})
	if err != nil {
		r.cgroupUp = false
	}
	r.cgroups = cgroups
	for _, id := range r.unknownCgroups[:r.nUnknown] {
		if _, ok := cgroups[id]; !ok {
			if len(r.absentCgroups) >= maxAbsentCgroups {
				clear(r.absentCgroups)
			}
			r.absentCgroups[id] = struct{}{}
		}
	}
	r.nUnknown = 0
}

// scanProcesses lists the processes, forgets the dead ones, and reads the fd
// tables of the next budget of them in PID order, wrapping around. Once a
// full pass is done, it reads fd tables only when Lookups since the last
// Refresh met sockets that no process read so far holds and whose cgroup is
// unknown: on a host whose sockets are all known, or whose new sockets come
// from known cgroups (read by nameCgroups), a scrape reads no fd table here.
func (r *Resolver) scanProcesses(ctx context.Context) {
	needed := !r.last.done || r.unresolved > 0
	r.unresolved = 0
	r.pids = r.pids[:0]
	dir, err := unix.Open(r.procPath, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	err = readDir(dir, r.direntBuf, func(name []byte) {
		if pid, ok := parsePID(name); ok {
			r.pids = append(r.pids, pid)
		}
	})
	unix.Close(dir)
	if err != nil {
		return
	}
	slices.Sort(r.pids)
	for pid := range r.procs {
		if _, alive := slices.BinarySearch(r.pids, pid); !alive {
			r.forget(pid)
		}
	}
	if len(r.pids) == 0 || !needed {
		return
	}
	i, _ := slices.BinarySearch(r.pids, r.cursor)
	for range min(r.budget, len(r.pids)) {
		if ctx.Err() != nil {
			break
		}
		if i == len(r.pids) {
			i = 0
		}
		r.scanProcess(r.pids[i])
		i++
		if i == len(r.pids) {
			r.scan.done = true
			r.last, r.scan = r.scan, pass{}
		}
	}
	if i == len(r.pids) {
		i = 0
	}
	r.cursor = r.pids[i]
}

// scanProcess reads the name, cgroup and socket inodes of one process, as
// part of the pass under way.
func (r *Resolver) scanProcess(pid int32) {
	r.scan.scanned++
	if err := r.readSockets(pid); errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
		r.scan.unreadable++
	}
}

// readSockets reads the name, cgroup and socket inodes of one process. It
// returns EACCES or EPERM when they cannot be read, and forgets a process
// that exited.
func (r *Resolver) readSockets(pid int32) error {
	p, err := r.readProcess(pid)
	if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
		// procfs mounted with hidepid=1.
		return err
	}
	if err != nil {
		r.forget(pid)
		return nil
	}
	r.newInodes = r.newInodes[:0]
	err = r.socketInodes(pid, r.direntBuf, func(inode uint32) {
		r.newInodes = append(r.newInodes, inode)
	})
	switch {
	case errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM):
		return err
	case err != nil:
		// Exited under the scan: its sockets are gone too.
		r.forget(pid)
		return nil
	}
	for _, inode := range p.inodes {
		if r.inodes[inode] == pid {
			delete(r.inodes, inode)
		}
	}
	p.inodes = p.inodes[:0]
	for _, inode := range r.newInodes {
		if _, held := r.inodes[inode]; held {
			// Shared with a process that was read first (a forked
			// worker's listener): that one names it.
			continue
		}
		if len(r.inodes) >= r.maxInodes {
			r.scan.dropped++
			continue
		}
		r.inodes[inode] = pid
		p.inodes = append(p.inodes, inode)
	}
	return nil
}

// readProcess reads the name and the cgroup of a process into its entry,
// making a new one if the PID is new or now names another process.
func (r *Resolver) readProcess(pid int32) (*process, error) {
	base := r.procPath + "/" + strconv.Itoa(int(pid))
	n, err := readFile(base+"/stat", r.readBuf)
	if err != nil {
		return nil, err
	}
	comm, start, ok := parseStat(r.readBuf[:n])
	if !ok {
		return nil, unix.EINVAL
	}
	p := r.procs[pid]
	if p != nil && p.start != start {
		r.forget(pid)
		p = nil
	}
	if p == nil {
		p = &process{start: start}
		r.procs[pid] = p
	}
	if string(comm) != p.comm {
		// A new process, or one that ran execve(2).
		p.comm = bounded(string(comm))
		if _, known := r.runtimes[p.comm]; !known && len(r.runtimes) < maxRuntimes {
			r.runtimes[p.comm] = runtimeOf(base + "/exe")
		}
	}
	p.unit = Unknown
	if n, err := readFile(base+"/cgroup", r.readBuf); err == nil {
		p.unit = unitFromProcCgroup(r.readBuf[:n])
	}
	return p, nil
}

// Runtime returns the language runtime of the processes named process, as
// far as their executable tells: "go", "python", "java", "node", "ruby",
// "php", "perl", or "" when unknown. It is learnt once per name, from the
// first process read with it, so the advice can give the fix for the
// language the owner is written in.
func (r *Resolver) Runtime(process string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.runtimes[process]
}

// interpreters are the runtimes told by the file name of their executable.
var interpreters = []string{"python", "java", "node", "ruby", "php", "perl"}

// runtimeOf tells the runtime of the executable at exe (procPath/PID/exe):
// an interpreter by its file name (python3.11), or a Go program by the
// build information section every Go binary carries since Go 1.13.
func runtimeOf(exe string) string {
	target, err := os.Readlink(exe)
	if err != nil {
		return ""
	}
	name := filepath.Base(target)
	for _, interpreter := range interpreters {
		if strings.HasPrefix(name, interpreter) {
			return interpreter
		}
	}
	f, err := elf.Open(exe)
	if err != nil {
		return ""
	}
	defer f.Close()
	if f.Section(".go.buildinfo") != nil {
		return "go"
	}
	return ""
}

// forget drops a process that exited, or whose PID was reused, with the
// inodes it held.
func (r *Resolver) forget(pid int32) {
	p := r.procs[pid]
	if p == nil {
		return
	}
	for _, inode := range p.inodes {
		if r.inodes[inode] == pid {
			delete(r.inodes, inode)
		}
	}
	delete(r.procs, pid)
}

// readSocketInodes calls fn with the inode of each socket in the fd table of
// a process.
func (r *Resolver) readSocketInodes(pid int32, buf []byte, fn func(inode uint32)) error {
	dir, err := unix.Open(r.procPath+"/"+strconv.Itoa(int(pid))+"/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(dir)
	var link [64]byte
	var linkErr error
	err = readDir(dir, buf, func(name []byte) {
		n, err := unix.Readlinkat(dir, string(name), link[:])
		switch {
		case err == nil:
			if inode, ok := parseSocketLink(link[:n]); ok {
				fn(inode)
			}
		case errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM):
			linkErr = err
		}
		// ENOENT: the fd was closed since the directory was read.
	})
	if err != nil {
		return err
	}
	return linkErr
}

// nameCgroups finds, for each cgroup whose sockets Lookup could not
// attribute to a process, whether all its processes have one name; if they
// do not, it reads their fd tables. It reads at most the scan budget of
// processes.
func (r *Resolver) nameCgroups(ctx context.Context) {
	budget := r.budget
	for _, cg := range r.pending {
		cg.pending = false
		if budget <= 0 || ctx.Err() != nil {
			continue
		}
		cg.comm = ""
		n, err := readFile(cg.path+"/cgroup.procs", r.readBuf)
		if err != nil {
			continue
		}
		r.cgroupProcs = r.cgroupProcs[:0]
		for line := range bytes.SplitSeq(r.readBuf[:n], []byte("\n")) {
			if pid, ok := parsePID(line); ok {
				r.cgroupProcs = append(r.cgroupProcs, pid)
			}
		}
		if n == len(r.readBuf) || len(r.cgroupProcs) == 0 || len(r.cgroupProcs) > budget {
			// More processes than a page lists, or than the budget.
			budget -= len(r.cgroupProcs)
			continue
		}
		budget -= len(r.cgroupProcs)
		if cg.comm = r.sharedComm(r.cgroupProcs); cg.comm == "" {
			// Processes of several names: read theirs, not every
			// process's, to find which one holds the new sockets.
			for _, pid := range r.cgroupProcs {
				r.readSockets(pid)
			}
		}
	}
	r.pending = r.pending[:0]
}

// sharedComm returns the name of the processes if they all have the same
// one, or "".
func (r *Resolver) sharedComm(pids []int32) string {
	var shared []byte
	for i, pid := range pids {
		n, err := readFile(r.procPath+"/"+strconv.Itoa(int(pid))+"/stat", r.readBuf)
		if err != nil {
			return ""
		}
		comm, _, ok := parseStat(r.readBuf[:n])
		if !ok || (i > 0 && string(comm) != string(shared)) {
			return ""
		}
		if i == 0 {
			shared = append(shared, comm...)
		}
	}
	return bounded(string(shared))
}

// Status says which attribution sources work with the current privileges.
func (r *Resolver) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.last
	if !p.done {
		p = r.scan
	}
	s := Status{
		CgroupUp:            r.cgroupUp,
		ProcessUp:           p.scanned > 0 && p.unreadable == 0,
		ProcessesUnreadable: p.unreadable,
		InodesDropped:       p.dropped,
	}
	if !s.CgroupUp {
		s.Missing = append(s.Missing, "cgroup v2")
	}
	if p.unreadable > 0 {
		// Without knowing the capabilities, name both.
		ptrace := !r.capsKnown || !r.caps.has(capSysPtrace)
		dac := !r.capsKnown || !(r.caps.has(capDACReadSearch) || r.caps.has(capDACOverride))
		if ptrace {
			s.Missing = append(s.Missing, "CAP_SYS_PTRACE")
		}
		if dac {
			s.Missing = append(s.Missing, "CAP_DAC_READ_SEARCH")
		}
		if !ptrace && !dac {
			s.Missing = append(s.Missing, "ptrace access")
		}
	}
	return s
}

// OwnerOfPID names the unit or container and the process of one PID, from
// procPath/PID/cgroup and procPath/PID/stat. It reads them afresh and needs
// no Resolver: it serves the labelling of a few network namespaces, not the
// sockets.
func OwnerOfPID(procPath string, pid int) Owner {
	o := Owner{Unit: Unknown, Process: Unknown}
	base := procPath + "/" + strconv.Itoa(pid)
	buf := make([]byte, 4096)
	if n, err := readFile(base+"/cgroup", buf); err == nil {
		o.Unit = unitFromProcCgroup(buf[:n])
	}
	if n, err := readFile(base+"/stat", buf); err == nil {
		if comm, _, ok := parseStat(buf[:n]); ok {
			o.Process = bounded(string(comm))
		}
	}
	return o
}
