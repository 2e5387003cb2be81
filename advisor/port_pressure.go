package advisor

import "fmt"

// PortPressure: the ephemeral ports toward one destination are running out.
const PortPressure ID = "port-pressure"

func init() {
	register(definition{
		id:             PortPressure,
		alerts:         []string{"TcpadvisorEphemeralPortPressure"},
		evidence:       pressureEvidence,
		recommendation: pressureRecommendation,
		fixes:          pressureFixes,
		sysctls:        pressureSysctls,
	})
}

func pressureEvidence(t Target) []evidenceQuery {
	return append(flowEvidence(t)[:4],
		evidenceQuery{name: "usable ephemeral ports", expr: `tcpadvisor_ephemeral_ports_range_size - tcpadvisor_ephemeral_ports_reserved`},
		evidenceQuery{name: "net.ipv4.tcp_tw_reuse", expr: `tcpadvisor_sysctl_net_ipv4_tcp_tw_reuse`},
		evidenceQuery{name: "TIME_WAIT reused per second (TWRecycled)", expr: `rate(tcpadvisor_tcpext_tw_recycled_total[5m])`},
	)
}

func pressureRecommendation(s situation) string {
	f := s.facts
	r := fmt.Sprintf("The ephemeral ports toward %s are running out: when none is left, connect() to it fails "+
		"with EADDRNOTAVAIL (\"Cannot assign requested address\"). The fix is to open fewer connections: a pool or "+
		"keepalive toward it (see the pool and upstream-keepalive advice). Until then, relief:", s.target.Destination())
	if f.twReuse != 1 && f.timestamps == 1 {
		r += fmt.Sprintf(" net.ipv4.tcp_tw_reuse=1 (now %d) lets connect() reuse a TIME_WAIT port toward it once a second has passed (it needs TCP timestamps, which are on);", f.twReuse)
	}
	if f.rangeMin > 0 {
		r += fmt.Sprintf(" a wider net.ipv4.ip_local_port_range (now %d %d);", f.rangeMin, f.rangeMax)
	} else {
		r += " a wider net.ipv4.ip_local_port_range;"
	}
	return r + " more source addresses, with IP_BIND_ADDRESS_NO_PORT where the client must bind() one. " +
		"Do not lower tcp_fin_timeout: it does not shorten TIME_WAIT."
}

func pressureFixes(situation) []Fix {
	return []Fix{{Title: "A client that must bind() a source address: share ports", Language: "go", Text: `// IP_BIND_ADDRESS_NO_PORT (Linux 4.2) defers the port choice to connect(),
// so binding a source address no longer reserves a port for every destination.
d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Control: func(_, _ string, c syscall.RawConn) error {
	var err error
	c.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1) })
	return err
}}`}}
}

// widerPortRangeLow is where a widened ephemeral range starts: it keeps the
// well-known and registered service ports below it, and ends of different
// parity (16384 even, 65535 odd), as ip-sysctl.rst advises.
const widerPortRangeLow = 16384

func pressureSysctls(s situation) []SysctlChange {
	f := s.facts
	var changes []SysctlChange
	if f.twReuse >= 0 && f.twReuse != 1 && f.timestamps == 1 {
		changes = append(changes, SysctlChange{Name: "net.ipv4.tcp_tw_reuse", Value: "1", Current: fmt.Sprint(f.twReuse),
			Reason: "lets connect() reuse a TIME_WAIT port toward a destination after 1 s (outgoing connections only, needs tcp_timestamps=1): relief for port pressure, not a fix for churn"})
	}
	if f.rangeMin > widerPortRangeLow || (f.rangeMax > 0 && f.rangeMax < 65535) {
		low := min(f.rangeMin, widerPortRangeLow)
		changes = append(changes, SysctlChange{Name: "net.ipv4.ip_local_port_range", Value: fmt.Sprintf("%d 65535", low),
			Current: fmt.Sprintf("%d %d", f.rangeMin, f.rangeMax),
			Reason:  fmt.Sprintf("more ephemeral ports toward every destination; a service listening on a port from %d up must be listed in net.ipv4.ip_local_reserved_ports", low)})
		changes = append(changes, f.reservedPortsChange("keeps the listening ports tcpadvisor saw inside the wider range out of connect()'s reach",
			f.listeningIn(low, 65535)...)...)
	}
	return changes
}
