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

// hostNetns is the netns label of the host's own network namespace, with
// --collector.netns; without it, series have no netns label.
const hostNetns = "host"

// netnsOf returns the network namespace an advice is about: "" for the
// host's own.
func netnsOf(adv Advice) string {
	if ns := adv.Scope["netns"]; ns != hostNetns {
		return ns
	}
	return ""
}

// Changes collects the sysctl changes of every firing advice about the
// host's own network namespace: ChangesIn("").
func (r Report) Changes() []SysctlChange { return r.ChangesIn("") }

// ChangesIn collects the sysctl changes of every firing advice about one
// network namespace (its netns label; "" or "host" for the host's own), one
// per sysctl, with the reasons of every advice that asks for it. Each
// namespace has sysctls of its own: the changes of one never mix with
// another's. Reserved-port lists are merged; for any other sysctl two
// advices agree or the later one wins.
func (r Report) ChangesIn(netns string) []SysctlChange {
	if netns == hostNetns {
		netns = ""
	}
	var changes []SysctlChange
	for _, adv := range r.Advice {
		if netnsOf(adv) != netns {
			continue
		}
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

// Namespaces returns the network namespaces, other than the host's own,
// that firing advice asks sysctl changes of, sorted.
func (r Report) Namespaces() []string {
	var names []string
	for _, adv := range r.Advice {
		if ns := netnsOf(adv); ns != "" && len(adv.Sysctls) > 0 && !slices.Contains(names, ns) {
			names = append(names, ns)
		}
	}
	slices.Sort(names)
	return names
}

// portsOf lists the ports of a reserved-port list.
func portsOf(list string) []int {
	set, err := census.ParseReservedPorts(list)
	if err != nil {
		return nil
	}
	var ports []int
	for _, r := range set.Ranges() {
		for p := int(r.First); p <= int(r.Last); p++ {
			ports = append(ports, p)
		}
	}
	return ports
}

// WriteDropIn writes a commented file for /etc/sysctl.d holding only the
// changes the advice justifies in the host's own network namespace, each
// with its reason. Namespaces with changes of their own are named at the
// end, each with the command that writes its own drop-in content.
func WriteDropIn(w io.Writer, r Report) error {
	return WriteDropInFor(w, r, "")
}

// WriteDropInFor writes the drop-in of one network namespace (its netns
// label; "" for the host's own): a sysctl.d file for the host, the lines to
// apply inside the namespace for another.
func WriteDropInFor(w io.Writer, r Report, netns string) error {
	if netns == hostNetns {
		netns = ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by tcpadvisor advise at %s.\n", r.GeneratedAt.Format("2006-01-02 15:04:05 UTC"))
	b.WriteString("# Each setting is one that a firing advice justifies; the advice (tcpadvisor advise) says why\n")
	if netns == "" {
		b.WriteString("# and what to fix first. Install: cp THIS /etc/sysctl.d/90-tcpadvisor.conf && sysctl --system\n")
	} else {
		fmt.Fprintf(&b, "# and what to fix first. For network namespace %q only: apply inside it, as with\n", netns)
		fmt.Fprintf(&b, "# ip netns exec NAME sysctl -p THIS (a sysctl.d file would set the host's own).\n")
	}
	changes := r.ChangesIn(netns)
	if len(changes) == 0 {
		b.WriteString("# No advice justifies a sysctl change.\n")
	}
	for _, s := range changes {
		b.WriteString("\n" + dropInLine(s))
	}
	if netns == "" {
		for _, ns := range r.Namespaces() {
			fmt.Fprintf(&b, "\n# Network namespace %q has sysctl changes of its own, not written here.\n", ns)
		}
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
