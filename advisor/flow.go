package advisor

import (
	"context"
	"strings"
)

// isChurn reports whether an advice is about a flow that opens a connection
// per request: the advice the listener's protocol chooses between.
func isChurn(id ID) bool { return id == Pool || id == UpstreamKeepalive }

// churn completes the advice of a churning flow, seen from its client (a
// target toward a destination) or from its server (a service port of this
// host): it names the server and the client, chooses the advice from the
// server's protocol (keepalive for HTTP, a pool for databases and caches;
// the alert's own when the protocol is unknown), and gives both views of
// one flow the same key, so that they make one advice. It returns the
// definition of the advice chosen.
func (a *Advisor) churn(ctx context.Context, adv *Advice, s *situation) *definition {
	t := s.target
	local := a.nameEnds(ctx, adv, s)
	switch s.server.Protocol {
	case "":
	case protocolHTTP:
		adv.ID = UpstreamKeepalive
	default:
		adv.ID = Pool
	}
	if base, _, ok := strings.Cut(adv.RunbookURL, "#"); ok {
		adv.RunbookURL = base + "#" + string(adv.ID)
	}
	key := "churn\x00" + t.scopeKey()
	if local {
		key += "local\x00" + t.ServicePort()
	} else {
		key += t.SourceAddress + "\x00" + t.Destination()
	}
	adv.flowKey = key
	return registry[adv.ID]
}

// nameEnds names the two ends of the target's flow in the situation and the
// advice: its server (and protocol), and its client, the target's owner or,
// seen from the server's port, the local process that connects to it. It
// reports whether the flow stays on this host.
func (a *Advisor) nameEnds(ctx context.Context, adv *Advice, s *situation) (local bool) {
	t := s.target
	local = !t.Outbound() || t.destinationIsLocal()
	s.server = a.server(ctx, t, local)
	s.client = s.owner
	if !t.Outbound() {
		s.client = a.localClient(ctx, t)
	}
	adv.Client, adv.Server = s.client, s.server
	return local
}

// server names what serves the target's service port and its protocol:
// from the process of its listener, when it listens on this host; else from
// a well-known port; else from the listener's runtime.
func (a *Advisor) server(ctx context.Context, t Target, local bool) *Service {
	port := t.ServicePort()
	server := &Service{Address: t.DestinationAddress, Port: port}
	if local {
		server.Owner = a.listener(ctx, t, port)
	}
	if server.Owner != nil {
		server.Name = server.Owner.Process
		if server.Protocol = protocolOf(server.Owner); server.Protocol != "" {
			server.KnownBy = "listener"
		}
	}
	if server.Protocol == "" {
		if p, ok := wellKnownPorts[port]; ok {
			server.Protocol, server.KnownBy = p, "port"
		}
	}
	if server.Protocol == "" && server.Owner != nil {
		if p, ok := runtimeProtocols[server.Owner.Runtime]; ok {
			server.Protocol, server.KnownBy = p, "runtime"
		}
	}
	if server.Name == "" {
		server.Name = protocolNames[server.Protocol]
	}
	return server
}

// localClient returns the busiest owner on this host of connections toward
// the target's service port: the client of the flow its server sees; from
// the sockets it holds, else from the connections the tracer saw it open.
func (a *Advisor) localClient(ctx context.Context, t Target) *Owner {
	match := map[string]string{"destination_port": t.Port}
	local := func(l map[string]string) bool {
		return Target{SourceAddress: l["source_address"], DestinationAddress: l["destination_address"]}.destinationIsLocal()
	}
	if o := a.owner(ctx, t, evidenceQuery{expr: "tcpadvisor_outbound_owner_sockets", match: match}, local); o != nil {
		return o
	}
	return a.owner(ctx, t, evidenceQuery{expr: "tcpadvisor_outbound_connections_opened_total", match: match}, local)
}

// listener returns the owner of the listening socket on a port of the
// target's host and namespace: from the listener's own series, else from
// the owners of the port's inbound sockets.
func (a *Advisor) listener(ctx context.Context, t Target, port string) *Owner {
	match := map[string]string{"port": port}
	if o := a.owner(ctx, t, evidenceQuery{expr: "tcpadvisor_listen_owner_info", match: match}, nil); o != nil {
		o.Sockets = 0
		return o
	}
	return a.owner(ctx, t, evidenceQuery{expr: "tcpadvisor_inbound_owner_sockets", match: match}, nil)
}

// who names the client of a flow: its owner when known, else "This host".
func who(client *Owner) string {
	if client == nil {
		return "This host"
	}
	return "Unit " + client.String() + " on this host"
}

// describe names the server of a flow in a sentence: "redis-server at
// 127.0.0.1:16379", "the Redis server at 10.0.0.5:6379", "the service at
// 10.0.0.7:7000".
func (s *Service) describe() string {
	addr := "port " + s.Port
	if s.Address != "" {
		addr = hostPort(s.Address, s.Port)
	}
	switch {
	case s.Owner != nil:
		return s.Owner.Process + " at " + addr
	case s.Protocol != "":
		return "the " + protocolNames[s.Protocol] + " server at " + addr
	}
	return "the service at " + addr
}

// upstream is the server's address for a client's configuration: its
// address, else this host's loopback when the client is on this host.
func (s *Service) upstream(client *Owner) string {
	if s.Address != "" {
		return hostPort(s.Address, s.Port)
	}
	if client != nil {
		return hostPort("127.0.0.1", s.Port)
	}
	return "THIS_HOST:" + s.Port
}
