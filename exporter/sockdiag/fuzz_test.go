package sockdiag

import (
	"testing"

	"golang.org/x/sys/unix"
)

// FuzzParseDatagram feeds arbitrary bytes to the datagram parser: whatever
// the kernel (or a corrupt buffer) sends, parsing returns, never panics.
func FuzzParseDatagram(f *testing.F) {
	msg := make([]byte, unix.NLMSG_HDRLEN+inetDiagMsgLen)
	nativeEndian.PutUint32(msg[0:4], uint32(len(msg)))
	nativeEndian.PutUint16(msg[4:6], unix.SOCK_DIAG_BY_FAMILY)
	nativeEndian.PutUint32(msg[8:12], 1)
	msg[unix.NLMSG_HDRLEN] = unix.AF_INET
	msg[unix.NLMSG_HDRLEN+1] = byte(TimeWait)
	f.Add(msg)
	done := make([]byte, unix.NLMSG_HDRLEN+4)
	nativeEndian.PutUint32(done[0:4], uint32(len(done)))
	nativeEndian.PutUint16(done[4:6], unix.NLMSG_DONE)
	nativeEndian.PutUint32(done[8:12], 1)
	f.Add(append(append([]byte{}, msg...), done...))
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		c := &Client{seq: 1}
		n := 0
		_, _, _ = c.parseDatagram(b, func(s *Socket) {
			n++
			_ = s.Local.String()
		})
		if n > len(b)/(unix.NLMSG_HDRLEN+inetDiagMsgLen) {
			t.Fatalf("%d sockets parsed from %d bytes", n, len(b))
		}
	})
}
