package tracer

import (
	"net"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// benchTracer loads the tracer for a benchmark, over the process's own
// network namespace when opts.Netns is 0, or skips where it cannot load.
func benchTracer(b *testing.B, opts Options) *Tracer {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Skip("needs root to load the tracer")
	}
	if opts.Netns == 0 {
		var st unix.Stat_t
		if err := unix.Stat("/proc/self/ns/net", &st); err != nil {
			b.Fatal(err)
		}
		opts.Netns = uint32(st.Ino)
	}
	tr, err := Load(opts)
	if err != nil {
		b.Skipf("cannot load the tracer: %v", err)
	}
	b.Cleanup(func() { tr.Close() })
	return tr
}

// BenchmarkConnectClose is a loopback connect/close loop at full speed,
// without and with the program attached: the tracer's cost on the
// connections themselves. Each iteration is one connection: connect(),
// accept(), the client's close() first, then the server's.
//
//	sudo go test -run '^$' -bench ConnectClose -count 6 ./exporter/tracer/
func BenchmarkConnectClose(b *testing.B) {
	for _, attached := range []bool{false, true} {
		name := "detached"
		if attached {
			name = "attached"
		}
		b.Run(name, func(b *testing.B) {
			if attached {
				tr := benchTracer(b, Options{})
				b.Cleanup(func() {
					// Emptied, so that the maps never fill across runs.
					tr.Drain()
				})
			}
			ln, err := net.Listen("tcp4", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			addr := ln.Addr().(*net.TCPAddr)
			lfd := listenerFD(b, ln)
			sa := &unix.SockaddrInet4{Port: addr.Port, Addr: [4]byte{127, 0, 0, 1}}
			for b.Loop() {
				fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
				if err != nil {
					b.Fatal(err)
				}
				// SO_LINGER 0 would reset: close normally, and let
				// TIME_WAIT reuse on loopback (tcp_tw_reuse=2) keep
				// the ports flowing.
				if err := unix.Connect(fd, sa); err != nil {
					b.Fatal(err)
				}
				nfd, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
				if err != nil {
					b.Fatal(err)
				}
				unix.Close(fd)
				unix.Close(nfd)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "conn/s")
		})
	}
}

// listenerFD returns a blocking duplicate of the listener's socket.
func listenerFD(b *testing.B, ln net.Listener) int {
	b.Helper()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	fd := int(f.Fd())
	if err := unix.SetNonblock(fd, false); err != nil {
		b.Fatal(err)
	}
	return fd
}

// noNamespace is a network namespace inode number that no namespace has.
const noNamespace = 1

// BenchmarkDrainFull drains maps filled to their size: every outbound and
// inbound key the kernel can hold between two scrapes.
//
//	sudo go test -run '^$' -bench DrainFull ./exporter/tracer/
func BenchmarkDrainFull(b *testing.B) {
	// A namespace inode that none has: the host's connections add no
	// key of their own.
	tr := benchTracer(b, Options{Netns: noNamespace})
	outKeys := make([]tracerOutboundKey, tr.opts.MaxOutbound)
	outVals := make([]tracerOutboundCounts, tr.opts.MaxOutbound)
	for i := range outKeys {
		outKeys[i].Daddr = [16]byte{10: 0xff, 11: 0xff, 12: 10, 13: byte(i >> 8), 14: byte(i)}
		outKeys[i].Dport = 6379
		outKeys[i].Cgroup = uint64(i % 7)
		outVals[i].Opened = 1
	}
	inKeys := make([]tracerInboundKey, tr.opts.MaxInbound)
	inVals := make([]tracerInboundCounts, tr.opts.MaxInbound)
	for i := range inKeys {
		inKeys[i].Port = uint16(i + 1)
		inVals[i].Accepted = 1
	}
	for b.Loop() {
		b.StopTimer()
		if _, err := tr.maps.Outbound.BatchUpdate(outKeys, outVals, nil); err != nil {
			b.Fatal(err)
		}
		if _, err := tr.maps.Inbound.BatchUpdate(inKeys, inVals, nil); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		d, err := tr.Drain()
		if err != nil {
			b.Fatal(err)
		}
		if len(d.Outbound) != len(outKeys) || len(d.Inbound) != len(inKeys) {
			b.Fatalf("drained %d and %d keys, want %d and %d", len(d.Outbound), len(d.Inbound), len(outKeys), len(inKeys))
		}
	}
}
