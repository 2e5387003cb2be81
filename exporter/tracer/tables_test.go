package tracer

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

func destination(i int) Destination {
	return Destination{Source: netip.MustParseAddr("127.0.0.1"), Address: netip.AddrFrom4([4]byte{198, 18, 0, byte(i)}), Port: 6379}
}

// totals sums every row of the tables, and counts the rows.
func totals(t *Tables) (out OutboundCounts, in InboundCounts, outRows, inRows int) {
	t.Each(func(r OutboundRow) {
		out.Add(r.Counts)
		outRows++
	}, func(r InboundRow) {
		in.Add(r.Counts)
		inRows++
	})
	return out, in, outRows, inRows
}

func TestTablesBounded(t *testing.T) {
	limits := Limits{Namespaces: 2, Destinations: 3, Owners: 2, Ports: 2}
	tests := []struct {
		name                       string
		namespaces, dests, owners  int
		ports                      int
		wantOutRows, wantInRows    int
		wantOtherDest, wantOtherNS bool
	}{
		{name: "within the caps", namespaces: 2, dests: 3, owners: 2, ports: 2,
			// 2 namespaces × (3 destinations × 2 owners + other destination)
			wantOutRows: 2 * (3*2 + 1), wantInRows: 2 * (2 + 1)},
		{name: "past every cap", namespaces: 5, dests: 10, owners: 7, ports: 9,
			// 2 namespaces and "other" × (3 destinations × (2 owners + other owner) + other destination)
			wantOutRows: 3 * (3*3 + 1), wantInRows: 3 * (2 + 1), wantOtherDest: true, wantOtherNS: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tables := NewTables(limits)
			var want OutboundCounts
			var wantIn InboundCounts
			one := OutboundCounts{Opened: 1, Failed: [NumFailures]uint64{FailureEADDRNOTAVAIL: 2}, Closed: [NumClosers]uint64{ClosedLocal: 1}, LifetimeNanos: 5, Lifetimes: 1}
			oneIn := InboundCounts{Accepted: 1, Closed: [NumClosers]uint64{ClosedPeer: 1}, LifetimeNanos: 3, Lifetimes: 1}
			for ns := range tt.namespaces {
				for d := range tt.dests {
					for o := range tt.owners {
						tables.AddOutbound(fmt.Sprint("ns", ns), destination(d), Owner{Cgroup: uint64(o + 1), Process: "p"}, &one)
						want.Add(&one)
					}
				}
				for p := range tt.ports {
					tables.AddInbound(fmt.Sprint("ns", ns), uint16(8000+p), &oneIn)
					wantIn.Add(&oneIn)
				}
			}
			out, in, outRows, inRows := totals(tables)
			if out != want || in != wantIn {
				t.Errorf("totals = %+v, %+v; want %+v, %+v: counts were lost or doubled", out, in, want, wantIn)
			}
			if outRows != tt.wantOutRows || inRows != tt.wantInRows {
				t.Errorf("rows = %d outbound, %d inbound; want %d, %d", outRows, inRows, tt.wantOutRows, tt.wantInRows)
			}
		})
	}
}

func TestTablesMonotonic(t *testing.T) {
	now := time.Unix(0, 0)
	tables := NewTables(Limits{Destinations: 2, Owners: 1, Ports: 1, IdleAfter: time.Minute})
	tables.SetClock(func() time.Time { return now })
	owner := Owner{Cgroup: 1, Process: "app"}
	one := OutboundCounts{Opened: 1}
	series := map[string]uint64{}
	check := func(step string) {
		t.Helper()
		tables.Each(func(r OutboundRow) {
			key := fmt.Sprint(r.Netns, r.Destination, r.Owner)
			if r.Counts.Opened < series[key] {
				t.Errorf("%s: %s went down from %d to %d", step, key, series[key], r.Counts.Opened)
			}
			series[key] = r.Counts.Opened
		}, func(InboundRow) {})
	}
	tables.AddOutbound("", destination(1), owner, &one)
	tables.AddOutbound("", destination(2), owner, &one)
	check("two destinations")
	// A third destination, while both are active, goes to other.
	tables.AddOutbound("", destination(3), owner, &one)
	check("full")
	// Destination 1 idles; destination 2 stays active; a fourth takes
	// destination 1's place and destination 1's total moves to other.
	now = now.Add(30 * time.Second)
	tables.AddOutbound("", destination(2), owner, &one)
	now = now.Add(40 * time.Second)
	tables.AddOutbound("", destination(4), owner, &one)
	check("evicted")
	rows := map[string]uint64{}
	tables.Each(func(r OutboundRow) {
		if r.Destination == nil {
			rows["other"] = r.Counts.Opened
		} else {
			rows[r.Destination.Address.String()] = r.Counts.Opened
		}
	}, func(InboundRow) {})
	want := map[string]uint64{"198.18.0.2": 2, "198.18.0.4": 1, "other": 2}
	if fmt.Sprint(rows) != fmt.Sprint(want) {
		t.Errorf("rows = %v, want %v (destination 3 and the evicted 1 in other)", rows, want)
	}
}

func TestTablesOverflow(t *testing.T) {
	tables := NewTables(Limits{})
	tables.AddOverflow(OtherLabel, &OutboundCounts{Opened: 3}, &InboundCounts{Accepted: 2})
	var opened, accepted uint64
	tables.Each(func(r OutboundRow) {
		if r.Netns != OtherLabel || r.Destination != nil {
			t.Errorf("overflow in %q %v, want netns other, destination other", r.Netns, r.Destination)
		}
		opened += r.Counts.Opened
	}, func(r InboundRow) { accepted += r.Counts.Accepted })
	if opened != 3 || accepted != 2 {
		t.Errorf("overflow opened %d accepted %d, want 3 and 2", opened, accepted)
	}
}
