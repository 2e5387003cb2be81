package netns

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"golang.org/x/sys/unix"
)

// HostName is the name of the exporter's own network namespace.
const HostName = "host"

// DefaultMax is how many network namespaces are collected at most by
// default (--collector.netns.max): the sockets collector's and the
// connection tracer's series per namespace are multiplied by it.
const DefaultMax = 64

// Namespace is one network namespace of the host, as Discover found it.
type Namespace struct {
	// Name is the label value: HostName for the exporter's own namespace;
	// else its name under /run/netns; else what the namer returned for PID
	// (the container or unit that owns it); else "inode:<inode>". Names are
	// unique within one Discovery: a name already taken gets "#<inode>"
	// appended.
	Name string
	// Dev and Inode identify the namespace: its nsfs inode. They are what Do
	// checks Path against before entering.
	Dev   uint64
	Inode uint64
	// Path opens the namespace: /run/netns/NAME where it is named there, else
	// PROC/PID/ns/net. A PID path may come to name another process's
	// namespace once the process exits and its PID is reused; Do notices.
	Path string
	// PID is a process in the namespace: the exporter's own in the host's,
	// else the lowest; 0 if none, a namespace only bind-mounted under
	// /run/netns.
	PID int
}

// Discovery is what one Discover call found.
type Discovery struct {
	// Namespaces are the namespaces kept, the host's first.
	Namespaces []Namespace
	// Overflow counts the namespaces found past the cap and left out.
	Overflow int
	// Unreadable counts the processes whose namespace could not be read,
	// mostly for want of ptrace access to them (CAP_SYS_PTRACE, or a process
	// of another user namespace): namespaces only they hold are missing.
	Unreadable int
}

// statFunc returns the device and inode of the file path names, following
// symbolic links: /proc/PID/ns/net is a magic link to an nsfs inode.
type statFunc func(path string) (dev, ino uint64, err error)

func statFile(path string) (dev, ino uint64, err error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, 0, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	return st.Dev, st.Ino, nil
}

// Discover lists the network namespaces of the host: those of the processes
// under procPath (procPath/PID/ns/net) and those bind-mounted under runNetns
// (/run/netns, where `ip netns add` puts them; a missing directory holds
// none), de-duplicated by (dev, inode). It keeps at most max, max >= 1: the
// exporter's own namespace first (procPath/self, named HostName), then the
// named ones by name, then the others by PID, and counts the rest in
// Overflow. That order keeps the same namespaces across scrapes while the
// set is stable, and prefers what an operator named.
//
// namer, which may be nil, names a namespace only a process holds, from
// that process's PID (the lowest in the namespace); it is called only for
// the namespaces kept, and an empty result means no name.
//
// The cost is one stat per process and per /run/netns entry: Discover
// neither opens nor enters any namespace. A process that exits meanwhile is
// skipped; one whose namespace cannot be read is counted in Unreadable.
// Threads are not looked at: a thread that entered another namespace than
// its process's (as Do's do, for a while) does not make it known.
func Discover(procPath, runNetns string, max int, namer func(pid int) string) (Discovery, error) {
	return discover(procPath, runNetns, max, namer, statFile)
}

// found is one namespace while Discover gathers them.
type found struct {
	name string // the /run/netns name, empty if none
	path string
	pid  int
}

type nsID struct{ dev, ino uint64 }

func discover(procPath, runNetns string, max int, namer func(pid int) string, stat statFunc) (Discovery, error) {
	if max < 1 {
		return Discovery{}, fmt.Errorf("network namespace cap %d: want at least 1, for the host's", max)
	}
	self, err := os.Readlink(filepath.Join(procPath, "self"))
	if err != nil {
		return Discovery{}, fmt.Errorf("find the exporter's own process: %w", err)
	}
	selfPID, err := strconv.Atoi(self)
	if err != nil {
		return Discovery{}, fmt.Errorf("find the exporter's own process: %s/self links to %q, not a PID", procPath, self)
	}
	hostPath := filepath.Join(procPath, self, "ns", "net")
	hostDev, hostIno, err := stat(hostPath)
	if err != nil {
		return Discovery{}, fmt.Errorf("find the exporter's own network namespace: %w", err)
	}
	host := nsID{hostDev, hostIno}

	var d Discovery
	byID := map[nsID]*found{host: {path: hostPath, pid: selfPID}}
	var named, held []nsID // in the order they are kept after the host's

	names, err := readDirNames(runNetns)
	if err != nil {
		return Discovery{}, err
	}
	slices.Sort(names)
	for _, name := range names {
		path := filepath.Join(runNetns, name)
		dev, ino, err := stat(path)
		// Every namespace is an inode of the one nsfs: an entry on another
		// device is a file `ip netns add` made but never mounted a namespace
		// on (it failed, or the entry is being made right now).
		if err != nil || dev != hostDev {
			continue
		}
		id := nsID{dev, ino}
		if byID[id] != nil {
			continue // the host's, or named already under an earlier name
		}
		byID[id] = &found{name: labelValue(name), path: path}
		named = append(named, id)
	}

	entries, err := readDirNames(procPath)
	if err != nil {
		return Discovery{}, err
	}
	pids := make([]int, 0, len(entries))
	for _, e := range entries {
		if pid, err := strconv.Atoi(e); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	slices.Sort(pids)
	for _, pid := range pids {
		path := filepath.Join(procPath, strconv.Itoa(pid), "ns", "net")
		dev, ino, err := stat(path)
		switch {
		case errors.Is(err, fs.ErrNotExist), errors.Is(err, unix.ESRCH):
			continue // the process exited
		case err != nil:
			d.Unreadable++
			continue
		case dev != hostDev:
			continue // not a namespace: procPath is no procfs
		}
		id := nsID{dev, ino}
		if f := byID[id]; f != nil {
			if f.pid == 0 {
				f.pid = pid
			}
			continue
		}
		byID[id] = &found{path: path, pid: pid}
		held = append(held, id)
	}

	kept := append([]nsID{host}, named...)
	kept = append(kept, held...)
	if len(kept) > max {
		d.Overflow = len(kept) - max
		kept = kept[:max]
	}
	used := make(map[string]bool, len(kept))
	d.Namespaces = make([]Namespace, 0, len(kept))
	for i, id := range kept {
		f := byID[id]
		name := f.name
		switch {
		case i == 0:
			name = HostName
		case name == "" && namer != nil && f.pid != 0:
			name = namer(f.pid)
		}
		if name == "" {
			name = "inode:" + strconv.FormatUint(id.ino, 10)
		}
		for used[name] {
			name += "#" + strconv.FormatUint(id.ino, 10)
		}
		used[name] = true
		d.Namespaces = append(d.Namespaces, Namespace{Name: name, Dev: id.dev, Inode: id.ino, Path: f.path, PID: f.pid})
	}
	return d, nil
}

// readDirNames returns the names in dir, none if it does not exist.
func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// Readdirnames, unlike ReadDir, neither sorts nor builds a DirEntry per
	// name: /proc lists every process.
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	return names, nil
}

// labelValue makes a /run/netns file name, any bytes but '/', a label value:
// valid UTF-8, every control character shown as '?' as ps shows them, so
// that a scrape printed on a terminal carries no escape sequence.
func labelValue(name string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, strings.ToValidUTF8(name, "\uFFFD"))
}
