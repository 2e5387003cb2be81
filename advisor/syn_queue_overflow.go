package advisor

// SynQueueOverflow: a listener's SYN queue is full.
const SynQueueOverflow ID = "syn-queue-overflow"

func init() {
	register(definition{
		id:     SynQueueOverflow,
		alerts: []string{"TcpadvisorSynQueueOverflow"},
		evidence: func(Target) []evidenceQuery {
			return []evidenceQuery{
				{name: "SYNs dropped per second, SYN queue full", expr: `rate(tcpadvisor_tcpext_tcp_req_q_full_drop_total[5m])`},
				{name: "SYN cookies sent per second, SYN queue full", expr: `rate(tcpadvisor_tcpext_tcp_req_q_full_do_cookies_total[5m])`},
				{name: "net.ipv4.tcp_max_syn_backlog", expr: `tcpadvisor_sysctl_net_ipv4_tcp_max_syn_backlog`},
			}
		},
		recommendation: func(situation) string {
			return "The SYN queue of a listener fills: half-open connections are dropped or answered with SYN cookies. Raise " +
				"net.ipv4.tcp_max_syn_backlog, and the listen() backlog and net.core.somaxconn with it; if this is an attack, " +
				"keep syncookies on."
		},
		sysctls: func(s situation) []SysctlChange {
			return doubleLimit("net.ipv4.tcp_max_syn_backlog", s.facts.maxSynBacklog, "the SYN queue overflows")
		},
	})
}
