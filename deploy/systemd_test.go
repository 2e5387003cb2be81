package deploy

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tcpadvisor/tcpadvisor/internal/netnstest"
	"github.com/tcpadvisor/tcpadvisor/internal/proctest"
)

const (
	serviceFile     = "systemd/tcpadvisor.service"
	socketFile      = "systemd/tcpadvisor.socket"
	netnsDropInFile = "systemd/tcpadvisor-netns.conf"
	defaultsFile    = "systemd/tcpadvisor.default"
	// installedBinary is where the unit, and the Debian package, put the
	// binary.
	installedBinary = "/usr/bin/tcpadvisor"
	// maxExposure is the highest `systemd-analyze security` exposure the
	// service may have (0 is locked down, 10 is unprotected).
	maxExposure = 2.0
)

// unit is a parsed unit file: the values of each "Section.Key", in order.
type unit map[string][]string

// readUnit parses a systemd unit file. Continuation lines are not used in
// the project's units, and are refused.
func readUnit(t *testing.T, path string) unit {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
		case strings.HasSuffix(line, `\`):
			t.Fatalf("%s:%d: a continuation line; write the setting on one line", path, n)
		default:
			key, value, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not a setting of a section: %q", path, n, line)
			}
			k := section + "." + strings.TrimSpace(key)
			u[k] = append(u[k], strings.TrimSpace(value))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

// one returns the one value of key, failing the test if there are more.
func (u unit) one(t *testing.T, key string) string {
	t.Helper()
	if len(u[key]) != 1 {
		t.Fatalf("%s: %d values %q, want one", key, len(u[key]), u[key])
	}
	return u[key][0]
}

// testUnits copies the units into a temporary directory with ExecStart
// pointing at the binary built for the tests: systemd-analyze checks that
// the program exists, and its --root does not apply to that check.
func testUnits(t *testing.T) (service, socket string) {
	t.Helper()
	dir := t.TempDir()
	content, err := os.ReadFile(serviceFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(content), "ExecStart="+installedBinary+" ") {
		t.Fatalf("%s: ExecStart does not run %s", serviceFile, installedBinary)
	}
	service = filepath.Join(dir, "tcpadvisor.service")
	socket = filepath.Join(dir, "tcpadvisor.socket")
	if err := os.WriteFile(service, []byte(strings.Replace(string(content), "ExecStart="+installedBinary, "ExecStart="+binary, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	content, err = os.ReadFile(socketFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(socket, content, 0o644); err != nil {
		t.Fatal(err)
	}
	return service, socket
}

// TestSystemdAnalyzeVerify: systemd-analyze verify finds nothing to say
// about the units.
func TestSystemdAnalyzeVerify(t *testing.T) {
	analyze := proctest.LookPath(t, "systemd-analyze", "systemd")
	service, socket := testUnits(t)
	out, err := exec.Command(analyze, "verify", service, socket).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestSystemdAnalyzeSecurity asserts the exposure level that
// `systemd-analyze security --offline=true` prints for the service.
func TestSystemdAnalyzeSecurity(t *testing.T) {
	analyze := proctest.LookPath(t, "systemd-analyze", "systemd")
	service, _ := testUnits(t)
	out, err := exec.Command(analyze, "security", "--offline=true", "--no-pager", service).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for tcpadvisor\.service: (\d+\.\d+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in the output of systemd-analyze security:\n%s", out)
	}
	exposure, _ := strconv.ParseFloat(string(m[1]), 64)
	t.Logf("exposure level %.1f", exposure)
	if exposure > maxExposure {
		t.Errorf("exposure level %.1f, want at most %.1f:\n%s", exposure, maxExposure, out)
	}
}

// TestSystemdServiceSettings pins the settings docs/deploy.md promises, and
// keeps out the two that would blind tcpadvisor: PrivateNetwork= would
// show it an empty network namespace, ProcSubset=pid would hide /proc/sys
// and /proc/net.
func TestSystemdServiceSettings(t *testing.T) {
	u := readUnit(t, serviceFile)
	for key, want := range map[string]string{
		"Unit.Requires":                   "tcpadvisor.socket",
		"Service.EnvironmentFile":         "-/etc/default/tcpadvisor",
		"Service.ExecStart":               installedBinary + " serve --web.systemd-socket $ARGS",
		"Service.ExecReload":              "/bin/kill -HUP $MAINPID",
		"Service.DynamicUser":             "yes",
		"Service.CapabilityBoundingSet":   "CAP_SYS_PTRACE CAP_DAC_READ_SEARCH CAP_BPF CAP_PERFMON",
		"Service.AmbientCapabilities":     "CAP_SYS_PTRACE CAP_DAC_READ_SEARCH CAP_BPF CAP_PERFMON",
		"Service.NoNewPrivileges":         "yes",
		"Service.ProtectSystem":           "strict",
		"Service.ProtectHome":             "yes",
		"Service.PrivateTmp":              "yes",
		"Service.ProtectKernelTunables":   "yes",
		"Service.RestrictAddressFamilies": "AF_NETLINK AF_UNIX AF_INET AF_INET6",
		"Install.WantedBy":                "multi-user.target",
	} {
		if got := u.one(t, key); got != want {
			t.Errorf("%s: %s=%s, want %s", serviceFile, key, got, want)
		}
	}
	if got := u["Service.SystemCallFilter"]; len(got) == 0 || got[0] != "@system-service" {
		t.Errorf("%s: SystemCallFilter=%q, want @system-service first", serviceFile, got)
	}
	// bpf is in @privileged, which the unit denies: the connection tracer
	// needs it allowed again, after the deny.
	if got := u["Service.SystemCallFilter"]; got[len(got)-1] != "bpf" {
		t.Errorf("%s: SystemCallFilter=%q, want bpf allowed last", serviceFile, got)
	}
	for _, key := range []string{"Service.PrivateNetwork", "Service.ProcSubset", "Service.User", "Service.PrivateUsers"} {
		if v, ok := u[key]; ok {
			t.Errorf("%s: %s=%s must not be set", serviceFile, key, v)
		}
	}
	s := readUnit(t, socketFile)
	if got := s.one(t, "Socket.ListenStream"); got != "10067" {
		t.Errorf("%s: ListenStream=%s, want tcpadvisor's default port 10067", socketFile, got)
	}
	if got := s.one(t, "Install.WantedBy"); got != "sockets.target" {
		t.Errorf("%s: WantedBy=%s, want sockets.target", socketFile, got)
	}
}

// defaultArgs returns the ARGS of the environment file, and every flag its
// comments give as an example.
func defaultArgs(t *testing.T) (args, examples []string) {
	t.Helper()
	content, err := os.ReadFile(defaultsFile)
	if err != nil {
		t.Fatal(err)
	}
	assignment := regexp.MustCompile(`^#?\s*ARGS="([^"]*)"$`)
	found := false
	for line := range strings.Lines(string(content)) {
		m := assignment.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		if strings.HasPrefix(line, "#") {
			examples = append(examples, strings.Fields(m[1])...)
		} else {
			found = true
			args = strings.Fields(m[1])
		}
	}
	if !found {
		t.Fatalf("%s sets no ARGS", defaultsFile)
	}
	return args, examples
}

// TestSystemdFlagsAreReal checks the flags of ExecStart and of the
// environment file, examples included, against tcpadvisor serve --help.
func TestSystemdFlagsAreReal(t *testing.T) {
	u := readUnit(t, serviceFile)
	checkFlags(t, serviceFile+": ExecStart", strings.Fields(u.one(t, "Service.ExecStart")))
	args, examples := defaultArgs(t)
	if len(examples) == 0 {
		t.Errorf("%s gives no example", defaultsFile)
	}
	checkFlags(t, defaultsFile, append(args, examples...))
}

// TestIntegrationSystemdServiceUnprivileged runs the service as systemd
// would, as far as that can be done without systemd: the socket is bound
// first and passed to the daemon (systemd-socket-activate), which runs the
// unit's ExecStart with the environment file's ARGS, as an unprivileged
// user standing for the dynamic one, with the unit's capabilities and no
// new privileges (setpriv). Every collector must succeed, and owners be
// attributed from both sources.
func TestIntegrationSystemdServiceUnprivileged(t *testing.T) {
	metrics := runUnitUnprivileged(t, readUnit(t, serviceFile))
	for _, want := range []string{
		`tcpadvisor_scrape_collector_success{collector="netstat"} 1`,
		`tcpadvisor_scrape_collector_success{collector="owners"} 1`,
		`tcpadvisor_scrape_collector_success{collector="sockets"} 1`,
		`tcpadvisor_scrape_collector_success{collector="sockstat"} 1`,
		`tcpadvisor_scrape_collector_success{collector="sysctl"} 1`,
		`tcpadvisor_owner_attribution_up{source="cgroup"} 1`,
		`tcpadvisor_scrape_collector_success{collector="connections"} 1`,
		`tcpadvisor_tracer_up 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	for _, capability := range []string{"CAP_SYS_PTRACE", "CAP_DAC_READ_SEARCH"} {
		if missing := `tcpadvisor_owner_attribution_missing{missing="` + capability + `"} 1`; strings.Contains(metrics, missing) {
			t.Errorf("with the unit's capabilities, metrics say %s", missing)
		}
	}
}

// TestIntegrationSystemdNetnsDropIn runs the service with the netns
// drop-in's capabilities on top of the unit's, and --collector.netns: the
// namespaces are entered and collected, the host's and a test's own.
func TestIntegrationSystemdNetnsDropIn(t *testing.T) {
	u := readUnit(t, serviceFile)
	dropIn := readUnit(t, netnsDropInFile)
	for _, key := range []string{"Service.CapabilityBoundingSet", "Service.AmbientCapabilities"} {
		u[key] = []string{u.one(t, key) + " " + dropIn.one(t, key)}
	}
	if got := dropIn["Service.RestrictNamespaces"]; !slices.Equal(got, []string{"", "net"}) {
		t.Errorf("%s: RestrictNamespaces=%q, want a reset then net", netnsDropInFile, got)
	}
	if got := dropIn.one(t, "Service.SystemCallFilter"); got != "setns" {
		t.Errorf("%s: SystemCallFilter=%s, want setns", netnsDropInFile, got)
	}
	name := fmt.Sprintf("tcpadv-deploy-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Skipf("cannot create a network namespace: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "delete", name).Run() })

	metrics := runUnitUnprivileged(t, u, "--collector.netns")
	for _, want := range []string{
		`tcpadvisor_scrape_collector_success{collector="netns"} 1`,
		`tcpadvisor_netns_collector_success{collector="sockets",netns="host"} 1`,
		`tcpadvisor_netns_collector_success{collector="sockets",netns="` + name + `"} 1`,
		`tcpadvisor_netns_collector_success{collector="sysctl",netns="` + name + `"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// runUnitUnprivileged starts the daemon as unit u would run it, with
// extraArgs after its ARGS, and returns its metrics.
func runUnitUnprivileged(t *testing.T, u unit, extraArgs ...string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch to nobody with setpriv")
	}
	activate := proctest.LookPath(t, "systemd-socket-activate", "systemd")
	setpriv := proctest.LookPath(t, "setpriv", "util-linux")
	// nobody must be able to execute the binary from its temporary dir.
	if err := os.Chmod(filepath.Dir(binary), 0o755); err != nil {
		t.Fatal(err)
	}

	priv := []string{"--reuid=65534", "--regid=65534", "--clear-groups", "--bounding-set=-all" + capList(u.one(t, "Service.CapabilityBoundingSet"))}
	if ambient := capList(u.one(t, "Service.AmbientCapabilities")); ambient != "" {
		priv = append(priv, "--inh-caps=-all"+ambient, "--ambient-caps=-all"+ambient)
	} else {
		priv = append(priv, "--inh-caps=-all")
	}
	if u.one(t, "Service.NoNewPrivileges") == "yes" {
		priv = append(priv, "--no-new-privs")
	}
	args, _ := defaultArgs(t)
	var execStart []string
	for _, f := range strings.Fields(u.one(t, "Service.ExecStart")) {
		switch f {
		case installedBinary:
			execStart = append(execStart, binary)
		case "$ARGS":
			execStart = append(execStart, args...)
			execStart = append(execStart, extraArgs...)
		default:
			execStart = append(execStart, f)
		}
	}

	addr := netnstest.FreeAddress(t)
	cmdline := append([]string{"-l", addr, setpriv}, priv...)
	cmdline = append(cmdline, execStart...)
	daemon := proctest.Start(t, "tcpadvisor", exec.Command(activate, cmdline...))
	// systemd-socket-activate starts the daemon at the first connection,
	// which waits in the socket's queue: the first GET is answered.
	daemon.WaitReady(t, http.DefaultClient, "http://"+addr+"/")
	out, err := exec.Command("ps", "-o", "user=,comm=", "-p", strconv.Itoa(daemon.Cmd.Process.Pid)).Output()
	if err != nil || strings.Join(strings.Fields(string(out)), " ") != "nobody tcpadvisor" {
		t.Errorf("ps says the daemon is %q (%v), want nobody running tcpadvisor", out, err)
	}
	// The first scrape may run while attribution makes its first pass.
	get(t, "http://"+addr+"/metrics")
	return get(t, "http://"+addr+"/metrics")
}

// capList turns a unit's capability list (CAP_NET_ADMIN CAP_...) into
// setpriv's additions (,+net_admin,...).
func capList(caps string) string {
	var b strings.Builder
	for _, c := range strings.Fields(caps) {
		b.WriteString(",+" + strings.ToLower(strings.TrimPrefix(c, "CAP_")))
	}
	return b.String()
}
