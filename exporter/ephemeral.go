package exporter

import (
	"fmt"
	"strings"

	"github.com/prometheus/procfs"
	"github.com/tcpadvisor/tcpadvisor/exporter/census"
	"github.com/tcpadvisor/tcpadvisor/internal/sysctl"
)

// readEphemeralRange reads net.ipv4.ip_local_port_range and
// net.ipv4.ip_local_reserved_ports under the proc filesystem fs, mounted at
// procPath. Both the sockets collector (to classify) and the sysctl
// collector (to export) read it. The reserved ports are read whole: procfs
// reads the first 128 bytes of a sysctl, and a list of ports can be longer,
// cut in the middle of a number.
func readEphemeralRange(fs procfs.FS, procPath string) (census.EphemeralRange, error) {
	var r census.EphemeralRange
	rangeFields, err := fs.SysctlStrings("net.ipv4.ip_local_port_range")
	if err != nil {
		return r, fmt.Errorf("read net.ipv4.ip_local_port_range: %w", err)
	}
	if r.Low, r.High, err = census.ParsePortRange(strings.Join(rangeFields, " ")); err != nil {
		return r, err
	}
	reserved, err := sysctl.Read(procPath, "net.ipv4.ip_local_reserved_ports")
	if err != nil {
		return r, err
	}
	r.Reserved, err = census.ParseReservedPorts(reserved)
	return r, err
}
