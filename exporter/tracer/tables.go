package tracer

import (
	"net/netip"
	"time"

	"github.com/tcpadvisor/tcpadvisor/exporter/census"
	"github.com/tcpadvisor/tcpadvisor/exporter/netns"
)

// Owner is who opened outbound connections: the cgroup (v2) ID of their
// sockets and the process name, "" where unknown. The collector names the
// cgroup's unit or container when it reports them.
type Owner struct {
	Cgroup  uint64
	Process string
}

// Destination is where outbound connections go, as the census keys it: the
// 3-tuple whose ephemeral ports run out together.
type Destination struct {
	Source, Address netip.Addr
	Port            uint16
}

// OtherLabel names what is summed past a cap: the namespace, destination,
// owner or port "other".
const OtherLabel = "other"

// Limits bound Tables. Zero values take the defaults.
type Limits struct {
	// Namespaces is how many network namespaces have series of their own;
	// the rest are summed into netns="other".
	Namespaces int
	// Destinations is how many destinations of each namespace have series
	// of their own, and Owners how many owners of each destination; the
	// rest are summed into "other".
	Destinations, Owners int
	// Ports is how many service ports of each namespace have series of
	// their own.
	Ports int
	// IdleAfter is how long a named row must have counted nothing before
	// a new one may take its place.
	IdleAfter time.Duration
}

// The defaults of Limits: the census's and the namespaces' own, whose
// flags bound the tracer's series too.
const (
	DefaultNamespaces   = netns.DefaultMax
	DefaultDestinations = census.DefaultTopDestinations
	DefaultOwners       = census.DefaultTopOwners
	DefaultPorts        = census.DefaultMaxServicePorts
	DefaultIdleAfter    = 10 * time.Minute
)

func (l Limits) withDefaults() Limits {
	if l.Namespaces <= 0 {
		l.Namespaces = DefaultNamespaces
	}
	if l.Destinations <= 0 {
		l.Destinations = DefaultDestinations
	}
	if l.Owners <= 0 {
		l.Owners = DefaultOwners
	}
	if l.Ports <= 0 {
		l.Ports = DefaultPorts
	}
	if l.IdleAfter <= 0 {
		l.IdleAfter = DefaultIdleAfter
	}
	return l
}

// Tables keep the cumulative counts of the drains in bounded tables, so that
// every counter they report only ever grows.
//
// A namespace, destination, owner or port gets a row of its own while there
// is room, and keeps it: counts are never moved out of a named row while it
// is active. Once a table is full, a new key takes the place of a row that
// has counted nothing for Limits.IdleAfter, whose totals are then added to
// the table's "other" row (and its series disappear); with no idle row, the
// new key's counts go to "other" directly. "other" rows only grow, so they
// are counters too.
type Tables struct {
	limits     Limits
	now        func() time.Time
	namespaces map[string]*namespaceTable
	// otherNamespace sums the namespaces past Limits.Namespaces, and what
	// found the kernel maps full (of no known namespace).
	otherNamespace *namespaceTable
	// otherUsed: otherNamespace counted something, and is reported from
	// then on.
	otherUsed bool
}

type namespaceTable struct {
	destinations     map[Destination]*destinationRow
	otherDestination OutboundCounts
	ports            map[uint16]*portRow
	otherPort        InboundCounts
}

type destinationRow struct {
	owners      map[Owner]*OutboundCounts
	otherOwners OutboundCounts
	// otherUsed: otherOwners counted something, and is reported from then
	// on.
	otherUsed bool
	active    time.Time
}

type portRow struct {
	counts InboundCounts
	active time.Time
}

// NewTables returns empty tables bounded by limits.
func NewTables(limits Limits) *Tables {
	return &Tables{
		limits:         limits.withDefaults(),
		now:            time.Now,
		namespaces:     map[string]*namespaceTable{},
		otherNamespace: newNamespaceTable(),
	}
}

func newNamespaceTable() *namespaceTable {
	return &namespaceTable{destinations: map[Destination]*destinationRow{}, ports: map[uint16]*portRow{}}
}

// SetClock sets the clock that tells idle rows; time.Now by default.
func (t *Tables) SetClock(now func() time.Time) { t.now = now }

func (t *Tables) namespace(name string) *namespaceTable {
	if ns, ok := t.namespaces[name]; ok && name != OtherLabel {
		return ns
	}
	if name == OtherLabel || len(t.namespaces) >= t.limits.Namespaces {
		t.otherUsed = true
		return t.otherNamespace
	}
	ns := newNamespaceTable()
	t.namespaces[name] = ns
	return ns
}

// AddOutbound adds counts toward dest by owner in the namespace named
// netns ("" when namespaces are not labelled).
func (t *Tables) AddOutbound(netns string, dest Destination, owner Owner, counts *OutboundCounts) {
	ns := t.namespace(netns)
	now := t.now()
	row, ok := ns.destinations[dest]
	if !ok {
		if !ns.makeRoomForDestination(t.limits, now) {
			ns.otherDestination.Add(counts)
			return
		}
		row = &destinationRow{owners: map[Owner]*OutboundCounts{}}
		ns.destinations[dest] = row
	}
	row.active = now
	if c, ok := row.owners[owner]; ok {
		c.Add(counts)
		return
	}
	if len(row.owners) >= t.limits.Owners {
		row.otherOwners.Add(counts)
		row.otherUsed = true
		return
	}
	c := *counts
	row.owners[owner] = &c
}

// makeRoomForDestination reports whether a new destination fits, evicting
// an idle one into "other" if need be.
func (ns *namespaceTable) makeRoomForDestination(limits Limits, now time.Time) bool {
	if len(ns.destinations) < limits.Destinations {
		return true
	}
	for dest, row := range ns.destinations {
		if now.Sub(row.active) >= limits.IdleAfter {
			for _, c := range row.owners {
				ns.otherDestination.Add(c)
			}
			ns.otherDestination.Add(&row.otherOwners)
			delete(ns.destinations, dest)
			return true
		}
	}
	return false
}

// AddInbound adds counts on a service port in the namespace named netns.
func (t *Tables) AddInbound(netns string, port uint16, counts *InboundCounts) {
	ns := t.namespace(netns)
	now := t.now()
	row, ok := ns.ports[port]
	if !ok {
		if !ns.makeRoomForPort(t.limits, now) {
			ns.otherPort.Add(counts)
			return
		}
		row = &portRow{}
		ns.ports[port] = row
	}
	row.active = now
	row.counts.Add(counts)
}

func (ns *namespaceTable) makeRoomForPort(limits Limits, now time.Time) bool {
	if len(ns.ports) < limits.Ports {
		return true
	}
	for port, row := range ns.ports {
		if now.Sub(row.active) >= limits.IdleAfter {
			ns.otherPort.Add(&row.counts)
			delete(ns.ports, port)
			return true
		}
	}
	return false
}

// AddOverflow adds what found the kernel maps full: it is of no known
// namespace, destination or owner, so it is summed into netns="other"
// (or, when namespaces are not labelled, the one namespace's "other").
func (t *Tables) AddOverflow(netns string, outbound *OutboundCounts, inbound *InboundCounts) {
	ns := t.namespace(netns)
	ns.otherDestination.Add(outbound)
	ns.otherPort.Add(inbound)
}

// OutboundRow is one row of the outbound tables, for Each.
type OutboundRow struct {
	Netns string
	// Destination and Owner are zero for the namespace's "other"
	// destination, and Owner for a destination's "other" owners.
	Destination *Destination
	Owner       *Owner
	Counts      *OutboundCounts
}

// InboundRow is one row of the inbound tables; Port is 0 for "other".
type InboundRow struct {
	Netns  string
	Port   uint16
	Counts *InboundCounts
}

// Each calls outbound and inbound for every row: each named destination's
// owners and "other" owners, each namespace's "other" destination and port,
// and each named port.
func (t *Tables) Each(outbound func(OutboundRow), inbound func(InboundRow)) {
	each := func(name string, ns *namespaceTable) {
		for dest, row := range ns.destinations {
			for owner, c := range row.owners {
				outbound(OutboundRow{Netns: name, Destination: &dest, Owner: &owner, Counts: c})
			}
			if row.otherUsed {
				outbound(OutboundRow{Netns: name, Destination: &dest, Counts: &row.otherOwners})
			}
		}
		outbound(OutboundRow{Netns: name, Counts: &ns.otherDestination})
		for port, row := range ns.ports {
			inbound(InboundRow{Netns: name, Port: port, Counts: &row.counts})
		}
		inbound(InboundRow{Netns: name, Counts: &ns.otherPort})
	}
	for name, ns := range t.namespaces {
		each(name, ns)
	}
	if t.otherUsed {
		each(OtherLabel, t.otherNamespace)
	}
}
