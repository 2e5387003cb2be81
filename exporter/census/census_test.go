package census_test

import (
	"net/netip"
	"testing"

	"github.com/tcpadvisor/tcpadvisor/exporter/census"
	"github.com/tcpadvisor/tcpadvisor/exporter/sockdiag"
	"github.com/tcpadvisor/tcpadvisor/exporter/sockdiag/sockdiagtest"
)

var sock = sockdiagtest.NewSocket

// defaultRange is the kernel's default: 32768-60999 with 40000 reserved.
func defaultRange(t *testing.T) *census.EphemeralRange {
	t.Helper()
	reserved, err := census.ParseReservedPorts("40000")
	if err != nil {
		t.Fatal(err)
	}
	return &census.EphemeralRange{Low: 32768, High: 60999, Reserved: reserved}
}

func count(t *testing.T, c *census.Census, sockets ...sockdiag.Socket) census.Result {
	t.Helper()
	c.Reset(defaultRange(t))
	// The collector adds every listener first; so do the tests.
	for i := range sockets {
		if sockets[i].State == sockdiag.Listen {
			c.Add(&sockets[i])
		}
	}
	for i := range sockets {
		if sockets[i].State != sockdiag.Listen {
			c.Add(&sockets[i])
		}
	}
	return c.Result()
}

func TestClassify(t *testing.T) {
	listeners := []sockdiag.Socket{
		sock(sockdiag.Listen, "0.0.0.0:80", "0.0.0.0:0"),
		sock(sockdiag.Listen, "127.0.0.1:6379", "0.0.0.0:0"),
		sock(sockdiag.Listen, "[::]:443", "[::]:0"),
		sock(sockdiag.Listen, "10.0.0.1:45000", "0.0.0.0:0"),
	}
	tests := []struct {
		name   string
		socket sockdiag.Socket
		family census.Family
		class  census.Class
	}{
		{"accepted on a wildcard listener", sock(sockdiag.Established, "10.0.0.1:80", "10.0.0.9:51000"), census.IPv4, census.Inbound},
		{"accepted on an address listener", sock(sockdiag.Established, "127.0.0.1:6379", "127.0.0.1:51000"), census.IPv4, census.Inbound},
		{"same port, other address than the listener's", sock(sockdiag.Established, "10.0.0.1:6379", "10.0.0.9:51000"), census.IPv4, census.OutboundBound},
		{"server closed first: TIME_WAIT on the service port", sock(sockdiag.TimeWait, "10.0.0.1:80", "10.0.0.9:51000"), census.IPv4, census.Inbound},
		{"client closed first: TIME_WAIT on an ephemeral port", sock(sockdiag.TimeWait, "10.0.0.1:51000", "10.0.0.5:6379"), census.IPv4, census.OutboundEphemeral},
		{"connect() from the ephemeral range", sock(sockdiag.Established, "10.0.0.1:32768", "10.0.0.5:5432"), census.IPv4, census.OutboundEphemeral},
		{"last port of the range", sock(sockdiag.SynSent, "10.0.0.1:60999", "10.0.0.5:5432"), census.IPv4, census.OutboundEphemeral},
		{"reserved port inside the range is bound, not ephemeral", sock(sockdiag.Established, "10.0.0.1:40000", "10.0.0.5:5432"), census.IPv4, census.OutboundBound},
		{"port below the range", sock(sockdiag.Established, "10.0.0.1:1023", "10.0.0.5:2049"), census.IPv4, census.OutboundBound},
		{"port above the range", sock(sockdiag.Established, "10.0.0.1:61000", "10.0.0.5:2049"), census.IPv4, census.OutboundBound},
		{"listener inside the range makes its sockets inbound", sock(sockdiag.Established, "10.0.0.1:45000", "10.0.0.9:51000"), census.IPv4, census.Inbound},
		{"IPv6 accepted on a wildcard listener", sock(sockdiag.CloseWait, "[2001:db8::1]:443", "[2001:db8::9]:51000"), census.IPv6, census.Inbound},
		{"v4-mapped on a v6 socket matches the v4 listener", sock(sockdiag.Established, "[::ffff:127.0.0.1]:6379", "[::ffff:127.0.0.1]:51000"), census.IPv6, census.Inbound},
		{"IPv6 outbound", sock(sockdiag.Established, "[2001:db8::1]:50000", "[2001:db8::5]:6379"), census.IPv6, census.OutboundEphemeral},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := count(t, census.New(census.Limits{}), append(append([]sockdiag.Socket{}, listeners...), tt.socket)...)
			for _, class := range census.Classes {
				want := uint64(0)
				if class == tt.class {
					want = 1
				}
				if got := r.Sockets[tt.family][tt.socket.State][class]; got != want {
					t.Errorf("%s sockets of class %s = %d, want %d", tt.socket.State, class, got, want)
				}
			}
		})
	}
}

func TestDestinationsTopKAndOther(t *testing.T) {
	var sockets []sockdiag.Socket
	add := func(n int, state sockdiag.State, localPortBase int, remote string) {
		for i := range n {
			s := sock(state, "10.0.0.1:0", remote)
			s.Local = netip.AddrPortFrom(s.Local.Addr(), uint16(localPortBase+i))
			sockets = append(sockets, s)
		}
	}
	add(50, sockdiag.TimeWait, 33000, "10.0.0.5:6379")   // the busiest
	add(5, sockdiag.Established, 34000, "10.0.0.5:6379") // same destination
	add(30, sockdiag.TimeWait, 35000, "10.0.0.6:5432")
	add(20, sockdiag.Established, 36000, "10.0.0.7:443")
	add(10, sockdiag.TimeWait, 37000, "10.0.0.8:11211")
	add(40, sockdiag.Established, 1000, "10.0.0.9:2049") // bound ports: ranks below any ephemeral holder

	r := count(t, census.New(census.Limits{TopDestinations: 2}), sockets...)
	if len(r.Destinations) != 2 {
		t.Fatalf("got %d destinations, want the top 2", len(r.Destinations))
	}
	first, second := r.Destinations[0], r.Destinations[1]
	if first.Address != netip.MustParseAddr("10.0.0.5") || first.Port != 6379 || first.Ephemeral != 55 ||
		first.States[sockdiag.TimeWait] != 50 || first.States[sockdiag.Established] != 5 {
		t.Errorf("first destination = %+v, want 10.0.0.5:6379 with 50 TIME_WAIT, 5 ESTABLISHED, 55 ephemeral", first)
	}
	if second.Address != netip.MustParseAddr("10.0.0.6") || second.Ephemeral != 30 {
		t.Errorf("second destination = %+v, want 10.0.0.6:5432 with 30 ephemeral", second)
	}
	o := r.OtherDestinations
	if o.Ephemeral != 30 || o.States[sockdiag.Established] != 60 || o.States[sockdiag.TimeWait] != 10 {
		t.Errorf("other = %+v, want 30 ephemeral, 60 ESTABLISHED, 10 TIME_WAIT", o)
	}
	assertDestinationsAddUp(t, r)
	if r.EphemeralInUse != 115 {
		t.Errorf("ephemeral ports in use = %d, want 115 distinct", r.EphemeralInUse)
	}
}

// assertDestinationsAddUp checks that the listed destinations plus other
// hold every outbound socket.
func assertDestinationsAddUp(t *testing.T, r census.Result) {
	t.Helper()
	for _, state := range sockdiag.States {
		var outbound, listed uint64
		for _, f := range []census.Family{census.IPv4, census.IPv6} {
			outbound += r.Sockets[f][state][census.OutboundEphemeral] + r.Sockets[f][state][census.OutboundBound]
		}
		for _, d := range r.Destinations {
			listed += d.States[state]
		}
		listed += r.OtherDestinations.States[state]
		if listed != outbound {
			t.Errorf("%s: destinations and other hold %d sockets, outbound classes %d", state, listed, outbound)
		}
	}
}

func TestPinnedDestinationIsAlwaysReported(t *testing.T) {
	sockets := []sockdiag.Socket{
		sock(sockdiag.TimeWait, "10.0.0.1:33000", "10.0.0.5:6379"),
		sock(sockdiag.TimeWait, "10.0.0.1:33001", "10.0.0.5:6379"),
		sock(sockdiag.Established, "10.0.0.1:33002", "10.0.0.6:5432"),
		sock(sockdiag.Established, "[::ffff:10.0.0.1]:33003", "[::ffff:10.0.0.6]:5432"),
	}
	c := census.New(census.Limits{TopDestinations: 1, PinnedDestinations: []netip.AddrPort{netip.MustParseAddrPort("[::ffff:10.0.0.6]:5432")}})
	r := count(t, c, sockets...)
	if len(r.Destinations) != 2 {
		t.Fatalf("got destinations %+v, want 10.0.0.5:6379 (top 1) and the pinned 10.0.0.6:5432", r.Destinations)
	}
	var pinned *census.DestinationCount
	for i := range r.Destinations {
		if r.Destinations[i].Address == netip.MustParseAddr("10.0.0.6") {
			pinned = &r.Destinations[i]
		}
	}
	if pinned == nil || pinned.States[sockdiag.Established] != 2 {
		t.Errorf("pinned destination = %+v, want 2 ESTABLISHED (v4 and v4-mapped alike)", pinned)
	}
}

// TestDestinationTableIsCapped drives a million distinct destinations through
// a census: the table stops growing at its cap, and every socket is still
// counted.
func TestDestinationTableIsCapped(t *testing.T) {
	if testing.Short() {
		t.Skip("a million sockets")
	}
	const n, capacity = 1_000_000, 1000
	c := census.New(census.Limits{MaxTrackedDestinations: capacity})
	c.Reset(defaultRange(t))
	s := sock(sockdiag.TimeWait, "10.0.0.1:33000", "10.0.0.0:80")
	for i := range n {
		s.Remote = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 80)
		c.Add(&s)
	}
	r := c.Result()
	if !r.DestinationsTruncated {
		t.Error("DestinationsTruncated = false after a million destinations")
	}
	if len(r.Destinations) != census.DefaultTopDestinations {
		t.Errorf("reported %d destinations, want %d", len(r.Destinations), census.DefaultTopDestinations)
	}
	if got, want := r.OtherDestinations.States[sockdiag.TimeWait], uint64(n-census.DefaultTopDestinations); got != want {
		t.Errorf("other holds %d TIME_WAIT, want %d", got, want)
	}
	assertDestinationsAddUp(t, r)
	if got := c.TrackedDestinations(); got != capacity {
		t.Errorf("destination table holds %d rows, want the cap %d", got, capacity)
	}
}

func TestServicePorts(t *testing.T) {
	sockets := []sockdiag.Socket{
		sock(sockdiag.Listen, "0.0.0.0:80", "0.0.0.0:0"),
		sock(sockdiag.Listen, "[::]:80", "[::]:0"),
		sock(sockdiag.Listen, "127.0.0.1:8080", "0.0.0.0:0"),
		sock(sockdiag.Listen, "127.0.0.1:45000", "0.0.0.0:0"),
		sock(sockdiag.Listen, "127.0.0.1:22", "0.0.0.0:0"),
		sock(sockdiag.Established, "10.0.0.1:80", "10.0.0.9:51000"),
		sock(sockdiag.TimeWait, "10.0.0.1:80", "10.0.0.9:51001"),
		sock(sockdiag.TimeWait, "10.0.0.1:80", "10.0.0.8:51001"),
		sock(sockdiag.TimeWait, "[2001:db8::1]:80", "[2001:db8::8]:51001"),
		sock(sockdiag.CloseWait, "127.0.0.1:8080", "127.0.0.1:51002"),
	}
	sockets[0].RecvQueue, sockets[0].SendQueue = 2, 511
	sockets[1].RecvQueue, sockets[1].SendQueue = 1, 4096

	r := count(t, census.New(census.Limits{MaxServicePorts: 2}), sockets...)
	ports := map[uint16]census.PortCount{}
	for _, p := range r.ServicePorts {
		ports[p.Port] = p
	}
	if len(ports) != 2 {
		t.Fatalf("reported ports %v, want 2: 45000 (inside the ephemeral range, first) and 80 (most sockets)", r.ServicePorts)
	}
	if p := ports[45000]; !p.InEphemeralRange || p.Listeners != 1 {
		t.Errorf("port 45000 = %+v, want a listener flagged inside the ephemeral range", p)
	}
	p80 := ports[80]
	if p80.Listeners != 2 || p80.QueueLength != 3 || p80.QueueLimit != 4607 || p80.InEphemeralRange {
		t.Errorf("port 80 = %+v, want 2 listeners, queue 3 of 4607, not in range", p80)
	}
	if p80.States[sockdiag.TimeWait] != 3 || p80.States[sockdiag.Established] != 1 || p80.Peers != 3 {
		t.Errorf("port 80 = %+v, want 3 TIME_WAIT, 1 ESTABLISHED from 3 distinct peers", p80)
	}
	if o := r.OtherPorts; o.Listeners != 2 || o.States[sockdiag.CloseWait] != 1 {
		t.Errorf("other ports = %+v, want the 2 listeners of 8080 and 22 and 1 CLOSE_WAIT", o)
	}
	if r.ListeningInEphemeralRange != 1 {
		t.Errorf("listening ports in the ephemeral range = %d, want 1", r.ListeningInEphemeralRange)
	}
}

func TestPinnedPortAndPeerCap(t *testing.T) {
	sockets := []sockdiag.Socket{
		sock(sockdiag.Listen, "0.0.0.0:80", "0.0.0.0:0"),
		sock(sockdiag.Listen, "0.0.0.0:22", "0.0.0.0:0"),
	}
	for i := range 10 {
		s := sock(sockdiag.Established, "10.0.0.1:80", "10.0.1.0:50000")
		s.Remote = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 1, byte(i)}), 50000)
		sockets = append(sockets, s)
	}
	r := count(t, census.New(census.Limits{MaxServicePorts: 1, PinnedPorts: []uint16{22}, MaxTrackedPeers: 4}), sockets...)
	if len(r.ServicePorts) != 2 || r.ServicePorts[0].Port != 22 || r.ServicePorts[1].Port != 80 {
		t.Fatalf("ports = %+v, want the pinned 22 and the top 80", r.ServicePorts)
	}
	if !r.PeersTruncated || r.ServicePorts[1].Peers != 4 {
		t.Errorf("port 80 peers = %d (truncated %v), want 4, truncated at the cap", r.ServicePorts[1].Peers, r.PeersTruncated)
	}
	if r.ServicePorts[1].States[sockdiag.Established] != 10 {
		t.Errorf("port 80 ESTABLISHED = %d, want all 10 counted despite the peer cap", r.ServicePorts[1].States[sockdiag.Established])
	}
}

func TestResetForgetsTheLastDump(t *testing.T) {
	c := census.New(census.Limits{})
	count(t, c, sock(sockdiag.Listen, "0.0.0.0:80", "0.0.0.0:0"), sock(sockdiag.TimeWait, "10.0.0.1:33000", "10.0.0.5:6379"))
	r := count(t, c, sock(sockdiag.Established, "10.0.0.1:80", "10.0.0.9:40000"))
	if len(r.ServicePorts) != 0 || len(r.Destinations) != 1 || r.Sockets[census.IPv4][sockdiag.Established][census.OutboundBound] != 1 {
		t.Errorf("second dump = %+v: the listener of the first dump leaked into it", r)
	}
}

func TestCountingAllocatesNothingOnceWarm(t *testing.T) {
	c := census.New(census.Limits{})
	sockets := make([]sockdiag.Socket, 0, 10000)
	sockets = append(sockets, sock(sockdiag.Listen, "0.0.0.0:80", "0.0.0.0:0"))
	for i := range 9999 {
		s := sock(sockdiag.TimeWait, "10.0.0.1:33000", "10.0.0.5:6379")
		s.Remote = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 6379)
		s.Local = netip.AddrPortFrom(s.Local.Addr(), uint16(33000+i))
		sockets = append(sockets, s)
	}
	r := defaultRange(t)
	fill := func() {
		c.Reset(r)
		for i := range sockets {
			c.Add(&sockets[i])
		}
	}
	fill()
	if allocs := testing.AllocsPerRun(5, fill); allocs > 0 {
		t.Errorf("counting 10,000 sockets into a warm census made %.0f allocations, want 0", allocs)
	}
}

func TestTopPeers(t *testing.T) {
	sockets := []sockdiag.Socket{sock(sockdiag.Listen, "0.0.0.0:5000", "0.0.0.0:0")}
	// nginx at 10.0.0.2 holds most sockets; two other peers fewer.
	for i, peer := range []string{"10.0.0.2", "10.0.0.2", "10.0.0.2", "10.0.0.3", "10.0.0.3", "10.0.0.4", "10.0.0.5"} {
		s := sock(sockdiag.TimeWait, "10.0.0.1:5000", peer+":40000")
		s.Remote = netip.AddrPortFrom(s.Remote.Addr(), uint16(40000+i))
		sockets = append(sockets, s)
	}
	r := count(t, census.New(census.Limits{TopPeers: 2}), sockets...)
	got := r.ServicePorts[0].TopPeers
	want := []census.PeerCount{{Address: netip.MustParseAddr("10.0.0.2"), Sockets: 3}, {Address: netip.MustParseAddr("10.0.0.3"), Sockets: 2}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("top peers = %v, want %v", got, want)
	}
	if r.ServicePorts[0].Peers != 4 {
		t.Errorf("distinct peers = %d, want 4", r.ServicePorts[0].Peers)
	}
}
