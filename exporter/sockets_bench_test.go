package exporter

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tcpadvisor/tcpadvisor/exporter/census"
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
