package deploy

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tcpadvisor/tcpadvisor/advisor/engine"
	"github.com/tcpadvisor/tcpadvisor/internal/netnstest"
	"github.com/tcpadvisor/tcpadvisor/rules"
	"go.yaml.in/yaml/v3"
)

const (
	prometheusConfig   = "prometheus/prometheus.yml"
	alertmanagerConfig = "prometheus/alertmanager.yml"
	// timeScale shrinks the rules' windows in the end-to-end test: the
	// pool advice's for: 5m holds after 3s.
	timeScale = 0.01
)

// TestPrometheusRulesAreTheProjects: every rule file of rules/ is linked
// from deploy/prometheus/ and listed in the example configuration, so that
// what Prometheus loads is what the daemon evaluates.
func TestPrometheusRulesAreTheProjects(t *testing.T) {
	names, err := fs.Glob(rules.Files, "*.yml")
	if err != nil || len(names) == 0 {
		t.Fatalf("no rule file in rules/: %v", err)
	}
	var cfg struct {
		RuleFiles []string `yaml:"rule_files"`
	}
	readYAML(t, prometheusConfig, &cfg)
	for _, name := range names {
		link := filepath.Join("prometheus", name)
		target, err := os.Readlink(link)
		if want := filepath.Join("..", "..", "rules", name); err != nil || target != want {
			t.Errorf("%s: link to %q (%v), want a link to %s", link, target, err, want)
		}
		if !slices.Contains(cfg.RuleFiles, name) {
			t.Errorf("%s: rule_files %q lacks %s", prometheusConfig, cfg.RuleFiles, name)
		}
	}
}

// TestPrometheusExamplesCheck runs promtool and amtool over the example
// configurations; promtool also checks the rule files they load.
func TestPrometheusExamplesCheck(t *testing.T) {
	promtool := lookPath(t, "promtool", "prometheus")
	if out, err := exec.Command(promtool, "check", "config", prometheusConfig).CombinedOutput(); err != nil {
		t.Errorf("promtool check config %s: %v\n%s", prometheusConfig, err, out)
	}
	amtool := lookPath(t, "amtool", "prometheus-alertmanager")
	if out, err := exec.Command(amtool, "check-config", alertmanagerConfig).CombinedOutput(); err != nil {
		t.Errorf("amtool check-config %s: %v\n%s", alertmanagerConfig, err, out)
	}
}

// scaledRules writes the project's rules, with their windows scaled by
// timeScale, into dir, and returns the file's path.
func scaledRules(t *testing.T, dir string) string {
	t.Helper()
	content, err := rules.Files.ReadFile("tcpadvisor.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	scaled, err := engine.ScaleRuleFile("rules/tcpadvisor.rules.yml", content, timeScale)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "tcpadvisor.rules.yml")
	if err := os.WriteFile(path, scaled, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestScaledRulesLoadInPrometheus: the Prometheus of the end-to-end test
// (Debian's, older than the module the engine is built on) reads the
// scaled rules, whose expressions the engine wrote back.
func TestScaledRulesLoadInPrometheus(t *testing.T) {
	promtool := lookPath(t, "promtool", "prometheus")
	path := scaledRules(t, t.TempDir())
	if out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules on the scaled rules: %v\n%s", err, out)
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(content, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func writeYAML(t *testing.T, path string, v any) {
	t.Helper()
	content, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
}

// startPrometheus starts Debian's Prometheus on addr with the example
// configuration, changed to scrape target and evaluate every second, load
// ruleFile and send to alertmanager.
func startPrometheus(t *testing.T, bin, addr, target, ruleFile, alertmanager string) {
	t.Helper()
	var cfg map[string]any
	readYAML(t, prometheusConfig, &cfg)
	cfg["global"] = map[string]any{"scrape_interval": "1s", "evaluation_interval": "1s"}
	cfg["rule_files"] = []string{ruleFile}
	cfg["alerting"] = map[string]any{"alertmanagers": []any{map[string]any{"static_configs": []any{map[string]any{"targets": []string{alertmanager}}}}}}
	scrape := cfg["scrape_configs"].([]any)[0].(map[string]any)
	scrape["static_configs"] = []any{map[string]any{"targets": []string{target}}}

	dir := t.TempDir()
	path := filepath.Join(dir, "prometheus.yml")
	writeYAML(t, path, cfg)
	p := start(t, "prometheus", exec.Command(bin,
		"--config.file="+path,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--web.external-url=http://"+addr,
	))
	p.waitReady(t, "http://"+addr+"/-/ready")
}

// startAlertmanager starts Debian's Alertmanager on addr with the example
// configuration, changed to notify webhook at once and on every change.
func startAlertmanager(t *testing.T, bin, addr, webhook string) {
	t.Helper()
	var cfg map[string]any
	readYAML(t, alertmanagerConfig, &cfg)
	route := cfg["route"].(map[string]any)
	route["group_wait"], route["group_interval"] = "1s", "1s"
	receiver := cfg["receivers"].([]any)[0].(map[string]any)
	receiver["webhook_configs"].([]any)[0].(map[string]any)["url"] = webhook

	dir := t.TempDir()
	path := filepath.Join(dir, "alertmanager.yml")
	writeYAML(t, path, cfg)
	p := start(t, "alertmanager on "+addr, exec.Command(bin,
		"--config.file="+path,
		"--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--cluster.listen-address=", // no gossip: a single instance
	))
	p.waitReady(t, "http://"+addr+"/-/ready")
}

// notification is the part of Alertmanager's webhook payload the test reads.
type notification struct {
	Status string `json:"status"`
	Alerts []struct {
		Status       string            `json:"status"`
		Labels       map[string]string `json:"labels"`
		Annotations  map[string]string `json:"annotations"`
		GeneratorURL string            `json:"generatorURL"`
	} `json:"alerts"`
}

// webhook is a receiver of Alertmanager's notifications.
type webhook struct {
	mu   sync.Mutex
	got  []notification
	url  string
	errs []error
}

func serveWebhook(t *testing.T, addr string) *webhook {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	w := &webhook{url: "http://" + addr + "/hook"}
	server := &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var n notification
		err := json.NewDecoder(r.Body).Decode(&n)
		w.mu.Lock()
		defer w.mu.Unlock()
		if err != nil {
			w.errs = append(w.errs, err)
			return
		}
		w.got = append(w.got, n)
	})}
	go server.Serve(ln)
	t.Cleanup(func() { server.Close() })
	return w
}

// wait returns the first notification of an alert with the labels want in
// state status ("firing" or "resolved"), waiting until deadline.
func (w *webhook) wait(t *testing.T, name string, want map[string]string, status string, deadline time.Time) (labels, annotations map[string]string, generatorURL string) {
	t.Helper()
	for {
		w.mu.Lock()
		if len(w.errs) > 0 {
			t.Fatalf("%s: bad notification: %v", name, w.errs[0])
		}
		for _, n := range w.got {
			for _, a := range n.Alerts {
				if a.Status == status && a.Labels["advice"] == want["advice"] && a.Labels["destination_port"] == want["destination_port"] {
					w.mu.Unlock()
					return a.Labels, a.Annotations, a.GeneratorURL
				}
			}
		}
		got := fmt.Sprintf("%+v", w.got)
		w.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %s notification of advice %s toward port %s by the deadline; got %s", name, status, want["advice"], want["destination_port"], got)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestIntegrationPrometheusAlertmanager runs tcpadvisor end to end with
// Debian's real Prometheus and Alertmanager, in a network namespace of its
// own where tcp_tw_reuse is off and the ephemeral range has 1000 ports, as
// a host talking to a remote Redis would be.
//
// Two paths run side by side over the same churn, each to an Alertmanager
// of its own with a webhook receiver: Prometheus scrapes the daemon every
// second and evaluates the project's rules, scaled (ScaleRuleFile), and
// sends to the first; the daemon evaluates the same rules with
// --rules.time-scale and sends to the second with --alertmanager.url, with
// no Prometheus in between. A client opens a connection per request toward
// 127.0.0.1:6379: each webhook must get the pool advice firing, with its
// labels and annotations, then resolved once the TIME_WAIT sockets are gone
// (60 s after the churn stops).
func TestIntegrationPrometheusAlertmanager(t *testing.T) {
	prometheus := lookPath(t, "prometheus", "prometheus")
	alertmanager := lookPath(t, "prometheus-alertmanager", "prometheus-alertmanager")
	if !netnstest.Enter(t) {
		return
	}
	netnstest.Sysctl(t, "net.ipv4.tcp_tw_reuse", "0")
	netnstest.Sysctl(t, "net.ipv4.ip_local_port_range", "40000 40999")
	// Fixed ports: the namespace is the test's. They are below the
	// ephemeral range, so no advice is about the servers' own ports.
	const (
		daemonAddr      = "127.0.0.1:10067"
		prometheusAddr  = "127.0.0.1:9090"
		viaPrometheusAM = "127.0.0.1:9093"
		viaDaemonAM     = "127.0.0.1:9094"
		redisAddr       = "127.0.0.1:6379"
	)
	viaPrometheus := serveWebhook(t, "127.0.0.1:5001")
	viaDaemon := serveWebhook(t, "127.0.0.1:5002")
	startAlertmanager(t, alertmanager, viaPrometheusAM, viaPrometheus.url)
	startAlertmanager(t, alertmanager, viaDaemonAM, viaDaemon.url)

	daemon := start(t, "tcpadvisor", exec.Command(binary,
		"--web.listen-address="+daemonAddr,
		"--web.external-url=http://"+daemonAddr,
		"--rules.time-scale="+fmt.Sprint(timeScale),
		"--rules.evaluation-interval=1s",
		"--alertmanager.url=http://"+viaDaemonAM,
	))
	daemon.waitReady(t, "http://"+daemonAddr+"/")
	startPrometheus(t, prometheus, prometheusAddr, daemonAddr, scaledRules(t, t.TempDir()), viaPrometheusAM)

	begin := time.Now()
	netnstest.Serve(t, redisAddr, netnstest.Discard)
	netnstest.Churn(t, redisAddr, 200)
	churned := time.Now()
	t.Logf("churn of 200 connections took %v", churned.Sub(begin))

	hostname, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"alertname": "TcpadvisorConnectionPerRequest", "advice": "pool", "severity": "warning",
		"source_address": "127.0.0.1", "destination_address": "127.0.0.1", "destination_port": "6379",
		"job": "tcpadvisor",
	}
	paths := []struct {
		name         string
		hook         *webhook
		instance     string
		generatorURL string
		runbookURL   string
	}{
		// Prometheus names the target by its address; the daemon names
		// itself as a scrape of its port on this host would be named.
		// Prometheus links the runbook on GitHub, as the rule file says;
		// the daemon links its own copy, under --web.external-url.
		{"via Prometheus", viaPrometheus, daemonAddr, "http://" + prometheusAddr + "/graph?g0.expr=", "https://github.com/tcpadvisor/tcpadvisor/blob/main/docs/advice.md#pool"},
		{"via the daemon's --alertmanager.url", viaDaemon, net.JoinHostPort(hostname, "10067"), "http://" + daemonAddr + "/graph?g0.expr=", "http://" + daemonAddr + "/docs/advice.md#pool"},
	}
	description := regexp.MustCompile(`^\d+ TIME_WAIT and 0 ESTABLISHED sockets from 127\.0\.0\.1 to 127\.0\.0\.1:6379 \(Redis\): this host opens a connection per request and closes it first`)
	for _, p := range paths {
		wantLabels := withLabel(want, "instance", p.instance)
		labels, annotations, generator := p.hook.wait(t, p.name, wantLabels, "firing", churned.Add(30*time.Second))
		t.Logf("%s: firing notification after %v", p.name, time.Since(churned).Round(100*time.Millisecond))
		if !reflect.DeepEqual(labels, wantLabels) {
			t.Errorf("%s: labels %v, want %v", p.name, labels, wantLabels)
		}
		if got, want := annotations["summary"], "127.0.0.1 opens a new connection per request to 127.0.0.1:6379"; got != want {
			t.Errorf("%s: summary %q, want %q", p.name, got, want)
		}
		if got := annotations["description"]; !description.MatchString(got) {
			t.Errorf("%s: description %q, want it to match %s", p.name, got, description)
		}
		if got, want := annotations["runbook_url"], p.runbookURL; got != want {
			t.Errorf("%s: runbook_url %q, want %q", p.name, got, want)
		}
		if !strings.HasPrefix(generator, p.generatorURL) {
			t.Errorf("%s: generatorURL %q, want it to start with %s", p.name, generator, p.generatorURL)
		}
	}
	// TIME_WAIT lasts 60 s; then the destination has no socket left, its
	// series go stale, and the alert resolves.
	for _, p := range paths {
		wantLabels := withLabel(want, "instance", p.instance)
		labels, _, _ := p.hook.wait(t, p.name, wantLabels, "resolved", churned.Add(100*time.Second))
		t.Logf("%s: resolved notification after %v", p.name, time.Since(churned).Round(100*time.Millisecond))
		if !reflect.DeepEqual(labels, wantLabels) {
			t.Errorf("%s: resolved labels %v, want %v", p.name, labels, wantLabels)
		}
	}
}

// withLabel returns a copy of m with key set to value.
func withLabel(m map[string]string, key, value string) map[string]string {
	c := maps.Clone(m)
	c[key] = value
	return c
}
