package census

import (
	"cmp"
	"slices"
	"time"

	attribution "github.com/tcpadvisor/tcpadvisor/exporter/owners"
	"github.com/tcpadvisor/tcpadvisor/exporter/sockdiag"
)

// Owner is who holds a socket, as the owners package attributes it: the
// census counts by the same type. The zero Owner is "no owner": the kernel
// keeps none for TIME_WAIT and SYN_RECV sockets.
type Owner = attribution.Owner

// The owners the census reports for what it cannot attribute, and for the
// owners past the top K of a destination or port.
var (
	UnknownOwner = attribution.UnknownOwner
	OtherOwner   = Owner{Unit: "other", Process: "other"}
)

// OwnerCount is the sockets of one owner toward a destination or on a port.
type OwnerCount struct {
	Owner   Owner
	Sockets uint64
}

// Closers tells, from the connection tracer, which owner closed connections
// toward a destination first in the last 60 s: the side that closes first
// holds the TIME_WAIT, so that owner holds the destination's sockets that
// no process holds any more.
type Closers interface {
	Closer(d Destination) (Owner, bool)
}

// SetClosers makes the census give the sockets no process holds toward a
// destination to the owner closers names for it, before any guess; nil
// turns that off.
func (c *Census) SetClosers(closers Closers) { c.ownersState().closers = closers }

// timeWaitDuration is how long a socket stays in TIME_WAIT (TCP_TIMEWAIT_LEN,
// fixed in the kernel): a destination's TIME_WAIT sockets may come from an
// owner last seen connecting to it that long ago.
const timeWaitDuration = 60 * time.Second

// ownerRow counts one owner's live sockets toward one destination or on one
// port; fresh counts those not seen in the previous dump.
type ownerRow struct {
	sockets, fresh uint64
}

// destOwnerKey is an owner's row toward a destination, named by its serial.
type destOwnerKey struct {
	dest  int32
	owner uint32
}

type portOwnerKey struct {
	port  uint16
	owner uint32
}

// maxTrackedInodes caps the inodes remembered from one dump to the next
// (about 40 MB at the cap); past it, sockets are not counted as fresh.
const maxTrackedInodes = 1 << 20

// churner is the owner that last opened new connections to a destination.
type churner struct {
	owner Owner
	seen  time.Time
}

// owners is the census's attribution state, allocated on the first AddOwned.
type owners struct {
	now func() time.Time

	// ids interns the owners of one dump; list holds them by ID.
	ids  map[Owner]uint32
	list []Owner

	dests     map[destOwnerKey]ownerRow
	ports     map[portOwnerKey]ownerRow
	listeners map[uint16]uint32
	full      bool

	// seen and previous hold the inodes of this dump's and the last
	// dump's owned sockets: a socket absent from the last dump is fresh.
	seen, previous map[uint32]struct{}
	// churners remembers, per destination, the owner of the last fresh
	// sockets, for the TIME_WAIT sockets left once they are gone.
	churners map[destKey]churner
	// closers, when set, names who closed first toward a destination.
	closers Closers
}

// SetClock sets the clock that dates what the census remembers from one dump
// to the next; time.Now by default.
func (c *Census) SetClock(now func() time.Time) { c.ownersState().now = now }

func (c *Census) ownersState() *owners {
	if c.owners == nil {
		c.owners = &owners{
			now:       time.Now,
			ids:       map[Owner]uint32{},
			dests:     map[destOwnerKey]ownerRow{},
			ports:     map[portOwnerKey]ownerRow{},
			listeners: map[uint16]uint32{},
			seen:      map[uint32]struct{}{},
			previous:  map[uint32]struct{}{},
			churners:  map[destKey]churner{},
		}
	}
	return c.owners
}

// reset starts a new dump: this dump's inodes become the previous ones.
func (o *owners) reset() {
	clear(o.ids)
	o.list = o.list[:0]
	clear(o.dests)
	clear(o.ports)
	clear(o.listeners)
	o.full = false
	o.seen, o.previous = o.previous, o.seen
	clear(o.seen)
	now := o.now()
	for k, ch := range o.churners {
		if now.Sub(ch.seen) > timeWaitDuration {
			delete(o.churners, k)
		}
	}
}

func (o *owners) id(owner Owner) uint32 {
	if id, ok := o.ids[owner]; ok {
		return id
	}
	id := uint32(len(o.list))
	o.ids[owner] = id
	o.list = append(o.list, owner)
	return id
}

// AddOwned counts one socket, as Add does, and the owner that holds it: the
// zero Owner for a socket no process holds (TIME_WAIT, SYN_RECV). The owner
// tables are as bounded as the rest: past Limits.MaxTrackedOwnerRows rows,
// further owners are counted as unknown.
func (c *Census) AddOwned(s *sockdiag.Socket, owner Owner) {
	class, dest := c.add(s)
	o := c.ownersState()
	if owner == (Owner{}) {
		// Attributed when the Result is made, from the other sockets
		// toward the same destination or on the same port.
		return
	}
	fresh := uint64(0)
	if s.Inode != 0 && len(o.seen) < maxTrackedInodes {
		o.seen[s.Inode] = struct{}{}
		if _, ok := o.previous[s.Inode]; !ok {
			fresh = 1
		}
	}
	id := o.id(owner)
	switch class {
	case Listener:
		o.listeners[s.Local.Port()] = id
	case Inbound:
		k := portOwnerKey{port: s.Local.Port(), owner: id}
		if row, ok := o.ports[k]; ok || o.room(c.limits) {
			o.ports[k] = ownerRow{sockets: row.sockets + 1, fresh: row.fresh + fresh}
		} else {
			c.port(k.port).unattributed++
		}
	case OutboundEphemeral, OutboundBound:
		if dest < 0 {
			return
		}
		k := destOwnerKey{dest: c.dests[dest].serial, owner: id}
		if row, ok := o.dests[k]; ok || o.room(c.limits) {
			o.dests[k] = ownerRow{sockets: row.sockets + 1, fresh: row.fresh + fresh}
		} else {
			c.dests[dest].unattributed++
		}
	}
}

// room reports whether another owner row fits, and remembers when one did
// not.
func (o *owners) room(limits Limits) bool {
	if len(o.dests)+len(o.ports) < limits.MaxTrackedOwnerRows {
		return true
	}
	o.full = true
	return false
}

// groupRows groups the rows of one table by destination or port.
func groupRows[K comparable](rows map[K]ownerRow, group func(K) (int, uint32), n int) [][]ownerRowOf {
	groups := make([][]ownerRowOf, n)
	for k, row := range rows {
		g, id := group(k)
		if g >= 0 && g < n {
			groups[g] = append(groups[g], ownerRowOf{id: id, ownerRow: row})
		}
	}
	return groups
}

type ownerRowOf struct {
	id uint32
	ownerRow
}

// fillDestinationOwners names the owners of each reported destination.
// Sockets with no owner are given to the owner the connection tracer saw
// closing first toward the destination in the last 60 s, else to the owner
// with the most fresh sockets toward the destination in this dump, else to
// the one that had them in a dump of the last 60 s, else to UnknownOwner.
func (c *Census) fillDestinationOwners(top []DestinationCount) {
	o := c.owners
	index := make(map[int32]int, len(top))
	for i := range top {
		index[top[i].serial] = i
	}
	groups := groupRows(o.dests, func(k destOwnerKey) (int, uint32) {
		if i, ok := index[k.dest]; ok {
			return i, k.owner
		}
		return -1, 0
	}, len(top))
	now := o.now()
	for i := range top {
		d := &top[i]
		rows := groups[i]
		var live uint64
		for _, r := range rows {
			live += r.sockets
		}
		unowned := d.States.Total() - live - d.unattributed
		key := d.key()
		best := -1
		for j, r := range rows {
			if r.fresh > 0 && (best < 0 || r.fresh > rows[best].fresh ||
				r.fresh == rows[best].fresh && compareOwners(o.list[r.id], o.list[rows[best].id]) < 0) {
				best = j
			}
		}
		counts := make([]OwnerCount, 0, len(rows)+1)
		for _, r := range rows {
			counts = append(counts, OwnerCount{Owner: o.list[r.id], Sockets: r.sockets})
		}
		if o.closers != nil && unowned > 0 {
			if closer, ok := o.closers.Closer(d.Destination); ok {
				counts = addTo(counts, closer, unowned)
				unowned = 0
			}
		}
		switch ch, remembered := o.churners[key]; {
		case best >= 0:
			counts[best].Sockets += unowned
			o.churners[key] = churner{owner: counts[best].Owner, seen: now}
		case unowned == 0:
		case remembered:
			counts = addTo(counts, ch.owner, unowned)
		default:
			counts = addTo(counts, UnknownOwner, unowned)
		}
		if d.unattributed > 0 {
			counts = addTo(counts, UnknownOwner, d.unattributed)
		}
		d.Owners = c.topOwners(counts)
	}
}

// fillPortOwners names the owners of each reported port. Sockets with no
// owner there are the server's side of closed or half-open connections:
// they are given to the owner of the port's listener, else to UnknownOwner.
func (c *Census) fillPortOwners(top []PortCount) {
	o := c.owners
	index := make(map[uint16]int, len(top))
	for i := range top {
		index[top[i].Port] = i
	}
	groups := groupRows(o.ports, func(k portOwnerKey) (int, uint32) {
		if i, ok := index[k.port]; ok {
			return i, k.owner
		}
		return -1, 0
	}, len(top))
	for i := range top {
		p := &top[i]
		if id, ok := o.listeners[p.Port]; ok {
			p.ListenerOwner = o.list[id]
		}
		counts := make([]OwnerCount, 0, len(groups[i])+1)
		var live uint64
		for _, r := range groups[i] {
			counts = append(counts, OwnerCount{Owner: o.list[r.id], Sockets: r.sockets})
			live += r.sockets
		}
		if unowned := p.States.Total() - live - p.unattributed; unowned > 0 {
			owner := UnknownOwner
			if id, ok := o.listeners[p.Port]; ok {
				owner = o.list[id]
			}
			counts = addTo(counts, owner, unowned)
		}
		if p.unattributed > 0 {
			counts = addTo(counts, UnknownOwner, p.unattributed)
		}
		p.Owners = c.topOwners(counts)
	}
}

func addTo(counts []OwnerCount, owner Owner, n uint64) []OwnerCount {
	for i := range counts {
		if counts[i].Owner == owner {
			counts[i].Sockets += n
			return counts
		}
	}
	return append(counts, OwnerCount{Owner: owner, Sockets: n})
}

// topOwners keeps the Limits.TopOwners owners with the most sockets and sums
// the rest into OtherOwner.
func (c *Census) topOwners(counts []OwnerCount) []OwnerCount {
	slices.SortFunc(counts, func(a, b OwnerCount) int {
		if n := cmp.Compare(b.Sockets, a.Sockets); n != 0 {
			return n
		}
		return compareOwners(a.Owner, b.Owner)
	})
	if len(counts) <= c.limits.TopOwners {
		return counts
	}
	other := OwnerCount{Owner: OtherOwner}
	for _, oc := range counts[c.limits.TopOwners:] {
		other.Sockets += oc.Sockets
	}
	return append(counts[:c.limits.TopOwners], other)
}

func compareOwners(a, b Owner) int {
	if n := cmp.Compare(a.Unit, b.Unit); n != 0 {
		return n
	}
	return cmp.Compare(a.Process, b.Process)
}
