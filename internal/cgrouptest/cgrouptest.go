// Package cgrouptest finds the cgroup v2 hierarchy and makes children in it,
// for tests that need a process in a cgroup of its own.
package cgrouptest

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// roots are where the cgroup v2 hierarchy is mounted: /sys/fs/cgroup on a
// unified host, its unified/ subdirectory on a hybrid one.
var roots = []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}

// Root returns where the cgroup v2 hierarchy is mounted, or skips the test
// where there is none.
func Root(t testing.TB) string {
	t.Helper()
	for _, root := range roots {
		var st unix.Statfs_t
		if unix.Statfs(root, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			return root
		}
	}
	t.Skip("no cgroup v2 hierarchy at /sys/fs/cgroup or /sys/fs/cgroup/unified")
	return ""
}

// Child makes the cgroup v2 child name (a unit name, such as
// "tcpadvisor-test-42.service") and returns its directory, or skips the test
// where this process may not make cgroups. It is removed when the test ends,
// once its processes have left it: register the cleanups that stop them
// after calling Child, so that they run first.
func Child(t testing.TB, name string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a cgroup; run ./test.sh as root")
	}
	root := Root(t)
	if unix.Access(root, unix.W_OK) != nil {
		t.Skipf("the cgroup v2 hierarchy at %s is not writable", root)
	}
	dir := filepath.Join(root, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cannot make a cgroup: %v", err)
	}
	t.Cleanup(func() { remove(t, dir) })
	return dir
}

// remove removes a test cgroup once its processes are gone: they may take a
// moment to leave it after they exit.
func remove(t testing.TB, dir string) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return
		}
		if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			t.Errorf("remove cgroup %s: %v", dir, err)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Into returns the attributes that start a process in the cgroup dir from
// its first instruction on (clone3 with CLONE_INTO_CGROUP), so that every
// socket it makes belongs to it. The directory stays open until the test
// ends.
func Into(t testing.TB, dir string) *syscall.SysProcAttr {
	t.Helper()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(f.Fd())}
}
