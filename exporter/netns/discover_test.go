package netns

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// fixture is a procfs and a /run/netns in a temporary directory. A
// namespace is a plain file: Discover takes its identity from stat, which
// follows the symbolic links that stand for /proc/PID/ns/net magic links
// and for bind mounts.
type fixture struct {
	dir, proc, run string
	inodes         map[string]uint64 // namespace file name to inode
}

// newFixture returns a fixture whose own process is PID 100, in namespace
// "host".
func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{dir: dir, proc: filepath.Join(dir, "proc"), run: filepath.Join(dir, "run", "netns"), inodes: map[string]uint64{}}
	for _, d := range []string{f.proc, f.run, filepath.Join(dir, "ns")} {
		mkdir(t, d)
	}
	symlink(t, "100", filepath.Join(f.proc, "self"))
	mkdir(t, filepath.Join(f.proc, "sys")) // not a process
	f.process(t, 100, "host")
	return f
}

// namespace returns the file of the namespace called ns, made on first use.
func (f *fixture) namespace(t *testing.T, ns string) string {
	t.Helper()
	path := filepath.Join(f.dir, "ns", ns)
	if _, ok := f.inodes[ns]; !ok {
		if err := os.WriteFile(path, nil, 0o444); err != nil {
			t.Fatal(err)
		}
		var st syscall.Stat_t
		if err := syscall.Stat(path, &st); err != nil {
			t.Fatal(err)
		}
		f.inodes[ns] = st.Ino
	}
	return path
}

// process adds process pid, in the namespace called ns.
func (f *fixture) process(t *testing.T, pid int, ns string) {
	t.Helper()
	dir := filepath.Join(f.proc, strconv.Itoa(pid), "ns")
	mkdir(t, dir)
	symlink(t, f.namespace(t, ns), filepath.Join(dir, "net"))
}

// named names the namespace called ns under /run/netns.
func (f *fixture) named(t *testing.T, name, ns string) {
	t.Helper()
	symlink(t, f.namespace(t, ns), filepath.Join(f.run, name))
}

func mkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func TestDiscover(t *testing.T) {
	unitNamer := func(pid int) string { return "unit-" + strconv.Itoa(pid) }
	tests := []struct {
		name string
		// processes maps PIDs to namespace names; named maps /run/netns
		// names to namespace names.
		processes map[int]string
		named     map[string]string
		// setup adds what the maps cannot say.
		setup func(t *testing.T, f *fixture)
		// denied are the PIDs whose ns/net stat fails with EACCES.
		denied []int
		max    int
		namer  func(pid int) string
		// want are "NAME PATH PID" lines, PATH under the fixture, with
		// {ns} standing for the inode of namespace ns.
		want       []string
		overflow   int
		unreadable int
	}{{
		name: "host only",
		max:  10,
		want: []string{"host proc/100/ns/net 100"},
	}, {
		name:      "processes de-duplicated, the lowest PID kept, by PID",
		processes: map[int]string{205: "a", 201: "a", 150: "host", 1000: "b", 99: "host"},
		max:       10,
		want:      []string{"host proc/100/ns/net 100", "inode:{a} proc/201/ns/net 201", "inode:{b} proc/1000/ns/net 1000"},
	}, {
		name:      "named first, by name, with the path of their name and the PID of a process",
		processes: map[int]string{101: "a", 300: "c"},
		named:     map[string]string{"zeta": "b", "web": "c", "alpha": "c"},
		max:       10,
		namer:     unitNamer,
		want:      []string{"host proc/100/ns/net 100", "alpha run/netns/alpha 300", "zeta run/netns/zeta 0", "unit-101 proc/101/ns/net 101"},
	}, {
		name:  "names that are not label values: control characters and bytes that are not UTF-8",
		named: map[string]string{"red\x1b[31m\n": "a", "q\"x{y=\"1\"}": "b", "bad\xff": "c"},
		max:   10,
		want:  []string{"host proc/100/ns/net 100", "bad\uFFFD run/netns/bad\xff 0", "q\"x{y=\"1\"} run/netns/q\"x{y=\"1\"} 0", "red?[31m? run/netns/red\x1b[31m\n 0"},
	}, {
		name:  "the host's namespace named under /run/netns stays the host's",
		named: map[string]string{"main": "host"},
		max:   10,
		want:  []string{"host proc/100/ns/net 100"},
	}, {
		name:      "an empty name from the namer falls back to the inode",
		processes: map[int]string{101: "a", 102: "b"},
		max:       10,
		namer: func(pid int) string {
			if pid == 101 {
				return "unit"
			}
			return ""
		},
		want: []string{"host proc/100/ns/net 100", "unit proc/101/ns/net 101", "inode:{b} proc/102/ns/net 102"},
	}, {
		name:      "duplicate names get the inode appended",
		processes: map[int]string{101: "a", 102: "b", 103: "c"},
		named:     map[string]string{"host": "d"},
		max:       10,
		namer: func(pid int) string {
			if pid == 103 {
				return "host"
			}
			return "app"
		},
		want: []string{
			"host proc/100/ns/net 100", "host#{d} run/netns/host 0",
			"app proc/101/ns/net 101", "app#{b} proc/102/ns/net 102", "host#{c} proc/103/ns/net 103",
		},
	}, {
		name:      "cap: the host's, then named, then held; the rest counted",
		processes: map[int]string{101: "a", 102: "b", 103: "b"},
		named:     map[string]string{"web": "c"},
		max:       2,
		want:      []string{"host proc/100/ns/net 100", "web run/netns/web 0"},
		overflow:  2,
	}, {
		name:      "cap of one keeps only the host's",
		processes: map[int]string{101: "a"},
		named:     map[string]string{"web": "c"},
		max:       1,
		want:      []string{"host proc/100/ns/net 100"},
		overflow:  2,
	}, {
		name:      "the namer is not asked about namespaces past the cap",
		processes: map[int]string{101: "a", 102: "b"},
		max:       2,
		namer: func(pid int) string {
			if pid != 101 {
				panic("namer asked about PID " + strconv.Itoa(pid))
			}
			return "a"
		},
		want:     []string{"host proc/100/ns/net 100", "a proc/101/ns/net 101"},
		overflow: 1,
	}, {
		name:      "vanished processes are skipped",
		processes: map[int]string{101: "a"},
		setup: func(t *testing.T, f *fixture) {
			mkdir(t, filepath.Join(f.proc, "400")) // exited: no ns left
			mkdir(t, filepath.Join(f.proc, "401", "ns"))
			symlink(t, filepath.Join(f.dir, "ns", "gone"), filepath.Join(f.proc, "401", "ns", "net"))
		},
		max:  10,
		want: []string{"host proc/100/ns/net 100", "inode:{a} proc/101/ns/net 101"},
	}, {
		name:       "unreadable processes are counted",
		processes:  map[int]string{101: "a", 102: "b", 103: "b"},
		denied:     []int{101, 102},
		max:        10,
		want:       []string{"host proc/100/ns/net 100", "inode:{b} proc/103/ns/net 103"},
		unreadable: 2,
	}, {
		name:  "a /run/netns entry that is no namespace is skipped",
		named: map[string]string{"web": "a"},
		setup: func(t *testing.T, f *fixture) {
			// An entry `ip netns add` made but mounted nothing on: a file
			// of another filesystem than the namespaces'.
			symlink(t, "/proc/version", filepath.Join(f.run, "unmounted"))
			symlink(t, filepath.Join(f.dir, "ns", "gone"), filepath.Join(f.run, "deleted"))
		},
		max:  10,
		want: []string{"host proc/100/ns/net 100", "web run/netns/web 0"},
	}, {
		name:  "no /run/netns",
		setup: func(t *testing.T, f *fixture) { os.Remove(f.run) },
		max:   10,
		want:  []string{"host proc/100/ns/net 100"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			for pid, ns := range tt.processes {
				f.process(t, pid, ns)
			}
			for name, ns := range tt.named {
				f.named(t, name, ns)
			}
			if tt.setup != nil {
				tt.setup(t, f)
			}
			stat := func(path string) (uint64, uint64, error) {
				for _, pid := range tt.denied {
					if path == filepath.Join(f.proc, strconv.Itoa(pid), "ns", "net") {
						return 0, 0, &os.PathError{Op: "stat", Path: path, Err: syscall.EACCES}
					}
				}
				return statFile(path)
			}
			d, err := discover(f.proc, f.run, tt.max, tt.namer, stat)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, ns := range d.Namespaces {
				rel, err := filepath.Rel(f.dir, ns.Path)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, ns.Name+" "+rel+" "+strconv.Itoa(ns.PID))
			}
			var want []string
			for _, w := range tt.want {
				for ns, ino := range f.inodes {
					w = strings.ReplaceAll(w, "{"+ns+"}", strconv.FormatUint(ino, 10))
				}
				want = append(want, w)
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("namespaces:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			for _, ns := range d.Namespaces {
				var st syscall.Stat_t
				if err := syscall.Stat(ns.Path, &st); err != nil {
					t.Fatal(err)
				}
				if ns.Dev != st.Dev || ns.Inode != st.Ino {
					t.Errorf("%s: (dev, inode) (%d, %d), its path has (%d, %d)", ns.Name, ns.Dev, ns.Inode, st.Dev, st.Ino)
				}
			}
			if d.Overflow != tt.overflow || d.Unreadable != tt.unreadable {
				t.Errorf("overflow %d, unreadable %d; want %d, %d", d.Overflow, d.Unreadable, tt.overflow, tt.unreadable)
			}
		})
	}
}

func TestDiscoverErrors(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, f *fixture)
		max   int
		want  string
	}{{
		name: "cap below one",
		max:  0,
		want: "network namespace cap 0: want at least 1, for the host's",
	}, {
		name:  "no self",
		setup: func(t *testing.T, f *fixture) { os.Remove(filepath.Join(f.proc, "self")) },
		max:   1,
		want:  "find the exporter's own process: readlink PROC/self: no such file or directory",
	}, {
		name: "self is no PID",
		setup: func(t *testing.T, f *fixture) {
			os.Remove(filepath.Join(f.proc, "self"))
			symlink(t, "sys", filepath.Join(f.proc, "self"))
		},
		max:  1,
		want: `find the exporter's own process: PROC/self links to "sys", not a PID`,
	}, {
		name:  "own namespace unreadable",
		setup: func(t *testing.T, f *fixture) { os.Remove(filepath.Join(f.proc, "100", "ns", "net")) },
		max:   1,
		want:  "find the exporter's own network namespace: stat PROC/100/ns/net: no such file or directory",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			if tt.setup != nil {
				tt.setup(t, f)
			}
			_, err := Discover(f.proc, f.run, tt.max, nil)
			if err == nil {
				t.Fatal("no error")
			}
			if got := strings.ReplaceAll(err.Error(), f.proc, "PROC"); got != tt.want {
				t.Errorf("error %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDiscoverRealProc(t *testing.T) {
	d, err := Discover("/proc", "/run/netns", 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/ns/net", &st); err != nil {
		t.Fatal(err)
	}
	host := d.Namespaces[0]
	if host.Name != HostName || host.Dev != st.Dev || host.Inode != st.Ino || host.PID != os.Getpid() {
		t.Errorf("first namespace %+v, want the host's: inode %d, PID %d", host, st.Ino, os.Getpid())
	}
	names := map[string]bool{}
	for _, ns := range d.Namespaces {
		if names[ns.Name] {
			t.Errorf("name %q twice", ns.Name)
		}
		names[ns.Name] = true
	}
	t.Logf("%d namespaces, %d processes unreadable", len(d.Namespaces), d.Unreadable)
}
