package sockdiagtest

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/tcpadvisor/tcpadvisor/exporter/sockdiag"
	"golang.org/x/sys/unix"
)

// ReadFixture reads the socket population of a fixture file: see
// ParseFixture for its format.
func ReadFixture(path string) ([]sockdiag.Socket, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sockets, err := ParseFixture(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return sockets, nil
}

// ParseFixture reads a socket population written one socket a line, as
//
//	STATE LOCAL REMOTE [RECV-Q SEND-Q] [inode=N] [cgroup=N]
//
// with STATE a label value (established, time_wait, listen, ...), LOCAL and
// REMOTE as ADDRESS:PORT ([::1]:80 for IPv6), the queues as numbers, and the
// socket's inode and cgroup ID, which say who owns it.
// Blank lines and lines starting with # are skipped. The family follows
// LOCAL's address.
func ParseFixture(r io.Reader) ([]sockdiag.Socket, error) {
	states := map[string]sockdiag.State{}
	for _, s := range sockdiag.States {
		states[s.String()] = s
	}
	var sockets []sockdiag.Socket
	scanner := bufio.NewScanner(r)
	for line := 1; scanner.Scan(); line++ {
		text := strings.TrimSpace(scanner.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		var s sockdiag.Socket
		fields := strings.Fields(text)
		for len(fields) > 3 && strings.Contains(fields[len(fields)-1], "=") {
			key, value, _ := strings.Cut(fields[len(fields)-1], "=")
			n, err := strconv.ParseUint(value, 10, 64)
			switch {
			case err != nil:
				return nil, fmt.Errorf("fixture line %d: %s=%q is not a number", line, key, value)
			case key == "inode":
				s.Inode = uint32(n)
			case key == "cgroup":
				s.CgroupID = n
			default:
				return nil, fmt.Errorf("fixture line %d: unknown field %s, want inode or cgroup", line, key)
			}
			fields = fields[:len(fields)-1]
		}
		if len(fields) != 3 && len(fields) != 5 {
			return nil, fmt.Errorf("fixture line %d: want STATE LOCAL REMOTE [RECV-Q SEND-Q] [inode=N] [cgroup=N], got %q", line, text)
		}
		var ok bool
		if s.State, ok = states[fields[0]]; !ok {
			return nil, fmt.Errorf("fixture line %d: unknown state %q", line, fields[0])
		}
		var err error
		if s.Local, err = netip.ParseAddrPort(fields[1]); err != nil {
			return nil, fmt.Errorf("fixture line %d: %w", line, err)
		}
		if s.Remote, err = netip.ParseAddrPort(fields[2]); err != nil {
			return nil, fmt.Errorf("fixture line %d: %w", line, err)
		}
		s.Family = familyOf(s.Local)
		if len(fields) == 5 {
			rq, err1 := strconv.ParseUint(fields[3], 10, 32)
			wq, err2 := strconv.ParseUint(fields[4], 10, 32)
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("fixture line %d: queues %q %q are not numbers", line, fields[3], fields[4])
			}
			s.RecvQueue, s.SendQueue = uint32(rq), uint32(wq)
		}
		sockets = append(sockets, s)
	}
	return sockets, scanner.Err()
}

// NewSocket returns a socket in state between local and remote, given as
// ADDRESS:PORT; it panics on a malformed address, as tests want.
func NewSocket(state sockdiag.State, local, remote string) sockdiag.Socket {
	s := sockdiag.Socket{State: state, Local: netip.MustParseAddrPort(local), Remote: netip.MustParseAddrPort(remote)}
	s.Family = familyOf(s.Local)
	return s
}

// familyOf returns the address family of a socket bound to local.
func familyOf(local netip.AddrPort) uint8 {
	if local.Addr().Is6() {
		return unix.AF_INET6
	}
	return unix.AF_INET
}
