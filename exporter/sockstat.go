package exporter

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"
)

// SockstatCollector exports the TCP lines of /proc/net/sockstat and
// /proc/net/sockstat6: totals the kernel keeps, at a cost independent of the
// number of sockets.
type SockstatCollector struct {
	fs       procfs.FS
	pageSize int
	inuse    *prometheus.Desc
	orphan   *prometheus.Desc
	tw       *prometheus.Desc
	alloc    *prometheus.Desc
	mem      *prometheus.Desc
}

// NewSockstatCollector returns a collector reading net/sockstat{,6} under
// fs (/proc, or /proc/thread-self for the calling thread's network
// namespace), with constLabels on every series.
func NewSockstatCollector(fs procfs.FS, constLabels prometheus.Labels) *SockstatCollector {
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "sockstat", name), help, labels, constLabels)
	}
	return &SockstatCollector{
		fs:       fs,
		pageSize: os.Getpagesize(),
		inuse:    desc("tcp_inuse", "TCP sockets in use, by family (sockstat TCP inuse, sockstat6 TCP6 inuse).", "family"),
		orphan:   desc("tcp_orphan", "TCP sockets attached to no file descriptor (sockstat TCP orphan); bounded by net.ipv4.tcp_max_orphans."),
		tw:       desc("tcp_tw", "TCP timewait mini-sockets, both families: TIME_WAIT, and orphaned FIN_WAIT2 (sockstat TCP tw)."),
		alloc:    desc("tcp_alloc", "TCP sockets allocated, all states and families (sockstat TCP alloc)."),
		mem:      desc("tcp_mem_bytes", "Memory used by TCP socket buffers (sockstat TCP mem, in pages, times the page size)."),
	}
}

// Update reads sockstat and sockstat6; a kernel without IPv6 has no
// sockstat6, which is no failure.
func (c *SockstatCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	gauge := func(desc *prometheus.Desc, v int, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, float64(v), labels...)
	}
	v4, err := c.fs.NetSockstat()
	if err != nil {
		return fmt.Errorf("read sockstat: %w", err)
	}
	tcp := findProtocol(v4, "TCP")
	if tcp == nil {
		return errors.New("read sockstat: no TCP line")
	}
	gauge(c.inuse, tcp.InUse, "ipv4")
	for _, f := range []struct {
		desc  *prometheus.Desc
		value *int
		scale int
	}{{c.orphan, tcp.Orphan, 1}, {c.tw, tcp.TW, 1}, {c.alloc, tcp.Alloc, 1}, {c.mem, tcp.Mem, c.pageSize}} {
		if f.value != nil {
			gauge(f.desc, *f.value*f.scale)
		}
	}

	v6, err := c.fs.NetSockstat6()
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read sockstat6: %w", err)
	}
	if tcp6 := findProtocol(v6, "TCP6"); tcp6 != nil {
		gauge(c.inuse, tcp6.InUse, "ipv6")
	}
	return nil
}

func findProtocol(s *procfs.NetSockstat, name string) *procfs.NetSockstatProtocol {
	for i := range s.Protocols {
		if s.Protocols[i].Protocol == name {
			return &s.Protocols[i]
		}
	}
	return nil
}
