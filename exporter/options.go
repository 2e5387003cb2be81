package exporter

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"
	"github.com/tcpadvisor/tcpadvisor/exporter/census"
	"github.com/tcpadvisor/tcpadvisor/exporter/netns"
	"github.com/tcpadvisor/tcpadvisor/exporter/owners"
	"github.com/tcpadvisor/tcpadvisor/exporter/sockdiag"
	"github.com/tcpadvisor/tcpadvisor/exporter/tracer"
	"golang.org/x/sys/unix"
)

// CollectorNames lists every collector, as named in the collector label and
// in the --collector.NAME flags.
var CollectorNames = []string{"addresses", "connections", "netstat", "sockets", "sockstat", "sysctl"}

// Options configure an Exporter that reads the running kernel.
type Options struct {
	// ProcPath is where the proc filesystem is mounted.
	ProcPath string
	// Collectors names the collectors to run, from CollectorNames.
	Collectors []string
	// Timeout bounds one collection.
	Timeout time.Duration
	// Limits bound the sockets collector's series.
	Limits census.Limits
	// Netns collects every network namespace of the host, each series
	// labelled netns, rather than the process's own only.
	Netns bool
	// NetnsMax caps the namespaces collected; RunNetnsPath is where
	// ip netns keeps named ones.
	NetnsMax     int
	RunNetnsPath string
	// Owners attributes sockets to their owners; OwnersScanBudget is how
	// many processes' file descriptors each scrape reads at most, and
	// CgroupPath where cgroup v2 is mounted ("" finds it).
	Owners           bool
	OwnersScanBudget int
	CgroupPath       string
	// Tracer configures the connections collector's eBPF tracer; its
	// Netns is set from Netns.
	Tracer tracer.Options
}

// NewFromOptions returns an Exporter reading the kernel the process runs on:
// the network namespace of the process, or with opts.Netns every one.
func NewFromOptions(opts Options, logger *slog.Logger) (*Exporter, error) {
	fs, err := procfs.NewFS(opts.ProcPath)
	if err != nil {
		return nil, fmt.Errorf("--path.procfs=%s: %w", opts.ProcPath, err)
	}
	// The owners collector reports what attribution can see; it runs
	// beside the others, whether they read one namespace or all.
	collectors := map[string]Collector{}
	var resolver OwnerResolver
	if opts.Owners {
		r := owners.New(owners.Options{
			ProcPath:           opts.ProcPath,
			CgroupPath:         opts.CgroupPath,
			ProcessesPerScrape: opts.OwnersScanBudget,
		})
		// A first pass now, so that the first scrape's status is
		// already the real one.
		ctx, cancel := context.WithTimeout(context.Background(), opts.Timeout)
		r.Refresh(ctx)
		cancel()
		resolver = r
		collectors["owners"] = NewOwnersCollector(r.Status)
	}
	var closers *closerBook
	if slices.Contains(opts.Collectors, "connections") {
		closers = newCloserBook()
		c := newConnectionsCollector(opts, resolver, closers, logger)
		collectors["connections"] = c
		if resolver != nil {
			// The sockets the tracer saw opened are attributed from
			// what it recorded, the rest by the resolver.
			resolver = newTracedOwners(resolver, c.eachSocket)
		}
	}
	if !opts.Netns {
		src := hostSources(fs, opts.ProcPath, sockdiag.Dial, resolver)
		src.closers = closers
		src.netDir = filepath.Join(opts.ProcPath, "net")
		host, err := namespaceCollectors(opts, src, nil)
		if err != nil {
			return nil, err
		}
		maps.Copy(collectors, host)
		return New(collectors, opts.Timeout, logger), nil
	}
	threadFS, err := procfs.NewFS(filepath.Join(opts.ProcPath, "thread-self"))
	if err != nil {
		return nil, fmt.Errorf("--path.procfs=%s: %w", opts.ProcPath, err)
	}
	namespaceSources := kernelSources{
		fs:       fs,
		procPath: opts.ProcPath,
		netFS:    threadFS,
		proc:     func() (procfs.Proc, error) { return fs.Proc(unix.Gettid()) },
		dial:     sockdiag.Dial,
		// The file of the namespace the reading thread entered.
		netDir: filepath.Join(opts.ProcPath, "thread-self", "net"),
	}
	if resolver != nil {
		namespaceSources.owners = sharedOwners{resolver}
	}
	namespaceSources.closers = closers
	collectors["netns"] = NewNamespacesCollector(
		func() (netns.Discovery, error) {
			return netns.Discover(opts.ProcPath, opts.RunNetnsPath, opts.NetnsMax, func(pid int) string { return unitOfPID(opts.ProcPath, pid) })
		},
		netns.Do,
		func(ns netns.Namespace) (map[string]Collector, error) {
			return namespaceCollectors(opts, namespaceSources, prometheus.Labels{NetnsLabel: ns.Name})
		},
		resolver, logger)
	return New(collectors, opts.Timeout, logger), nil
}

// newConnectionsCollector loads the connection tracer: over the exporter's
// own network namespace, or with opts.Netns over every one, each labelled
// with the name --collector.netns gives it.
func newConnectionsCollector(opts Options, resolver OwnerResolver, closers *closerBook, logger *slog.Logger) *ConnectionsCollector {
	sources := ConnectionsSources{Owners: resolver, Closers: closers}
	tracerOpts := opts.Tracer
	if opts.Netns {
		names := &netnsNames{discover: func() (netns.Discovery, error) {
			return netns.Discover(opts.ProcPath, opts.RunNetnsPath, opts.NetnsMax, func(pid int) string { return unitOfPID(opts.ProcPath, pid) })
		}}
		sources.NetnsName = names.name
	}
	sources.Load = func() (ConnectionTracer, error) {
		if !opts.Netns {
			// The daemon's own namespace, from the proc filesystem the
			// daemon runs under: --path.procfs may show another's
			// processes (a host's /proc mounted in a container).
			var st unix.Stat_t
			if err := unix.Stat("/proc/self/ns/net", &st); err != nil {
				return nil, &tracer.LoadError{Reason: tracer.ReasonLoadFailed,
					Err: fmt.Errorf("find the daemon's own network namespace, to trace it alone (/proc/self/ns/net): %w", err)}
			}
			tracerOpts.Netns = uint32(st.Ino)
		}
		t, err := tracer.Load(tracerOpts)
		if err != nil {
			// Not t: a nil *Tracer in the interface would not be nil.
			return nil, err
		}
		return t, nil
	}
	return NewConnectionsCollector(sources, opts.Limits, opts.NetnsMax, logger)
}

// netnsNames names network namespaces by inode number as --collector.netns
// labels them, discovering them again when an unknown one shows up, at most
// once a second.
type netnsNames struct {
	discover func() (netns.Discovery, error)

	mu         sync.Mutex
	names      map[uint32]string
	discovered time.Time
}

func (n *netnsNames) name(inode uint32) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if name, ok := n.names[inode]; ok {
		return name
	}
	if time.Since(n.discovered) >= time.Second {
		n.discovered = time.Now()
		if found, err := n.discover(); err == nil {
			n.names = make(map[uint32]string, len(found.Namespaces))
			for _, ns := range found.Namespaces {
				n.names[uint32(ns.Inode)] = ns.Name
			}
		}
		if name, ok := n.names[inode]; ok {
			return name
		}
	}
	// Gone already, or past --collector.netns.max: named as Discover
	// names a namespace it finds no better name for.
	return "inode:" + strconv.FormatUint(uint64(inode), 10)
}

// unitOfPID names the unit or container a process runs in, to label the
// network namespace it holds; "" when that says nothing of its own (the root
// cgroup, or unknown).
func unitOfPID(procPath string, pid int) string {
	switch unit := owners.OwnerOfPID(procPath, pid).Unit; unit {
	case owners.Unknown, owners.HostUnit:
		return ""
	default:
		return unit
	}
}

// kernelSources are what the collectors read: the running kernel's, or
// fixtures in tests.
type kernelSources struct {
	// fs is the proc filesystem, mounted at procPath; /proc/sys/net
	// under it shows the namespace of the thread that reads it.
	fs       procfs.FS
	procPath string
	// netFS and proc show the net/ files of the namespace to read:
	// /proc and /proc/self on the host, /proc/thread-self and
	// /proc/TID in another namespace.
	netFS procfs.FS
	proc  func() (procfs.Proc, error)
	dial  func() (sockdiag.Conn, error)
	// netDir is the net/ directory of netFS, for the files procfs does
	// not parse; "" where there is none.
	netDir string
	// owners is nil when attribution is off.
	owners OwnerResolver
	// closers is nil without the connection tracer.
	closers *closerBook
}

// hostSources reads the network namespace of the process, through fs, the
// proc filesystem mounted at procPath.
func hostSources(fs procfs.FS, procPath string, dial func() (sockdiag.Conn, error), owners OwnerResolver) kernelSources {
	return kernelSources{fs: fs, procPath: procPath, netFS: fs, proc: fs.Self, dial: dial, owners: owners}
}

// newExporter builds the collectors named in opts over src.
func newExporter(opts Options, src kernelSources, logger *slog.Logger) (*Exporter, error) {
	collectors, err := namespaceCollectors(opts, src, nil)
	if err != nil {
		return nil, err
	}
	return New(collectors, opts.Timeout, logger), nil
}

// namespaceCollectors builds the collectors named in opts that read one
// network namespace through src, each series labelled with constLabels.
func namespaceCollectors(opts Options, src kernelSources, constLabels prometheus.Labels) (map[string]Collector, error) {
	collectors := map[string]Collector{}
	for _, name := range opts.Collectors {
		switch name {
		case "sockets":
			sources := SocketsSources{
				Dial:      src.dial,
				Ephemeral: func() (census.EphemeralRange, error) { return readEphemeralRange(src.fs, src.procPath) },
				Owners:    src.owners,
			}
			if src.closers != nil && src.owners != nil {
				sources.Closers = src.closers.forNamespace(constLabels[NetnsLabel])
			}
			collectors[name] = NewSocketsCollector(sources, opts.Limits, constLabels)
		case "sysctl":
			collectors[name] = NewSysctlCollector(src.fs, src.procPath, constLabels)
		case "netstat":
			collectors[name] = NewNetstatCollector(src.proc, constLabels)
		case "sockstat":
			collectors[name] = NewSockstatCollector(src.netFS, constLabels)
		case "connections":
			// One tracer sees every namespace: NewFromOptions makes it.
		case "addresses":
			collectors[name] = NewAddressesCollector(src.netDir, constLabels)
		default:
			return nil, fmt.Errorf("unknown collector %q", name)
		}
	}
	return collectors, nil
}
