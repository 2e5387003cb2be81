package advisor

import (
	"fmt"
	"strconv"
)

// ServicePortInEphemeralRange: a listening port lies in the ephemeral range
// and is not reserved.
const ServicePortInEphemeralRange ID = "service-port-in-ephemeral-range"

func init() {
	register(definition{
		id:     ServicePortInEphemeralRange,
		alerts: []string{"TcpadvisorServicePortInEphemeralRange"},
		evidence: func(t Target) []evidenceQuery {
			return []evidenceQuery{
				{name: "first port of the ephemeral range", expr: `tcpadvisor_sysctl_net_ipv4_ip_local_port_range_min`},
				{name: "last port of the ephemeral range", expr: `tcpadvisor_sysctl_net_ipv4_ip_local_port_range_max`},
				{name: "connections on port " + t.Port, expr: `sum(tcpadvisor_inbound_sockets)`, match: t.port()},
			}
		},
		recommendation: func(s situation) string {
			return fmt.Sprintf("Service port %s lies in the ephemeral range (%d-%d) and is not reserved: while the service is down or "+
				"restarting, an outgoing connection can take the port and the service then fails to bind it. Reserve it with "+
				"net.ipv4.ip_local_reserved_ports (or move the service below the range).", s.target.Port, s.facts.rangeMin, s.facts.rangeMax)
		},
		sysctls: func(s situation) []SysctlChange {
			port, err := strconv.Atoi(s.target.Port)
			if err != nil || port <= 0 || port > 65535 {
				return nil
			}
			return s.facts.reservedPortsChange(fmt.Sprintf("keeps connect() from handing out service port %d", port), port)
		},
	})
}
