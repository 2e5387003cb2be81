package exporter

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tcpadvisor/tcpadvisor/exporter/census"
	"github.com/tcpadvisor/tcpadvisor/exporter/owners"
	"github.com/tcpadvisor/tcpadvisor/exporter/sockdiag"
	"github.com/tcpadvisor/tcpadvisor/exporter/sockdiag/sockdiagtest"
	"golang.org/x/sys/unix"
)

// syntheticPopulation makes n sockets shaped like the benchmark population
// of ../shared/PERF-BASELINE.md: a few listeners, mostly TIME_WAIT toward 50
// destinations, the rest ESTABLISHED, about 2% IPv6.
func syntheticPopulation(n int) []sockdiag.Socket {
	sockets := []sockdiag.Socket{
		{Family: unix.AF_INET, State: sockdiag.Listen, Local: netip.MustParseAddrPort("0.0.0.0:80"), Remote: netip.MustParseAddrPort("0.0.0.0:0")},
		{Family: unix.AF_INET6, State: sockdiag.Listen, Local: netip.MustParseAddrPort("[::]:80"), Remote: netip.MustParseAddrPort("[::]:0")},
	}
	v4, v6 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("2001:db8::1")
	for i := range n - len(sockets) {
		s := sockdiag.Socket{Family: unix.AF_INET, State: sockdiag.TimeWait}
		if i%10 == 0 {
			s.State = sockdiag.Established
		}
		port := uint16(32768 + i%28000)
		dest := netip.AddrFrom4([4]byte{10, 1, 0, byte(i % 50)})
		s.Local, s.Remote = netip.AddrPortFrom(v4, port), netip.AddrPortFrom(dest, 6379)
		if i%50 == 0 {
			s.Family = unix.AF_INET6
			s.Local, s.Remote = netip.AddrPortFrom(v6, port), netip.MustParseAddrPort("[2001:db8::5]:6379")
		}
		if i%7 == 0 {
			// An inbound connection from a client.
			s.Local, s.Remote = netip.AddrPortFrom(v4, 80), netip.AddrPortFrom(dest, port)
			if s.Family == unix.AF_INET6 {
				s.Local, s.Remote = netip.AddrPortFrom(v6, 80), netip.AddrPortFrom(netip.MustParseAddr("2001:db8::9"), port)
			}
		}
		sockets = append(sockets, s)
	}
	return sockets
}

func newSyntheticCollector(n int) *SocketsCollector {
	conn := &sockdiagtest.Conn{Sockets: syntheticPopulation(n)}
	ephemeral := func() (census.EphemeralRange, error) {
		return census.EphemeralRange{Low: 32768, High: 60999}, nil
	}
	return NewSocketsCollector(SocketsSources{Dial: conn.Dial, Ephemeral: ephemeral}, census.Limits{}, nil)
}

// collectOnce runs one collection and discards its metrics.
func collectOnce(tb testing.TB, c *SocketsCollector, ch chan prometheus.Metric) {
	done := make(chan struct{})
	go func() {
		for range ch {
		}
		close(done)
	}()
	if err := c.Update(context.Background(), ch); err != nil {
		tb.Fatal(err)
	}
	close(ch)
	<-done
}

// BenchmarkSocketsCollector measures one collection of the sockets collector
// over a fake kernel: the parse, the census and the metrics, without the
// kernel's own cost. Allocations per op must not grow with the socket count.
func BenchmarkSocketsCollector(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("sockets=%d", n), func(b *testing.B) {
			c := newSyntheticCollector(n)
			collectOnce(b, c, make(chan prometheus.Metric, 1024)) // warm the census tables
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				collectOnce(b, c, make(chan prometheus.Metric, 1024))
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/socket")
		})
	}
}

// TestSocketsCollectorAllocationsAreFlat proves the allocation count of a
// collection does not depend on the number of sockets: what allocates is the
// bounded set of series, never a socket.
func TestSocketsCollectorAllocationsAreFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("counts allocations over 100,000 sockets")
	}
	allocs := map[int]float64{}
	for _, n := range []int{10_000, 100_000} {
		c := newSyntheticCollector(n)
		collectOnce(t, c, make(chan prometheus.Metric, 1024))
		allocs[n] = testing.AllocsPerRun(3, func() { collectOnce(t, c, make(chan prometheus.Metric, 1024)) })
	}
	if allocs[100_000] > allocs[10_000]+10 {
		t.Errorf("a collection allocates %.0f times at 10k sockets and %.0f at 100k: it grows with the sockets", allocs[10_000], allocs[100_000])
	}
	t.Logf("allocations per collection: %.0f at 10k sockets, %.0f at 100k", allocs[10_000], allocs[100_000])
}

// ownedPopulation gives every socket of the synthetic population that a
// process would hold (all but TIME_WAIT) an inode, and writes a /proc under
// dir where 300 processes in 30 units hold them, round robin.
func ownedPopulation(tb testing.TB, n int, dir string) []sockdiag.Socket {
	tb.Helper()
	const processes, units = 300, 30
	sockets := syntheticPopulation(n)
	held := make([][]uint32, processes)
	for i := range sockets {
		if sockets[i].State == sockdiag.TimeWait {
			continue
		}
		sockets[i].Inode = uint32(i + 1)
		held[i%processes] = append(held[i%processes], sockets[i].Inode)
	}
	write := func(path, content string) {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	write(filepath.Join(dir, "self", "status"), "CapEff:\t000001ffffffffff\n")
	for p := range processes {
		pid := 1000 + p
		base := filepath.Join(dir, strconv.Itoa(pid))
		write(filepath.Join(base, "stat"), fmt.Sprintf("%d (worker-%d) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 %d 0 0\n", pid, p%units, pid))
		write(filepath.Join(base, "cgroup"), fmt.Sprintf("0::/system.slice/app-%d.service\n", p%units))
		if err := os.MkdirAll(filepath.Join(base, "fd"), 0o755); err != nil {
			tb.Fatal(err)
		}
		for fd, inode := range held[p] {
			if err := os.Symlink(fmt.Sprintf("socket:[%d]", inode), filepath.Join(base, "fd", strconv.Itoa(fd))); err != nil {
				tb.Fatal(err)
			}
		}
	}
	return sockets
}

// BenchmarkSocketsCollectorOwners measures one collection with owner
// attribution on and off, over a fake kernel and a /proc of 300 processes
// holding the live sockets, once the owners are known (the cache is warm).
func BenchmarkSocketsCollectorOwners(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		dir := b.TempDir()
		sockets := ownedPopulation(b, n, dir)
		ephemeral := func() (census.EphemeralRange, error) {
			return census.EphemeralRange{Low: 32768, High: 60999}, nil
		}
		for _, attribute := range []bool{false, true} {
			b.Run(fmt.Sprintf("sockets=%d/owners=%v", n, attribute), func(b *testing.B) {
				conn := &sockdiagtest.Conn{Sockets: sockets}
				sources := SocketsSources{Dial: conn.Dial, Ephemeral: ephemeral}
				if attribute {
					sources.Owners = owners.New(owners.Options{ProcPath: dir, CgroupPath: filepath.Join(dir, "no-cgroup")})
				}
				c := NewSocketsCollector(sources, census.Limits{}, nil)
				// Warm: the first pass over the processes, and the tables.
				for range 2 {
					collectOnce(b, c, make(chan prometheus.Metric, 1024))
				}
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					collectOnce(b, c, make(chan prometheus.Metric, 1024))
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/socket")
			})
		}
	}
}
