package tracer

import (
	"net"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf/link"
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
// accept(), the server's close() first, then the client's.
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
				connectClose(b, lfd, sa)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "conn/s")
		})
	}
}

// TestConnectCloseOverhead measures the tracer's cost on connections with
// the load and the machine's noise shared alike: 40 blocks of 2,000
// loopback connections, the program detached and attached in turn (ABBA,
// so that neither state always comes second), and compares the connections
// per second of each state. It is a measurement, not a check (it never
// fails on the figure): run it with
//
//	sudo TCPADVISOR_MEASURE=1 go test -run ConnectCloseOverhead -v ./exporter/tracer/
//
// With TCPADVISOR_AA=1 as well, the program is never attached and each
// block's rate is logged: the two halves should then differ by noise only.
func TestConnectCloseOverhead(t *testing.T) {
	if os.Getenv("TCPADVISOR_MEASURE") == "" {
		t.Skip("a measurement: set TCPADVISOR_MEASURE=1 to run it")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to load the tracer")
	}
	tr, err := Load(Options{})
	if err != nil {
		t.Skipf("cannot load the tracer: %v", err)
	}
	defer tr.Close()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lfd := listenerFD(t, ln)
	sa := &unix.SockaddrInet4{Port: ln.Addr().(*net.TCPAddr).Port, Addr: [4]byte{127, 0, 0, 1}}
	const blocks, perBlock = 40, 2000
	var elapsed [2]time.Duration
	aa := os.Getenv("TCPADVISOR_AA") != ""
	for i := range blocks {
		second := i%4 == 1 || i%4 == 2
		attached := second && !aa
		if attached {
			if tr.link, err = link.AttachTracing(link.TracingOptions{Program: tr.prog}); err != nil {
				t.Fatal(err)
			}
		}
		start := time.Now()
		for range perBlock {
			connectClose(t, lfd, sa)
		}
		took := time.Since(start)
		elapsed[boolIndex(second)] += took
		if aa {
			t.Logf("block %d: %.0f conn/s", i, perBlock/took.Seconds())
		}
		if attached {
			tr.link.Close()
			if _, err := tr.Drain(); err != nil {
				t.Fatal(err)
			}
		}
	}
	rate := func(d time.Duration) float64 { return blocks / 2 * perBlock / d.Seconds() }
	detached, attached := rate(elapsed[0]), rate(elapsed[1])
	t.Logf("detached %.0f conn/s, attached %.0f conn/s: %+.1f %%", detached, attached, 100*(attached/detached-1))
}

// connectClose makes one loopback connection to the listener lfd listens
// on, accepts it, and closes the server's end first, then the client's.
// The server's side holds the TIME_WAIT: the client's ephemeral ports never
// run out, which would stall connect() every range's worth of connections
// (some 14,000 here) and swamp what is measured.
func connectClose(tb testing.TB, lfd int, sa *unix.SockaddrInet4) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		tb.Fatal(err)
	}
	if err := unix.Connect(fd, sa); err != nil {
		tb.Fatal(err)
	}
	nfd, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
	if err != nil {
		tb.Fatal(err)
	}
	unix.Close(nfd)
	unix.Close(fd)
}

// listenerFD returns a blocking duplicate of the listener's socket.
func listenerFD(tb testing.TB, ln net.Listener) int {
	tb.Helper()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.Close() })
	fd := int(f.Fd())
	if err := unix.SetNonblock(fd, false); err != nil {
		tb.Fatal(err)
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

func boolIndex(b bool) int {
	if b {
		return 1
	}
	return 0
}
