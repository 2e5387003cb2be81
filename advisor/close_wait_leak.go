package advisor

import "fmt"

// CloseWaitLeak: CLOSE_WAIT sockets pile up on a service port.
const CloseWaitLeak ID = "close-wait-leak"

func init() {
	register(definition{
		id:     CloseWaitLeak,
		alerts: []string{"TcpadvisorCloseWaitLeak"},
		evidence: func(t Target) []evidenceQuery {
			return []evidenceQuery{{name: "CLOSE_WAIT sockets on service port " + t.Port, expr: `tcpadvisor_inbound_sockets{state="close_wait"}`, match: t.port()}}
		},
		recommendation: func(s situation) string {
			return fmt.Sprintf("Peers closed their side of connections to port %s but the application never calls close() on "+
				"its sockets: they stay in CLOSE_WAIT, holding a file descriptor and memory each, until the process exits. "+
				"This is a bug in the application (a missing close or defer Close(), a leaked response body); no sysctl fixes it.", s.target.Port)
		},
	})
}
