package advisor

// Orphans: orphaned sockets near net.ipv4.tcp_max_orphans.
const Orphans ID = "orphans"

func init() {
	register(definition{
		id:     Orphans,
		alerts: []string{"TcpadvisorOrphanSockets"},
		evidence: func(Target) []evidenceQuery {
			return []evidenceQuery{
				{name: "orphaned sockets", expr: `tcpadvisor_sockstat_tcp_orphan`},
				{name: "net.ipv4.tcp_max_orphans", expr: `tcpadvisor_sysctl_net_ipv4_tcp_max_orphans`},
			}
		},
		recommendation: func(situation) string {
			return "Many sockets are closed by their applications but still hold unsent data or wait for the peer; past " +
				"net.ipv4.tcp_max_orphans the kernel resets them. Look for peers that stop reading; raise tcp_max_orphans if memory allows."
		},
		sysctls: func(s situation) []SysctlChange {
			return doubleLimit("net.ipv4.tcp_max_orphans", s.facts.maxOrphans, "orphans near the limit are reset; each orphan can cost up to 64 KB of memory")
		},
	})
}
