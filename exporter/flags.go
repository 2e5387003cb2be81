package exporter

import (
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/tcpadvisor/tcpadvisor/exporter/census"
	"github.com/tcpadvisor/tcpadvisor/exporter/netns"
	"github.com/tcpadvisor/tcpadvisor/exporter/owners"
	"github.com/tcpadvisor/tcpadvisor/internal/cliflag"
)

// DefaultTimeout is the default --collector.timeout.
const DefaultTimeout = 10 * time.Second

// Flags are the collectors' command-line flags; Options turns them into
// the exporter's Options once they are parsed.
type Flags struct {
	procPath        *string
	timeout         *time.Duration
	enabled         map[string]*bool
	topDestinations *int
	maxServicePorts *int
	topPeers        *int
	pinDestinations *[]netip.AddrPort
	pinPorts        *[]uint16
	owners          *bool
	topOwners       *int
	ownersBudget    *int
	cgroupPath      *string
	netns           *bool
	netnsMax        *int
	runNetnsPath    *string
	tracerBTFPath   *string
}

// AddFlags adds the collectors' flags to g: the application, or a command
// that collects.
func AddFlags(g cliflag.Group) *Flags {
	f := &Flags{enabled: map[string]*bool{}}
	f.procPath = g.Flag("path.procfs", "Mount point of the proc filesystem.").Default("/proc").String()
	f.timeout = cliflag.Duration(g, "collector.timeout", "Deadline of one collection; a collector still dumping sockets then reports failure.", DefaultTimeout)
	for _, name := range CollectorNames {
		help := fmt.Sprintf("Enable the %s collector (--no-collector.%s disables it).", name, name)
		if name == "connections" {
			help = "Trace TCP connections being opened and closed, with eBPF: opens, connect() failures by errno, who closed first and lifetimes per destination and owner (docs/connections.md). Needs CAP_BPF and CAP_PERFMON and a kernel with BTF; without them it reports why in tcpadvisor_tracer_down_reason (--no-collector.connections disables it)."
		}
		f.enabled[name] = g.Flag("collector."+name, help).Default("true").Bool()
	}
	f.topDestinations = cliflag.Int(g, "collector.sockets.top-destinations",
		"Outbound destinations (source address, destination address and port) with series of their own, ranked by sockets holding ephemeral ports; the rest are summed into \"other\".",
		census.DefaultTopDestinations, 1)
	f.maxServicePorts = cliflag.Int(g, "collector.sockets.max-service-ports",
		"Listening ports with series of their own; the rest are summed into port=\"other\".",
		census.DefaultMaxServicePorts, 1)
	f.topPeers = cliflag.Int(g, "collector.sockets.top-peers",
		"Busiest remote addresses named per reported service port.",
		census.DefaultTopPeers, 1)
	f.pinDestinations = cliflag.Repeatable(g, "collector.sockets.pin-destination",
		"A destination always reported, from every source address, on top of the top ones. Repeatable.",
		"ADDRESS:PORT", "ADDRESS:PORT with a literal IP and a port from 1 to 65535, such as 10.0.0.5:6379 or [2001:db8::5]:6379",
		ParsePinnedDestination)
	f.pinPorts = cliflag.Repeatable(g, "collector.sockets.pin-service-port",
		"A listening port always reported, on top of --collector.sockets.max-service-ports. Repeatable.",
		"PORT", "a port number from 1 to 65535",
		func(s string) (uint16, bool) {
			p, err := strconv.ParseUint(s, 10, 16)
			return uint16(p), err == nil && p > 0
		})
	f.owners = g.Flag("collector.sockets.owners",
		"Attribute the sockets of each reported destination and service port to their owner: the systemd unit or container (from the socket's cgroup) and the process (from /proc/PID/fd). --no-collector.sockets.owners turns it off.").Default("true").Bool()
	f.topOwners = cliflag.Int(g, "collector.sockets.top-owners",
		"Owners named per reported destination or service port; the rest are summed into owner=\"other\".",
		census.DefaultTopOwners, 1)
	f.ownersBudget = cliflag.Int(g, "collector.sockets.owners.processes-per-scrape",
		"Processes whose file descriptors one scrape reads at most, to map socket inodes to processes; on a busier host the map is refreshed over several scrapes.",
		owners.DefaultProcessesPerScrape, 1)
	f.cgroupPath = g.Flag("path.cgroupfs", "Mount point of the cgroup filesystem: cgroup v2 there, or at its unified/ subdirectory on a hybrid host.").Default("/sys/fs/cgroup").String()
	f.netns = g.Flag("collector.netns",
		"Collect the sockets, sysctl, netstat and sockstat metrics of every network namespace of the host (from /proc/*/ns/net and /run/netns), each series labelled netns. Needs CAP_SYS_ADMIN and CAP_SYS_PTRACE.").Default("false").Bool()
	f.netnsMax = cliflag.Int(g, "collector.netns.max",
		"Network namespaces collected at most, the exporter's own first; the rest are counted in tcpadvisor_netns_over_limit.",
		netns.DefaultMax, 1)
	f.runNetnsPath = g.Flag("path.run-netns", "Where ip netns keeps named network namespaces.").Default("/run/netns").String()
	f.tracerBTFPath = g.Flag("collector.connections.btf-path",
		"A BTF file describing the running kernel, for the connection tracer on kernels without /sys/kernel/btf/vmlinux (tests point it at a missing file to run without BTF).").Hidden().Default("").String()
	return f
}

// Options returns the exporter's options; the values were checked as they
// were parsed.
func (f *Flags) Options() Options {
	opts := Options{
		ProcPath: *f.procPath,
		Timeout:  *f.timeout,
		Limits: census.Limits{
			TopDestinations:    *f.topDestinations,
			MaxServicePorts:    *f.maxServicePorts,
			TopPeers:           *f.topPeers,
			PinnedDestinations: *f.pinDestinations,
			PinnedPorts:        *f.pinPorts,
			TopOwners:          *f.topOwners,
		},
		Owners:           *f.owners,
		OwnersScanBudget: *f.ownersBudget,
		CgroupPath:       *f.cgroupPath,
		Netns:            *f.netns,
		NetnsMax:         *f.netnsMax,
		RunNetnsPath:     *f.runNetnsPath,
	}
	opts.Tracer.BTFPath = *f.tracerBTFPath
	for _, name := range CollectorNames {
		if *f.enabled[name] {
			opts.Collectors = append(opts.Collectors, name)
		}
	}
	return opts
}

// ParsePinnedDestination parses a --collector.sockets.pin-destination: an
// address and a port other than 0, which no connection has.
func ParsePinnedDestination(s string) (netip.AddrPort, bool) {
	d, err := netip.ParseAddrPort(s)
	return d, err == nil && d.Port() != 0
}
