// Command rawdump measures the floor of counting TCP sockets: an inet_diag
// dump of every TCP socket, IPv4 then IPv6, asking for no extensions, read
// into one reused 64 KiB buffer and counted without parsing or allocating
// anything per message. Any exporter that reads sock_diag pays at least this.
//
// Each of -runs dumps prints one line, "<milliseconds> ms <count> sockets",
// timed from the first request to the end of the IPv6 dump; opening the
// netlink socket is not timed.
package main

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// bufferSize is twice the 32 KiB the kernel caps a dump datagram at,
	// so a read never truncates one.
	bufferSize = 64 << 10
	// reqLen is a struct nlmsghdr followed by a struct inet_diag_req_v2.
	reqLen = unix.NLMSG_HDRLEN + 56
	// allStates asks for TCP states 1 (ESTABLISHED) to 11 (CLOSING), as
	// tcpadvisor does; the kernel adds NEW_SYN_RECV to SYN_RECV. Bit 13,
	// BOUND_INACTIVE, is left out: it makes the kernel walk the bind hash
	// as well.
	allStates = 1<<12 - 2
	// maxDatagrams bounds one dump: 64 million sockets at the kernel's
	// 32 KiB per datagram.
	maxDatagrams = 1 << 20
	// readTimeout bounds every read, so that a kernel that stops
	// answering cannot hang the benchmark.
	readTimeout = 5 * time.Second
)

func main() {
	runs := flag.Int("runs", 1, "dumps to time, 1 to 1000")
	flag.Parse()
	if *runs < 1 || *runs > 1000 {
		fmt.Fprintf(os.Stderr, "rawdump: -runs=%d: want 1 to 1000\n", *runs)
		os.Exit(2)
	}
	if err := run(*runs); err != nil {
		fmt.Fprintf(os.Stderr, "rawdump: %v\n", err)
		os.Exit(1)
	}
}

func run(runs int) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return fmt.Errorf("open NETLINK_SOCK_DIAG socket: %w", err)
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(readTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fmt.Errorf("set SO_RCVTIMEO: %w", err)
	}
	buf := make([]byte, bufferSize)
	var seq uint32
	for range runs {
		start := time.Now()
		total := 0
		for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
			seq++
			n, err := dump(fd, buf, family, seq)
			if err != nil {
				return err
			}
			total += n
		}
		elapsed := time.Since(start)
		fmt.Printf("%.3f ms %d sockets\n", float64(elapsed.Nanoseconds())/1e6, total)
	}
	return nil
}

// dump sends one request for every TCP socket of family and counts the
// sockets in the reply.
func dump(fd int, buf []byte, family uint8, seq uint32) (int, error) {
	var req [reqLen]byte
	binary.NativeEndian.PutUint32(req[0:4], reqLen)
	binary.NativeEndian.PutUint16(req[4:6], unix.SOCK_DIAG_BY_FAMILY)
	binary.NativeEndian.PutUint16(req[6:8], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	binary.NativeEndian.PutUint32(req[8:12], seq)
	r := req[unix.NLMSG_HDRLEN:]
	r[0] = family
	r[1] = unix.IPPROTO_TCP
	// r[2], idiag_ext, stays 0: no extensions.
	binary.NativeEndian.PutUint32(r[4:8], allStates)
	if err := unix.Sendto(fd, req[:], 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, fmt.Errorf("send request: %w", err)
	}

	count := 0
	for range maxDatagrams {
		n, err := unix.Read(fd, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("receive: %w", err)
		}
		if n >= len(buf) {
			return 0, fmt.Errorf("datagram of %d bytes or more does not fit the buffer", n)
		}
		for b := buf[:n]; len(b) >= unix.NLMSG_HDRLEN; {
			msgLen := int(binary.NativeEndian.Uint32(b[0:4]))
			if msgLen < unix.NLMSG_HDRLEN || msgLen > len(b) {
				return 0, fmt.Errorf("netlink message length %d outside the %d bytes received", msgLen, len(b))
			}
			msgType := binary.NativeEndian.Uint16(b[4:6])
			msgSeq := binary.NativeEndian.Uint32(b[8:12])
			payload := b[unix.NLMSG_HDRLEN:msgLen]
			b = b[min((msgLen+unix.NLMSG_ALIGNTO-1)&^(unix.NLMSG_ALIGNTO-1), len(b)):]
			if msgSeq != seq {
				continue
			}
			switch msgType {
			case unix.SOCK_DIAG_BY_FAMILY:
				count++
			case unix.NLMSG_DONE:
				return count, nil
			case unix.NLMSG_ERROR:
				if len(payload) < 4 {
					return 0, errors.New("truncated NLMSG_ERROR")
				}
				errno := int32(binary.NativeEndian.Uint32(payload[0:4]))
				if errno == 0 {
					// An acknowledgement, not an error.
					continue
				}
				if family == unix.AF_INET6 && errno == -int32(unix.ENOENT) {
					// A kernel without IPv6 has no IPv6 sockets.
					return 0, nil
				}
				return 0, fmt.Errorf("dump refused: %w", unix.Errno(-errno))
			}
		}
	}
	return 0, fmt.Errorf("dump of more than %d datagrams", maxDatagrams)
}
