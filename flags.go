package main

import (
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/tcpadvisor/tcpadvisor/exporter"
	"github.com/tcpadvisor/tcpadvisor/exporter/census"
)

// flagGroup is what kingpin's Application and CmdClause share.
type flagGroup interface {
	Flag(name, help string) *kingpin.FlagClause
}

// checkedValue is a flag value whose parse error names the flag, the value
// given and what is wanted: kingpin's own messages name neither.
type checkedValue[T any] struct {
	flag  string
	dst   *T
	parse func(string) (T, bool)
	want  string
	// repeatable values append, through add.
	add func(T)
}

func (v *checkedValue[T]) Set(s string) error {
	x, ok := v.parse(s)
	if !ok {
		return fmt.Errorf("--%s=%q: want %s", v.flag, s, v.want)
	}
	if v.add != nil {
		v.add(x)
	} else {
		*v.dst = x
	}
	return nil
}

func (v *checkedValue[T]) String() string {
	if v.dst == nil {
		return ""
	}
	return fmt.Sprint(*v.dst)
}

// repeatableValue marks a checkedValue as repeatable for kingpin.
type repeatableValue[T any] struct{ *checkedValue[T] }

func (repeatableValue[T]) IsCumulative() bool { return true }

// intFlag adds an integer flag of at least min.
func intFlag(g flagGroup, name, help string, def, min int) *int {
	dst := new(int)
	g.Flag(name, help).Default(strconv.Itoa(def)).SetValue(&checkedValue[int]{
		flag: name, dst: dst,
		want: fmt.Sprintf("a whole number of at least %d", min),
		parse: func(s string) (int, bool) {
			n, err := strconv.Atoi(s)
			return n, err == nil && n >= min
		},
	})
	return dst
}

// durationFlag adds a positive duration flag.
func durationFlag(g flagGroup, name, help string, def time.Duration) *time.Duration {
	dst := new(time.Duration)
	g.Flag(name, help).Default(def.String()).SetValue(&checkedValue[time.Duration]{
		flag: name, dst: dst,
		want: "a positive duration such as 10s or 500ms",
		parse: func(s string) (time.Duration, bool) {
			d, err := time.ParseDuration(s)
			return d, err == nil && d > 0
		},
	})
	return dst
}

// repeatableFlag adds a repeatable flag whose every value must parse.
func repeatableFlag[T any](g flagGroup, name, help, placeholder, want string, parse func(string) (T, bool)) *[]T {
	dst := new([]T)
	g.Flag(name, help).PlaceHolder(placeholder).SetValue(repeatableValue[T]{&checkedValue[T]{
		flag: name, want: want, parse: parse,
		add: func(x T) { *dst = append(*dst, x) },
	}})
	return dst
}

// fractionFlag adds a flag for a number in (0, 1].
func fractionFlag(g flagGroup, name, help string, def float64) *float64 {
	dst := new(float64)
	g.Flag(name, help).Default(strconv.FormatFloat(def, 'g', -1, 64)).SetValue(&checkedValue[float64]{
		flag: name, dst: dst,
		want: "a number above 0 and at most 1, such as 0.1",
		parse: func(s string) (float64, bool) {
			f, err := strconv.ParseFloat(s, 64)
			return f, err == nil && f > 0 && f <= 1
		},
	})
	return dst
}

// urlFlags adds a repeatable flag of http(s) URLs.
func urlFlags(g flagGroup, name, help string) *[]string {
	return repeatableFlag(g, name, help, "URL", "an http:// or https:// URL such as http://127.0.0.1:9093",
		func(s string) (string, bool) {
			u, err := url.Parse(s)
			return strings.TrimRight(s, "/"), err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
		})
}

// ruleFiles adds the repeatable --rules.file flag; each file must exist.
func ruleFiles(g flagGroup) *[]string {
	return repeatableFlag(g, "rules.file",
		"Prometheus rule file to evaluate instead of the bundled rules. Repeatable.",
		"FILE", "a readable rule file",
		func(s string) (string, bool) {
			f, err := os.Open(s)
			if err == nil {
				f.Close()
			}
			return s, err == nil
		})
}

// collectorFlags are the flags of the collectors. They are the
// application's, not serve's, so that later subcommands that collect share
// them.
type collectorFlags struct {
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

func addCollectorFlags(app *kingpin.Application) *collectorFlags {
	f := &collectorFlags{enabled: map[string]*bool{}}
	f.procPath = app.Flag("path.procfs", "Mount point of the proc filesystem.").Default("/proc").String()
	f.timeout = durationFlag(app, "collector.timeout", "Deadline of one collection; a collector still dumping sockets then reports failure.", 10*time.Second)
	for _, name := range exporter.CollectorNames {
		help := fmt.Sprintf("Enable the %s collector (--no-collector.%s disables it).", name, name)
		if name == "connections" {
			help = "Trace TCP connections being opened and closed, with eBPF: opens, connect() failures by errno, who closed first and lifetimes per destination and owner (docs/connections.md). Needs CAP_BPF and CAP_PERFMON and a kernel with BTF; without them it reports why in tcpadvisor_tracer_down_reason. --no-collector.connections disables it."
		}
		f.enabled[name] = app.Flag("collector."+name, help).Default("true").Bool()
	}
	f.topDestinations = intFlag(app, "collector.sockets.top-destinations",
		"Outbound destinations (source address, destination address and port) with series of their own, ranked by sockets holding ephemeral ports; the rest are summed into \"other\".",
		census.DefaultTopDestinations, 1)
	f.maxServicePorts = intFlag(app, "collector.sockets.max-service-ports",
		"Listening ports with series of their own; the rest are summed into port=\"other\".",
		census.DefaultMaxServicePorts, 1)
	f.topPeers = intFlag(app, "collector.sockets.top-peers",
		"Busiest remote addresses named per reported service port.",
		census.DefaultTopPeers, 1)
	f.pinDestinations = repeatableFlag(app, "collector.sockets.pin-destination",
		"A destination always reported, from every source address, on top of the top ones. Repeatable.",
		"ADDRESS:PORT", "ADDRESS:PORT with a literal IP, such as 10.0.0.5:6379 or [2001:db8::5]:6379",
		func(s string) (netip.AddrPort, bool) {
			d, err := netip.ParseAddrPort(s)
			return d, err == nil
		})
	f.pinPorts = repeatableFlag(app, "collector.sockets.pin-service-port",
		"A listening port always reported, on top of --collector.sockets.max-service-ports. Repeatable.",
		"PORT", "a port number from 1 to 65535",
		func(s string) (uint16, bool) {
			p, err := strconv.ParseUint(s, 10, 16)
			return uint16(p), err == nil && p > 0
		})
	f.owners = app.Flag("collector.sockets.owners",
		"Attribute the sockets of each reported destination and service port to their owner: the systemd unit or container (from the socket's cgroup) and the process (from /proc/PID/fd). --no-collector.sockets.owners turns it off.").Default("true").Bool()
	f.topOwners = intFlag(app, "collector.sockets.top-owners",
		"Owners named per reported destination or service port; the rest are summed into owner=\"other\".",
		census.DefaultTopOwners, 1)
	f.ownersBudget = intFlag(app, "collector.sockets.owners.processes-per-scrape",
		"Processes whose file descriptors one scrape reads at most, to map socket inodes to processes; on a busier host the map is refreshed over several scrapes.",
		500, 1)
	f.cgroupPath = app.Flag("path.cgroupfs", "Mount point of the cgroup filesystem: cgroup v2 there, or at its unified/ subdirectory on a hybrid host.").Default("/sys/fs/cgroup").String()
	f.netns = app.Flag("collector.netns",
		"Collect the sockets, sysctl, netstat and sockstat metrics of every network namespace of the host (from /proc/*/ns/net and /run/netns), each series labelled netns. Needs CAP_SYS_ADMIN and CAP_SYS_PTRACE.").Default("false").Bool()
	f.netnsMax = intFlag(app, "collector.netns.max",
		"Network namespaces collected at most, the exporter's own first; the rest are counted in tcpadvisor_netns_over_limit.",
		64, 1)
	f.runNetnsPath = app.Flag("path.run-netns", "Where ip netns keeps named network namespaces.").Default("/run/netns").String()
	f.tracerBTFPath = app.Flag("collector.connections.btf-path",
		"A BTF file describing the running kernel, for the connection tracer on kernels without /sys/kernel/btf/vmlinux (tests point it at a missing file to run without BTF).").Hidden().Default("").String()
	return f
}

// options returns the exporter's options; the values were checked as they
// were parsed.
func (f *collectorFlags) options() exporter.Options {
	opts := exporter.Options{
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
	for _, name := range exporter.CollectorNames {
		if *f.enabled[name] {
			opts.Collectors = append(opts.Collectors, name)
		}
	}
	return opts
}
