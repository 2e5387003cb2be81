// Package sockdiag dumps TCP sockets from the kernel over NETLINK_SOCK_DIAG
// (inet_diag) and hands each one to a callback as it is parsed, so that a
// caller can aggregate any number of sockets without holding them all.
//
// It asks the kernel for no inet_diag extensions: the fixed inet_diag_msg
// header carries everything tcpadvisor reads, and every extension would double
// the bytes the kernel copies (see ../shared/PERF-BASELINE.md). The one
// attribute it may read, INET_DIAG_CGROUP_ID, the kernel (5.7 and later)
// sends with every full socket unasked; a Client parses it only when told to.
package sockdiag

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// State is a TCP state as the kernel numbers it (include/net/tcp_states.h).
type State uint8

// The TCP states inet_diag reports. NEW_SYN_RECV request sockets are reported
// by the kernel as SYN_RECV, and BOUND_INACTIVE sockets are never asked for.
const (
	Established State = 1
	SynSent     State = 2
	SynRecv     State = 3
	FinWait1    State = 4
	FinWait2    State = 5
	TimeWait    State = 6
	Close       State = 7
	CloseWait   State = 8
	LastAck     State = 9
	Listen      State = 10
	Closing     State = 11

	// MaxState is the highest state number tcpadvisor counts; arrays indexed
	// by State have MaxState+1 entries.
	MaxState = Closing
)

// States lists every state tcpadvisor reports, in the kernel's order.
var States = []State{Established, SynSent, SynRecv, FinWait1, FinWait2, TimeWait, Close, CloseWait, LastAck, Listen, Closing}

var stateNames = [...]string{
	Established: "established",
	SynSent:     "syn_sent",
	SynRecv:     "syn_recv",
	FinWait1:    "fin_wait1",
	FinWait2:    "fin_wait2",
	TimeWait:    "time_wait",
	Close:       "close",
	CloseWait:   "close_wait",
	LastAck:     "last_ack",
	Listen:      "listen",
	Closing:     "closing",
}

// String returns the state's label value: the lower-case kernel name, as
// node_exporter's tcpstat collector spells it.
func (s State) String() string {
	if s >= 1 && s <= MaxState {
		return stateNames[s]
	}
	return fmt.Sprintf("state_%d", uint8(s))
}

// StateSet is the idiag_states bit mask of an inet_diag request: bit n asks
// for state n.
type StateSet uint32

// AllStates asks for every state, LISTEN included.
const AllStates StateSet = 1<<(MaxState+1) - 2

// Only returns the set holding just the given states.
func Only(states ...State) StateSet {
	var set StateSet
	for _, s := range states {
		set |= 1 << s
	}
	return set
}

// Without returns the set less the given states.
func (set StateSet) Without(states ...State) StateSet {
	return set &^ Only(states...)
}

// Socket is the part of one inet_diag_msg that tcpadvisor reads.
type Socket struct {
	Family uint8 // unix.AF_INET or unix.AF_INET6
	State  State
	Local  netip.AddrPort
	Remote netip.AddrPort
	// RecvQueue is, for a LISTEN socket, the current accept-queue length;
	// for other sockets the bytes not yet read by the application.
	RecvQueue uint32
	// SendQueue is, for a LISTEN socket, the accept-queue limit
	// (min(backlog, net.core.somaxconn)); for other sockets the bytes not
	// yet acknowledged by the peer.
	SendQueue uint32
	// Inode is the socket's inode number, as in /proc/PID/fd/N ->
	// socket:[Inode]; 0 for TIME_WAIT and SYN_RECV sockets, which no
	// process holds.
	Inode uint32
	// CgroupID is the ID of the cgroup v2 the socket was created in
	// (INET_DIAG_CGROUP_ID), when the Client reads it; else 0, as for
	// TIME_WAIT and SYN_RECV sockets, which carry no attributes.
	CgroupID uint64
}

// inetDiagCgroupID is INET_DIAG_CGROUP_ID from include/uapi/linux/inet_diag.h.
const inetDiagCgroupID = 21

// inetDiagMsgLen is sizeof(struct inet_diag_msg).
const inetDiagMsgLen = 72

// parseSocket decodes one struct inet_diag_msg into s without allocating.
// Ports and addresses are in network byte order, the queues in host order.
func parseSocket(b []byte, s *Socket) error {
	if len(b) < inetDiagMsgLen {
		return fmt.Errorf("inet_diag_msg of %d bytes, want at least %d", len(b), inetDiagMsgLen)
	}
	s.Family = b[0]
	s.State = State(b[1])
	localPort := binary.BigEndian.Uint16(b[4:6])
	remotePort := binary.BigEndian.Uint16(b[6:8])
	switch s.Family {
	case afInet:
		s.Local = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[8:12])), localPort)
		s.Remote = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[24:28])), remotePort)
	case afInet6:
		s.Local = netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[8:24])), localPort)
		s.Remote = netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[24:40])), remotePort)
	default:
		return fmt.Errorf("inet_diag_msg of unknown address family %d", s.Family)
	}
	s.RecvQueue = nativeEndian.Uint32(b[56:60])
	s.SendQueue = nativeEndian.Uint32(b[60:64])
	s.Inode = nativeEndian.Uint32(b[68:72])
	s.CgroupID = 0
	return nil
}

// parseCgroupID finds INET_DIAG_CGROUP_ID among the attributes that follow
// the inet_diag_msg. It returns 0 when it is absent.
func parseCgroupID(attrs []byte) uint64 {
	for len(attrs) >= 4 {
		attrLen := int(nativeEndian.Uint16(attrs[0:2]))
		attrType := nativeEndian.Uint16(attrs[2:4]) &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
		if attrLen < 4 || attrLen > len(attrs) {
			return 0
		}
		if attrType == inetDiagCgroupID && attrLen >= 12 {
			return nativeEndian.Uint64(attrs[4:12])
		}
		attrs = attrs[min((attrLen+unix.NLA_ALIGNTO-1)&^(unix.NLA_ALIGNTO-1), len(attrs)):]
	}
	return 0
}
