package exporter

import (
	"context"
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"
)

// netstatCounter is one kernel counter of /proc/net/snmp (Tcp) or
// /proc/net/netstat (TcpExt), and where procfs keeps it.
type netstatCounter struct {
	name      string // metric name after the namespace
	kernel    string // "Group Field" as the kernel names it
	help      string
	valueType prometheus.ValueType
	snmp      func(*procfs.ProcSnmp) *float64
	netstat   func(*procfs.ProcNetstat) *float64
}

var netstatCounters = []netstatCounter{
	{name: "tcp_active_opens_total", kernel: "Tcp ActiveOpens", help: "Connections this host opened (connect()).", valueType: prometheus.CounterValue,
		snmp: func(s *procfs.ProcSnmp) *float64 { return s.Tcp.ActiveOpens }},
	{name: "tcp_passive_opens_total", kernel: "Tcp PassiveOpens", help: "Connections this host accepted.", valueType: prometheus.CounterValue,
		snmp: func(s *procfs.ProcSnmp) *float64 { return s.Tcp.PassiveOpens }},
	{name: "tcp_attempt_fails_total", kernel: "Tcp AttemptFails", help: "Connection attempts that failed.", valueType: prometheus.CounterValue,
		snmp: func(s *procfs.ProcSnmp) *float64 { return s.Tcp.AttemptFails }},
	{name: "tcp_estab_resets_total", kernel: "Tcp EstabResets", help: "Established connections reset.", valueType: prometheus.CounterValue,
		snmp: func(s *procfs.ProcSnmp) *float64 { return s.Tcp.EstabResets }},
	{name: "tcp_curr_estab", kernel: "Tcp CurrEstab", help: "Connections now in ESTABLISHED or CLOSE_WAIT.", valueType: prometheus.GaugeValue,
		snmp: func(s *procfs.ProcSnmp) *float64 { return s.Tcp.CurrEstab }},
	{name: "tcpext_tw_total", kernel: "TcpExt TW", help: "Sockets that entered TIME_WAIT, counted as each enters it (not when its 60 s end): its rate is the rate at which this host closes connections first.", valueType: prometheus.CounterValue,
		netstat: func(s *procfs.ProcNetstat) *float64 { return s.TW }},
	{name: "tcpext_tw_recycled_total", kernel: "TcpExt TWRecycled", help: "TIME_WAIT sockets whose 4-tuple was reused by tcp_tw_reuse.", valueType: prometheus.CounterValue,
		netstat: func(s *procfs.ProcNetstat) *float64 { return s.TWRecycled }},
	{name: "tcpext_tw_killed_total", kernel: "TcpExt TWKilled", help: "TIME_WAIT sockets killed before their time.", valueType: prometheus.CounterValue,
		netstat: func(s *procfs.ProcNetstat) *float64 { return s.TWKilled }},
	{name: "tcpext_tcp_time_wait_overflow_total", kernel: "TcpExt TCPTimeWaitOverflow", help: "TIME_WAIT sockets destroyed at once because net.ipv4.tcp_max_tw_buckets was reached.", valueType: prometheus.CounterValue,
		netstat: func(s *procfs.ProcNetstat) *float64 { return s.TCPTimeWaitOverflow }},
	{name: "tcpext_listen_overflows_total", kernel: "TcpExt ListenOverflows", help: "Connections dropped because a listener's accept queue was full.", valueType: prometheus.CounterValue,
		netstat: func(s *procfs.ProcNetstat) *float64 { return s.ListenOverflows }},
	{name: "tcpext_listen_drops_total", kernel: "TcpExt ListenDrops", help: "SYNs to a listener dropped, for any reason (overflows included).", valueType: prometheus.CounterValue,
		netstat: func(s *procfs.ProcNetstat) *float64 { return s.ListenDrops }},
	{name: "tcpext_tcp_req_q_full_drop_total", kernel: "TcpExt TCPReqQFullDrop", help: "SYNs dropped because the SYN queue was full and syncookies are off.", valueType: prometheus.CounterValue,
		netstat: func(s *procfs.ProcNetstat) *float64 { return s.TCPReqQFullDrop }},
	{name: "tcpext_tcp_req_q_full_do_cookies_total", kernel: "TcpExt TCPReqQFullDoCookies", help: "SYN cookies sent because the SYN queue was full.", valueType: prometheus.CounterValue,
		netstat: func(s *procfs.ProcNetstat) *float64 { return s.TCPReqQFullDoCookies }},
	{name: "tcpext_tcp_abort_on_memory_total", kernel: "TcpExt TCPAbortOnMemory", help: "Connections aborted for lack of memory (too many orphans, or tcp_mem exceeded).", valueType: prometheus.CounterValue,
		netstat: func(s *procfs.ProcNetstat) *float64 { return s.TCPAbortOnMemory }},
}

// NetstatCollector exports TCP counters of /proc/net/snmp and
// /proc/net/netstat. A counter the kernel does not have is left out.
type NetstatCollector struct {
	proc  func() (procfs.Proc, error)
	descs []*prometheus.Desc
}

// NewNetstatCollector returns a collector reading the counters of the
// network namespace of the process or thread that proc returns (procfs
// shows a task's own namespace under /proc/TID/net), with constLabels on
// every series.
func NewNetstatCollector(proc func() (procfs.Proc, error), constLabels prometheus.Labels) *NetstatCollector {
	c := &NetstatCollector{proc: proc}
	for _, n := range netstatCounters {
		c.descs = append(c.descs, prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", n.name), n.help+" ("+n.kernel+")", nil, constLabels))
	}
	return c
}

// Update reads both files; one that cannot be read fails the collector, and
// the other's counters are still sent.
func (c *NetstatCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	self, err := c.proc()
	if err != nil {
		return fmt.Errorf("find the process in procfs: %w", err)
	}
	var errs []error
	snmp, err := self.Snmp()
	if err != nil {
		errs = append(errs, fmt.Errorf("read net/snmp: %w", err))
	}
	netstat, err := self.Netstat()
	if err != nil {
		errs = append(errs, fmt.Errorf("read net/netstat: %w", err))
	}
	for i, n := range netstatCounters {
		var v *float64
		if n.snmp != nil {
			v = n.snmp(&snmp)
		} else {
			v = n.netstat(&netstat)
		}
		if v != nil {
			ch <- prometheus.MustNewConstMetric(c.descs[i], n.valueType, *v)
		}
	}
	return errors.Join(errs...)
}
