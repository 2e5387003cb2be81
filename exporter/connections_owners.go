package exporter

import (
	"context"
	"sync/atomic"

	"github.com/tcpadvisor/tcpadvisor/exporter/census"
)

// tracedOwners names the owner of the sockets the connection tracer saw
// being opened from what the tracer recorded at connect(): the process that
// called it, and the unit of the socket's cgroup. Only the other sockets are
// looked up in resolver, so that attribution reads no /proc/PID/fd for the
// sockets the tracer saw: they never miss there, and misses are what make
// the resolver read fd tables.
type tracedOwners struct {
	resolver OwnerResolver
	// sockets lists the live connections the tracer saw, as of the last
	// Refresh: the tracer's own sockets map, copied once per scrape.
	sockets func(fn func(inode uint32, cgroup uint64, process string))

	// traced maps the inodes of those connections to their process name;
	// Refresh swaps in a new map, Lookups read it without a lock.
	traced atomic.Pointer[map[uint32]string]
	// spare is the map of the Refresh before last, reused.
	spare map[uint32]string
}

func newTracedOwners(resolver OwnerResolver, sockets func(fn func(inode uint32, cgroup uint64, process string))) *tracedOwners {
	o := &tracedOwners{resolver: resolver, sockets: sockets, spare: map[uint32]string{}}
	o.traced.Store(&map[uint32]string{})
	return o
}

// Refresh copies the tracer's live connections, then refreshes resolver.
// It is called once per scrape, before the Lookups.
func (o *tracedOwners) Refresh(ctx context.Context) {
	next := o.spare
	clear(next)
	o.sockets(func(inode uint32, _ uint64, process string) { next[inode] = process })
	o.spare = *o.traced.Swap(&next)
	o.resolver.Refresh(ctx)
}

// Lookup names the owner of a socket.
func (o *tracedOwners) Lookup(cgroupID uint64, inode uint32) census.Owner {
	if inode != 0 {
		if process, ok := (*o.traced.Load())[inode]; ok && process != "" {
			owner := census.UnknownOwner
			if cgroupID != 0 {
				owner = o.resolver.Lookup(cgroupID, 0)
			}
			owner.Process = process
			return owner
		}
	}
	return o.resolver.Lookup(cgroupID, inode)
}

// Runtime returns the language runtime of the processes of a name.
func (o *tracedOwners) Runtime(process string) string { return o.resolver.Runtime(process) }
