package advisor

import "fmt"

// UpstreamKeepalive: a reverse proxy, or an HTTP client, opens a connection
// per request to an HTTP server.
const UpstreamKeepalive ID = "upstream-keepalive"

func init() {
	register(definition{
		id:             UpstreamKeepalive,
		alerts:         []string{"TcpadvisorConnectionPerRequest", "TcpadvisorServerSideChurn"},
		evidence:       flowEvidence,
		recommendation: keepaliveRecommendation,
		fixes:          keepaliveFixes,
	})
}

func keepaliveRecommendation(s situation) string {
	if !s.target.Outbound() {
		client := "a client such as a proxy without upstream keepalive"
		if s.client != nil {
			client = "the client, " + s.client.String() + " on this host,"
		}
		return fmt.Sprintf("Few peers open a new connection to %s for almost every request, and this host closes "+
			"each one first, so the TIME_WAIT sockets pile up here: %s opens a connection per request. Turn "+
			"keepalive on in the client (for nginx, all three directives). If TIME_WAIT stays on this port once it "+
			"is on, the service itself closes every connection (gunicorn's sync workers do): run it with a worker "+
			"that keeps connections alive. In the experiment tcpadvisor comes from, upstream keepalive gave 25%% more "+
			"requests per second.", s.server.describe(), client)
	}
	return fmt.Sprintf(who(s.client)+" opens a new HTTP connection to %s for almost every request and closes it first: "+
		"each leaves a TIME_WAIT socket holding an ephemeral port for 60 s. Keep connections alive to that upstream: "+
		"for nginx, all three directives below; for an application, one shared HTTP client.", s.server.describe())
}

func keepaliveFixes(s situation) []Fix {
	if s.server.Protocol == "" {
		return unknownProtocolFixes(s)
	}
	fixes := forClient(s.client, keepaliveFixesFor(s.server.upstream(s.client)))
	if !s.target.Outbound() {
		// The server closes first here: it may be the one to fix.
		fixes = append(fixes, backendKeepaliveFix)
	}
	return fixes
}
