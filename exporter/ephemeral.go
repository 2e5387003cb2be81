package exporter

import (
	"fmt"
	"strings"

	"github.com/prometheus/procfs"
	"github.com/tcpadvisor/tcpadvisor/exporter/census"
)

// readEphemeralRange reads net.ipv4.ip_local_port_range and
// net.ipv4.ip_local_reserved_ports. Both the sockets collector (to classify)
// and the sysctl collector (to export) read it; the files are tiny.
func readEphemeralRange(fs procfs.FS) (census.EphemeralRange, error) {
	var r census.EphemeralRange
	rangeFields, err := fs.SysctlStrings("net.ipv4.ip_local_port_range")
	if err != nil {
		return r, fmt.Errorf("read net.ipv4.ip_local_port_range: %w", err)
	}
	if r.Low, r.High, err = census.ParsePortRange(strings.Join(rangeFields, " ")); err != nil {
		return r, err
	}
	reserved, err := fs.SysctlStrings("net.ipv4.ip_local_reserved_ports")
	if err != nil {
		return r, fmt.Errorf("read net.ipv4.ip_local_reserved_ports: %w", err)
	}
	r.Reserved, err = census.ParseReservedPorts(strings.Join(reserved, ""))
	return r, err
}
