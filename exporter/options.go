package exporter

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"
	"github.com/tcpadvisor/tcpadvisor/exporter/census"
	"github.com/tcpadvisor/tcpadvisor/exporter/sockdiag"
)

// CollectorNames lists every collector, as named in the collector label and
// in the --collector.NAME flags.
var CollectorNames = []string{"netstat", "sockets", "sockstat", "sysctl"}

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
}

// NewFromOptions returns an Exporter reading the kernel the process runs on,
// in the network namespace of the process.
func NewFromOptions(opts Options, logger *slog.Logger) (*Exporter, error) {
	fs, err := procfs.NewFS(opts.ProcPath)
	if err != nil {
		return nil, fmt.Errorf("--path.procfs=%s: %w", opts.ProcPath, err)
	}
	return newExporter(opts, hostSources(fs, sockdiag.Dial, nil), logger)
}

// kernelSources are what the collectors read: the running kernel's, or
// fixtures in tests.
type kernelSources struct {
	// fs is the proc filesystem; /proc/sys/net under it shows the
	// namespace of the thread that reads it.
	fs procfs.FS
	// netFS and proc show the net/ files of the namespace to read:
	// /proc and /proc/self on the host, /proc/thread-self and
	// /proc/TID in another namespace.
	netFS procfs.FS
	proc  func() (procfs.Proc, error)
	dial  func() (sockdiag.Conn, error)
	// owners is nil when attribution is off.
	owners OwnerResolver
}

// hostSources reads the network namespace of the process.
func hostSources(fs procfs.FS, dial func() (sockdiag.Conn, error), owners OwnerResolver) kernelSources {
	return kernelSources{fs: fs, netFS: fs, proc: fs.Self, dial: dial, owners: owners}
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
			collectors[name] = NewSocketsCollector(SocketsSources{
				Dial:      src.dial,
				Ephemeral: func() (census.EphemeralRange, error) { return readEphemeralRange(src.fs) },
				Owners:    src.owners,
			}, opts.Limits, constLabels)
		case "sysctl":
			collectors[name] = NewSysctlCollector(src.fs, constLabels)
		case "netstat":
			collectors[name] = NewNetstatCollector(src.proc, constLabels)
		case "sockstat":
			collectors[name] = NewSockstatCollector(src.netFS, constLabels)
		default:
			return nil, fmt.Errorf("unknown collector %q", name)
		}
	}
	return collectors, nil
}
