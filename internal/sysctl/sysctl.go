// Package sysctl reads and writes kernel settings under /proc/sys by their
// dotted names ("net.ipv4.tcp_tw_reuse"). It is the one place tcpadvisor
// turns a sysctl's name into a file: the advisor's --apply, the workload's
// namespaces and the tests' namespaces all go through it. Reading many
// values for metrics goes through github.com/prometheus/procfs instead.
//
// The files under /proc/sys/net resolve in the network namespace of the
// calling thread: a caller that reads or writes another namespace's value
// must run on a thread in that namespace.
package sysctl

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// DefaultProcPath is where the proc filesystem is mounted on a host.
const DefaultProcPath = "/proc"

// Path returns the file of the sysctl name under the proc filesystem
// mounted at procPath. A name that would leave /proc/sys (an empty
// component, "..") gives an error.
func Path(procPath, name string) (string, error) {
	parts := strings.Split(name, ".")
	for _, p := range parts {
		if p == "" || p == ".." || strings.ContainsRune(p, '/') {
			return "", fmt.Errorf("sysctl %q: not a dotted sysctl name such as net.ipv4.tcp_tw_reuse", name)
		}
	}
	return filepath.Join(append([]string{procPath, "sys"}, parts...)...), nil
}

// Read returns the value of the sysctl name, its fields separated by single
// spaces ("32768 60999" for a port range) and without the final newline.
func Read(procPath, name string) (string, error) {
	path, err := Path(procPath, name)
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", name, err)
	}
	return strings.Join(strings.Fields(string(b)), " "), nil
}

// Write sets the sysctl name to value.
func Write(procPath, name, value string) error {
	path, err := Path(procPath, name)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, []byte(value+"\n"), 0o644); err != nil {
		return fmt.Errorf("set %s=%s: %w", name, value, err)
	}
	return nil
}
