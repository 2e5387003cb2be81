package advisor

import "fmt"

// ConnectFailures: connect() toward a destination fails with EADDRNOTAVAIL,
// now: every ephemeral port toward it is taken. Only the connection tracer
// sees it.
const ConnectFailures ID = "connect-failures"

func init() {
	register(definition{
		id:     ConnectFailures,
		alerts: []string{"TcpadvisorConnectFailures"},
		// The failing process, from the tracer: the one with the most
		// failures counted toward the destination.
		owners:         connectFailuresOwners,
		flow:           true,
		evidence:       connectFailuresEvidence,
		recommendation: connectFailuresRecommendation,
		fixes:          connectFailuresFixes,
		sysctls:        pressureSysctls,
	})
}

func connectFailuresOwners(t Target) evidenceQuery {
	return evidenceQuery{expr: `tcpadvisor_outbound_connect_failures_total{errno="EADDRNOTAVAIL"}`, match: t.destination()}
}

func connectFailuresEvidence(t Target) []evidenceQuery {
	d, to := t.destination(), " toward "+t.Destination()
	return append([]evidenceQuery{
		{name: "connect() failures per second" + to + ", errno", expr: `sum by (errno) (rate(tcpadvisor_outbound_connect_failures_total[1m])) > 0`, match: d, by: "errno"},
		{name: "connect() failures per second" + to + " (EADDRNOTAVAIL), process", expr: `sum by (process) (rate(tcpadvisor_outbound_connect_failures_total{errno="EADDRNOTAVAIL"}[1m])) > 0`, match: d, by: "process"},
	}, pressureEvidence(t)...)
}

func connectFailuresRecommendation(s situation) string {
	r := fmt.Sprintf("connect() from %s to %s fails with EADDRNOTAVAIL (\"Cannot assign requested address\"): "+
		"every ephemeral port toward it is taken, and the requests that need a connection fail now. ",
		whoLower(s.owner), s.server.describe())
	switch s.server.Protocol {
	case protocolHTTP:
		r += "Stop the churn first: keep the connections to it alive (upstream keepalive for a proxy, one shared HTTP client for an application)."
	case "":
		r += "Stop the churn first: a pool if it is a database or a cache, keepalive if it speaks HTTP."
	default:
		r += "Stop the churn first: share one pooled client per process."
	}
	return r + " Then, for relief until the fix is out, the sysctls below: tcp_tw_reuse lets connect() reuse a " +
		"TIME_WAIT port toward it after a second, a wider range gives it more ports. Do not lower tcp_fin_timeout: " +
		"it does not shorten TIME_WAIT."
}

// whoLower names the failing process in a sentence: "unit x (process y)",
// else "this host".
func whoLower(o *Owner) string {
	if o == nil {
		return "this host"
	}
	return "unit " + o.String()
}

// connectFailuresFixes are the churn fix the server's protocol calls for,
// then the port-pressure relief.
func connectFailuresFixes(s situation) []Fix {
	churn := poolFixes
	if s.server.Protocol == protocolHTTP {
		churn = keepaliveFixes
	}
	return append(churn(s), pressureFixes(s)...)
}
