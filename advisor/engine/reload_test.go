package engine

import (
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// pressureRule is testdata/alerts.yml's alert, in a file a test changes.
const pressureRule = `
      - alert: TcpadvisorPortPressureHigh
        expr: tcpadvisor_outbound_port_pressure_ratio > 0.5
        for: 1m
        labels:
          severity: warning
`

// churnRule is a second alert, added by a reload.
const churnRule = `
      - alert: TcpadvisorTimeWaitHigh
        expr: tcpadvisor_outbound_sockets{state="time_wait"} > 1000
        for: 30m
        labels:
          severity: warning
`

func writeRuleFile(t *testing.T, path string, rules ...string) {
	t.Helper()
	content := "groups:\n  - name: tcpadvisor-test\n    rules:" + strings.Join(rules, "")
	if len(rules) == 0 {
		content = "groups: []\n"
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// alertStates returns the active alerts as name: state since when.
func alertStates(e *Engine) map[string]string {
	states := map[string]string{}
	for _, a := range e.Alerts() {
		states[a.Name] = a.State + " since " + a.ActiveAt.Sub(t0).String()
	}
	return states
}

// TestReloadKeepsStateAndAppliesChanges: a reload that adds a rule keeps
// the firing alert of the unchanged one firing since it started, and
// evaluates the new one; a file that fails to load keeps the rules loaded
// before and says so in prometheus_config_last_reload_successful; a rule
// taken out resolves; the longest window follows the rules.
func TestReloadKeepsStateAndAppliesChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.yml")
	writeRuleFile(t, path, pressureRule)
	src, reg := newSource(t)
	metrics := prometheus.NewRegistry()
	e := newEngine(t, Options{RuleFiles: []string{path}, Interval: 15 * time.Second, Registerer: metrics}, reg)
	src.gauge("tcpadvisor_outbound_port_pressure_ratio", 0.6, redis...)
	src.gauge("tcpadvisor_outbound_sockets", 17000, append(redis, "state", "time_wait")...)
	for i := range 5 {
		cycle(t, e, t0.Add(time.Duration(i)*15*time.Second))
	}
	firing := map[string]string{"TcpadvisorPortPressureHigh": "firing since 0s"}
	if got := alertStates(e); !maps.Equal(got, firing) {
		t.Fatalf("before the reload: %v, want %v", got, firing)
	}
	if got := e.LongestWindow(); got != time.Minute {
		t.Errorf("longest window %v before the reload, want 1m", got)
	}

	writeRuleFile(t, path, pressureRule, churnRule)
	if err := e.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := alertStates(e); !maps.Equal(got, firing) {
		t.Errorf("right after the reload: %v, want the alert still %v", got, firing)
	}
	cycle(t, e, t0.Add(75*time.Second))
	want := map[string]string{"TcpadvisorPortPressureHigh": "firing since 0s", "TcpadvisorTimeWaitHigh": "pending since 1m15s"}
	if got := alertStates(e); !maps.Equal(got, want) {
		t.Errorf("a cycle after the reload: %v, want %v", got, want)
	}
	if got := e.LongestWindow(); got != 30*time.Minute {
		t.Errorf("longest window %v after the reload, want the new rule's 30m", got)
	}
	if got := testutil.ToFloat64(e.reloads.successful); got != 1 {
		t.Errorf("prometheus_config_last_reload_successful %v after a good reload, want 1", got)
	}

	if err := os.WriteFile(path, []byte("groups:\n  - name: broken\n    rules:\n      - alert: A\n        expr: rate(x[5m] > 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := e.Reload()
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("reload of a broken file: %v, want an error naming %s", err, path)
	}
	cycle(t, e, t0.Add(90*time.Second))
	if got := alertStates(e); !maps.Equal(got, want) {
		t.Errorf("after a failed reload: %v, want the rules loaded before, %v", got, want)
	}
	if got := testutil.ToFloat64(e.reloads.successful); got != 0 {
		t.Errorf("prometheus_config_last_reload_successful %v after a failed reload, want 0", got)
	}
	if n, err := testutil.GatherAndCount(metrics, "prometheus_config_last_reload_successful", "prometheus_config_last_reload_success_timestamp_seconds"); err != nil || n != 2 {
		t.Errorf("reload metrics on the Registerer: %d series, %v; want 2", n, err)
	}

	writeRuleFile(t, path, churnRule)
	if err := e.Reload(); err != nil {
		t.Fatal(err)
	}
	cycle(t, e, t0.Add(105*time.Second))
	want = map[string]string{"TcpadvisorTimeWaitHigh": "pending since 1m15s"}
	if got := alertStates(e); !maps.Equal(got, want) {
		t.Errorf("after the rule was taken out: %v, want %v", got, want)
	}
}

// TestReloadForgetsTheGroupsThatAreGone: the rule-group metrics of a group
// that a reload removed are deleted, as Prometheus' rule manager does.
func TestReloadForgetsTheGroupsThatAreGone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.yml")
	writeRuleFile(t, path, pressureRule)
	_, reg := newSource(t)
	metrics := prometheus.NewRegistry()
	e := newEngine(t, Options{RuleFiles: []string{path}, Registerer: metrics}, reg)
	cycle(t, e, t0)
	count := func() int {
		n, err := testutil.GatherAndCount(metrics, "prometheus_rule_group_rules")
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(); n != 1 {
		t.Fatalf("prometheus_rule_group_rules: %d series before, want 1", n)
	}
	writeRuleFile(t, path)
	if err := e.Reload(); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 0 {
		t.Errorf("prometheus_rule_group_rules: %d series after the group was removed, want 0", n)
	}
}
