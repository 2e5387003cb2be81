package advisor

// TimeWaitBucketOverflow: TIME_WAIT sockets are at or near
// net.ipv4.tcp_max_tw_buckets.
const TimeWaitBucketOverflow ID = "tw-bucket-overflow"

func init() {
	register(definition{
		id:     TimeWaitBucketOverflow,
		alerts: []string{"TcpadvisorTimeWaitBucketOverflow"},
		evidence: func(Target) []evidenceQuery {
			return []evidenceQuery{
				{name: "TIME_WAIT sockets (sockstat tw)", expr: `tcpadvisor_sockstat_tcp_tw`},
				{name: "net.ipv4.tcp_max_tw_buckets", expr: `tcpadvisor_sysctl_net_ipv4_tcp_max_tw_buckets`},
				{name: "TIME_WAIT destroyed early per second (TCPTimeWaitOverflow)", expr: `rate(tcpadvisor_tcpext_tcp_time_wait_overflow_total[5m])`},
			}
		},
		recommendation: func(situation) string {
			return "The kernel holds as many TIME_WAIT sockets as net.ipv4.tcp_max_tw_buckets allows and destroys new ones at once, " +
				"without the protection TIME_WAIT gives against old duplicate segments. Open fewer connections (pool, keepalive); " +
				"raise tcp_max_tw_buckets if memory allows (each costs a few hundred bytes). Never lower it."
		},
		sysctls: func(s situation) []SysctlChange {
			return doubleLimit("net.ipv4.tcp_max_tw_buckets", s.facts.maxTwBuckets, "TIME_WAIT sockets are being destroyed at the limit; twice the room costs little memory")
		},
	})
}
