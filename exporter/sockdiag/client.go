package sockdiag

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

const (
	afInet  = unix.AF_INET
	afInet6 = unix.AF_INET6

	// receiveBufferSize is twice the largest datagram the kernel builds for
	// a netlink dump (it caps the dump skb at 32 KiB, net/netlink/af_netlink.c),
	// so a read never truncates a datagram.
	receiveBufferSize = 64 << 10

	// inetDiagReqV2Len is sizeof(struct inet_diag_req_v2).
	inetDiagReqV2Len = 56
	requestLen       = unix.NLMSG_HDRLEN + inetDiagReqV2Len
)

var nativeEndian = binary.NativeEndian

// ErrDumpInterrupted reports that the kernel flagged the dump NLM_F_DUMP_INTR:
// the socket table changed under it, so some sockets may have been reported
// twice or not at all. The caller discards what it counted and dumps again.
var ErrDumpInterrupted = errors.New("sock_diag dump interrupted by a concurrent change (NLM_F_DUMP_INTR)")

// Client runs inet_diag dumps over one Conn. It reuses one receive buffer and
// one Socket for every dump, so a dump of any size allocates nothing.
// A Client is not safe for concurrent use.
type Client struct {
	conn Conn
	buf  []byte
	req  [requestLen]byte
	seq  uint32
	sock Socket
}

// NewClient returns a Client that dumps over conn.
func NewClient(conn Conn) *Client {
	return &Client{conn: conn, buf: make([]byte, receiveBufferSize)}
}

// Close closes the underlying Conn.
func (c *Client) Close() error { return c.conn.Close() }

// Dump asks the kernel for the TCP sockets of one address family (unix.AF_INET
// or unix.AF_INET6) in the given states, and calls fn with each socket as its
// message is parsed. fn must not keep the *Socket: it is reused.
//
// The context's deadline bounds the whole dump. A dump the kernel flagged as
// interrupted is read to its end and then reported as ErrDumpInterrupted.
func (c *Client) Dump(ctx context.Context, family uint8, states StateSet, fn func(*Socket)) error {
	if deadline, ok := ctx.Deadline(); ok {
		if err := c.conn.SetReadDeadline(deadline); err != nil {
			return fmt.Errorf("sock_diag: set deadline: %w", err)
		}
	}
	c.seq++
	c.encodeRequest(family, states)
	if err := c.conn.Send(c.req[:]); err != nil {
		return fmt.Errorf("sock_diag: send request: %w", err)
	}
	interrupted := false
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("sock_diag: dump: %w", err)
		}
		n, err := c.conn.Receive(c.buf)
		if err != nil {
			return fmt.Errorf("sock_diag: receive: %w", err)
		}
		if n >= len(c.buf) {
			return fmt.Errorf("sock_diag: datagram of %d bytes or more does not fit the receive buffer", n)
		}
		done, intr, err := c.parseDatagram(c.buf[:n], fn)
		interrupted = interrupted || intr
		if err != nil {
			return err
		}
		if done {
			if interrupted {
				return ErrDumpInterrupted
			}
			return nil
		}
	}
}

// encodeRequest writes a struct nlmsghdr and a struct inet_diag_req_v2 asking
// for no extensions into c.req.
func (c *Client) encodeRequest(family uint8, states StateSet) {
	b := c.req[:]
	clear(b)
	nativeEndian.PutUint32(b[0:4], requestLen)
	nativeEndian.PutUint16(b[4:6], unix.SOCK_DIAG_BY_FAMILY)
	nativeEndian.PutUint16(b[6:8], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	nativeEndian.PutUint32(b[8:12], c.seq)
	r := b[unix.NLMSG_HDRLEN:]
	r[0] = family
	r[1] = unix.IPPROTO_TCP
	nativeEndian.PutUint32(r[4:8], uint32(states))
}

// parseDatagram walks the netlink messages of one datagram. It reports done
// at NLMSG_DONE, and interrupted when any message of this dump carries
// NLM_F_DUMP_INTR.
func (c *Client) parseDatagram(b []byte, fn func(*Socket)) (done, interrupted bool, err error) {
	for len(b) > 0 {
		if len(b) < unix.NLMSG_HDRLEN {
			return false, interrupted, fmt.Errorf("sock_diag: truncated netlink header (%d bytes)", len(b))
		}
		msgLen := int(nativeEndian.Uint32(b[0:4]))
		msgType := nativeEndian.Uint16(b[4:6])
		flags := nativeEndian.Uint16(b[6:8])
		seq := nativeEndian.Uint32(b[8:12])
		if msgLen < unix.NLMSG_HDRLEN || msgLen > len(b) {
			return false, interrupted, fmt.Errorf("sock_diag: netlink message length %d outside the %d bytes received", msgLen, len(b))
		}
		payload := b[unix.NLMSG_HDRLEN:msgLen]
		b = b[min(nlmsgAlign(msgLen), len(b)):]
		if seq != c.seq {
			// A reply to an earlier request on this socket: not ours.
			continue
		}
		if flags&unix.NLM_F_DUMP_INTR != 0 {
			interrupted = true
		}
		switch msgType {
		case unix.NLMSG_DONE:
			if len(payload) >= 4 {
				if errno := int32(nativeEndian.Uint32(payload[0:4])); errno < 0 {
					return true, interrupted, fmt.Errorf("sock_diag: dump failed: %w", syscall.Errno(-errno))
				}
			}
			return true, interrupted, nil
		case unix.NLMSG_ERROR:
			if len(payload) < 4 {
				return true, interrupted, errors.New("sock_diag: truncated NLMSG_ERROR")
			}
			errno := int32(nativeEndian.Uint32(payload[0:4]))
			if errno == 0 {
				// An acknowledgement; dumps are not acknowledged, but it is no error.
				continue
			}
			return true, interrupted, fmt.Errorf("sock_diag: request refused: %w", syscall.Errno(-errno))
		case unix.SOCK_DIAG_BY_FAMILY:
			if err := parseSocket(payload, &c.sock); err != nil {
				return false, interrupted, fmt.Errorf("sock_diag: %w", err)
			}
			fn(&c.sock)
		}
	}
	return false, interrupted, nil
}

func nlmsgAlign(n int) int { return (n + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }
