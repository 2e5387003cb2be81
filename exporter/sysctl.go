package exporter

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"
)

// sysctlMetric is one /proc/sys value exported as a gauge.
type sysctlMetric struct {
	sysctl string
	// name is the metric name after the namespace; empty for the default,
	// "sysctl_" + the sysctl with dots as underscores.
	name string
	help string
	// optional sysctls are skipped where the file does not exist.
	optional bool
}

// sysctlMetrics are the settings the advice depends on. Each is read in the
// network namespace of the process, where the kernel keeps most of them.
var sysctlMetrics = []sysctlMetric{
	{sysctl: "net.ipv4.tcp_tw_reuse", help: "TIME_WAIT reuse for outgoing connections: 0 off, 1 on, 2 loopback only."},
	{sysctl: "net.ipv4.tcp_timestamps", help: "TCP timestamps (RFC 1323); tcp_tw_reuse needs them."},
	{sysctl: "net.ipv4.tcp_max_tw_buckets", help: "Most TIME_WAIT sockets the kernel keeps; past it, new ones are destroyed at once."},
	{sysctl: "net.ipv4.tcp_fin_timeout", name: "sysctl_net_ipv4_tcp_fin_timeout_seconds", help: "How long an orphaned socket stays in FIN_WAIT_2. It does not change the 60 s of TIME_WAIT."},
	{sysctl: "net.core.somaxconn", help: "Upper bound of a listen() backlog: the accept-queue limit is min(backlog, somaxconn)."},
	{sysctl: "net.ipv4.tcp_max_syn_backlog", help: "Most half-open connections (SYN queue) per listener."},
	{sysctl: "net.ipv4.tcp_max_orphans", optional: true, help: "Most sockets not attached to any file descriptor; past it, orphans are reset. Host-wide: the kernel shows it only in the initial network namespace."},
	{sysctl: "net.ipv4.tcp_keepalive_time", name: "sysctl_net_ipv4_tcp_keepalive_time_seconds", help: "Idle time before TCP keepalive probes start, for sockets that enable them."},
	{sysctl: "net.ipv4.tcp_tw_recycle", optional: true, help: "Removed in Linux 4.12 (it broke clients behind NAT); exported only where the kernel still has it."},
	{sysctl: "net.netfilter.nf_conntrack_count", name: "conntrack_entries", optional: true, help: "Connections in the conntrack table; exported only where conntrack is loaded."},
	{sysctl: "net.netfilter.nf_conntrack_max", name: "conntrack_entries_limit", optional: true, help: "Size of the conntrack table; exported only where conntrack is loaded."},
}

// SysctlCollector exports the TCP sysctls that the advice depends on, and the
// size of the ephemeral port range.
type SysctlCollector struct {
	fs         procfs.FS
	procPath   string
	descs      []*prometheus.Desc
	rangeMin   *prometheus.Desc
	rangeMax   *prometheus.Desc
	rangeSize  *prometheus.Desc
	reservedIn *prometheus.Desc
	// reservedRange and reservedRanges export the reserved-port list
	// itself, for the advice that adds ports to it.
	reservedRange  *prometheus.Desc
	reservedRanges *prometheus.Desc
}

// maxReservedRanges bounds the series of tcpadvisor_ephemeral_ports_reserved_range_info:
// the kernel's list can hold thousands of ranges, a host's usually holds a few.
const maxReservedRanges = 64

// NewSysctlCollector returns a collector reading /proc/sys under fs, the
// proc filesystem mounted at procPath, with
// constLabels on every series. The kernel resolves /proc/sys/net in the
// network namespace of the thread that opens the file.
func NewSysctlCollector(fs procfs.FS, procPath string, constLabels prometheus.Labels) *SysctlCollector {
	c := &SysctlCollector{fs: fs, procPath: procPath}
	for _, m := range sysctlMetrics {
		name := m.name
		if name == "" {
			name = "sysctl_" + strings.ReplaceAll(m.sysctl, ".", "_")
		}
		c.descs = append(c.descs, prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), m.help+" ("+m.sysctl+")", nil, constLabels))
	}
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, nil, constLabels)
	}
	c.rangeMin = desc("sysctl_net_ipv4_ip_local_port_range_min", "First port of the ephemeral range (net.ipv4.ip_local_port_range).")
	c.rangeMax = desc("sysctl_net_ipv4_ip_local_port_range_max", "Last port of the ephemeral range (net.ipv4.ip_local_port_range).")
	c.rangeSize = desc("ephemeral_ports_range_size", "Ports in net.ipv4.ip_local_port_range, reserved ones included.")
	c.reservedIn = desc("ephemeral_ports_reserved", "Ports of the ephemeral range listed in net.ipv4.ip_local_reserved_ports, which connect() never picks.")
	c.reservedRange = prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", "ephemeral_ports_reserved_range_info"),
		fmt.Sprintf("1 for each range of ports first-last (inclusive) listed in net.ipv4.ip_local_reserved_ports, lowest first; the first %d ranges only.", maxReservedRanges),
		[]string{"first", "last"}, constLabels)
	c.reservedRanges = desc("ephemeral_ports_reserved_ranges", "Ranges of ports (a lone port is one) in net.ipv4.ip_local_reserved_ports: more than the series of tcpadvisor_ephemeral_ports_reserved_range_info when the list was cut.")
	return c
}

// Update reads every sysctl. One that cannot be read fails the collector, but
// the others are still sent.
func (c *SysctlCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	var errs []error
	for i, m := range sysctlMetrics {
		values, err := c.fs.SysctlInts(m.sysctl)
		switch {
		case m.optional && errors.Is(err, fs.ErrNotExist):
			continue
		case err != nil:
			errs = append(errs, fmt.Errorf("read %s: %w", m.sysctl, err))
			continue
		case len(values) != 1:
			errs = append(errs, fmt.Errorf("read %s: want one number, got %d", m.sysctl, len(values)))
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.descs[i], prometheus.GaugeValue, float64(values[0]))
	}

	r, err := readEphemeralRange(c.fs, c.procPath)
	if err != nil {
		errs = append(errs, err)
	} else {
		ch <- prometheus.MustNewConstMetric(c.rangeMin, prometheus.GaugeValue, float64(r.Low))
		ch <- prometheus.MustNewConstMetric(c.rangeMax, prometheus.GaugeValue, float64(r.High))
		ch <- prometheus.MustNewConstMetric(c.rangeSize, prometheus.GaugeValue, float64(r.Size()))
		ch <- prometheus.MustNewConstMetric(c.reservedIn, prometheus.GaugeValue, float64(r.ReservedInRange()))
		ranges := r.Reserved.Ranges()
		ch <- prometheus.MustNewConstMetric(c.reservedRanges, prometheus.GaugeValue, float64(len(ranges)))
		for _, pr := range ranges[:min(len(ranges), maxReservedRanges)] {
			ch <- prometheus.MustNewConstMetric(c.reservedRange, prometheus.GaugeValue, 1, strconv.Itoa(int(pr.First)), strconv.Itoa(int(pr.Last)))
		}
	}
	return errors.Join(errs...)
}
