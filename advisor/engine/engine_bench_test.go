package engine

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/tcpadvisor/tcpadvisor/rules"
)

var tcpStates = []string{"syn_sent", "established", "fin_wait1", "fin_wait2", "time_wait", "close", "close_wait", "last_ack", "closing"}

// exporterSource fills src with the series of a busy host as the exporter
// shows it with its default caps: 20 destinations and 100 service ports,
// every state of each, 3 peers per port, and the host-wide metrics.
func exporterSource(src *source) int {
	n := 0
	gauge := func(name string, v float64, lp ...string) { src.gauge(name, v, lp...); n++ }
	counter := func(name string, v float64, lp ...string) { src.counter(name, v, lp...); n++ }
	for d := range 20 {
		dest := []string{"source_address", "10.0.0.1", "destination_address", fmt.Sprintf("10.0.1.%d", d), "destination_port", "6379"}
		for i, s := range tcpStates {
			gauge("tcpadvisor_outbound_sockets", float64(d*100+i), append(dest, "state", s)...)
		}
		gauge("tcpadvisor_outbound_ephemeral_sockets", float64(d*700), dest...)
		gauge("tcpadvisor_outbound_port_pressure_ratio", float64(d)/20, dest...) // 9 of them above 0.5
	}
	for p := range 100 {
		port := []string{"port", fmt.Sprint(8000 + p)}
		for i, s := range tcpStates {
			v := float64(p + i)
			if s == "time_wait" && p < 3 {
				v = 5000 // three ports churn, behind a proxy
			}
			gauge("tcpadvisor_inbound_sockets", v, append(port, "state", s)...)
		}
		gauge("tcpadvisor_inbound_peer_addresses", 2, port...)
		for peer := range 3 {
			gauge("tcpadvisor_inbound_peer_sockets", 50, append(port, "peer_address", fmt.Sprintf("10.0.2.%d", peer))...)
		}
		gauge("tcpadvisor_listen_queue_length", 0, port...)
		gauge("tcpadvisor_listen_queue_limit", 4096, port...)
		gauge("tcpadvisor_listen_port_in_ephemeral_range", 0, port...)
	}
	for _, family := range []string{"ipv4", "ipv6"} {
		for _, class := range []string{"listener", "inbound", "outbound_ephemeral", "outbound_bound"} {
			for _, s := range append([]string{"listen"}, tcpStates...) {
				gauge("tcpadvisor_sockets", 10, "family", family, "state", s, "class", class)
			}
		}
		gauge("tcpadvisor_sockstat_tcp_inuse", 1000, "family", family)
	}
	for _, c := range []string{"netstat", "sockets", "sockstat", "sysctl"} {
		gauge("tcpadvisor_scrape_collector_success", 1, "collector", c)
		gauge("tcpadvisor_scrape_collector_duration_seconds", 0.01, "collector", c)
	}
	for _, table := range []string{"destinations", "peers"} {
		gauge("tcpadvisor_sockets_tracking_limit_reached", 0, "table", table)
	}
	for name, v := range map[string]float64{
		"tcpadvisor_ephemeral_ports_in_use": 20000, "tcpadvisor_ephemeral_ports_listening": 0,
		"tcpadvisor_ephemeral_ports_range_size": 28232, "tcpadvisor_ephemeral_ports_reserved": 0,
		"tcpadvisor_sysctl_net_ipv4_ip_local_port_range_min": 32768, "tcpadvisor_sysctl_net_ipv4_ip_local_port_range_max": 60999,
		"tcpadvisor_sysctl_net_ipv4_tcp_tw_reuse": 2, "tcpadvisor_sysctl_net_ipv4_tcp_timestamps": 1,
		"tcpadvisor_sysctl_net_ipv4_tcp_max_tw_buckets": 131072, "tcpadvisor_sysctl_net_ipv4_tcp_fin_timeout_seconds": 60,
		"tcpadvisor_sysctl_net_core_somaxconn": 4096, "tcpadvisor_sysctl_net_ipv4_tcp_max_syn_backlog": 1024,
		"tcpadvisor_sysctl_net_ipv4_tcp_max_orphans": 131072, "tcpadvisor_sysctl_net_ipv4_tcp_keepalive_time_seconds": 7200,
		"tcpadvisor_conntrack_entries": 1000, "tcpadvisor_conntrack_entries_limit": 262144,
		"tcpadvisor_tcp_curr_estab": 2000, "tcpadvisor_sockstat_tcp_orphan": 5, "tcpadvisor_sockstat_tcp_tw": 60000,
		"tcpadvisor_sockstat_tcp_alloc": 70000, "tcpadvisor_sockstat_tcp_mem_bytes": 1 << 20,
	} {
		gauge(name, v)
	}
	for _, name := range []string{
		"tcpadvisor_sock_diag_dump_retries_total", "tcpadvisor_tcp_active_opens_total", "tcpadvisor_tcp_passive_opens_total",
		"tcpadvisor_tcp_attempt_fails_total", "tcpadvisor_tcp_estab_resets_total", "tcpadvisor_tcpext_tw_total",
		"tcpadvisor_tcpext_tw_recycled_total", "tcpadvisor_tcpext_tw_killed_total", "tcpadvisor_tcpext_tcp_time_wait_overflow_total",
		"tcpadvisor_tcpext_listen_overflows_total", "tcpadvisor_tcpext_listen_drops_total",
		"tcpadvisor_tcpext_tcp_req_q_full_drop_total", "tcpadvisor_tcpext_tcp_req_q_full_do_cookies_total",
		"tcpadvisor_tcpext_tcp_abort_on_memory_total",
	} {
		counter(name, 1e6)
	}
	gauge("tcpadvisor_build_info", 1, "version", "0.1.0", "revision", "abc", "branch", "main", "goversion", "go1.26")
	return n
}

// BenchmarkCycle measures one cycle over a busy host's series (with the
// daemon's go_ and process_ collectors) and every rule the daemon bundles,
// after a retention of history. A dozen alerts fire: nine destinations under
// port pressure and three service ports churning behind a proxy; each
// firing alert costs its annotations' templates and queries every cycle.
func BenchmarkCycle(b *testing.B) {
	src, reg := newSource(b)
	tcpSeries := exporterSource(src)
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	const interval = 15 * time.Second
	e := newEngine(b, Options{Bundled: rules.Files, Interval: interval}, reg)

	now := t0
	for range int(e.Retention()/interval) + 1 {
		cycle(b, e, now)
		now = now.Add(interval)
	}
	firing := 0
	for _, a := range e.Alerts() {
		if a.State == "firing" {
			firing++
		}
	}
	if firing == 0 {
		b.Fatal("no alert fires: the benchmark would not expand annotations nor notify")
	}
	b.ReportAllocs()
	for b.Loop() {
		cycle(b, e, now)
		now = now.Add(interval)
	}
	b.ReportMetric(float64(tcpSeries), "tcpadvisor_series")
	b.ReportMetric(float64(firing), "firing_alerts")
	b.ReportMetric(float64(e.head.NumSeries()), "stored_series")
}
