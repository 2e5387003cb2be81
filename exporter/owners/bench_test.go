package owners

import (
	"context"
	"fmt"
	"testing"
)

// benchFixture makes a fixture of processes holding sockets sockets in all,
// each process in a cgroup of its own, and returns the cgroup id and the
// inode of each socket.
func benchFixture(b *testing.B, processes, sockets int) (f *fixture, cgroupIDs []uint64, inodes []uint32) {
	b.Helper()
	f = newFixture(b)
	next := uint32(1)
	for i := range processes {
		pid := 1000 + i
		unit := fmt.Sprintf("system.slice/app%d.service", i)
		id := f.cgroupDir(unit, pid)
		held := make([]uint32, sockets/processes)
		for j := range held {
			held[j] = next
			next++
			cgroupIDs, inodes = append(cgroupIDs, id), append(inodes, held[j])
		}
		f.process(pid, fmt.Sprintf("app%d", i), 42, "/"+unit, held...)
	}
	return f, cgroupIDs, inodes
}

// BenchmarkLookup looks up 100k sockets of 300 processes, all known: one op
// is a scrape's worth of lookups.
func BenchmarkLookup(b *testing.B) {
	f, cgroupIDs, inodes := benchFixture(b, 300, 100_000)
	r, _ := f.resolver(0)
	r.Refresh(context.Background())
	if got := len(r.inodes); got != len(inodes) {
		b.Fatalf("%d inodes known, want %d", got, len(inodes))
	}
	b.ReportAllocs()
	for b.Loop() {
		for i, inode := range inodes {
			r.Lookup(cgroupIDs[i], inode)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(inodes)), "ns/lookup")
}

// BenchmarkRefresh reads the fd tables of 300 processes holding 100k
// sockets, every process at each Refresh (the default budget is larger).
func BenchmarkRefresh(b *testing.B) {
	f, _, _ := benchFixture(b, 300, 100_000)
	r, _ := f.resolver(0)
	b.ReportAllocs()
	for b.Loop() {
		r.Refresh(context.Background())
	}
}

// BenchmarkRefreshProc runs Refresh over this host's /proc with the default
// budget.
func BenchmarkRefreshProc(b *testing.B) {
	r := New(Options{})
	b.ReportAllocs()
	for b.Loop() {
		r.Refresh(context.Background())
	}
}
