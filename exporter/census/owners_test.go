package census_test

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/tcpadvisor/tcpadvisor/exporter/census"
	"github.com/tcpadvisor/tcpadvisor/exporter/sockdiag"
)

var (
	pooled  = census.Owner{Unit: "api.service", Process: "api"}
	churner = census.Owner{Unit: "cron-report.service", Process: "python3"}
	nginx   = census.Owner{Unit: "nginx.service", Process: "nginx"}
)

// ownedSocket is a socket and its owner, the zero Owner for none.
type ownedSocket struct {
	sockdiag.Socket
	owner census.Owner
}

// population builds n sockets toward redis in state, each with a new inode
// from *inode, held by owner.
func population(n int, state sockdiag.State, owner census.Owner, inode *uint32) []ownedSocket {
	var out []ownedSocket
	for range n {
		s := sock(state, fmt.Sprintf("10.0.0.1:%d", 41000+int(*inode)%20000), "10.0.0.5:6379")
		if owner != (census.Owner{}) {
			*inode++
			s.Inode = *inode
		}
		out = append(out, ownedSocket{s, owner})
	}
	return out
}

func countOwned(t *testing.T, c *census.Census, sockets []ownedSocket) census.Result {
	t.Helper()
	c.Reset(defaultRange(t))
	for _, listeners := range []bool{true, false} {
		for i := range sockets {
			if (sockets[i].State == sockdiag.Listen) == listeners {
				c.AddOwned(&sockets[i].Socket, sockets[i].owner)
			}
		}
	}
	return c.Result()
}

func destination(t *testing.T, r census.Result, addrPort string) census.DestinationCount {
	t.Helper()
	want := netip.MustParseAddrPort(addrPort)
	for _, d := range r.Destinations {
		if d.Address == want.Addr() && d.Port == want.Port() {
			return d
		}
	}
	t.Fatalf("no destination %s in %+v", addrPort, r.Destinations)
	return census.DestinationCount{}
}

// TestTimeWaitGoesToTheOwnerOpeningNewConnections follows a pooled client
// and a client without a pool toward the same Redis over three dumps: the
// TIME_WAIT sockets are the churner's, also in a dump where it holds no live
// socket, and nobody's once it has been gone longer than TIME_WAIT lasts.
func TestTimeWaitGoesToTheOwnerOpeningNewConnections(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	c := census.New(census.Limits{})
	c.SetClock(func() time.Time { return now })
	var inode uint32

	// The pool's connections exist before the first dump, so that only
	// the churner's are new in the second.
	pool := population(10, sockdiag.Established, pooled, &inode)
	countOwned(t, c, pool)

	dump := slices.Concat(pool,
		population(2, sockdiag.Established, churner, &inode),
		population(100, sockdiag.TimeWait, census.Owner{}, &inode))
	got := destination(t, countOwned(t, c, dump), "10.0.0.5:6379").Owners
	want := []census.OwnerCount{{Owner: churner, Sockets: 102}, {Owner: pooled, Sockets: 10}}
	if !slices.Equal(got, want) {
		t.Errorf("with the churner connected: owners %+v, want %+v", got, want)
	}

	now = now.Add(30 * time.Second)
	dump = slices.Concat(pool, population(80, sockdiag.TimeWait, census.Owner{}, &inode))
	got = destination(t, countOwned(t, c, dump), "10.0.0.5:6379").Owners
	want = []census.OwnerCount{{Owner: churner, Sockets: 80}, {Owner: pooled, Sockets: 10}}
	if !slices.Equal(got, want) {
		t.Errorf("30 s later, the churner between connections: owners %+v, want %+v", got, want)
	}

	now = now.Add(61 * time.Second)
	got = destination(t, countOwned(t, c, dump), "10.0.0.5:6379").Owners
	want = []census.OwnerCount{{Owner: census.UnknownOwner, Sockets: 80}, {Owner: pooled, Sockets: 10}}
	if !slices.Equal(got, want) {
		t.Errorf("91 s later: owners %+v, want %+v", got, want)
	}
}

// closersByDestination is the tracer's answer, for tests.
type closersByDestination map[census.Destination]census.Owner

func (c closersByDestination) Closer(d census.Destination) (census.Owner, bool) {
	o, ok := c[d]
	return o, ok
}

// TestTimeWaitGoesToTheCloser: with the connection tracer's closers, the
// TIME_WAIT sockets toward a destination are the owner's that closed first
// toward it, though another owner opened new connections in this dump; and
// where the tracer names nobody, the census guesses as without it.
func TestTimeWaitGoesToTheCloser(t *testing.T) {
	redis := census.Destination{Source: netip.MustParseAddr("10.0.0.1"), Address: netip.MustParseAddr("10.0.0.5"), Port: 6379}
	tests := []struct {
		name    string
		closers census.Closers
		want    []census.OwnerCount
	}{
		{"the tracer names the closer", closersByDestination{redis: churner},
			[]census.OwnerCount{{Owner: churner, Sockets: 100}, {Owner: pooled, Sockets: 12}}},
		{"the tracer names nobody there", closersByDestination{},
			[]census.OwnerCount{{Owner: pooled, Sockets: 112}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := census.New(census.Limits{})
			c.SetClosers(tt.closers)
			var inode uint32
			pool := population(10, sockdiag.Established, pooled, &inode)
			countOwned(t, c, pool)
			// The pool opened two more; the churner, gone, left its
			// TIME_WAIT sockets.
			dump := slices.Concat(pool,
				population(2, sockdiag.Established, pooled, &inode),
				population(100, sockdiag.TimeWait, census.Owner{}, &inode))
			got := destination(t, countOwned(t, c, dump), "10.0.0.5:6379").Owners
			if !slices.Equal(got, tt.want) {
				t.Errorf("owners %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestInboundTimeWaitGoesToTheListenersOwner: the server's side of
// connections it closed first belongs to the process that listens.
func TestInboundTimeWaitGoesToTheListenersOwner(t *testing.T) {
	listener := sock(sockdiag.Listen, "0.0.0.0:8080", "0.0.0.0:0")
	listener.Inode = 1
	accepted := sock(sockdiag.Established, "127.0.0.1:8080", "127.0.0.1:50000")
	accepted.Inode = 2
	sockets := []ownedSocket{{listener, nginx}, {accepted, nginx}}
	for i := range 30 {
		sockets = append(sockets, ownedSocket{sock(sockdiag.TimeWait, "127.0.0.1:8080", fmt.Sprintf("127.0.0.1:%d", 50001+i)), census.Owner{}})
	}
	orphan := sock(sockdiag.TimeWait, "127.0.0.1:9090", "127.0.0.1:50000")
	unowned := sock(sockdiag.Listen, "0.0.0.0:9090", "0.0.0.0:0")
	sockets = append(sockets, ownedSocket{orphan, census.Owner{}}, ownedSocket{unowned, census.Owner{}})

	r := countOwned(t, census.New(census.Limits{}), sockets)
	want := map[uint16][]census.OwnerCount{
		8080: {{Owner: nginx, Sockets: 31}},
		9090: {{Owner: census.UnknownOwner, Sockets: 1}},
	}
	for _, p := range r.ServicePorts {
		if !slices.Equal(p.Owners, want[p.Port]) {
			t.Errorf("port %d: owners %+v, want %+v", p.Port, p.Owners, want[p.Port])
		}
	}
}

// TestOwnersAreBounded checks both caps: the top owners per destination,
// the rest summed into other, and the rows of the owner tables, past which
// sockets go to unknown; every socket is still counted once.
func TestOwnersAreBounded(t *testing.T) {
	tests := []struct {
		name          string
		limits        census.Limits
		owners        int
		wantOwners    int
		wantTruncated bool
	}{
		{"top owners and other", census.Limits{TopOwners: 2}, 6, 3, false},
		{"owner rows full", census.Limits{TopOwners: 10, MaxTrackedOwnerRows: 4}, 8, 5, true},
		{"all fit", census.Limits{}, 3, 3, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var inode uint32
			var sockets []ownedSocket
			for i := range tt.owners {
				owner := census.Owner{Unit: fmt.Sprintf("worker-%d.service", i), Process: "worker"}
				sockets = append(sockets, population(i+1, sockdiag.Established, owner, &inode)...)
			}
			r := countOwned(t, census.New(tt.limits), sockets)
			d := destination(t, r, "10.0.0.5:6379")
			var sum uint64
			for _, oc := range d.Owners {
				sum += oc.Sockets
			}
			if len(d.Owners) != tt.wantOwners || sum != d.States.Total() || r.OwnersTruncated != tt.wantTruncated {
				t.Errorf("%d owners summing to %d sockets of %d, truncated %v; want %d owners, every socket, truncated %v: %+v",
					len(d.Owners), sum, d.States.Total(), r.OwnersTruncated, tt.wantOwners, tt.wantTruncated, d.Owners)
			}
		})
	}
}

// TestAddWithoutOwnersNamesNone: owners are only counted when asked for.
func TestAddWithoutOwnersNamesNone(t *testing.T) {
	r := count(t, census.New(census.Limits{}), sock(sockdiag.Established, "10.0.0.1:41000", "10.0.0.5:6379"))
	if d := destination(t, r, "10.0.0.5:6379"); d.Owners != nil {
		t.Errorf("owners %+v without AddOwned", d.Owners)
	}
}
