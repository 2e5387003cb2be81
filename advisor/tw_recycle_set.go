package advisor

// TwRecycleSet: net.ipv4.tcp_tw_recycle is set on a kernel that still has it.
const TwRecycleSet ID = "tw-recycle-set"

func init() {
	register(definition{
		id:     TwRecycleSet,
		alerts: []string{"TcpadvisorTcpTwRecycleSet"},
		evidence: func(Target) []evidenceQuery {
			return []evidenceQuery{{name: "net.ipv4.tcp_tw_recycle", expr: `tcpadvisor_sysctl_net_ipv4_tcp_tw_recycle`}}
		},
		recommendation: func(situation) string {
			return "net.ipv4.tcp_tw_recycle is set. It dropped connections from clients behind NAT and was removed in Linux 4.12: " +
				"set it to 0 and remove it from /etc/sysctl.conf and /etc/sysctl.d. For port pressure use a pool or keepalive, " +
				"then tcp_tw_reuse."
		},
		sysctls: func(situation) []SysctlChange {
			return []SysctlChange{{Name: "net.ipv4.tcp_tw_recycle", Value: "0", Current: "1",
				Reason: "it breaks clients behind NAT and no longer exists since Linux 4.12"}}
		},
	})
}
