package advisor

import (
	"maps"
	"net/netip"
	"strings"
)

// Target is where an alert points, made from its labels less alertname,
// advice and severity. Every query of its advice is built from it, with the
// PromQL parser (engine.WithMatchers), so that the advice reads the series
// of its own host and network namespace only.
type Target struct {
	// Scope holds the labels that say which host and namespace: instance,
	// job, netns and every label a Prometheus adds that is not one below.
	Scope map[string]string
	// SourceAddress, DestinationAddress and DestinationPort say which
	// outbound flow, when the alert is about one.
	SourceAddress, DestinationAddress, DestinationPort string
	// Port is the local service port, when the alert is about one.
	Port string
}

// targetOf returns the target of an alert's labels.
func targetOf(labels map[string]string) Target {
	t := Target{Scope: map[string]string{}}
	for k, v := range labels {
		switch k {
		case "alertname", "advice", "severity":
		case "source_address":
			t.SourceAddress = v
		case "destination_address":
			t.DestinationAddress = v
		case "destination_port":
			t.DestinationPort = v
		case "port":
			t.Port = v
		default:
			t.Scope[k] = v
		}
	}
	return t
}

// Outbound reports whether the target is a flow toward a destination.
func (t Target) Outbound() bool { return t.DestinationPort != "" }

// Destination returns ADDRESS:PORT of the flow, IPv6 in brackets.
func (t Target) Destination() string { return hostPort(t.DestinationAddress, t.DestinationPort) }

// ServicePort returns the port of the service the target is about: the
// destination's, or the local service port.
func (t Target) ServicePort() string {
	if t.Outbound() {
		return t.DestinationPort
	}
	return t.Port
}

// destination returns the matchers of the flow's series.
func (t Target) destination() map[string]string {
	return nonEmpty(map[string]string{"source_address": t.SourceAddress, "destination_address": t.DestinationAddress, "destination_port": t.DestinationPort})
}

// port returns the matcher of the service port's series.
func (t Target) port() map[string]string { return nonEmpty(map[string]string{"port": t.Port}) }

// labels returns the target as Advice.Target shows it: every label but the
// instance and job, which say where the daemon runs, not what to fix.
func (t Target) labels() map[string]string {
	m := nonEmpty(map[string]string{"source_address": t.SourceAddress, "destination_address": t.DestinationAddress,
		"destination_port": t.DestinationPort, "port": t.Port})
	for k, v := range t.Scope {
		if k != "instance" && k != "job" {
			m[k] = v
		}
	}
	return m
}

// scopeKey identifies the target's scope, for grouping.
func (t Target) scopeKey() string {
	var b strings.Builder
	for _, k := range sortedKeys(t.Scope) {
		b.WriteString(k + "\x00" + t.Scope[k] + "\x00")
	}
	return b.String()
}

// destinationIsLocal reports whether the flow's destination is this host
// for certain: a loopback address, or the address the flow leaves from.
func (t Target) destinationIsLocal() bool {
	if t.DestinationAddress != "" && t.DestinationAddress == t.SourceAddress {
		return true
	}
	addr, err := netip.ParseAddr(t.DestinationAddress)
	return err == nil && addr.IsLoopback()
}

func hostPort(addr, port string) string {
	if strings.Contains(addr, ":") {
		addr = "[" + addr + "]"
	}
	return addr + ":" + port
}

func nonEmpty(m map[string]string) map[string]string {
	maps.DeleteFunc(m, func(_, v string) bool { return v == "" })
	return m
}
