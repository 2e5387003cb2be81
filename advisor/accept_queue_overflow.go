package advisor

// AcceptQueueOverflow: listen queues overflow.
const AcceptQueueOverflow ID = "accept-queue-overflow"

func init() {
	register(definition{
		id:     AcceptQueueOverflow,
		alerts: []string{"TcpadvisorAcceptQueueOverflow"},
		evidence: func(Target) []evidenceQuery {
			return []evidenceQuery{
				{name: "accept-queue overflows per second", expr: `rate(tcpadvisor_tcpext_listen_overflows_total[5m])`},
				{name: "accept-queue fill of port", expr: `tcpadvisor_listen_queue_length / tcpadvisor_listen_queue_limit > 0`, by: "port"},
				{name: "net.core.somaxconn", expr: `tcpadvisor_sysctl_net_core_somaxconn`},
			}
		},
		recommendation: func(situation) string {
			return "Connections complete the handshake but the application does not accept() them fast enough, and the kernel " +
				"drops them when the accept queue is full. Accept faster (more workers); raise the listen() backlog and " +
				"net.core.somaxconn together: the queue is the smaller of the two."
		},
		sysctls: func(s situation) []SysctlChange {
			return doubleLimit("net.core.somaxconn", s.facts.somaxconn, "accept queues overflow; the application's listen() backlog must be raised too, the queue is min(backlog, somaxconn)")
		},
	})
}
