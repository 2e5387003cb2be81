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

// receiveBuffers is how many datagrams can be in flight between the
// goroutine that reads them and the one that parses them.
const receiveBuffers = 3

// Client runs inet_diag dumps over one Conn. It reuses its receive buffers
// and one Socket for every dump, so a dump of any size allocates the same
// few objects. A Client is not safe for concurrent use.
//
// The kernel builds the next datagram of a dump inside the read(2) that
// takes the previous one (netlink_recvmsg calls netlink_dump). Dump
// therefore reads in a goroutine of its own while the caller's goroutine
// parses and counts: on two CPUs the kernel's work and tcpadvisor's overlap,
// and a scrape costs little more than the dump alone.
type Client struct {
	conn Conn
	req  [requestLen]byte
	seq  uint32
	sock Socket
	// free holds the receive buffers not in use; received carries the
	// filled ones from the reader to the parser, in order.
	free     chan []byte
	received chan datagram
	// readCgroupID makes the parser look for INET_DIAG_CGROUP_ID.
	readCgroupID bool
}

type datagram struct {
	buf []byte
	n   int
	err error
	// last is set on the datagram after which the reader stops.
	last bool
}

// NewClient returns a Client that dumps over conn.
func NewClient(conn Conn) *Client {
	c := &Client{
		conn:     conn,
		free:     make(chan []byte, receiveBuffers),
		received: make(chan datagram, receiveBuffers),
	}
	for range receiveBuffers {
		c.free <- make([]byte, receiveBufferSize)
	}
	return c
}

// ReadCgroupIDs makes later dumps fill Socket.CgroupID. It costs a walk of
// each message's attributes, so it is off until owners are wanted.
func (c *Client) ReadCgroupIDs(on bool) { c.readCgroupID = on }

// Close closes the underlying Conn.
func (c *Client) Close() error { return c.conn.Close() }

// Dump asks the kernel for the TCP sockets of one address family (unix.AF_INET
// or unix.AF_INET6) in the given states, and calls fn with each socket as its
// message is parsed. fn must not keep the *Socket: it is reused.
//
// The context's deadline bounds the whole dump. A dump the kernel flagged as
// interrupted is read to its end and then reported as ErrDumpInterrupted.
func (c *Client) Dump(ctx context.Context, family uint8, states StateSet, fn func(*Socket)) error {
	deadline, _ := ctx.Deadline() // the zero time clears an earlier dump's deadline
	if err := c.conn.SetReadDeadline(deadline); err != nil {
		return fmt.Errorf("sock_diag: set deadline: %w", err)
	}
	c.seq++
	c.encodeRequest(family, states)
	if err := c.conn.Send(c.req[:]); err != nil {
		return fmt.Errorf("sock_diag: send request: %w", err)
	}
	go c.receive()

	// Every datagram the reader sends is taken, whatever happens here, so
	// that the reader has ended when Dump returns.
	var err error
	interrupted, done := false, false
	for d := range c.received {
		if err == nil && !done {
			// A failed read is checked first: when the deadline passes, the
			// read's os.ErrDeadlineExceeded says so more precisely than the
			// context, which expires at about the same moment.
			switch {
			case d.err != nil:
				err = fmt.Errorf("sock_diag: receive: %w", d.err)
			case ctx.Err() != nil:
				err = fmt.Errorf("sock_diag: dump: %w", ctx.Err())
			case d.n >= len(d.buf):
				err = fmt.Errorf("sock_diag: datagram of %d bytes or more does not fit the receive buffer", d.n)
			default:
				var intr bool
				done, intr, err = c.parseDatagram(d.buf[:d.n], fn)
				interrupted = interrupted || intr
			}
		}
		c.free <- d.buf
		if d.err != nil || d.last {
			break
		}
	}
	switch {
	case err != nil:
		return err
	case interrupted:
		return ErrDumpInterrupted
	}
	return nil
}

// receive reads the datagrams of the dump under way and passes them on,
// until the one that ends the dump or a failed read.
func (c *Client) receive() {
	for {
		buf := <-c.free
		n, err := c.conn.Receive(buf)
		last := err != nil || n >= len(buf) || endsDump(buf[:n], c.seq)
		c.received <- datagram{buf: buf, n: n, err: err, last: last}
		if last {
			return
		}
	}
}

// endsDump reports whether a datagram holds the NLMSG_DONE or NLMSG_ERROR
// that ends the dump of request seq, or is too malformed to go on reading.
// It looks at the message headers only.
func endsDump(b []byte, seq uint32) bool {
	for len(b) >= unix.NLMSG_HDRLEN {
		msgLen := int(nativeEndian.Uint32(b[0:4]))
		if msgLen < unix.NLMSG_HDRLEN || msgLen > len(b) {
			return true
		}
		msgType := nativeEndian.Uint16(b[4:6])
		if nativeEndian.Uint32(b[8:12]) == seq && (msgType == unix.NLMSG_DONE || msgType == unix.NLMSG_ERROR) {
			return true
		}
		b = b[min(nlmsgAlign(msgLen), len(b)):]
	}
	return len(b) != 0
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
			if c.readCgroupID {
				c.sock.CgroupID = parseCgroupID(payload[inetDiagMsgLen:])
			}
			fn(&c.sock)
		}
	}
	return false, interrupted, nil
}

func nlmsgAlign(n int) int { return (n + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }
