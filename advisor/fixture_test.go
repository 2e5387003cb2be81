package advisor

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/tcpadvisor/tcpadvisor/advisor/engine"
	"github.com/tcpadvisor/tcpadvisor/rules"
)

// The advisor's unit tests run the real engine over fixed series, written
// as the exporter exposes them: the queries the advice makes are evaluated
// as PromQL, not matched as strings.

var since = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// targetLabels are the labels the engine adds to every sample, as the
// daemon does.
var targetLabels = map[string]string{"instance": "web-1:10067", "job": "tcpadvisor"}

// exposition is a gatherer of series in the text format, one per line, in
// any order; the test may change them between cycles.
type exposition struct {
	mu    sync.Mutex
	lines []string
}

func (e *exposition) set(text string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.lines = nil
	for _, line := range strings.Split(text, "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			e.lines = append(e.lines, line)
		}
	}
}

func metricName(line string) string {
	return line[:strings.IndexAny(line, "{ ")]
}

func (e *exposition) Gather() ([]*dto.MetricFamily, error) {
	e.mu.Lock()
	lines := slices.Clone(e.lines)
	e.mu.Unlock()
	// The text format wants the series of a family together.
	slices.SortStableFunc(lines, func(a, b string) int { return strings.Compare(metricName(a), metricName(b)) })
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(strings.Join(lines, "\n") + "\n"))
	if err != nil {
		return nil, err
	}
	var out []*dto.MetricFamily
	for _, f := range families {
		out = append(out, f)
	}
	return out, nil
}

// fixture is a Source: the real engine over an exposition, with its own
// alerts, or alerts set by the test.
type fixture struct {
	*engine.Engine
	exp    *exposition
	alerts []engine.Alert
	now    time.Time
}

func (f *fixture) Alerts() []engine.Alert {
	if f.alerts != nil {
		return f.alerts
	}
	return f.Engine.Alerts()
}

// newFixture starts the engine over the series of text, with the bundled
// rules scaled by scale, and runs one cycle at since.
func newFixture(t *testing.T, scale float64, text string) *fixture {
	t.Helper()
	f := &fixture{exp: &exposition{}, now: since}
	f.exp.set(text)
	eng, err := engine.New(engine.Options{Bundled: rules.Files, Interval: time.Second, TimeScale: scale, Labels: targetLabels,
		Logger: slog.New(slog.DiscardHandler)}, prometheus.GathererFunc(f.exp.Gather))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	f.Engine = eng
	f.cycle(t)
	return f
}

// cycle runs one engine cycle at the fixture's clock, then moves it a
// second on.
func (f *fixture) cycle(t *testing.T) {
	t.Helper()
	if err := f.Cycle(context.Background(), f.now); err != nil {
		t.Fatal(err)
	}
	f.now = f.now.Add(time.Second)
}

// run cycles for d of the fixture's clock.
func (f *fixture) run(t *testing.T, d time.Duration) {
	t.Helper()
	for end := f.now.Add(d); f.now.Before(end); {
		f.cycle(t)
	}
}

// report is the advisor's report at the fixture's last cycle.
func (f *fixture) report() Report {
	return New(f, nil).Report(context.Background(), f.now)
}

// alert returns an active alert as the rules would fire it, its labels
// with the target labels of the engine.
func alert(name, id, severity, state string, target map[string]string) engine.Alert {
	labels := map[string]string{"alertname": name, "advice": id, "severity": severity}
	for k, v := range targetLabels {
		labels[k] = v
	}
	for k, v := range target {
		labels[k] = v
	}
	return engine.Alert{Name: name, Labels: labels, State: state, ActiveAt: since, Value: 1,
		Annotations: map[string]string{"summary": name + " summary", "description": name + " description", "runbook_url": "https://example.com/docs/advice.md#" + id}}
}

// hostSysctls are the sysctl series of a default Linux host, less
// tcp_tw_reuse; with reserved ports 8080 and 9000-9010 (one outside the
// default range, both ranges exported).
const hostSysctls = `
tcpadvisor_sysctl_net_ipv4_tcp_timestamps 1
tcpadvisor_sysctl_net_ipv4_ip_local_port_range_min 32768
tcpadvisor_sysctl_net_ipv4_ip_local_port_range_max 60999
tcpadvisor_sysctl_net_ipv4_tcp_max_tw_buckets 131072
tcpadvisor_sysctl_net_core_somaxconn 4096
tcpadvisor_sysctl_net_ipv4_tcp_max_syn_backlog 1024
tcpadvisor_sysctl_net_ipv4_tcp_max_orphans 4096
tcpadvisor_conntrack_entries_limit 262144
tcpadvisor_ephemeral_ports_range_size 28232
tcpadvisor_ephemeral_ports_reserved 0
tcpadvisor_ephemeral_ports_reserved_ranges 2
tcpadvisor_ephemeral_ports_reserved_range_info{first="8080",last="8080"} 1
tcpadvisor_ephemeral_ports_reserved_range_info{first="9000",last="9010"} 1
tcpadvisor_listen_queue_limit{port="22"} 128
tcpadvisor_listen_queue_limit{port="27017"} 128
`

func twReuse(v string) string { return "tcpadvisor_sysctl_net_ipv4_tcp_tw_reuse " + v + "\n" }
