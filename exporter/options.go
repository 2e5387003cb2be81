package exporter

import (
	"fmt"
	"log/slog"
	"time"

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
	return newExporter(opts, fs, sockdiag.Dial, logger)
}

// newExporter builds the collectors named in opts over the given sources:
// the real kernel's, or fixtures in tests.
func newExporter(opts Options, fs procfs.FS, dial func() (sockdiag.Conn, error), logger *slog.Logger) (*Exporter, error) {
	collectors := map[string]Collector{}
	for _, name := range opts.Collectors {
		switch name {
		case "sockets":
			collectors[name] = NewSocketsCollector(dial, func() (census.EphemeralRange, error) { return readEphemeralRange(fs) }, opts.Limits)
		case "sysctl":
			collectors[name] = NewSysctlCollector(fs)
		case "netstat":
			collectors[name] = NewNetstatCollector(fs)
		case "sockstat":
			collectors[name] = NewSockstatCollector(fs)
		default:
			return nil, fmt.Errorf("unknown collector %q", name)
		}
	}
	return New(collectors, opts.Timeout, logger), nil
}
