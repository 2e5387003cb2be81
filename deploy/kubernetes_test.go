package deploy

import (
	"bytes"
	"flag"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tcpadvisor/tcpadvisor/internal/netnstest"
	"github.com/tcpadvisor/tcpadvisor/internal/proctest"
	"github.com/tcpadvisor/tcpadvisor/rules"
	"go.yaml.in/yaml/v3"
)

var update = flag.Bool("update", false, "regenerate kubernetes/prometheusrule.yaml from rules/")

const (
	kubernetesDir      = "kubernetes"
	prometheusRuleFile = "kubernetes/prometheusrule.yaml"
	// ruleSource is the rule file the PrometheusRule is generated from.
	ruleSource = "tcpadvisor.rules.yml"
	appLabel   = "app.kubernetes.io/name"
)

// generatePrometheusRule returns the PrometheusRule of the rules of
// rules/, with their comments. Aliases are expanded: each rule stands
// alone, as the Prometheus Operator's API gives it.
func generatePrometheusRule(t *testing.T) []byte {
	t.Helper()
	content, err := rules.Files.ReadFile(ruleSource)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(content, &doc); err != nil {
		t.Fatal(err)
	}
	root := doc.Content[0]
	expandAliases(root)
	var groups *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "groups" {
			groups = root.Content[i+1]
		}
	}
	if groups == nil {
		t.Fatalf("rules/%s has no groups", ruleSource)
	}
	str := func(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Value: s} }
	mapping := func(kv ...*yaml.Node) *yaml.Node { return &yaml.Node{Kind: yaml.MappingNode, Content: kv} }
	manifest := mapping(
		str("apiVersion"), str("monitoring.coreos.com/v1"),
		str("kind"), str("PrometheusRule"),
		str("metadata"), mapping(
			str("name"), str("tcpadvisor"),
			str("labels"), mapping(str(appLabel), str("tcpadvisor")),
		),
		str("spec"), mapping(str("groups"), groups),
	)
	manifest.HeadComment = "Generated from rules/" + ruleSource + " by\n" +
		"`go test ./deploy -run TestPrometheusRuleIsGenerated -update`: edit the rules\n" +
		"there. Add the labels your Prometheus selects rules by (kube-prometheus-stack:\n" +
		"release: <its release name>)."
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(manifest); err != nil {
		t.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// expandAliases replaces every alias under n by a copy of what it stands
// for, and drops the anchors.
func expandAliases(n *yaml.Node) {
	n.Anchor = ""
	for i, c := range n.Content {
		if c.Kind == yaml.AliasNode {
			copied := deepCopy(c.Alias)
			copied.HeadComment, copied.LineComment, copied.FootComment = c.HeadComment, c.LineComment, c.FootComment
			n.Content[i] = copied
			c = copied
		}
		expandAliases(c)
	}
}

func deepCopy(n *yaml.Node) *yaml.Node {
	c := *n
	c.Content = make([]*yaml.Node, len(n.Content))
	for i, e := range n.Content {
		c.Content[i] = deepCopy(e)
	}
	return &c
}

// TestPrometheusRuleIsGenerated keeps the PrometheusRule in sync with
// rules/: the file is what the generator writes now (-update rewrites it),
// its groups are the rule file's, and promtool accepts them.
func TestPrometheusRuleIsGenerated(t *testing.T) {
	want := generatePrometheusRule(t)
	if *update {
		if err := os.WriteFile(prometheusRuleFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(prometheusRuleFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is not what rules/%s gives; run go test ./deploy -run TestPrometheusRuleIsGenerated -update", prometheusRuleFile, ruleSource)
	}

	var manifest struct {
		Spec struct {
			Groups []any `yaml:"groups"`
		} `yaml:"spec"`
	}
	var source struct {
		Groups []any `yaml:"groups"`
	}
	if err := yaml.Unmarshal(got, &manifest); err != nil {
		t.Fatal(err)
	}
	content, err := rules.Files.ReadFile(ruleSource)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(content, &source); err != nil {
		t.Fatal(err)
	}
	if len(source.Groups) == 0 || !reflect.DeepEqual(manifest.Spec.Groups, source.Groups) {
		t.Errorf("the groups of %s differ from those of rules/%s", prometheusRuleFile, ruleSource)
	}

	promtool := proctest.LookPath(t, "promtool", "prometheus")
	spec, err := yaml.Marshal(map[string]any{"groups": manifest.Spec.Groups})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "spec.rules.yml")
	if err := os.WriteFile(path, spec, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules on the PrometheusRule's groups: %v\n%s", err, out)
	}
}

// manifest is the part of a Kubernetes object the tests read.
type manifest struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name      string            `yaml:"name"`
		Namespace string            `yaml:"namespace"`
		Labels    map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec yaml.Node `yaml:"spec"`
}

// kubernetesObjects reads every resource of the kustomization, by kind.
func kubernetesObjects(t *testing.T) map[string]manifest {
	t.Helper()
	var k struct {
		APIVersion string   `yaml:"apiVersion"`
		Kind       string   `yaml:"kind"`
		Namespace  string   `yaml:"namespace"`
		Resources  []string `yaml:"resources"`
	}
	readYAML(t, filepath.Join(kubernetesDir, "kustomization.yaml"), &k)
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" || k.Namespace == "" {
		t.Errorf("kustomization.yaml: %s %s namespace %q, want a kustomize.config.k8s.io/v1beta1 Kustomization with a namespace", k.APIVersion, k.Kind, k.Namespace)
	}
	files, err := filepath.Glob(filepath.Join(kubernetesDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if base := filepath.Base(f); base != "kustomization.yaml" && !slices.Contains(k.Resources, base) {
			t.Errorf("kustomization.yaml does not list %s", base)
		}
	}
	objects := map[string]manifest{}
	for _, r := range k.Resources {
		var m manifest
		readYAML(t, filepath.Join(kubernetesDir, r), &m)
		if _, dup := objects[m.Kind]; dup {
			t.Errorf("%s: a second %s", r, m.Kind)
		}
		if m.Metadata.Name != "tcpadvisor" || m.Metadata.Labels[appLabel] != "tcpadvisor" {
			t.Errorf("%s: name %q, labels %v; want tcpadvisor, with %s: tcpadvisor", r, m.Metadata.Name, m.Metadata.Labels, appLabel)
		}
		if m.Metadata.Namespace != "" {
			t.Errorf("%s: namespace %q; the kustomization sets it", r, m.Metadata.Namespace)
		}
		objects[m.Kind] = m
	}
	want := map[string]string{
		"DaemonSet":      "apps/v1",
		"Service":        "v1",
		"ServiceMonitor": "monitoring.coreos.com/v1",
		"PrometheusRule": "monitoring.coreos.com/v1",
	}
	for kind, apiVersion := range want {
		if m, ok := objects[kind]; !ok || m.APIVersion != apiVersion {
			t.Errorf("want a %s of %s, have %+v", kind, apiVersion, m.APIVersion)
		}
	}
	if len(objects) != len(want) {
		t.Errorf("objects of kinds %v, want those of %v", slices.Sorted(func(yield func(string) bool) {
			for k := range objects {
				if !yield(k) {
					return
				}
			}
		}), want)
	}
	return objects
}

// daemonSet is the part of a DaemonSet's spec the tests read.
type daemonSet struct {
	Selector struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	} `yaml:"selector"`
	Template struct {
		Metadata struct {
			Labels map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
		Spec struct {
			HostNetwork     bool   `yaml:"hostNetwork"`
			HostPID         bool   `yaml:"hostPID"`
			DNSPolicy       string `yaml:"dnsPolicy"`
			SecurityContext struct {
				RunAsNonRoot *bool `yaml:"runAsNonRoot"`
				RunAsUser    *int  `yaml:"runAsUser"`
				RunAsGroup   *int  `yaml:"runAsGroup"`
			} `yaml:"securityContext"`
			Containers []container `yaml:"containers"`
			Volumes    []struct {
				Name     string     `yaml:"name"`
				EmptyDir *yaml.Node `yaml:"emptyDir"`
				HostPath *struct {
					Path string `yaml:"path"`
					Type string `yaml:"type"`
				} `yaml:"hostPath"`
			} `yaml:"volumes"`
		} `yaml:"spec"`
	} `yaml:"template"`
}

type container struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	Ports   []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	SecurityContext struct {
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		Privileged               *bool `yaml:"privileged"`
		Capabilities             struct {
			Add  []string `yaml:"add"`
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	VolumeMounts   []struct {
		Name             string `yaml:"name"`
		MountPath        string `yaml:"mountPath"`
		ReadOnly         bool   `yaml:"readOnly"`
		MountPropagation string `yaml:"mountPropagation"`
	} `yaml:"volumeMounts"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
}

func decodeSpec(t *testing.T, m manifest, v any) {
	t.Helper()
	if err := m.Spec.Decode(v); err != nil {
		t.Fatalf("%s spec: %v", m.Kind, err)
	}
}

// readDaemonSet returns the DaemonSet's spec and its one container.
func readDaemonSet(t *testing.T, objects map[string]manifest) (daemonSet, container) {
	t.Helper()
	var ds daemonSet
	decodeSpec(t, objects["DaemonSet"], &ds)
	if len(ds.Template.Spec.Containers) != 1 {
		t.Fatalf("DaemonSet: %d containers, want 1", len(ds.Template.Spec.Containers))
	}
	return ds, ds.Template.Spec.Containers[0]
}

// hostMounts are the only directories of the node the DaemonSet may mount,
// each read-only at the path a flag of the container's args names (or the
// flag's default), with the mount propagation it needs.
var hostMounts = map[string]struct {
	hostPath, flag, flagDefault, propagation string
}{
	// The node's cgroup v2 tree, for owner attribution: the container's
	// own /sys/fs/cgroup is its cgroup namespace's, one cgroup.
	"/host/sys/fs/cgroup": {"/sys/fs/cgroup", "--path.cgroupfs", "/sys/fs/cgroup", ""},
	// The namespaces ip netns names, for --collector.netns; a namespace
	// named after the pod started must show.
	"/run/netns": {"/run/netns", "--path.run-netns", "/run/netns", "HostToContainer"},
}

// TestKubernetesManifests checks the objects of deploy/kubernetes and how
// they fit together: the DaemonSet runs in the host's network and PID
// namespaces with the unit's capabilities (CAP_SYS_PTRACE and
// CAP_DAC_READ_SEARCH, after dropping all) as root, since a non-root
// container gets no ambient capability, on a read-only root with a
// writable /tmp and only the host directories of hostMounts, read-only;
// the Service selects its pods and names its port; the ServiceMonitor
// selects the Service and scrapes that port.
func TestKubernetesManifests(t *testing.T) {
	objects := kubernetesObjects(t)
	ds, c := readDaemonSet(t, objects)
	pod := ds.Template.Spec
	if !reflect.DeepEqual(ds.Selector.MatchLabels, map[string]string{appLabel: "tcpadvisor"}) || ds.Template.Metadata.Labels[appLabel] != "tcpadvisor" {
		t.Errorf("DaemonSet: selector %v, pod labels %v; want both %s: tcpadvisor", ds.Selector.MatchLabels, ds.Template.Metadata.Labels, appLabel)
	}
	// hostPID: owner attribution reads the node's /proc/PID/fd, and
	// --collector.netns its /proc/PID/ns/net.
	if !pod.HostNetwork || pod.DNSPolicy != "ClusterFirstWithHostNet" || !pod.HostPID {
		t.Errorf("DaemonSet: hostNetwork %v, dnsPolicy %q, hostPID %v; want the host's network with ClusterFirstWithHostNet, and the host's PID namespace",
			pod.HostNetwork, pod.DNSPolicy, pod.HostPID)
	}
	// Root, said explicitly (the image's USER is nobody): the added
	// capabilities reach a non-root process only as ambient ones, which
	// Kubernetes does not grant.
	sc := pod.SecurityContext
	if sc.RunAsNonRoot == nil || *sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != 0 || sc.RunAsGroup == nil || *sc.RunAsGroup != 0 {
		t.Errorf("DaemonSet: pod securityContext %+v, want runAsUser and runAsGroup 0 with runAsNonRoot false", sc)
	}
	csc := c.SecurityContext
	if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation || csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem ||
		(csc.Privileged != nil && *csc.Privileged) {
		t.Errorf("container securityContext %+v, want no privilege escalation, a read-only root, not privileged", csc)
	}
	// All dropped, then the two that attribution needs and the two that
	// the connection tracer needs, which are the systemd unit's bounding
	// set: the same daemon has the same privileges however it is deployed.
	wantCaps := []string{"CAP_BPF", "CAP_DAC_READ_SEARCH", "CAP_PERFMON", "CAP_SYS_PTRACE"}
	unitCaps := strings.Fields(readUnit(t, serviceFile).one(t, "Service.CapabilityBoundingSet"))
	slices.Sort(unitCaps)
	var added []string
	for _, c := range csc.Capabilities.Add {
		added = append(added, "CAP_"+c)
	}
	slices.Sort(added)
	if !reflect.DeepEqual(csc.Capabilities.Drop, []string{"ALL"}) || !slices.Equal(added, wantCaps) {
		t.Errorf("container capabilities %+v, want drop ALL and add %q", csc.Capabilities, wantCaps)
	}
	if !slices.Equal(unitCaps, wantCaps) {
		t.Errorf("the unit's CapabilityBoundingSet %q, the container's %q: want the same", unitCaps, added)
	}
	// The advisor's store writes to the temporary directory.
	tmp := false
	for _, m := range c.VolumeMounts {
		for _, v := range pod.Volumes {
			if m.MountPath == "/tmp" && m.Name == v.Name && v.EmptyDir != nil {
				tmp = true
			}
		}
	}
	if !tmp {
		t.Error("DaemonSet: no emptyDir at /tmp; the advisor's store needs a writable temporary directory")
	}
	// The host's network is read through hostNetwork and its processes
	// through hostPID; from the host's file system only what hostMounts
	// lists, read-only, where the container's flags look.
	mounted := map[string]bool{}
	for _, v := range pod.Volumes {
		if v.HostPath == nil {
			continue
		}
		ok := false
		for _, m := range c.VolumeMounts {
			if m.Name != v.Name {
				continue
			}
			want, known := hostMounts[m.MountPath]
			if !known || want.hostPath != v.HostPath.Path {
				t.Errorf("DaemonSet: volume %s mounts the host's %s at %s; want only %v", v.Name, v.HostPath.Path, m.MountPath, hostMounts)
				continue
			}
			if !m.ReadOnly || m.MountPropagation != want.propagation {
				t.Errorf("DaemonSet: mount %s readOnly %v, mountPropagation %q; want read-only, %q", m.MountPath, m.ReadOnly, m.MountPropagation, want.propagation)
			}
			path := want.flagDefault
			for _, a := range c.Args {
				if p, found := strings.CutPrefix(a, want.flag+"="); found {
					path = p
				}
			}
			if path != m.MountPath {
				t.Errorf("DaemonSet: %s is mounted at %s, but %s is %s", v.HostPath.Path, m.MountPath, want.flag, path)
			}
			ok = true
			mounted[m.MountPath] = true
		}
		if !ok {
			t.Errorf("DaemonSet: volume %s from the host is not mounted as hostMounts wants", v.Name)
		}
	}
	for path := range hostMounts {
		if !mounted[path] {
			t.Errorf("DaemonSet: nothing mounted at %s", path)
		}
	}

	if len(c.Command) > 0 {
		t.Errorf("container command %q: the image's entrypoint is tcpadvisor, give args only", c.Command)
	}
	checkFlags(t, "DaemonSet args", c.Args)
	port := 0
	for _, a := range c.Args {
		if addr, ok := strings.CutPrefix(a, "--web.listen-address="); ok {
			port, _ = strconv.Atoi(addr[strings.LastIndex(addr, ":")+1:])
		}
	}
	if len(c.Ports) != 1 || c.Ports[0].ContainerPort != port || port == 0 {
		t.Fatalf("container ports %+v, want the one of --web.listen-address (%d)", c.Ports, port)
	}
	portName := c.Ports[0].Name
	for _, p := range []*probe{c.ReadinessProbe, c.LivenessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Port != portName || p.HTTPGet.Path != "/" {
			t.Errorf("container probes: want readiness and liveness GET / on port %s", portName)
			break
		}
	}

	var svc struct {
		Selector map[string]string `yaml:"selector"`
		Ports    []struct {
			Name       string `yaml:"name"`
			Port       int    `yaml:"port"`
			TargetPort string `yaml:"targetPort"`
		} `yaml:"ports"`
	}
	decodeSpec(t, objects["Service"], &svc)
	if !reflect.DeepEqual(svc.Selector, ds.Template.Metadata.Labels) {
		t.Errorf("Service selector %v, want the pods' labels %v", svc.Selector, ds.Template.Metadata.Labels)
	}
	if len(svc.Ports) != 1 || svc.Ports[0].TargetPort != portName || svc.Ports[0].Port != port {
		t.Fatalf("Service ports %+v, want %d to the container's port %s", svc.Ports, port, portName)
	}

	var sm struct {
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Endpoints []struct {
			Port string `yaml:"port"`
			Path string `yaml:"path"`
		} `yaml:"endpoints"`
	}
	decodeSpec(t, objects["ServiceMonitor"], &sm)
	for k, v := range sm.Selector.MatchLabels {
		if objects["Service"].Metadata.Labels[k] != v {
			t.Errorf("ServiceMonitor selects %s=%s, which the Service lacks", k, v)
		}
	}
	if len(sm.Selector.MatchLabels) == 0 || len(sm.Endpoints) != 1 || sm.Endpoints[0].Port != svc.Ports[0].Name || (sm.Endpoints[0].Path != "" && sm.Endpoints[0].Path != "/metrics") {
		t.Errorf("ServiceMonitor %+v, want it to select the Service and scrape its port %s at /metrics", sm, svc.Ports[0].Name)
	}
}

// TestKubernetesImage checks that the Dockerfile makes the image the
// DaemonSet expects: tcpadvisor as the entrypoint, and nobody as the user,
// so that the image run by itself (docker run) has no privilege; the pod
// names its user explicitly and does not depend on it.
func TestKubernetesImage(t *testing.T) {
	ds, _ := readDaemonSet(t, kubernetesObjects(t))
	content, err := os.ReadFile(filepath.Join(kubernetesDir, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if sc := ds.Template.Spec.SecurityContext; sc.RunAsUser == nil || sc.RunAsGroup == nil {
		t.Errorf("DaemonSet: pod securityContext %+v, want an explicit runAsUser and runAsGroup", sc)
	}
	for _, want := range []string{
		"\nUSER 65534:65534\n",
		"\nENTRYPOINT [\"" + installedBinary + "\"]\n",
		"CGO_ENABLED=0 go build",
	} {
		if !strings.Contains(string(content), want) {
			t.Errorf("Dockerfile lacks %q", strings.TrimSpace(want))
		}
	}
	if m := regexp.MustCompile(`(?m)^FROM golang:(\S+) AS build$`).FindSubmatch(content); m == nil {
		t.Error("Dockerfile: no golang build stage")
	}
}

// TestIntegrationKubernetesContainer runs the DaemonSet's container as the
// kubelet would, as far as that can be done without one: in a network
// namespace of its own (the pod's would be the host's) and the host's PID
// namespace, with the container's args (the host paths in place of their
// mounts), its user and group, only its capabilities and no privilege
// escalation, and TMPDIR standing for the emptyDir at /tmp. Every collector
// must succeed, and both sources of owner attribution work.
func TestIntegrationKubernetesContainer(t *testing.T) {
	if !netnstest.Enter(t) {
		return
	}
	setpriv := proctest.LookPath(t, "setpriv", "util-linux")
	ds, c := readDaemonSet(t, kubernetesObjects(t))
	sc := ds.Template.Spec.SecurityContext
	if err := os.Chmod(filepath.Dir(binary), 0o755); err != nil {
		t.Fatal(err)
	}
	// Not under t.TempDir(), which only its owner may enter.
	emptyDir, err := os.MkdirTemp("", "tcpadvisor-emptydir-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(emptyDir) })
	if err := os.Chmod(emptyDir, 0o777); err != nil { // as the kubelet makes an emptyDir
		t.Fatal(err)
	}
	bounding := "-all"
	for _, c := range c.SecurityContext.Capabilities.Add {
		bounding += ",+" + strings.ToLower(c)
	}
	args := []string{"--reuid=" + strconv.Itoa(*sc.RunAsUser), "--regid=" + strconv.Itoa(*sc.RunAsGroup), "--clear-groups",
		"--bounding-set=" + bounding, "--inh-caps=-all", "--no-new-privs", binary}
	// The mounts of the host's directories are the directories themselves.
	hostPaths := map[string]string{}
	for _, v := range ds.Template.Spec.Volumes {
		for _, m := range c.VolumeMounts {
			if v.HostPath != nil && m.Name == v.Name {
				hostPaths[m.MountPath] = v.HostPath.Path
			}
		}
	}
	for _, a := range c.Args {
		if flag, path, ok := strings.Cut(a, "="); ok && hostPaths[path] != "" {
			a = flag + "=" + hostPaths[path]
		}
		args = append(args, a)
	}
	cmd := exec.Command(setpriv, args...)
	cmd.Env = []string{"TMPDIR=" + emptyDir}
	daemon := proctest.Start(t, "tcpadvisor", cmd)
	addr := "127.0.0.1:" + strconv.Itoa(c.Ports[0].ContainerPort)
	daemon.WaitReady(t, http.DefaultClient, "http://"+addr+c.ReadinessProbe.HTTPGet.Path)
	metrics := get(t, "http://"+addr+"/metrics")
	for _, name := range []string{"connections", "netstat", "owners", "sockets", "sockstat", "sysctl"} {
		if want := `tcpadvisor_scrape_collector_success{collector="` + name + `"} 1`; !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if !strings.Contains(metrics, "tcpadvisor_tracer_up 1") {
		t.Errorf("with the container's capabilities, the connection tracer is not up:\n%s", grepLines(metrics, "tcpadvisor_tracer_"))
	}
	// The capabilities are what makes the other users' processes readable:
	// attribution must not miss them. (Whether it misses cgroup v2 or the
	// ptrace access of a process of another user namespace depends on the
	// machine that runs the test, not on the manifest.)
	for _, capability := range c.SecurityContext.Capabilities.Add {
		if bad := `tcpadvisor_owner_attribution_missing{missing="CAP_` + capability + `"}`; strings.Contains(metrics, bad) {
			t.Errorf("with the container's capabilities, attribution still misses CAP_%s:\n%s", capability, grepLines(metrics, "tcpadvisor_owner_"))
		}
	}
}

// grepLines returns the lines of s that contain substr.
func grepLines(s, substr string) string {
	var out []string
	for line := range strings.Lines(s) {
		if strings.Contains(line, substr) {
			out = append(out, strings.TrimSpace(line))
		}
	}
	return strings.Join(out, "\n")
}
