package exporter

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tcpadvisor/tcpadvisor/exporter/owners"
)

// OwnersCollector says which sources of socket attribution work with the
// exporter's privileges, so that an exporter that cannot see owners says so
// rather than reporting them all unknown in silence.
type OwnersCollector struct {
	status      func() owners.Status
	upDesc      *prometheus.Desc
	unreadable  *prometheus.Desc
	missingDesc *prometheus.Desc
}

// NewOwnersCollector returns a collector of the attribution status that
// status reports.
func NewOwnersCollector(status func() owners.Status) *OwnersCollector {
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "owner", name), help, labels, nil)
	}
	return &OwnersCollector{
		status: status,
		upDesc: desc("attribution_up",
			"1 if the attribution source works with the exporter's privileges: cgroup (socket cgroup IDs mapped to cgroup v2 paths, giving the unit or container) or process (socket inodes mapped to processes through /proc/PID/fd, which needs CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH for other users' processes).",
			"source"),
		unreadable: desc("processes_unreadable",
			"Processes whose /proc/PID/fd the exporter could not read in its last full pass; their sockets' process is unknown."),
		missingDesc: desc("attribution_missing",
			"1 for each privilege or facility that attribution lacks: a capability (CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH) or \"cgroup v2\".",
			"missing"),
	}
}

// Update sends the status of the last refresh.
func (c *OwnersCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	s := c.status()
	ch <- prometheus.MustNewConstMetric(c.upDesc, prometheus.GaugeValue, boolValue(s.CgroupUp), "cgroup")
	ch <- prometheus.MustNewConstMetric(c.upDesc, prometheus.GaugeValue, boolValue(s.ProcessUp), "process")
	ch <- prometheus.MustNewConstMetric(c.unreadable, prometheus.GaugeValue, float64(s.ProcessesUnreadable))
	for _, m := range s.Missing {
		ch <- prometheus.MustNewConstMetric(c.missingDesc, prometheus.GaugeValue, 1, m)
	}
	return nil
}
