package owners

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// readFile reads the start of a small file into buf, with no allocation but
// the path's: the files of /proc it reads are generated on read and fit a
// page.
func readFile(path string, buf []byte) (int, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	n := 0
	for n < len(buf) {
		m, err := unix.Read(fd, buf[n:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return n, err
		}
		if m == 0 {
			break
		}
		n += m
	}
	return n, nil
}

// readDir calls fn with the name of each entry of the directory open as fd,
// but . and .., reading the entries with getdents64 into buf so that a
// directory of any size costs no allocation. The name is valid during the
// call only.
func readDir(fd int, buf []byte, fn func(name []byte)) error {
	for {
		n, err := unix.Getdents(fd, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if n <= 0 {
			return nil
		}
		// struct linux_dirent64: d_ino u64, d_off s64, d_reclen u16,
		// d_type u8, then d_name NUL-terminated.
		for b := buf[:n]; len(b) >= 19; {
			reclen := int(binary.NativeEndian.Uint16(b[16:18]))
			if reclen < 19 || reclen > len(b) {
				break
			}
			name := b[19:reclen]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			if !(len(name) == 1 && name[0] == '.') && !(len(name) == 2 && name[0] == '.' && name[1] == '.') {
				fn(name)
			}
			b = b[reclen:]
		}
	}
}

// parsePID parses a directory name of /proc that names a process.
func parsePID(name []byte) (int32, bool) {
	if len(name) == 0 || len(name) > 10 {
		return 0, false
	}
	var pid int64
	for _, c := range name {
		if c < '0' || c > '9' {
			return 0, false
		}
		pid = pid*10 + int64(c-'0')
	}
	if pid <= 0 || pid > 1<<31-1 {
		return 0, false
	}
	return int32(pid), true
}

// parseSocketLink parses the target of a /proc/PID/fd symlink to a socket,
// "socket:[12345]", into the socket's inode number.
func parseSocketLink(link []byte) (uint32, bool) {
	const prefix = "socket:["
	if len(link) < len(prefix)+2 || string(link[:len(prefix)]) != prefix || link[len(link)-1] != ']' {
		return 0, false
	}
	var ino uint64
	for _, c := range link[len(prefix) : len(link)-1] {
		if c < '0' || c > '9' {
			return 0, false
		}
		ino = ino*10 + uint64(c-'0')
		if ino > 1<<32-1 {
			return 0, false
		}
	}
	return uint32(ino), true
}

// parseStat reads the name and the start time (field 22, in clock ticks
// since boot) of a process from its /proc/PID/stat. The start time tells a
// process from a later one that was given the same PID. The name is read
// here rather than from /proc/PID/comm, which holds the same task name, to
// spend one read per process instead of two.
func parseStat(b []byte) (comm []byte, start uint64, ok bool) {
	// The name is in parentheses and may itself hold spaces and
	// parentheses: it ends at the last ')'.
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return nil, 0, false
	}
	comm = b[open+1 : end]
	// After the name come field 3 (state) and on; starttime is the 20th.
	fields := b[end+1:]
	for i := 0; i < 20; i++ {
		fields = bytes.TrimLeft(fields, " ")
		j := bytes.IndexByte(fields, ' ')
		if j < 0 {
			if i < 19 {
				return nil, 0, false
			}
			j = len(fields)
		}
		if i == 19 {
			field := bytes.TrimSpace(fields[:j])
			if len(field) == 0 || len(field) > 19 {
				return nil, 0, false
			}
			for _, c := range field {
				if c < '0' || c > '9' {
					return nil, 0, false
				}
				start = start*10 + uint64(c-'0')
			}
			return comm, start, true
		}
		fields = fields[j:]
	}
	return nil, 0, false
}

// unitFromProcCgroup names the owner of a process from its /proc/PID/cgroup.
// The cgroup v2 line (0::PATH) is preferred; on a host with cgroup v1 only,
// or where the v2 line says only "/" (a hybrid host whose container runtime
// uses the v1 controllers), systemd's named hierarchy, and then any
// controller with a path other than "/".
func unitFromProcCgroup(b []byte) string {
	var unified, systemd, other string
	for line := range strings.SplitSeq(string(b), "\n") {
		// hierarchy-ID:controller-list:cgroup-path
		id, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		controllers, path, ok := strings.Cut(rest, ":")
		if !ok || path == "/" {
			continue
		}
		switch {
		case id == "0" && controllers == "":
			unified = path
		case controllers == "name=systemd":
			systemd = path
		case other == "":
			other = path
		}
	}
	for _, path := range []string{unified, systemd, other} {
		if path != "" {
			return UnitFromCgroupPath(path)
		}
	}
	return HostUnit
}

// capabilities holds the effective capabilities of a process, from the
// CapEff line of its /proc/PID/status.
type capabilities uint64

// The capability bits of include/uapi/linux/capability.h that reading other
// processes' fd tables needs.
const (
	capDACOverride   = 1
	capDACReadSearch = 2
	capSysPtrace     = 19
)

func (c capabilities) has(bit uint) bool { return c&(1<<bit) != 0 }

// parseCapEff reads the CapEff line of a /proc/PID/status.
func parseCapEff(b []byte) (capabilities, bool) {
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			c, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return capabilities(c), err == nil
		}
	}
	return 0, false
}
