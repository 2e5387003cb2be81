// Package census classifies the TCP sockets of one sock_diag dump and counts
// them in tables whose size is bounded whatever the population: per state,
// per outbound destination (the top K, then "other") and per service port.
//
// A Census is reused from one dump to the next: its tables keep their
// capacity, so counting a population the size of the last one allocates
// nothing.
package census

import (
	"cmp"
	"net/netip"
	"slices"

	"github.com/tcpadvisor/tcpadvisor/exporter/sockdiag"
	"golang.org/x/sys/unix"
)

// Class says which side of a connection this host is on, and whether the
// socket holds a port taken from the ephemeral range.
type Class uint8

// The classes, decided from the listeners seen in the same dump.
const (
	// Listener is a LISTEN socket.
	Listener Class = iota
	// Inbound: the local port is a listening port on the socket's local
	// address or on the wildcard address. Such a socket, TIME_WAIT
	// included, holds no ephemeral port.
	Inbound
	// OutboundEphemeral: not inbound, and the local port lies in the
	// usable ephemeral range, so it was (as far as can be told) picked by
	// connect().
	OutboundEphemeral
	// OutboundBound: not inbound, local port outside the usable range: the
	// application bind()s a fixed port.
	OutboundBound

	numClasses
)

// Classes lists every class in label order.
var Classes = []Class{Listener, Inbound, OutboundEphemeral, OutboundBound}

var classNames = [numClasses]string{"listener", "inbound", "outbound_ephemeral", "outbound_bound"}

// String returns the class's label value.
func (c Class) String() string { return classNames[c] }

// Family indexes the two address families.
type Family uint8

// The address families, in label order.
const (
	IPv4 Family = iota
	IPv6
	numFamilies
)

var familyNames = [numFamilies]string{"ipv4", "ipv6"}

// String returns the family's label value.
func (f Family) String() string { return familyNames[f] }

// StateCounts counts sockets by TCP state.
type StateCounts [sockdiag.MaxState + 1]uint64

// Total returns the sum over all states.
func (c *StateCounts) Total() uint64 {
	var n uint64
	for _, v := range c {
		n += v
	}
	return n
}

// Limits bound the tables of a Census. Zero values take the defaults.
type Limits struct {
	// TopDestinations is how many outbound destinations get their own
	// series; the rest are summed into "other".
	TopDestinations int
	// MaxServicePorts is how many listening ports get their own series.
	MaxServicePorts int
	// MaxTrackedDestinations caps the destination table, and so its
	// memory, whatever the number of distinct destinations. Once it is
	// full, a new destination takes the row of the one with the fewest
	// sockets, whose counts move to "other" (the space-saving algorithm):
	// every destination with more than 1/MaxTrackedDestinations of the
	// outbound sockets keeps its row, so the top K stays right. The
	// destinations ranked high in the last dump never lose their row,
	// so that their counts are exact from the second dump on.
	MaxTrackedDestinations int
	// MaxTrackedPeers caps the (service port, remote address) table behind
	// the distinct-peer counts. Past it, peer counts are lower bounds.
	MaxTrackedPeers int
	// TopPeers is how many of the busiest remote addresses of each reported
	// service port are named.
	TopPeers int
	// PinnedDestinations are always reported, from every source address,
	// on top of the top K.
	PinnedDestinations []netip.AddrPort
	// PinnedPorts are always reported when something listens on them, on
	// top of MaxServicePorts.
	PinnedPorts []uint16
	// TopOwners is how many owners of each reported destination or port
	// are named; the rest are summed into OtherOwner.
	TopOwners int
	// MaxTrackedOwnerRows caps the (destination or port, owner) tables.
	// Past it, further owners are counted as unknown.
	MaxTrackedOwnerRows int
}

// The defaults of Limits.
const (
	DefaultTopDestinations        = 20
	DefaultMaxServicePorts        = 100
	DefaultMaxTrackedDestinations = 1 << 13
	DefaultMaxTrackedPeers        = 1 << 16
	DefaultTopPeers               = 3
	DefaultTopOwners              = 3
	DefaultMaxTrackedOwnerRows    = 1 << 16
)

func (l Limits) withDefaults() Limits {
	if l.TopDestinations <= 0 {
		l.TopDestinations = DefaultTopDestinations
	}
	if l.MaxServicePorts <= 0 {
		l.MaxServicePorts = DefaultMaxServicePorts
	}
	if l.MaxTrackedDestinations <= 0 {
		l.MaxTrackedDestinations = DefaultMaxTrackedDestinations
	}
	if l.MaxTrackedPeers <= 0 {
		l.MaxTrackedPeers = DefaultMaxTrackedPeers
	}
	if l.TopPeers <= 0 {
		l.TopPeers = DefaultTopPeers
	}
	if l.TopOwners <= 0 {
		l.TopOwners = DefaultTopOwners
	}
	if l.MaxTrackedOwnerRows <= 0 {
		l.MaxTrackedOwnerRows = DefaultMaxTrackedOwnerRows
	}
	return l
}

// Destination identifies where outbound connections go: the 3-tuple whose
// ephemeral ports run out together (linux __inet_hash_connect).
type Destination struct {
	Source  netip.Addr
	Address netip.Addr
	Port    uint16
}

// DestinationCount is the outbound sockets toward one destination.
type DestinationCount struct {
	Destination
	States StateCounts
	// Ephemeral counts the sockets, in any state, that hold a port from the
	// ephemeral range toward this destination.
	Ephemeral uint64
	// Owners are the busiest owners of the sockets toward the destination,
	// when they were counted with AddOwned, and OtherOwner for the rest.
	Owners []OwnerCount
	pinned bool
	// kept rows are never evicted: pinned, or ranked high in the last
	// dump.
	kept bool
	// serial numbers the destinations in the order they got a row in
	// this dump: rows are reused, serials are not, so the owner rows of a
	// destination that lost its row are never taken for the new one's.
	serial int32
	// unattributed counts the owned sockets left out of full owner tables.
	unattributed uint64
	// weight ranks the row for eviction: its sockets, plus floor, the
	// weight of the row it replaced (how many sockets it may have had
	// before it got the row, counted in "other").
	weight, floor uint64
}

func (d *DestinationCount) key() destKey {
	return destKey{source: d.Source.As16(), address: d.Address.As16(), port: d.Port}
}

// PortCount is the inbound sockets and listeners of one service port.
type PortCount struct {
	Port   uint16
	States StateCounts
	// Peers is the number of distinct remote addresses with a socket on the
	// port (a lower bound when Result.PeersTruncated).
	Peers uint64
	// TopPeers are the remote addresses with the most sockets on the port,
	// busiest first, at most Limits.TopPeers of them.
	TopPeers []PeerCount
	// Listeners is the number of LISTEN sockets on the port;
	// QueueLength and QueueLimit sum their accept queues.
	Listeners   uint64
	QueueLength uint64
	QueueLimit  uint64
	// InEphemeralRange: the kernel may hand this port to connect().
	InEphemeralRange bool
	// Owners are the busiest owners of the port's inbound sockets, when
	// they were counted with AddOwned, and OtherOwner for the rest.
	Owners []OwnerCount
	// ListenerOwner is the owner of the port's listening socket, when it
	// was counted with AddOwned and has one; the zero Owner otherwise.
	ListenerOwner Owner
	pinned        bool
	// unattributed counts the owned sockets left out of full owner tables.
	unattributed uint64
}

// peerKey and destKey hold addresses as plain bytes (IPv4 as IPv4-mapped),
// so that the map hashes each key as one run of memory: netip.Addr holds a
// pointer, which makes Go hash a struct of them field by field, at twice the
// cost per socket.
// PeerCount is the sockets, in any state, from one remote address on a
// service port.
type PeerCount struct {
	Address netip.Addr
	Sockets uint64
}

type peerKey struct {
	addr [16]byte
	port uint16
}

type destKey struct {
	source, address [16]byte
	port            uint16
}

// Census counts one dump. Reset it, Add every socket of the dump, listeners
// before the rest, then read the Result.
type Census struct {
	limits      Limits
	pinnedDests map[netip.AddrPort]bool
	pinnedPorts map[uint16]bool

	ephemeral EphemeralRange
	sockets   [numFamilies][sockdiag.MaxState + 1][numClasses]uint64
	inUse     PortSet

	listenAddrs map[netip.AddrPort]struct{}
	// listenPorts holds the ports of listenAddrs, so that the sockets of
	// every other port skip the map.
	listenPorts   PortSet
	wildcardPorts PortSet

	destIndex map[destKey]int32
	dests     []DestinationCount
	// serials counts the rows given in this dump.
	serials   int32
	overflow  DestinationCount
	destsFull bool
	// evictable is a min-heap by weight of the rows of dests that are
	// not kept, built when the table first fills; heapPos is each row's
	// place in it, or -1.
	evictable []int32
	heapPos   []int32
	heapBuilt bool
	// keep holds the destinations ranked highest in the last dump, up to
	// keptDestinations(): they keep their rows in this one.
	keep map[destKey]struct{}

	portIndex  map[uint16]int32
	ports      []PortCount
	peers      map[peerKey]uint64
	peersFull  bool
	sortedDest []int32
	sortedPort []int32

	// owners is nil until the first AddOwned.
	owners *owners
}

// New returns a Census bounded by limits.
func New(limits Limits) *Census {
	c := &Census{
		limits:      limits.withDefaults(),
		pinnedDests: map[netip.AddrPort]bool{},
		pinnedPorts: map[uint16]bool{},
		listenAddrs: map[netip.AddrPort]struct{}{},
		destIndex:   map[destKey]int32{},
		keep:        map[destKey]struct{}{},
		portIndex:   map[uint16]int32{},
		peers:       map[peerKey]uint64{},
	}
	for _, d := range c.limits.PinnedDestinations {
		c.pinnedDests[netip.AddrPortFrom(d.Addr().Unmap(), d.Port())] = true
	}
	for _, p := range c.limits.PinnedPorts {
		c.pinnedPorts[p] = true
	}
	return c
}

// Reset empties the tables for a new dump taken under the given ephemeral
// range.
func (c *Census) Reset(ephemeral *EphemeralRange) {
	c.ephemeral = *ephemeral
	c.sockets = [numFamilies][sockdiag.MaxState + 1][numClasses]uint64{}
	c.inUse = PortSet{}
	clear(c.listenAddrs)
	c.listenPorts = PortSet{}
	c.wildcardPorts = PortSet{}
	clear(c.destIndex)
	c.dests = c.dests[:0]
	c.serials = 0
	c.overflow = DestinationCount{serial: -1}
	c.destsFull = false
	c.evictable = c.evictable[:0]
	c.heapBuilt = false
	c.heapPos = c.heapPos[:0]
	clear(c.portIndex)
	c.ports = c.ports[:0]
	clear(c.peers)
	c.peersFull = false
	if c.owners != nil {
		c.owners.reset()
	}
}

// Add counts one socket. Every listener of the dump must be added before the
// sockets that it classifies.
func (c *Census) Add(s *sockdiag.Socket) { c.add(s) }

// add counts s and returns its class and, for an outbound socket toward a
// destination of the table, the destination's row, else -1.
func (c *Census) add(s *sockdiag.Socket) (Class, int32) {
	family := IPv4
	if s.Family == unix.AF_INET6 {
		family = IPv6
	}
	state := s.State
	if state > sockdiag.MaxState {
		// A state this version does not know (the kernel reports only
		// the ones asked for): count it nowhere rather than misfile it.
		return Listener, -1
	}
	local := netip.AddrPortFrom(s.Local.Addr().Unmap(), s.Local.Port())
	remote := s.Remote.Addr().Unmap()
	class := c.classify(state, local)
	c.sockets[family][state][class]++

	switch class {
	case Listener:
		c.addListener(local, s)
	case Inbound:
		p := c.port(local.Port())
		p.States[state]++
		c.addPeer(p, remote)
	case OutboundEphemeral, OutboundBound:
		row := c.destination(destKey{source: local.Addr().As16(), address: remote.As16(), port: s.Remote.Port()})
		d := &c.overflow
		if row >= 0 {
			d = &c.dests[row]
		}
		d.States[state]++
		if class == OutboundEphemeral {
			d.Ephemeral++
			c.inUse.Add(local.Port())
		}
		if row >= 0 {
			d.weight++
			if c.heapPos[row] >= 0 {
				c.siftDown(int(c.heapPos[row]))
			}
		}
		return class, row
	}
	return class, -1
}

func (c *Census) classify(state sockdiag.State, local netip.AddrPort) Class {
	if state == sockdiag.Listen {
		return Listener
	}
	if c.wildcardPorts.Has(local.Port()) {
		return Inbound
	}
	if c.listenPorts.Has(local.Port()) {
		if _, ok := c.listenAddrs[local]; ok {
			return Inbound
		}
	}
	if c.ephemeral.Contains(local.Port()) {
		return OutboundEphemeral
	}
	return OutboundBound
}

func (c *Census) addListener(local netip.AddrPort, s *sockdiag.Socket) {
	if local.Addr().IsUnspecified() {
		c.wildcardPorts.Add(local.Port())
	} else {
		c.listenAddrs[local] = struct{}{}
		c.listenPorts.Add(local.Port())
	}
	p := c.port(local.Port())
	p.Listeners++
	p.QueueLength += uint64(s.RecvQueue)
	p.QueueLimit += uint64(s.SendQueue)
}

// port returns the row of a service port. The table needs no cap: there are
// at most 65,536 ports.
func (c *Census) port(port uint16) *PortCount {
	if i, ok := c.portIndex[port]; ok {
		return &c.ports[i]
	}
	c.portIndex[port] = int32(len(c.ports))
	c.ports = append(c.ports, PortCount{
		Port:             port,
		InEphemeralRange: c.ephemeral.Contains(port),
		pinned:           c.pinnedPorts[port],
	})
	return &c.ports[len(c.ports)-1]
}

func (c *Census) addPeer(p *PortCount, remote netip.Addr) {
	k := peerKey{port: p.Port, addr: remote.As16()}
	if n, ok := c.peers[k]; ok {
		c.peers[k] = n + 1
		return
	}
	if len(c.peers) >= c.limits.MaxTrackedPeers {
		c.peersFull = true
		return
	}
	c.peers[k] = 1
	p.Peers++
}

// destination returns the row of k, or -1 for the overflow row once the
// table is full of kept destinations. Past the cap, k takes the row of
// the lightest destination not kept, whose counts move to the overflow row;
// pinned destinations get a row past the cap.
func (c *Census) destination(k destKey) int32 {
	if i, ok := c.destIndex[k]; ok {
		return i
	}
	d := Destination{
		Source:  netip.AddrFrom16(k.source).Unmap(),
		Address: netip.AddrFrom16(k.address).Unmap(),
		Port:    k.port,
	}
	pinned := c.pinnedDests[netip.AddrPortFrom(d.Address, d.Port)]
	_, kept := c.keep[k]
	row := DestinationCount{Destination: d, pinned: pinned, kept: pinned || kept, serial: c.serials}
	if len(c.dests) < c.limits.MaxTrackedDestinations || pinned {
		c.serials++
		i := int32(len(c.dests))
		c.destIndex[k] = i
		c.dests = append(c.dests, row)
		// Rows are added only until the table fills, before the heap
		// is built, or for pinned destinations, which are never evicted.
		c.heapPos = append(c.heapPos, -1)
		return i
	}
	c.destsFull = true
	if !c.heapBuilt {
		c.buildHeap()
	}
	if len(c.evictable) == 0 {
		return -1
	}
	c.serials++
	i := c.evictable[0]
	victim := &c.dests[i]
	c.overflow.Ephemeral += victim.Ephemeral
	for s, n := range victim.States {
		c.overflow.States[s] += n
	}
	delete(c.destIndex, victim.key())
	row.weight, row.floor = victim.weight, victim.weight
	*victim = row
	c.destIndex[k] = i
	if row.kept {
		c.popRoot()
	}
	// Otherwise the new row weighs what the old one did, so it stays at
	// the root until its socket is counted.
	return i
}

// popRoot takes the root off the heap.
func (c *Census) popRoot() {
	last := len(c.evictable) - 1
	c.swap(0, last)
	c.heapPos[c.evictable[last]] = -1
	c.evictable = c.evictable[:last]
	if last > 0 {
		c.siftDown(0)
	}
}

// buildHeap makes the heap of the rows not kept, once the table is full.
func (c *Census) buildHeap() {
	c.heapBuilt = true
	for i := range c.dests {
		if !c.dests[i].kept {
			c.heapPos[i] = int32(len(c.evictable))
			c.evictable = append(c.evictable, int32(i))
		}
	}
	for j := len(c.evictable)/2 - 1; j >= 0; j-- {
		c.siftDown(j)
	}
}

// siftDown restores the heap below place j, after its row got heavier.
func (c *Census) siftDown(j int) {
	n := len(c.evictable)
	for {
		lightest := j
		for _, child := range [2]int{2*j + 1, 2*j + 2} {
			if child < n && c.lighter(child, lightest) {
				lightest = child
			}
		}
		if lightest == j {
			return
		}
		c.swap(j, lightest)
		j = lightest
	}
}

// lighter orders the heap: the lowest weight first and, among equals, the
// row that counted the fewest sockets itself (the highest floor), so that a
// destination seen twice outlasts one seen once.
func (c *Census) lighter(a, b int) bool {
	da, db := &c.dests[c.evictable[a]], &c.dests[c.evictable[b]]
	if da.weight != db.weight {
		return da.weight < db.weight
	}
	return da.floor > db.floor
}

func (c *Census) swap(a, b int) {
	c.evictable[a], c.evictable[b] = c.evictable[b], c.evictable[a]
	c.heapPos[c.evictable[a]] = int32(a)
	c.heapPos[c.evictable[b]] = int32(b)
}

// keptDestinations is how many of the top destinations of a dump keep
// their rows in the next: a margin over the reported top K, for those that
// move up.
func (c *Census) keptDestinations() int {
	return 4 * c.limits.TopDestinations
}

// Result is what one dump counted, bounded by the Census's limits.
type Result struct {
	// Sockets counts every socket by family, state and class.
	Sockets [numFamilies][sockdiag.MaxState + 1][numClasses]uint64
	// Destinations holds the pinned destinations and the top K others by
	// sockets holding an ephemeral port, then by all sockets.
	// OtherDestinations sums every destination not listed, so that the
	// listed ones plus it add up to all outbound sockets.
	Destinations      []DestinationCount
	OtherDestinations DestinationCount
	// ServicePorts holds the pinned listening ports and up to
	// MaxServicePorts others, those inside the ephemeral range first, then
	// by inbound sockets. OtherPorts sums the rest (its Peers is unused).
	ServicePorts []PortCount
	OtherPorts   PortCount
	// EphemeralInUse is the number of distinct ephemeral ports held by
	// outbound sockets; ListeningInEphemeralRange the number of listening
	// ports the kernel may also hand to connect().
	EphemeralInUse            int
	ListeningInEphemeralRange int
	// Ephemeral is the range the dump was classified with.
	Ephemeral EphemeralRange
	// DestinationsTruncated and PeersTruncated report that a hard cap of
	// the tables was reached in this dump.
	DestinationsTruncated bool
	PeersTruncated        bool
	// OwnersTruncated reports that the owner tables were full, so that
	// some sockets were counted as UnknownOwner's.
	OwnersTruncated bool
}

// Result ranks and cuts the tables. The slices it returns are valid until the
// next Reset.
func (c *Census) Result() Result {
	r := Result{
		Sockets:               c.sockets,
		EphemeralInUse:        c.inUse.Len(),
		Ephemeral:             c.ephemeral,
		DestinationsTruncated: c.destsFull,
		PeersTruncated:        c.peersFull,
	}
	r.Destinations, r.OtherDestinations = c.topDestinations()
	r.ServicePorts, r.OtherPorts = c.topPorts()
	if c.owners != nil {
		c.fillDestinationOwners(r.Destinations)
		c.fillPortOwners(r.ServicePorts)
		r.OwnersTruncated = c.owners.full
	}
	for i := range c.ports {
		if c.ports[i].Listeners > 0 && c.ports[i].InEphemeralRange {
			r.ListeningInEphemeralRange++
		}
	}
	return r
}

func (c *Census) topDestinations() ([]DestinationCount, DestinationCount) {
	c.sortedDest = c.sortedDest[:0]
	for i := range c.dests {
		c.sortedDest = append(c.sortedDest, int32(i))
	}
	slices.SortFunc(c.sortedDest, func(a, b int32) int {
		da, db := &c.dests[a], &c.dests[b]
		if n := cmp.Compare(db.Ephemeral, da.Ephemeral); n != 0 {
			return n
		}
		if n := cmp.Compare(db.States.Total(), da.States.Total()); n != 0 {
			return n
		}
		return compareDestinations(da.Destination, db.Destination)
	})
	clear(c.keep)
	for _, i := range c.sortedDest[:min(len(c.sortedDest), c.keptDestinations())] {
		c.keep[c.dests[i].key()] = struct{}{}
	}
	other := c.overflow
	top := make([]DestinationCount, 0, c.limits.TopDestinations+len(c.pinnedDests))
	unpinned := 0
	for _, i := range c.sortedDest {
		d := c.dests[i]
		switch {
		case d.pinned:
			top = append(top, d)
		case unpinned < c.limits.TopDestinations:
			top = append(top, d)
			unpinned++
		default:
			other.Ephemeral += d.Ephemeral
			for s, n := range d.States {
				other.States[s] += n
			}
		}
	}
	return top, other
}

func (c *Census) topPorts() ([]PortCount, PortCount) {
	c.sortedPort = c.sortedPort[:0]
	for i := range c.ports {
		c.sortedPort = append(c.sortedPort, int32(i))
	}
	slices.SortFunc(c.sortedPort, func(a, b int32) int {
		pa, pb := &c.ports[a], &c.ports[b]
		if pa.InEphemeralRange != pb.InEphemeralRange {
			if pa.InEphemeralRange {
				return -1
			}
			return 1
		}
		if n := cmp.Compare(pb.States.Total(), pa.States.Total()); n != 0 {
			return n
		}
		return cmp.Compare(pa.Port, pb.Port)
	})
	var other PortCount
	top := make([]PortCount, 0, min(len(c.ports), c.limits.MaxServicePorts+len(c.pinnedPorts)))
	unpinned := 0
	for _, i := range c.sortedPort {
		p := c.ports[i]
		switch {
		case p.pinned:
			top = append(top, p)
		case unpinned < c.limits.MaxServicePorts:
			top = append(top, p)
			unpinned++
		default:
			other.Listeners += p.Listeners
			other.QueueLength += p.QueueLength
			other.QueueLimit += p.QueueLimit
			for s, n := range p.States {
				other.States[s] += n
			}
		}
	}
	slices.SortFunc(top, func(a, b PortCount) int { return cmp.Compare(a.Port, b.Port) })
	c.fillTopPeers(top)
	return top, other
}

// fillTopPeers names the busiest peers of each reported port, in one pass
// over the peer table.
func (c *Census) fillTopPeers(top []PortCount) {
	reported := make(map[uint16]int, len(top))
	for i := range top {
		reported[top[i].Port] = i
		top[i].TopPeers = make([]PeerCount, 0, c.limits.TopPeers)
	}
	for k, n := range c.peers {
		i, ok := reported[k.port]
		if !ok {
			continue
		}
		peers := &top[i].TopPeers
		candidate := PeerCount{Address: netip.AddrFrom16(k.addr).Unmap(), Sockets: n}
		at, _ := slices.BinarySearchFunc(*peers, candidate, comparePeers)
		if at >= c.limits.TopPeers {
			continue
		}
		if len(*peers) == c.limits.TopPeers {
			*peers = (*peers)[:len(*peers)-1]
		}
		*peers = slices.Insert(*peers, at, candidate)
	}
}

// comparePeers orders the busiest peer first, then by address.
func comparePeers(a, b PeerCount) int {
	if n := cmp.Compare(b.Sockets, a.Sockets); n != 0 {
		return n
	}
	return a.Address.Compare(b.Address)
}

func compareDestinations(a, b Destination) int {
	if n := a.Address.Compare(b.Address); n != 0 {
		return n
	}
	if n := cmp.Compare(a.Port, b.Port); n != 0 {
		return n
	}
	return a.Source.Compare(b.Source)
}

// TrackedDestinations returns the number of rows of the destination table,
// which MaxTrackedDestinations caps.
func (c *Census) TrackedDestinations() int { return len(c.dests) }
