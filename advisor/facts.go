package advisor

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/tcpadvisor/tcpadvisor/exporter/census"
)

// facts are the settings of the target's host and namespace that the fixes
// depend on, read from its own series: -1 where a value is not exported.
type facts struct {
	twReuse, timestamps       int
	rangeMin, rangeMax        int
	maxTwBuckets, somaxconn   int
	maxSynBacklog, maxOrphans int
	conntrackMax              int
	// reservedPorts is net.ipv4.ip_local_reserved_ports in the kernel's
	// form; reservedKnown is false when the exporter did not export the
	// whole list (tcpadvisor_ephemeral_ports_reserved_ranges counts more
	// ranges than there are series).
	reservedPorts  string
	reservedKnown  bool
	listeningPorts []int
}

func (a *Advisor) facts(ctx context.Context, t Target) facts {
	value := func(metric string) int {
		samples, _, err := a.query(ctx, t, metric, nil)
		if err != nil || len(samples) == 0 {
			return -1
		}
		return int(samples[0].Value)
	}
	f := facts{
		twReuse:       value("tcpadvisor_sysctl_net_ipv4_tcp_tw_reuse"),
		timestamps:    value("tcpadvisor_sysctl_net_ipv4_tcp_timestamps"),
		rangeMin:      value("tcpadvisor_sysctl_net_ipv4_ip_local_port_range_min"),
		rangeMax:      value("tcpadvisor_sysctl_net_ipv4_ip_local_port_range_max"),
		maxTwBuckets:  value("tcpadvisor_sysctl_net_ipv4_tcp_max_tw_buckets"),
		somaxconn:     value("tcpadvisor_sysctl_net_core_somaxconn"),
		maxSynBacklog: value("tcpadvisor_sysctl_net_ipv4_tcp_max_syn_backlog"),
		maxOrphans:    value("tcpadvisor_sysctl_net_ipv4_tcp_max_orphans"),
		conntrackMax:  value("tcpadvisor_conntrack_entries_limit"),
	}
	f.reservedPorts, f.reservedKnown = a.reservedPorts(ctx, t, value("tcpadvisor_ephemeral_ports_reserved_ranges"))
	if samples, _, err := a.query(ctx, t, "tcpadvisor_listen_queue_limit", nil); err == nil {
		for _, s := range samples {
			if p, err := strconv.Atoi(s.Labels["port"]); err == nil {
				f.listeningPorts = append(f.listeningPorts, p)
			}
		}
		slices.Sort(f.listeningPorts)
	}
	return f
}

// reservedPorts rebuilds net.ipv4.ip_local_reserved_ports from its range
// series, and reports whether they are the whole list: ranges is how many
// ranges the list holds.
func (a *Advisor) reservedPorts(ctx context.Context, t Target, ranges int) (string, bool) {
	samples, _, err := a.query(ctx, t, "tcpadvisor_ephemeral_ports_reserved_range_info", nil)
	if err != nil || ranges < 0 || len(samples) != ranges {
		return "", false
	}
	var set census.PortSet
	for _, s := range samples {
		first, err1 := strconv.ParseUint(s.Labels["first"], 10, 16)
		last, err2 := strconv.ParseUint(s.Labels["last"], 10, 16)
		if err1 != nil || err2 != nil || last < first {
			return "", false
		}
		for p := first; p <= last; p++ {
			set.Add(uint16(p))
		}
	}
	return formatPorts(&set), true
}

// listeningIn returns the listening ports in [low, high].
func (f facts) listeningIn(low, high int) []int {
	var in []int
	for _, p := range f.listeningPorts {
		if p >= low && p <= high {
			in = append(in, p)
		}
	}
	return in
}

// reservedWith returns the reserved-port list with ports added, in the
// kernel's own compact form ("8080,9000-9010").
func (f facts) reservedWith(ports ...int) string {
	set, err := census.ParseReservedPorts(f.reservedPorts)
	if err != nil {
		set = census.PortSet{}
	}
	for _, p := range ports {
		set.Add(uint16(p))
	}
	return formatPorts(&set)
}

// formatPorts writes a port set as the kernel writes
// ip_local_reserved_ports.
func formatPorts(set *census.PortSet) string {
	var parts []string
	for _, r := range set.Ranges() {
		if r.First == r.Last {
			parts = append(parts, strconv.Itoa(int(r.First)))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", r.First, r.Last))
		}
	}
	return strings.Join(parts, ",")
}

// reservedPortsChange returns the change that adds ports to
// ip_local_reserved_ports, or nothing when the current list is not known
// in full: a drop-in written from part of it would unreserve the rest.
func (f facts) reservedPortsChange(reason string, ports ...int) []SysctlChange {
	if !f.reservedKnown {
		return nil
	}
	value := f.reservedWith(ports...)
	if value == f.reservedPorts {
		return nil
	}
	return []SysctlChange{{Name: "net.ipv4.ip_local_reserved_ports", Value: value, Current: f.reservedPorts, Reason: reason}}
}

// doubleLimit proposes twice a kernel limit that the advice shows too
// small; nothing when the limit is unknown (-1: not exported here).
func doubleLimit(name string, current int, reason string) []SysctlChange {
	if current <= 0 {
		return nil
	}
	return []SysctlChange{{Name: name, Value: fmt.Sprint(2 * current), Current: fmt.Sprint(current), Reason: reason}}
}
