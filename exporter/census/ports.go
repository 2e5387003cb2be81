package census

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
)

// PortSet is a set of TCP ports: a fixed 8 KiB bitmap, so that adding every
// port there is never grows it.
type PortSet [1 << 16 / 64]uint64

// Add puts port into the set.
func (s *PortSet) Add(port uint16) { s[port/64] |= 1 << (port % 64) }

// Has reports whether port is in the set.
func (s *PortSet) Has(port uint16) bool { return s[port/64]&(1<<(port%64)) != 0 }

// Len returns the number of ports in the set.
func (s *PortSet) Len() int {
	n := 0
	for _, w := range s {
		n += bits.OnesCount64(w)
	}
	return n
}

// CountIn returns how many ports of the set lie in [low, high].
func (s *PortSet) CountIn(low, high uint16) int {
	n := 0
	for p := int(low); p <= int(high); p++ {
		if s.Has(uint16(p)) {
			n++
		}
	}
	return n
}

// PortRange is the ports First to Last, both included.
type PortRange struct{ First, Last uint16 }

// Ranges returns the set as runs of consecutive ports, lowest first.
func (s *PortSet) Ranges() []PortRange {
	var ranges []PortRange
	for p := 0; p < 1<<16; p++ {
		if !s.Has(uint16(p)) {
			continue
		}
		end := p
		for end+1 < 1<<16 && s.Has(uint16(end+1)) {
			end++
		}
		ranges = append(ranges, PortRange{First: uint16(p), Last: uint16(end)})
		p = end
	}
	return ranges
}

// EphemeralRange is what the kernel picks a local port from when connect()
// is called without bind(): net.ipv4.ip_local_port_range less
// net.ipv4.ip_local_reserved_ports.
type EphemeralRange struct {
	Low, High uint16
	Reserved  PortSet
}

// Contains reports whether the kernel may hand out port to connect(): inside
// the range and not reserved.
func (r *EphemeralRange) Contains(port uint16) bool {
	return port >= r.Low && port <= r.High && !r.Reserved.Has(port)
}

// Size returns the number of ports in the range, reserved ones included.
func (r *EphemeralRange) Size() int {
	if r.High < r.Low {
		return 0
	}
	return int(r.High) - int(r.Low) + 1
}

// ReservedInRange returns the number of reserved ports inside the range.
func (r *EphemeralRange) ReservedInRange() int {
	if r.High < r.Low {
		return 0
	}
	return r.Reserved.CountIn(r.Low, r.High)
}

// Usable returns the number of ports connect() can pick from.
func (r *EphemeralRange) Usable() int { return r.Size() - r.ReservedInRange() }

// ParsePortRange parses the two numbers of net.ipv4.ip_local_port_range.
func ParsePortRange(s string) (low, high uint16, err error) {
	fields := strings.Fields(s)
	if len(fields) != 2 {
		return 0, 0, fmt.Errorf("ip_local_port_range %q: want two port numbers", s)
	}
	lo, err := parsePort(fields[0])
	if err != nil {
		return 0, 0, fmt.Errorf("ip_local_port_range %q: %w", s, err)
	}
	hi, err := parsePort(fields[1])
	if err != nil {
		return 0, 0, fmt.Errorf("ip_local_port_range %q: %w", s, err)
	}
	if hi < lo {
		return 0, 0, fmt.Errorf("ip_local_port_range %q: low end above high end", s)
	}
	return lo, hi, nil
}

// ParseReservedPorts parses net.ipv4.ip_local_reserved_ports: a
// comma-separated list of ports and inclusive ranges ("8080,9000-9010"), or
// an empty string.
func ParseReservedPorts(s string) (PortSet, error) {
	var set PortSet
	s = strings.TrimSpace(s)
	if s == "" {
		return set, nil
	}
	for _, item := range strings.Split(s, ",") {
		first, last, isRange := strings.Cut(strings.TrimSpace(item), "-")
		lo, err := parsePort(first)
		if err != nil {
			return set, fmt.Errorf("ip_local_reserved_ports %q: %w", s, err)
		}
		hi := lo
		if isRange {
			if hi, err = parsePort(last); err != nil {
				return set, fmt.Errorf("ip_local_reserved_ports %q: %w", s, err)
			}
			if hi < lo {
				return set, fmt.Errorf("ip_local_reserved_ports %q: range %q runs backwards", s, item)
			}
		}
		for p := int(lo); p <= int(hi); p++ {
			set.Add(uint16(p))
		}
	}
	return set, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 16)
	if err != nil {
		return 0, fmt.Errorf("%q is not a port number (0-65535)", s)
	}
	return uint16(n), nil
}
