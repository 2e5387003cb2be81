package owners

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxLabelLen caps the length in bytes of a unit or process name: a cgroup
// directory may be named anything up to 255 bytes, and a label value that
// long would bloat every series that carries it.
const maxLabelLen = 64

// containerIDLen is how much of a container id names it, as docker ps shows.
const containerIDLen = 12

// HostUnit names the root cgroup: kernel threads and processes that no
// service manager placed anywhere.
const HostUnit = "host"

// UnitFromCgroupPath names the owner of a cgroup v2 path, such as
// "/system.slice/nginx.service" or
// "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice/cri-containerd-<id>.scope".
// It also names the path of a cgroup v1 hierarchy, as /proc/PID/cgroup shows
// it.
//
// A Kubernetes pod wins over the container below it, since a pod is what an
// operator knows; otherwise the deepest component that names a systemd
// unit or a container wins, and a path that names none is named by its last
// component. The root cgroup is "host". The name is at most 64 bytes of
// valid UTF-8.
func UnitFromCgroupPath(path string) string {
	path = strings.Trim(path, "/")
	if path == "" {
		return HostUnit
	}
	components := strings.Split(path, "/")
	for i, c := range components {
		if uid, ok := podUID(c, components[:i]); ok {
			return bounded("pod:" + uid)
		}
	}
	for i := len(components) - 1; i >= 0; i-- {
		if name, ok := unitName(components, i); ok {
			return bounded(name)
		}
	}
	return bounded(components[len(components)-1])
}

// podUID finds the pod uid in a component of a kubelet cgroup path, with the
// systemd driver (kubepods-burstable-pod<uid>.slice, where kubelet writes _
// for the - of the uid) or the cgroupfs driver (pod<uid> below kubepods).
func podUID(c string, ancestors []string) (string, bool) {
	if strings.HasPrefix(c, "kubepods") || strings.Contains(c, "-kubepods") {
		name, ok := strings.CutSuffix(c, ".slice")
		if !ok {
			return "", false
		}
		i := strings.LastIndex(name, "-pod")
		if i < 0 {
			return "", false
		}
		uid := name[i+len("-pod"):]
		return strings.ReplaceAll(uid, "_", "-"), uid != ""
	}
	uid, ok := strings.CutPrefix(c, "pod")
	if !ok || uid == "" {
		return "", false
	}
	for _, a := range ancestors {
		if a == "kubepods" {
			return uid, true
		}
	}
	return "", false
}

// unitName names component i of a cgroup path if it is a systemd unit or a
// container.
func unitName(components []string, i int) (string, bool) {
	c := components[i]
	if scope, ok := strings.CutSuffix(c, ".scope"); ok {
		// The prefixes of the container runtimes' scopes. The conmon
		// scopes of CRI-O and podman hold the monitor of a container and
		// are named after it as well.
		scopePrefixes := [...]struct{ prefix, runtime string }{
			{"docker-", "docker"},
			{"cri-containerd-", "containerd"},
			{"crio-conmon-", "crio"},
			{"crio-", "crio"},
			{"libpod-conmon-", "podman"},
			{"libpod-", "podman"},
		}
		for _, p := range scopePrefixes {
			if id, ok := strings.CutPrefix(scope, p.prefix); ok && id != "" {
				return p.runtime + ":" + shortID(id), true
			}
		}
		return c, true
	}
	if strings.HasSuffix(c, ".service") {
		return c, true
	}
	// The cgroupfs drivers of docker and containerd: /docker/<id>,
	// /containerd/<id>.
	if i > 0 && (components[i-1] == "docker" || components[i-1] == "containerd") {
		return components[i-1] + ":" + shortID(c), true
	}
	return "", false
}

func shortID(id string) string { return id[:min(len(id), containerIDLen)] }

// bounded makes s a valid UTF-8 string of at most maxLabelLen bytes, cut at a
// rune boundary, with every control character shown as '?', as ps shows
// them: Prometheus refuses label values that are not UTF-8, cgroup and
// process names are arbitrary bytes, and a terminal that prints a scrape
// would obey an escape sequence a local user put in a process name.
func bounded(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
	if len(s) <= maxLabelLen {
		return s
	}
	cut := maxLabelLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}
