// Package netns finds the network namespaces of the host and runs code
// inside one, so that tcpadvisor can export every socket metric and sysctl
// per namespace: containers and services often have a namespace of their
// own, whose sockets the host's sock_diag does not see and whose sysctls
// (ip_local_port_range among them) differ from the host's.
//
// Inside a namespace, three kernel rules decide what code sees (each is
// checked by TestIntegrationNamespaces):
//
//   - A socket keeps the namespace it was created in, whichever thread uses
//     it later: a NETLINK_SOCK_DIAG socket opened inside Do dumps that
//     namespace's sockets, also after Do returned.
//   - /proc/sys/net resolves per the calling thread's namespace: a sysctl
//     read inside Do is the namespace's.
//   - /proc/self/net follows the namespace of the thread-group leader, not of
//     the calling thread: inside Do, read /proc/thread-self/net/snmp (and
//     netstat, sockstat, sockstat6) instead.
//
// Only the thread that runs Do's fn is inside; goroutines fn starts run
// wherever the scheduler puts them, in the host's namespace.
//
// Discovering needs no privilege for the exporter's own processes; reading
// other users' /proc/PID/ns/net needs CAP_SYS_PTRACE. Entering a namespace
// other than the exporter's own needs CAP_SYS_ADMIN.
package netns

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"runtime"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ErrPermission reports that Do could not enter a namespace for want of
// CAP_SYS_ADMIN. Do wraps it together with the EPERM of setns(2).
var ErrPermission = errors.New("entering a network namespace needs CAP_SYS_ADMIN")

// ErrGone reports that a namespace is no longer at its Path: it was deleted,
// its process exited, or the path now opens another namespace (a PID
// reused, a name deleted and added again).
var ErrGone = errors.New("network namespace gone")

// Do runs fn on an OS thread inside ns and returns fn's error. The caller's
// goroutine and thread never change namespace: fn runs on a goroutine of its
// own, locked to its thread, which enters ns only after checking that Path
// still opens the namespace of ns's Dev and Inode (else the error wraps
// ErrGone and fn does not run), and leaves it when fn returns. A thread
// that fails to leave stays locked, so that the Go runtime ends it with the
// goroutine: no thread is ever handed back in a foreign namespace. In the
// exporter's own namespace Do enters nothing and needs no privilege.
//
// Do returns ctx's error as soon as ctx is done, without waiting for fn:
// a scrape's deadline holds even if fn blocks. fn then runs on to its end
// and its result is dropped, so fn should be bounded by the same ctx, and
// the caller must not use what fn writes once Do returned an error (and fn
// must not send to a channel that may be closed by then, such as a
// collector's metrics channel: gather into values, emit after Do).
func Do(ctx context.Context, ns Namespace, fn func() error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("network namespace %s: %w", ns.Name, err)
	}
	done := make(chan error, 1) // buffered: fn's goroutine never waits for a caller gone
	go func() { done <- inside(ns, fn) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		select {
		case err := <-done:
			return err // fn finished too: its result is better than the deadline's
		default:
			return fmt.Errorf("network namespace %s: %w", ns.Name, ctx.Err())
		}
	}
}

// inside runs fn inside ns on the calling goroutine's thread, locked to it,
// and unlocks it at the end unless the thread could not go back to its own
// namespace.
func inside(ns Namespace, fn func() error) error {
	runtime.LockOSThread()
	foreign := false
	defer func() {
		if !foreign {
			runtime.UnlockOSThread()
		}
	}()

	// The thread-group leader's namespace is what /proc/self/net shows every
	// thread and what Discover takes for the host's: it must never move.
	// Another goroutine started now cannot land on the leader, which this
	// one holds locked until that goroutine is done.
	if unix.Gettid() == unix.Getpid() {
		done := make(chan error, 1)
		go func() { done <- inside(ns, fn) }()
		return <-done
	}

	orig, err := netns.Get()
	if err != nil {
		return fmt.Errorf("network namespace %s: open this thread's own: %w", ns.Name, err)
	}
	defer orig.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(orig), &st); err != nil {
		return fmt.Errorf("network namespace %s: stat this thread's own: %w", ns.Name, err)
	}
	if st.Dev == ns.Dev && st.Ino == ns.Inode {
		return fn()
	}

	target, err := open(ns)
	if err != nil {
		return err
	}
	// Threads the runtime starts while this one is locked are cloned from
	// its template thread, not from this one, so they never inherit ns.
	foreign = true
	err = netns.Set(target)
	target.Close()
	if err != nil {
		foreign = false // setns(2) changes nothing when it fails
		if errors.Is(err, unix.EPERM) {
			return fmt.Errorf("network namespace %s: setns: %w: %w", ns.Name, ErrPermission, err)
		}
		return fmt.Errorf("network namespace %s: setns: %w", ns.Name, err)
	}
	fnErr := fn()
	if err := netns.Set(orig); err != nil {
		return errors.Join(fnErr, fmt.Errorf("network namespace %s: go back to the thread's own: %w", ns.Name, err))
	}
	foreign = false
	return fnErr
}

// open opens ns.Path and checks that it is still ns: the open descriptor
// pins the namespace, so what it was checked to be is what setns enters.
func open(ns Namespace) (netns.NsHandle, error) {
	h, err := netns.GetFromPath(ns.Path)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ESRCH) {
		return h, fmt.Errorf("network namespace %s: %s: %w", ns.Name, ns.Path, ErrGone)
	}
	if err != nil {
		return h, fmt.Errorf("network namespace %s: open %s: %w", ns.Name, ns.Path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(h), &st); err != nil {
		h.Close()
		return h, fmt.Errorf("network namespace %s: stat %s: %w", ns.Name, ns.Path, err)
	}
	if st.Dev != ns.Dev || st.Ino != ns.Inode {
		h.Close()
		return h, fmt.Errorf("network namespace %s: %s is now inode %d, not %d: %w", ns.Name, ns.Path, st.Ino, ns.Inode, ErrGone)
	}
	return h, nil
}

// LoopbackUp sets lo up in the calling thread's network namespace: a new
// namespace has it down. The workload's arms and the tests' namespaces
// call it once they are inside.
func LoopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}
