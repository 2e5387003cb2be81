package advisor

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/tcpadvisor/tcpadvisor/exporter/census"
	"github.com/tcpadvisor/tcpadvisor/internal/sysctl"
)

// dropInLine renders one change as the lines of a sysctl.d file.
func dropInLine(s SysctlChange) string {
	return fmt.Sprintf("# %s (now %s)\n%s = %s\n", s.Reason, s.Current, s.Name, s.Value)
}

// Changes collects the sysctl changes of every firing advice, one per sysctl,
// with the reasons of every advice that asks for it. Reserved-port lists are
// merged; for any other sysctl two advices agree or the later one wins.
func (r Report) Changes() []SysctlChange {
	var changes []SysctlChange
	for _, adv := range r.Advice {
		for _, s := range adv.Sysctls {
			s.Reason = string(adv.ID) + ": " + s.Reason
			i := slices.IndexFunc(changes, func(c SysctlChange) bool { return c.Name == s.Name })
			if i < 0 {
				changes = append(changes, s)
				continue
			}
			s.Reason = changes[i].Reason + "; " + s.Reason
			if s.Name == "net.ipv4.ip_local_reserved_ports" {
				s.Value = facts{reservedPorts: changes[i].Value}.reservedWith(portsOf(s.Value)...)
			}
			changes[i] = s
		}
	}
	return changes
}

// portsOf lists the ports of a reserved-port list.
func portsOf(list string) []int {
	set, err := census.ParseReservedPorts(list)
	if err != nil {
		return nil
	}
	var ports []int
	for p := 0; p < 1<<16; p++ {
		if set.Has(uint16(p)) {
			ports = append(ports, p)
		}
	}
	return ports
}

// WriteDropIn writes a commented file for /etc/sysctl.d holding only the
// changes the advice justifies, each with its reason.
func WriteDropIn(w io.Writer, r Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by tcpadvisor advise at %s.\n", r.GeneratedAt.Format("2006-01-02 15:04:05 UTC"))
	b.WriteString("# Each setting is one that a firing advice justifies; the advice (tcpadvisor advise) says why\n")
	b.WriteString("# and what to fix first. Install: cp THIS /etc/sysctl.d/90-tcpadvisor.conf && sysctl --system\n")
	changes := r.Changes()
	if len(changes) == 0 {
		b.WriteString("# No advice justifies a sysctl change.\n")
	}
	for _, s := range changes {
		b.WriteString("\n" + dropInLine(s))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// ErrNotRoot is returned by Apply for a user who cannot write /proc/sys.
var ErrNotRoot = errors.New("--apply writes /proc/sys and needs root: run it as root, or leave --apply out and install the --sysctl-file drop-in")

// Apply writes each change to /proc/sys under procPath and reports, per
// change, its value before and after. It refuses to run without root.
func Apply(w io.Writer, procPath string, changes []SysctlChange) error {
	if os.Geteuid() != 0 {
		return ErrNotRoot
	}
	for _, s := range changes {
		before, err := sysctl.Read(procPath, s.Name)
		if err != nil {
			return err
		}
		if err := sysctl.Write(procPath, s.Name, s.Value); err != nil {
			return err
		}
		after, err := sysctl.Read(procPath, s.Name)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%s: %s -> %s\n", s.Name, before, after)
	}
	return nil
}
