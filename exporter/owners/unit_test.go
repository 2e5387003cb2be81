package owners

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestUnitFromCgroupPath(t *testing.T) {
	const (
		id  = "3f2a9c1b7d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8"
		uid = "6f1c3c2e-9a57-4b1e-8d9e-2b4f0c7a1d35"
	)
	underscored := strings.ReplaceAll(uid, "-", "_")
	for _, tc := range []struct{ path, want string }{
		{"/", "host"},
		{"", "host"},
		{"/init.scope", "init.scope"},
		{"/system.slice/nginx.service", "nginx.service"},
		{"/system.slice/redis-server.service", "redis-server.service"},
		// A delegated subtree below a service: the service names it.
		{"/system.slice/nginx.service/workers", "nginx.service"},
		{"/system.slice/docker-" + id + ".scope", "docker:3f2a9c1b7d4e"},
		{"/docker/" + id, "docker:3f2a9c1b7d4e"},
		{"/system.slice/containerd.service/containerd/" + id, "containerd:3f2a9c1b7d4e"},
		{"/system.slice/cri-containerd-" + id + ".scope", "containerd:3f2a9c1b7d4e"},
		{"/machine.slice/crio-" + id + ".scope", "crio:3f2a9c1b7d4e"},
		{"/machine.slice/crio-conmon-" + id + ".scope", "crio:3f2a9c1b7d4e"},
		{"/machine.slice/libpod-" + id + ".scope", "podman:3f2a9c1b7d4e"},
		{"/machine.slice/libpod-conmon-" + id + ".scope", "podman:3f2a9c1b7d4e"},
		// Rootless podman runs the container's processes in a child of its
		// scope.
		{"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + id + ".scope/container", "podman:3f2a9c1b7d4e"},
		// Kubernetes, systemd driver: the pod slice wins over the container
		// scope below it, and kubelet's _ become - again.
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + underscored + ".slice/cri-containerd-" + id + ".scope", "pod:" + uid},
		{"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + underscored + ".slice", "pod:" + uid},
		{"/kubepods.slice/kubepods-pod" + underscored + ".slice/crio-" + id + ".scope", "pod:" + uid},
		// kind nests kubelet's slices under its own.
		{"/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod" + underscored + ".slice/cri-containerd-" + id + ".scope", "pod:" + uid},
		// Kubernetes, cgroupfs driver.
		{"/kubepods/burstable/pod" + uid + "/" + id, "pod:" + uid},
		{"/kubepods/pod" + uid + "/" + id, "pod:" + uid},
		{"/kubepods/besteffort/pod" + uid, "pod:" + uid},
		// Slices of kubepods that are no pod's.
		{"/kubepods.slice/kubepods-burstable.slice", "kubepods-burstable.slice"},
		{"/user.slice/user-1000.slice/session-3.scope", "session-3.scope"},
		{"/system.slice/run-r123abc.scope", "run-r123abc.scope"},
		{"/user.slice/user-1000.slice/user@1000.service/app.slice/app-gnome-firefox-4242.scope", "app-gnome-firefox-4242.scope"},
		{"/user.slice/user-1000.slice/user@1000.service", "user@1000.service"},
		{"/user.slice", "user.slice"},
		{"/process_api/af059331c99ab81575088b0504b50bb5", "af059331c99ab81575088b0504b50bb5"},
		{"/lxc.payload.web1", "lxc.payload.web1"},
		// A pod directory outside kubepods is nothing special.
		{"/podman/pod1", "pod1"},
		// Control characters, which a delegated user may put in a
		// cgroup name, are shown as ps shows them.
		{"/user.slice/user-1000.slice/user@1000.service/a\x1b[31m\nb.service", "a?[31m?b.service"},
	} {
		if got := UnitFromCgroupPath(tc.path); got != tc.want {
			t.Errorf("UnitFromCgroupPath(%q) = %q, want %q", tc.path, got, tc.want)
		}
	}
}

func TestUnitFromCgroupPathBounded(t *testing.T) {
	for _, path := range []string{
		"/" + strings.Repeat("a", 255),
		"/" + strings.Repeat("é", 100) + ".service",
		"/bad\xff\xfe" + strings.Repeat("x", 80),
	} {
		got := UnitFromCgroupPath(path)
		if len(got) > maxLabelLen || !utf8.ValidString(got) {
			t.Errorf("UnitFromCgroupPath(%q) = %q: %d bytes, valid UTF-8 %v; want at most %d bytes of valid UTF-8",
				path, got, len(got), utf8.ValidString(got), maxLabelLen)
		}
	}
}

func TestUnitFromProcCgroup(t *testing.T) {
	for _, tc := range []struct{ name, cgroup, want string }{
		{"cgroup v2", "0::/system.slice/nginx.service\n", "nginx.service"},
		{"root", "0::/\n", "host"},
		{"hybrid, v2 line set", "12:memory:/system.slice/nginx.service\n1:name=systemd:/system.slice/nginx.service\n0::/system.slice/nginx.service\n", "nginx.service"},
		{"hybrid, v2 line at the root", "4:memory:/process_api/af059331c99ab81575088b0504b50bb5\n1:cpu:/\n0::/\n", "af059331c99ab81575088b0504b50bb5"},
		{"v1, systemd", "5:memory:/\n1:name=systemd:/system.slice/docker-3f2a9c1b7d4e5f60.scope\n", "docker:3f2a9c1b7d4e"},
		{"v1, cgroupfs docker", "11:pids:/docker/3f2a9c1b7d4e5f60\n10:memory:/docker/3f2a9c1b7d4e5f60\n", "docker:3f2a9c1b7d4e"},
		{"empty", "", "host"},
	} {
		if got := unitFromProcCgroup([]byte(tc.cgroup)); got != tc.want {
			t.Errorf("%s: unitFromProcCgroup(%q) = %q, want %q", tc.name, tc.cgroup, got, tc.want)
		}
	}
}

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		stat  string
		comm  string
		start uint64
		ok    bool
	}{
		{"1 (systemd) S 0 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 27 0 0\n", "systemd", 27, true},
		{"4242 (my (odd) proc) R 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 123456789 0 0\n", "my (odd) proc", 123456789, true},
		{"7 (a b) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99", "a b", 99, true},
		{"7 (short) S 1 1", "", 0, false},
		{"7 no parentheses", "", 0, false},
		{"7 (x) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 notanumber 0", "", 0, false},
	} {
		comm, start, ok := parseStat([]byte(tc.stat))
		if string(comm) != tc.comm || start != tc.start || ok != tc.ok {
			t.Errorf("parseStat(%q) = %q, %d, %v; want %q, %d, %v", tc.stat, comm, start, ok, tc.comm, tc.start, tc.ok)
		}
	}
}

func TestParseSocketLink(t *testing.T) {
	for _, tc := range []struct {
		link  string
		inode uint32
		ok    bool
	}{
		{"socket:[123]", 123, true},
		{"socket:[4294967295]", 4294967295, true},
		{"socket:[4294967296]", 0, false},
		{"socket:[]", 0, false},
		{"socket:[12a]", 0, false},
		{"pipe:[123]", 0, false},
		{"/dev/null", 0, false},
		{"anon_inode:[eventpoll]", 0, false},
	} {
		inode, ok := parseSocketLink([]byte(tc.link))
		if inode != tc.inode || ok != tc.ok {
			t.Errorf("parseSocketLink(%q) = %d, %v; want %d, %v", tc.link, inode, ok, tc.inode, tc.ok)
		}
	}
}

func TestParseCapEff(t *testing.T) {
	for _, tc := range []struct {
		status string
		caps   capabilities
		ok     bool
	}{
		{"Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n", 0x1ffffffffff, true},
		{"CapEff:\t0000000000080004\n", 1<<capSysPtrace | 1<<capDACReadSearch, true},
		{"Name:\tx\n", 0, false},
	} {
		caps, ok := parseCapEff([]byte(tc.status))
		if caps != tc.caps || ok != tc.ok {
			t.Errorf("parseCapEff(%q) = %#x, %v; want %#x, %v", tc.status, caps, ok, tc.caps, tc.ok)
		}
	}
}
