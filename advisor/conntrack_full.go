package advisor

// ConntrackFull: the conntrack table is filling.
const ConntrackFull ID = "conntrack-full"

func init() {
	register(definition{
		id:     ConntrackFull,
		alerts: []string{"TcpadvisorConntrackTableFilling"},
		evidence: func(Target) []evidenceQuery {
			return []evidenceQuery{
				{name: "conntrack entries", expr: `tcpadvisor_conntrack_entries`},
				{name: "net.netfilter.nf_conntrack_max", expr: `tcpadvisor_conntrack_entries_limit`},
			}
		},
		recommendation: func(situation) string {
			return "The conntrack table is filling; once full, new connections are dropped (\"nf_conntrack: table full\"). " +
				"conntrack keeps closed TCP connections for 120 s, so churn fills it: reuse connections, and raise " +
				"net.netfilter.nf_conntrack_max (with nf_conntrack_buckets) if memory allows."
		},
		sysctls: func(s situation) []SysctlChange {
			return doubleLimit("net.netfilter.nf_conntrack_max", s.facts.conntrackMax, "the conntrack table is more than three quarters full")
		},
	})
}
