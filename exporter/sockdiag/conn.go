package sockdiag

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Conn is one NETLINK_SOCK_DIAG socket. Dial opens the real one; tests pass a
// fake that replays recorded or generated kernel messages, or fails on cue.
type Conn interface {
	// Send writes one request datagram to the kernel.
	Send(b []byte) error
	// Receive reads one datagram into b and returns its length. It returns
	// os.ErrDeadlineExceeded once the read deadline has passed.
	Receive(b []byte) (int, error)
	// SetReadDeadline bounds every later Receive; the zero time removes it.
	SetReadDeadline(t time.Time) error
	Close() error
}

// Dial opens a NETLINK_SOCK_DIAG socket in the calling thread's network
// namespace. The socket keeps that namespace for its whole life.
func Dial() (Conn, error) {
	s, err := nl.GetNetlinkSocketAt(netns.None(), netns.None(), unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, fmt.Errorf("open NETLINK_SOCK_DIAG socket: %w", err)
	}
	return &netlinkConn{sock: s}, nil
}

// netlinkConn reads with read(2) on the blocking netlink descriptor rather
// than through nl.NetlinkSocket.Receive, which allocates a slice of parsed
// messages per datagram: the caller's buffer is reused for the whole dump.
type netlinkConn struct {
	sock *nl.NetlinkSocket
}

func (c *netlinkConn) Send(b []byte) error {
	for {
		err := unix.Sendto(c.sock.GetFd(), b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

func (c *netlinkConn) Receive(b []byte) (int, error) {
	for {
		n, err := unix.Read(c.sock.GetFd(), b)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			// SO_RCVTIMEO expired.
			return 0, os.ErrDeadlineExceeded
		}
		return n, err
	}
}

func (c *netlinkConn) SetReadDeadline(t time.Time) error {
	var tv unix.Timeval
	if !t.IsZero() {
		d := time.Until(t)
		if d <= 0 {
			return os.ErrDeadlineExceeded
		}
		// A zero SO_RCVTIMEO means "block forever": round up to 1µs.
		tv = unix.NsecToTimeval(max(d.Nanoseconds(), int64(time.Microsecond)))
	}
	return c.sock.SetReceiveTimeout(&tv)
}

func (c *netlinkConn) Close() error {
	c.sock.Close()
	return nil
}
