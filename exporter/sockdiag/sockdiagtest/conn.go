// Package sockdiagtest provides a fake sock_diag netlink connection that
// answers inet_diag dump requests from a list of sockets, encoding real
// kernel messages, and that fails on cue. It encodes into the caller's
// buffer, so it allocates nothing per dump and can stand in for the kernel
// in benchmarks.
package sockdiagtest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/tcpadvisor/tcpadvisor/exporter/sockdiag"
	"golang.org/x/sys/unix"
)

const (
	// maxMsgLen is a message with its INET_DIAG_CGROUP_ID attribute.
	maxMsgLen = unix.NLMSG_HDRLEN + 72 + cgroupAttrLen
	// cgroupAttrLen is a struct nlattr and the u64 it carries.
	cgroupAttrLen = 4 + 8
	// datagramBudget is how much the fake packs into one datagram, like
	// the kernel's 32 KiB dump skb.
	datagramBudget = 32 << 10
)

var nativeEndian = binary.NativeEndian

// Conn is a fake sock_diag socket. Set its fields before the first Send.
type Conn struct {
	// Sockets is the population the fake kernel reports.
	Sockets []sockdiag.Socket

	// SendErr, when set, is returned by every Send.
	SendErr error
	// ReceiveErr, when set, is returned by the first Receive of every dump
	// numbered in FailDumps (or of every dump if FailDumps is empty).
	ReceiveErr error
	// Errno, when set, is replied as NLMSG_ERROR to the dumps numbered in
	// FailDumps (or to every dump if FailDumps is empty).
	Errno syscall.Errno
	// Interrupt flags NLM_F_DUMP_INTR on the dumps numbered in FailDumps
	// (or on every dump if FailDumps is empty).
	Interrupt bool
	// FailDumps lists the 1-based numbers of the dumps that the faults
	// above apply to.
	FailDumps []int
	// Block makes Receive wait for the read deadline and then fail as the
	// real socket does.
	Block bool

	// Dumps counts the dump requests received.
	Dumps int
	// Closed reports whether Close was called.
	Closed bool

	deadline time.Time
	family   uint8
	states   sockdiag.StateSet
	seq      uint32
	next     int
	pending  bool
	done     bool
}

// Dial returns a dial function for sockdiag clients that hands out c.
func (c *Conn) Dial() (sockdiag.Conn, error) { return c, nil }

func (c *Conn) faulty() bool {
	if len(c.FailDumps) == 0 {
		return true
	}
	for _, n := range c.FailDumps {
		if n == c.Dumps {
			return true
		}
	}
	return false
}

// Send accepts one inet_diag_req_v2 dump request.
func (c *Conn) Send(b []byte) error {
	if c.SendErr != nil {
		return c.SendErr
	}
	if len(b) < unix.NLMSG_HDRLEN+56 {
		return fmt.Errorf("sockdiagtest: request of %d bytes", len(b))
	}
	if t := nativeEndian.Uint16(b[4:6]); t != unix.SOCK_DIAG_BY_FAMILY {
		return fmt.Errorf("sockdiagtest: request type %d, want SOCK_DIAG_BY_FAMILY", t)
	}
	if f := nativeEndian.Uint16(b[6:8]); f != unix.NLM_F_REQUEST|unix.NLM_F_DUMP {
		return fmt.Errorf("sockdiagtest: request flags %#x, want NLM_F_REQUEST|NLM_F_DUMP", f)
	}
	r := b[unix.NLMSG_HDRLEN:]
	if r[1] != unix.IPPROTO_TCP || r[2] != 0 {
		return fmt.Errorf("sockdiagtest: request for protocol %d with extensions %#x, want TCP and none", r[1], r[2])
	}
	c.Dumps++
	c.seq = nativeEndian.Uint32(b[8:12])
	c.family = r[0]
	c.states = sockdiag.StateSet(nativeEndian.Uint32(r[4:8]))
	c.next = 0
	c.pending = true
	c.done = false
	return nil
}

// Receive packs the next datagram of the dump into b.
func (c *Conn) Receive(b []byte) (int, error) {
	if !c.pending {
		return 0, errors.New("sockdiagtest: Receive with no dump under way")
	}
	if c.Block {
		time.Sleep(time.Until(c.deadline))
		return 0, os.ErrDeadlineExceeded
	}
	fault := c.faulty()
	if c.ReceiveErr != nil && fault {
		c.pending = false
		return 0, c.ReceiveErr
	}
	if c.Errno != 0 && fault {
		c.pending = false
		n := c.header(b, unix.NLMSG_ERROR, 0, unix.NLMSG_HDRLEN+4)
		nativeEndian.PutUint32(b[n:], uint32(-int32(c.Errno)))
		return n + 4, nil
	}
	var flags uint16
	if c.Interrupt && fault {
		flags = unix.NLM_F_DUMP_INTR
	}
	n := 0
	for c.next < len(c.Sockets) && n+maxMsgLen <= min(datagramBudget, len(b)) {
		s := &c.Sockets[c.next]
		c.next++
		if s.Family != c.family || c.states&(1<<s.State) == 0 {
			continue
		}
		n += encode(b[n:], c.header(b[n:], unix.SOCK_DIAG_BY_FAMILY, flags, messageLen(s)), s)
	}
	if c.next == len(c.Sockets) && n+unix.NLMSG_HDRLEN+4 <= len(b) {
		h := c.header(b[n:], unix.NLMSG_DONE, flags|unix.NLM_F_MULTI, unix.NLMSG_HDRLEN+4)
		nativeEndian.PutUint32(b[n+h:], 0)
		n += h + 4
		c.pending = false
	}
	return n, nil
}

func (c *Conn) header(b []byte, typ, flags uint16, length int) int {
	nativeEndian.PutUint32(b[0:4], uint32(length))
	nativeEndian.PutUint16(b[4:6], typ)
	nativeEndian.PutUint16(b[6:8], flags|unix.NLM_F_MULTI)
	nativeEndian.PutUint32(b[8:12], c.seq)
	nativeEndian.PutUint32(b[12:16], 0)
	return unix.NLMSG_HDRLEN
}

// messageLen is the length of s's message: as the kernel does, only full
// sockets (a CgroupID set) carry the INET_DIAG_CGROUP_ID attribute.
func messageLen(s *sockdiag.Socket) int {
	if s.CgroupID != 0 {
		return maxMsgLen
	}
	return maxMsgLen - cgroupAttrLen
}

// encode writes s as a struct inet_diag_msg, and its cgroup ID attribute if
// it has one, after a header of h bytes.
func encode(b []byte, h int, s *sockdiag.Socket) int {
	m := b[h : h+72]
	clear(m)
	m[0] = s.Family
	m[1] = byte(s.State)
	binary.BigEndian.PutUint16(m[4:6], s.Local.Port())
	binary.BigEndian.PutUint16(m[6:8], s.Remote.Port())
	if s.Family == unix.AF_INET {
		l, r := s.Local.Addr().As4(), s.Remote.Addr().As4()
		copy(m[8:12], l[:])
		copy(m[24:28], r[:])
	} else {
		l, r := s.Local.Addr().As16(), s.Remote.Addr().As16()
		copy(m[8:24], l[:])
		copy(m[24:40], r[:])
	}
	nativeEndian.PutUint32(m[56:60], s.RecvQueue)
	nativeEndian.PutUint32(m[60:64], s.SendQueue)
	nativeEndian.PutUint32(m[68:72], s.Inode)
	if s.CgroupID == 0 {
		return h + 72
	}
	a := b[h+72 : h+72+cgroupAttrLen]
	nativeEndian.PutUint16(a[0:2], cgroupAttrLen)
	nativeEndian.PutUint16(a[2:4], inetDiagCgroupID)
	nativeEndian.PutUint64(a[4:12], s.CgroupID)
	return h + 72 + cgroupAttrLen
}

// inetDiagCgroupID is INET_DIAG_CGROUP_ID.
const inetDiagCgroupID = 21

// SetReadDeadline records the deadline that Block waits for.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.deadline = t
	return nil
}

// Close marks the fake closed.
func (c *Conn) Close() error {
	c.Closed = true
	return nil
}
