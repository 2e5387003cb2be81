package exporter

import (
	"context"
	"testing"

	"github.com/tcpadvisor/tcpadvisor/exporter/census"
)

// recordingResolver names every cgroup "app.service" and every socket's
// process "from-proc", and records the inodes it was asked about: an inode
// asked about and not known is what makes the real resolver read fd tables.
type recordingResolver struct {
	inodes    []uint32
	refreshes int
}

func (r *recordingResolver) Refresh(context.Context) { r.refreshes++ }

func (r *recordingResolver) Lookup(cgroupID uint64, inode uint32) census.Owner {
	if inode != 0 {
		r.inodes = append(r.inodes, inode)
	}
	return census.Owner{Unit: "app.service", Process: "from-proc"}
}

func (r *recordingResolver) Runtime(string) string { return "" }

// TestTracedOwners: a socket the tracer saw opened is named from the
// tracer, without asking the resolver about its inode; any other is the
// resolver's; the table follows the tracer's from one Refresh to the next.
func TestTracedOwners(t *testing.T) {
	inner := &recordingResolver{}
	live := map[uint32]string{10: "python3", 11: "nginx"}
	o := newTracedOwners(inner, func(fn func(uint32, uint64, string)) {
		for inode, process := range live {
			fn(inode, 7, process)
		}
	})
	o.Refresh(context.Background())
	tests := []struct {
		cgroup uint64
		inode  uint32
		want   census.Owner
	}{
		{7, 10, census.Owner{Unit: "app.service", Process: "python3"}},
		{7, 11, census.Owner{Unit: "app.service", Process: "nginx"}},
		{0, 11, census.Owner{Unit: "unknown", Process: "nginx"}},
		{7, 12, census.Owner{Unit: "app.service", Process: "from-proc"}},
	}
	for _, tt := range tests {
		if got := o.Lookup(tt.cgroup, tt.inode); got != tt.want {
			t.Errorf("Lookup(%d, %d) = %v, want %v", tt.cgroup, tt.inode, got, tt.want)
		}
	}
	if len(inner.inodes) != 1 || inner.inodes[0] != 12 || inner.refreshes != 1 {
		t.Errorf("the resolver was asked about inodes %v in %d refreshes, want only 12 (untraced) in 1", inner.inodes, inner.refreshes)
	}
	delete(live, 10)
	o.Refresh(context.Background())
	if got := o.Lookup(7, 10); got.Process != "from-proc" {
		t.Errorf("after the connection closed: %v, want the resolver's answer", got)
	}
}
