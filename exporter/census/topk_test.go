package census_test

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"testing"

	"github.com/tcpadvisor/tcpadvisor/exporter/census"
	"github.com/tcpadvisor/tcpadvisor/exporter/sockdiag"
)

// manyDestinations returns a dump of n destinations with one TIME_WAIT
// socket each, and among them 20 heavy ones, 10.1.0.0 to 10.1.0.19, with
// 119 down to 100 sockets (one in ten ESTABLISHED, held by app.service),
// shuffled as the kernel's hash order would; with heavyLast, the heavy ones
// come after all the others, as destinations that turn busy on a host whose
// table is already full.
func manyDestinations(n int, heavyLast bool) []sockdiag.Socket {
	var sockets []sockdiag.Socket
	for i := range n {
		remote := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(1 + i>>16), byte(i >> 8), byte(i)}), 6379)
		count := 1
		if i < 20 {
			count = 119 - i
		}
		for j := range count {
			state := sockdiag.TimeWait
			if i < 20 && j%10 == 0 {
				state = sockdiag.Established
			}
			s := sock(state, "10.0.0.1:33000", "10.0.0.0:6379")
			s.Local = netip.AddrPortFrom(s.Local.Addr(), uint16(33000+j))
			s.Remote = remote
			if state == sockdiag.Established {
				s.Inode = uint32(len(sockets) + 1)
			}
			sockets = append(sockets, s)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	if heavyLast {
		heavy := sockets[:len(sockets)-n+20]
		r.Shuffle(len(heavy), func(a, b int) { heavy[a], heavy[b] = heavy[b], heavy[a] })
		return append(sockets[len(heavy):], heavy...)
	}
	r.Shuffle(len(sockets), func(a, b int) { sockets[a], sockets[b] = sockets[b], sockets[a] })
	return sockets
}

var appOwner = census.Owner{Unit: "app.service", Process: "app"}

// countHeavy counts sockets as the sockets collector does with attribution:
// ESTABLISHED ones held by app.service, TIME_WAIT ones by no process.
func countHeavy(c *census.Census, eph *census.EphemeralRange, sockets []sockdiag.Socket) census.Result {
	c.Reset(eph)
	for i := range sockets {
		owner := census.Owner{}
		if sockets[i].State == sockdiag.Established {
			owner = appOwner
		}
		c.AddOwned(&sockets[i], owner)
	}
	return c.Result()
}

// TestTopDestinationsStayRightPastTheTable drives 10k, 70k and 200k
// distinct destinations through a census whose table holds far fewer: the
// top 20 are still the heavy ones, with their exact counts and owners, the
// table stays at its cap, and every socket is counted.
func TestTopDestinationsStayRightPastTheTable(t *testing.T) {
	for _, tt := range []struct {
		n         int
		heavyLast bool
	}{{10_000, false}, {70_000, false}, {200_000, false}, {70_000, true}} {
		t.Run(fmt.Sprintf("%d heavy last %v", tt.n, tt.heavyLast), func(t *testing.T) {
			if testing.Short() && tt.n > 10_000 {
				t.Skip("a large dump")
			}
			c := census.New(census.Limits{})
			sockets := manyDestinations(tt.n, tt.heavyLast)
			// The first dump may miss a few sockets of a heavy
			// destination that lost its row before it stood out;
			// from the second, the top rows are kept.
			first := countHeavy(c, defaultRange(t), sockets)
			assertDestinationsAddUp(t, first)
			for i, d := range first.Destinations {
				if got, want := d.Address, netip.AddrFrom4([4]byte{10, 1, 0, byte(i)}); got != want {
					t.Errorf("first dump: destination %d is %v, want %v", i, got, want)
				}
			}
			r := countHeavy(c, defaultRange(t), sockets)
			if len(r.Destinations) != 20 {
				t.Fatalf("reported %d destinations, want 20", len(r.Destinations))
			}
			for _, d := range r.Destinations {
				i := int(d.Address.As4()[3])
				if d.Address.As4()[1] != 1 || d.Address.As4()[2] != 0 || i >= 20 {
					t.Errorf("reported %v, not one of the heavy destinations", d.Destination)
					continue
				}
				want := uint64(119 - i)
				established := (want + 9) / 10
				if d.States.Total() != want || d.States[sockdiag.Established] != established {
					t.Errorf("%v: %d sockets, %d ESTABLISHED; want %d and %d", d.Address, d.States.Total(), d.States[sockdiag.Established], want, established)
				}
				if len(d.Owners) != 1 || d.Owners[0].Owner != appOwner || d.Owners[0].Sockets != want {
					t.Errorf("%v: owners %+v, want all %d sockets app.service's", d.Address, d.Owners, want)
				}
			}
			assertDestinationsAddUp(t, r)
			if got := c.TrackedDestinations(); got > census.DefaultMaxTrackedDestinations {
				t.Errorf("destination table holds %d rows, past its cap of %d", got, census.DefaultMaxTrackedDestinations)
			}
		})
	}
}

// TestCensusMemoryIsBounded counts 200k distinct destinations, twice, and
// checks the heap the census keeps: its tables are bounded by their caps,
// not by the destinations.
func TestCensusMemoryIsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("a large dump")
	}
	sockets := manyDestinations(200_000, false)
	eph := defaultRange(t)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c := census.New(census.Limits{})
	for range 2 {
		countHeavy(c, eph, sockets)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(c)
	runtime.KeepAlive(sockets)
	const bound = 8 << 20
	if kept := int64(after.HeapAlloc) - int64(before.HeapAlloc); kept > bound {
		t.Errorf("the census keeps %.1f MiB after 200k destinations, want at most %d MiB", float64(kept)/(1<<20), bound>>20)
	}
}
