package exporter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tcpadvisor/tcpadvisor/exporter/netns"
)

// NetnsLabel is the label that names a network namespace, with
// --collector.netns.
const NetnsLabel = "netns"

// NamespacesCollector runs the per-namespace collectors (sockets, sysctl,
// netstat, sockstat) in every network namespace of the host, one namespace
// after the other, each on an OS thread that entered it. Every series they
// send carries the netns label.
type NamespacesCollector struct {
	discover func() (netns.Discovery, error)
	enter    func(ctx context.Context, ns netns.Namespace, fn func() error) error
	// build makes the collectors of one namespace.
	build func(ns netns.Namespace) (map[string]Collector, error)
	// owners is refreshed once per scrape, for all namespaces.
	owners OwnerResolver
	logger *slog.Logger

	// mu guards the collectors of each namespace, kept from one scrape
	// to the next (their sock_diag sockets, and the census that
	// remembers who opened connections) until the namespace is gone.
	mu         sync.Mutex
	namespaces map[namespaceKey]map[string]Collector
	// toldNoPermission is set once the log said that namespaces cannot
	// be entered without CAP_SYS_ADMIN: every scrape would say it again.
	toldNoPermission bool

	discoveredDesc *prometheus.Desc
	overLimitDesc  *prometheus.Desc
	unreadableDesc *prometheus.Desc
	successDesc    *prometheus.Desc
	durationDesc   *prometheus.Desc
	missingDesc    *prometheus.Desc
}

// namespaceKey identifies a namespace and the name it is labelled with: a
// namespace that is given another name gets new collectors.
type namespaceKey struct {
	inode, dev uint64
	name       string
}

// NewNamespacesCollector returns a collector over the namespaces that
// discover lists, entered with enter, each read by the collectors build
// returns. logger is told, once, of a privilege that entering lacks.
func NewNamespacesCollector(
	discover func() (netns.Discovery, error),
	enter func(ctx context.Context, ns netns.Namespace, fn func() error) error,
	build func(ns netns.Namespace) (map[string]Collector, error),
	owners OwnerResolver,
	logger *slog.Logger,
) *NamespacesCollector {
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "netns", name), help, labels, nil)
	}
	return &NamespacesCollector{
		discover:   discover,
		enter:      enter,
		build:      build,
		owners:     owners,
		logger:     logger,
		namespaces: map[namespaceKey]map[string]Collector{},
		discoveredDesc: desc("discovered",
			"Network namespaces found on the host (from /proc/*/ns/net and /run/netns), those past --collector.netns.max included."),
		overLimitDesc: desc("over_limit",
			"Network namespaces found past --collector.netns.max and not collected."),
		unreadableDesc: desc("processes_unreadable",
			"Processes whose /proc/PID/ns/net the exporter could not read (it needs CAP_SYS_PTRACE for other users' processes): namespaces held only by them are not found."),
		successDesc: desc("collector_success",
			"Whether the collector succeeded in the network namespace in this scrape (1) or failed (0), also when the namespace could not be entered.",
			NetnsLabel, "collector"),
		durationDesc: desc("collector_duration_seconds",
			"How long the collector took in the network namespace in this scrape.",
			NetnsLabel, "collector"),
		missingDesc: desc("privilege_missing",
			"1 for each privilege that collecting other network namespaces lacks in this scrape: CAP_SYS_ADMIN, to enter them (setns); without it only the exporter's own namespace is collected.",
			"missing"),
	}
}

// Update discovers the namespaces and collects each. A namespace that fails
// reports so in tcpadvisor_netns_collector_success and does not fail the
// others; only a failed discovery fails the whole collector.
func (c *NamespacesCollector) Update(ctx context.Context, ch chan<- prometheus.Metric) error {
	c.mu.Lock()
	defer c.mu.Unlock()

	if c.owners != nil {
		c.owners.Refresh(ctx)
	}
	found, err := c.discover()
	if err != nil {
		return fmt.Errorf("discover network namespaces: %w", err)
	}
	ch <- prometheus.MustNewConstMetric(c.discoveredDesc, prometheus.GaugeValue, float64(len(found.Namespaces)+found.Overflow))
	ch <- prometheus.MustNewConstMetric(c.overLimitDesc, prometheus.GaugeValue, float64(found.Overflow))
	ch <- prometheus.MustNewConstMetric(c.unreadableDesc, prometheus.GaugeValue, float64(found.Unreadable))

	current := map[namespaceKey]bool{}
	denied := false
	for _, ns := range found.Namespaces {
		key := namespaceKey{inode: ns.Inode, dev: ns.Dev, name: ns.Name}
		current[key] = true
		collectors, ok := c.namespaces[key]
		if !ok {
			if collectors, err = c.build(ns); err != nil {
				return err
			}
			c.namespaces[key] = collectors
		}
		metrics, err := c.collectOne(ctx, ns, collectors)
		for _, m := range metrics {
			ch <- m
		}
		if errors.Is(err, netns.ErrPermission) {
			denied = true
			c.tellNoPermission(err)
		}
	}
	if denied {
		ch <- prometheus.MustNewConstMetric(c.missingDesc, prometheus.GaugeValue, 1, "CAP_SYS_ADMIN")
	}
	for key, collectors := range c.namespaces {
		if !current[key] {
			closeCollectors(collectors)
			delete(c.namespaces, key)
		}
	}
	return nil
}

// tellNoPermission logs, the first time only, that namespaces cannot be
// entered without CAP_SYS_ADMIN.
func (c *NamespacesCollector) tellNoPermission(err error) {
	if c.toldNoPermission || c.logger == nil {
		return
	}
	c.toldNoPermission = true
	c.logger.Warn("--collector.netns needs CAP_SYS_ADMIN to enter the other network namespaces: only the exporter's own is collected; grant it (deploy/systemd/tcpadvisor-netns.conf) or leave --collector.netns out", "err", err)
}

// collectOne runs the collectors of ns inside it and returns their metrics,
// and why ns could not be entered. They gather their metrics into a slice
// of their own, handed over only once the namespace is done: when ctx ends
// first, whatever still runs there writes to nothing shared.
func (c *NamespacesCollector) collectOne(ctx context.Context, ns netns.Namespace, collectors map[string]Collector) ([]prometheus.Metric, error) {
	names := slices.Sorted(maps.Keys(collectors))
	var metrics []prometheus.Metric
	err := c.enter(ctx, ns, func() error {
		for _, name := range names {
			sent, duration, err := runCollector(ctx, collectors[name])
			metrics = append(append(metrics, sent...),
				prometheus.MustNewConstMetric(c.durationDesc, prometheus.GaugeValue, duration.Seconds(), ns.Name, name),
				prometheus.MustNewConstMetric(c.successDesc, prometheus.GaugeValue, boolValue(err == nil), ns.Name, name))
		}
		return nil
	})
	if err == nil {
		return metrics, nil
	}
	failed := make([]prometheus.Metric, 0, len(names))
	for _, name := range names {
		failed = append(failed, prometheus.MustNewConstMetric(c.successDesc, prometheus.GaugeValue, 0, ns.Name, name))
	}
	return failed, err
}

// closeCollectors releases what the collectors of a namespace hold open: a
// sock_diag socket keeps its namespace alive.
func closeCollectors(collectors map[string]Collector) {
	for _, collector := range collectors {
		if closer, ok := collector.(interface{ Close() }); ok {
			closer.Close()
		}
	}
}

// sharedOwners lends one OwnerResolver to the sockets collectors of every
// namespace, refreshed once per scrape by the NamespacesCollector rather
// than once per namespace.
type sharedOwners struct{ OwnerResolver }

func (sharedOwners) Refresh(context.Context) {}
