package sysctl

import (
	"os"
	"path/filepath"
	"testing"
)

func TestPath(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		bad        bool
	}{
		{name: "net.ipv4.tcp_tw_reuse", want: "/proc/sys/net/ipv4/tcp_tw_reuse"},
		{name: "net.core.somaxconn", want: "/proc/sys/net/core/somaxconn"},
		{name: "", bad: true},
		{name: "net..ipv4", bad: true},
		{name: "net.ipv4.", bad: true},
		{name: "net.../etc/passwd", bad: true},
		{name: "net/ipv4.x", bad: true},
	} {
		got, err := Path("/proc", tc.name)
		if tc.bad {
			if err == nil {
				t.Errorf("Path(%q) = %q, want an error", tc.name, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Path(%q) = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}

// TestReadWrite writes and reads back a fixture sysctl: values keep their
// fields, one space apart, and lose the newline.
func TestReadWrite(t *testing.T) {
	proc := t.TempDir()
	dir := filepath.Join(proc, "sys", "net", "ipv4")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ip_local_port_range"), []byte("32768\t60999\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if v, err := Read(proc, "net.ipv4.ip_local_port_range"); err != nil || v != "32768 60999" {
		t.Fatalf("Read = %q, %v; want \"32768 60999\"", v, err)
	}
	if err := Write(proc, "net.ipv4.ip_local_port_range", "40000 40099"); err != nil {
		t.Fatal(err)
	}
	if v, err := Read(proc, "net.ipv4.ip_local_port_range"); err != nil || v != "40000 40099" {
		t.Fatalf("after Write, Read = %q, %v", v, err)
	}
	if _, err := Read(proc, "net.ipv4.tcp_no_such_thing"); err == nil {
		t.Error("Read of a missing sysctl: no error")
	}
	if err := Write(filepath.Join(proc, "missing"), "net.ipv4.tcp_tw_reuse", "1"); err == nil {
		t.Error("Write under a missing proc: no error")
	}
}
