package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/tcpadvisor/tcpadvisor/rules"
)

var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

var target = map[string]string{"instance": "host-a:10067", "job": "tcpadvisor"}

// redis is the destination of the tests: an app opening a Redis connection
// per request.
var redis = []string{"source_address", "10.0.0.1", "destination_address", "10.0.0.5", "destination_port", "6379"}

func newEngine(t testing.TB, opts Options, src prometheus.Gatherer) *Engine {
	t.Helper()
	if opts.Labels == nil {
		opts.Labels = target
	}
	e, err := New(opts, src)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e
}

func cycle(t testing.TB, e *Engine, now time.Time) {
	t.Helper()
	if err := e.Cycle(context.Background(), now); err != nil {
		t.Fatalf("Cycle at %s: %v", now.Sub(t0), err)
	}
}

func TestAlertGoesPendingFiresAndResolves(t *testing.T) {
	src, reg := newSource(t)
	e := newEngine(t, Options{RuleFiles: []string{"testdata/alerts.yml"}, Interval: 15 * time.Second}, reg)
	src.gauge("tcpadvisor_outbound_port_pressure_ratio", 0.6, redis...)
	src.gauge("tcpadvisor_outbound_sockets", 17000, append(redis, "state", "time_wait")...)

	want := Alert{
		Name: "TcpadvisorPortPressureHigh",
		Labels: map[string]string{
			"alertname":           "TcpadvisorPortPressureHigh",
			"severity":            "warning",
			"instance":            "host-a:10067",
			"job":                 "tcpadvisor",
			"source_address":      "10.0.0.1",
			"destination_address": "10.0.0.5",
			"destination_port":    "6379",
		},
		Annotations: map[string]string{
			"summary":     "10.0.0.5:6379 holds 60% of the ephemeral ports",
			"description": "17000 sockets in TIME_WAIT toward it.",
			"runbook_url": "https://example.invalid/runbook#port-pressure",
		},
		State:    "pending",
		ActiveAt: t0,
		Value:    0.6,
	}
	for i := range 4 { // pending at 0s, 15s, 30s, 45s
		cycle(t, e, t0.Add(time.Duration(i)*15*time.Second))
		assertAlerts(t, e, want)
	}

	cycle(t, e, t0.Add(time.Minute))
	want.State, want.FiredAt = "firing", t0.Add(time.Minute)
	assertAlerts(t, e, want)

	src.gauge("tcpadvisor_outbound_port_pressure_ratio", 0.7, redis...)
	cycle(t, e, t0.Add(75*time.Second))
	want.Value = 0.7
	want.Annotations["summary"] = "10.0.0.5:6379 holds 70% of the ephemeral ports"
	assertAlerts(t, e, want)

	src.gauge("tcpadvisor_outbound_port_pressure_ratio", 0.1, redis...)
	cycle(t, e, t0.Add(90*time.Second))
	assertAlerts(t, e)
}

func TestVanishedSeriesEndsItsAlertAtOnce(t *testing.T) {
	src, reg := newSource(t)
	e := newEngine(t, Options{RuleFiles: []string{"testdata/alerts.yml"}, Interval: 15 * time.Second}, reg)
	src.gauge("tcpadvisor_outbound_port_pressure_ratio", 0.9, redis...)
	for i := range 5 {
		cycle(t, e, t0.Add(time.Duration(i)*15*time.Second))
	}
	if a := e.Alerts(); len(a) != 1 || a[0].State != "firing" {
		t.Fatalf("before the series goes: alerts %+v, want one firing", a)
	}

	// The destination leaves the exporter's top-K: without a staleness
	// marker, PromQL would still see its last sample for 5 minutes.
	src.remove("tcpadvisor_outbound_port_pressure_ratio", redis...)
	cycle(t, e, t0.Add(75*time.Second))
	assertAlerts(t, e)
	if got, err := e.Query(context.Background(), "tcpadvisor_outbound_port_pressure_ratio"); err != nil || len(got) != 0 {
		t.Errorf("Query of the vanished series = %v, %v; want nothing", got, err)
	}

	// It comes back: a new alert, pending again.
	src.gauge("tcpadvisor_outbound_port_pressure_ratio", 0.9, redis...)
	cycle(t, e, t0.Add(90*time.Second))
	if a := e.Alerts(); len(a) != 1 || a[0].State != "pending" || !a[0].ActiveAt.Equal(t0.Add(90*time.Second)) {
		t.Errorf("after the series returns: alerts %+v, want one pending since 90s", a)
	}
}

func TestTimeScaleShortensForAndRanges(t *testing.T) {
	src, reg := newSource(t)
	e := newEngine(t, Options{RuleFiles: []string{"testdata/timescale.yml"}, Interval: time.Second, TimeScale: 0.1}, reg)

	// 10 connections/s for 10 minutes, then 100/s: a 5m window would see a
	// rate between the two for minutes, a 30s window sees 100 after 30s.
	opens := 0.0
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	for s := 0; s <= 600; s++ {
		if s > 0 {
			opens += 10
		}
		src.counter("tcpadvisor_tcp_active_opens_total", opens)
		cycle(t, e, at(s))
	}
	assertAlerts(t, e)
	var activeAt time.Time
	for s := 601; s <= 700; s++ {
		opens += 100
		src.counter("tcpadvisor_tcp_active_opens_total", opens)
		cycle(t, e, at(s))
		alerts := e.Alerts()
		if activeAt.IsZero() && len(alerts) == 1 {
			activeAt = alerts[0].ActiveAt
		}
		if !activeAt.IsZero() && s == int(activeAt.Sub(t0)/time.Second)+59 && alerts[0].State != "pending" {
			t.Fatalf("at %ds, 59s after the condition began: state %s, want pending", s, alerts[0].State)
		}
	}
	// The 30s window is past the change after 30s; with 5m it would take
	// 5m*(50-10)/(100-10) = 133s for the rate to pass 50.
	if d := activeAt.Sub(at(600)); d <= 0 || d > 30*time.Second {
		t.Fatalf("the condition held from %v after the change; want within the 30s of rate(x[5m]) scaled by 0.1", d)
	}
	alerts := e.Alerts()
	if len(alerts) != 1 || alerts[0].State != "firing" || alerts[0].FiredAt.Sub(alerts[0].ActiveAt) != time.Minute {
		t.Fatalf("alerts %+v; want one firing one minute (for: 10m scaled by 0.1) after it became active", alerts)
	}
	if v := alerts[0].Value; math.Abs(v-100) > 1e-9 {
		t.Errorf("value %v, want the rate over the last 30s: 100", v)
	}
	if want := time.Minute + 30*time.Second + lookbackDelta + 4*time.Second; e.Retention() != want {
		t.Errorf("Retention() = %v, want %v", e.Retention(), want)
	}
}

func TestTimeScaleRewritesExpressions(t *testing.T) {
	p := newParser()
	for _, tc := range []struct{ in, want string }{
		{"rate(x[5m])", "rate(x[30s])"},
		{"max_over_time(rate(x[1m])[10m:1m] offset 1h)", "max_over_time(rate(x[6s])[1m:6s] offset 1h)"},
		{"x offset 5m", "x offset 5m"},
		{"increase(x[1s])", "increase(x[100ms])"},
	} {
		expr, err := p.ParseExpr(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		if err := scaleExpr(expr, 0.1); err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if got := expr.String(); got != tc.want {
			t.Errorf("scaled %s = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestRetentionWindow(t *testing.T) {
	p := newParser()
	for _, tc := range []struct {
		expr string
		want time.Duration
	}{
		{"x > 1", 0},
		{"rate(x[5m]) > 1", 5 * time.Minute},
		{"x offset 10m", 10 * time.Minute},
		{"max_over_time(rate(x[1m])[30m:1m]) + rate(y[2h])", 2 * time.Hour},
		{"max_over_time(rate(x[1m] offset 5m)[30m:1m] offset 1h)", time.Hour + 30*time.Minute + 5*time.Minute + time.Minute},
	} {
		expr, err := p.ParseExpr(tc.expr)
		if err != nil {
			t.Fatal(err)
		}
		if got := window(expr); got != tc.want {
			t.Errorf("window(%s) = %v, want %v", tc.expr, got, tc.want)
		}
	}
}

// TestMemoryStaysBounded runs 10,000 one-second cycles over a source whose
// destinations change every 100 cycles: the store keeps a bounded number of
// series and, per series, no more samples than 1.5 retentions.
func TestMemoryStaysBounded(t *testing.T) {
	src, reg := newSource(t)
	e := newEngine(t, Options{RuleFiles: []string{"testdata/alerts.yml"}, Interval: time.Second}, reg)
	if want := time.Minute + lookbackDelta + 4*time.Second; e.Retention() != want {
		t.Fatalf("Retention() = %v, want %v", e.Retention(), want)
	}
	const cycles = 10000
	retained := int(e.Retention()/time.Second) + 1
	maxSeries := 0
	for i := range cycles {
		dest := fmt.Sprintf("10.0.%d.%d", i/100/256, i/100%256)
		if i%100 == 0 && i > 0 {
			prev := fmt.Sprintf("10.0.%d.%d", (i-1)/100/256, (i-1)/100%256)
			src.remove("tcpadvisor_outbound_port_pressure_ratio", "source_address", "10.0.0.1", "destination_address", prev, "destination_port", "6379")
		}
		src.gauge("tcpadvisor_outbound_port_pressure_ratio", 0.9, "source_address", "10.0.0.1", "destination_address", dest, "destination_port", "6379")
		src.gauge("tcpadvisor_ephemeral_ports_in_use", float64(i))
		cycle(t, e, t0.Add(time.Duration(i)*time.Second))
		maxSeries = max(maxSeries, int(e.head.NumSeries()))
	}

	// A destination lives 100 cycles, with four series: its pressure, its
	// alert's ALERTS (pending, then firing) and ALERTS_FOR_STATE. Each stays
	// until its last sample is older than the retention at a truncation,
	// which comes every quarter of the retention.
	if limit := 1 + 4*((5*retained/4)/100+2); maxSeries > limit {
		t.Errorf("the store held up to %d series; want at most %d", maxSeries, limit)
	}
	perSeries := countSamples(t, e)
	for s, n := range perSeries {
		if n > 3*retained/2 {
			t.Errorf("series %s: %d samples kept, want at most 1.5 retentions (%d)", s, n, 3*retained/2)
		}
	}
	if n := perSeries[`{__name__="tcpadvisor_ephemeral_ports_in_use", instance="host-a:10067", job="tcpadvisor"}`]; n < retained {
		t.Errorf("a series present all along kept %d samples, want at least the retention's %d", n, retained)
	}
}

// countSamples counts the samples of every series of the store.
func countSamples(t testing.TB, e *Engine) map[string]int {
	t.Helper()
	q, err := e.queryable.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	counts := make(map[string]int)
	ss := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	for ss.Next() {
		s := ss.At()
		it := s.Iterator(nil)
		for it.Next() == chunkenc.ValFloat {
			counts[s.Labels().String()]++
		}
	}
	if err := ss.Err(); err != nil {
		t.Fatal(err)
	}
	return counts
}

func TestQuery(t *testing.T) {
	src, reg := newSource(t)
	e := newEngine(t, Options{RuleFiles: []string{"testdata/alerts.yml"}}, reg)
	ctx := context.Background()
	if _, err := e.Query(ctx, "up"); err == nil || err.Error() != "engine: no samples yet: no cycle has run" {
		t.Errorf("Query before any cycle: %v", err)
	}
	src.gauge("tcpadvisor_ephemeral_ports_range_size", 28232)
	src.gauge("tcpadvisor_outbound_port_pressure_ratio", 0.25, redis...)
	cycle(t, e, t0)

	got, err := e.Query(ctx, "tcpadvisor_outbound_port_pressure_ratio")
	want := []Sample{{Labels: map[string]string{
		"__name__": "tcpadvisor_outbound_port_pressure_ratio", "instance": "host-a:10067", "job": "tcpadvisor",
		"source_address": "10.0.0.1", "destination_address": "10.0.0.5", "destination_port": "6379",
	}, Value: 0.25}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Query = %v, %v; want %v", got, err, want)
	}
	got, err = e.Query(ctx, "sum(tcpadvisor_ephemeral_ports_range_size) * 2")
	if want := []Sample{{Labels: map[string]string{}, Value: 56464}}; err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Query of a sum = %v, %v; want %v", got, err, want)
	}
	got, err = e.Query(ctx, "scalar(tcpadvisor_ephemeral_ports_range_size)")
	if want := []Sample{{Labels: map[string]string{}, Value: 28232}}; err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Query of a scalar = %v, %v; want %v", got, err, want)
	}
	if _, err := e.Query(ctx, "tcpadvisor_ephemeral_ports_range_size[5m]"); err == nil ||
		err.Error() != `query "tcpadvisor_ephemeral_ports_range_size[5m]": the result is a matrix; ask for an instant vector or a scalar` {
		t.Errorf("Query of a range: %v", err)
	}
	if _, err := e.Query(ctx, "sum(("); err == nil {
		t.Error("Query of a bad expression: no error")
	}
}

// TestSamplesAreScraped checks the conversion of what a Gatherer gives:
// histograms and summaries flattened, target labels added, and a gathered
// label named like one of them kept as exported_NAME.
func TestSamplesAreScraped(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "h_seconds", Help: "h", Buckets: []float64{0.5, 1}})
	s := prometheus.NewSummary(prometheus.SummaryOpts{Name: "s_seconds", Help: "s", Objectives: map[float64]float64{0.5: 0.05}})
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "g", Help: "g"}, []string{"instance"})
	reg.MustRegister(h, s, g)
	h.Observe(0.7)
	h.Observe(3)
	s.Observe(2)
	g.WithLabelValues("from-the-source").Set(1)
	e := newEngine(t, Options{RuleFiles: []string{"testdata/alerts.yml"}}, reg)
	cycle(t, e, t0)

	got, err := e.Query(context.Background(), `{__name__=~"h_.*|s_.*|g"}`)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, s := range got {
		lines = append(lines, fmt.Sprintf("%s %v", labels.FromMap(s.Labels), s.Value))
	}
	slices.Sort(lines)
	want := []string{
		`{__name__="g", exported_instance="from-the-source", instance="host-a:10067", job="tcpadvisor"} 1`,
		`{__name__="h_seconds_bucket", instance="host-a:10067", job="tcpadvisor", le="+Inf"} 2`,
		`{__name__="h_seconds_bucket", instance="host-a:10067", job="tcpadvisor", le="0.5"} 0`,
		`{__name__="h_seconds_bucket", instance="host-a:10067", job="tcpadvisor", le="1"} 1`,
		`{__name__="h_seconds_count", instance="host-a:10067", job="tcpadvisor"} 2`,
		`{__name__="h_seconds_sum", instance="host-a:10067", job="tcpadvisor"} 3.7`,
		`{__name__="s_seconds", instance="host-a:10067", job="tcpadvisor", quantile="0.5"} 2`,
		`{__name__="s_seconds_count", instance="host-a:10067", job="tcpadvisor"} 1`,
		`{__name__="s_seconds_sum", instance="host-a:10067", job="tcpadvisor"} 2`,
	}
	if !reflect.DeepEqual(lines, want) {
		t.Errorf("samples:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

func TestStaleMarkerIsWritten(t *testing.T) {
	src, reg := newSource(t)
	e := newEngine(t, Options{RuleFiles: []string{"testdata/alerts.yml"}, Interval: time.Second}, reg)
	src.gauge("tcpadvisor_outbound_port_pressure_ratio", 0.2, redis...)
	cycle(t, e, t0)
	src.remove("tcpadvisor_outbound_port_pressure_ratio", redis...)
	cycle(t, e, t0.Add(time.Second))

	q, err := e.queryable.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ss := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "tcpadvisor_outbound_port_pressure_ratio"))
	var got []string
	for ss.Next() {
		it := ss.At().Iterator(nil)
		for it.Next() == chunkenc.ValFloat {
			ts, v := it.At()
			got = append(got, fmt.Sprintf("%s %v stale=%v", timestamp.Time(ts).Sub(t0), v, value.IsStaleNaN(v)))
		}
	}
	if want := []string{"0s 0.2 stale=false", "1s NaN stale=true"}; !reflect.DeepEqual(got, want) {
		t.Errorf("samples %v, want %v", got, want)
	}
}

func TestBundledRulesAreUsedWithoutRuleFiles(t *testing.T) {
	_, reg := newSource(t)
	bundled := fstest.MapFS{
		"tcpadvisor.rules.yml": {Data: []byte("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: vector(1)\n")},
		"README.md":            {Data: []byte("not rules")},
	}
	e := newEngine(t, Options{Bundled: bundled}, reg)
	cycle(t, e, t0)
	if a := e.Alerts(); len(a) != 1 || a[0].Name != "A" || a[0].State != "firing" {
		t.Errorf("alerts %+v, want A firing", a)
	}
}

func TestCycleRejectsTimeGoingBack(t *testing.T) {
	_, reg := newSource(t)
	e := newEngine(t, Options{RuleFiles: []string{"testdata/alerts.yml"}}, reg)
	cycle(t, e, t0)
	err := e.Cycle(context.Background(), t0)
	if want := "engine: cycle at 2026-03-02T10:00:00Z, not after the last one at 2026-03-02T10:00:00Z"; err == nil || err.Error() != want {
		t.Errorf("second cycle at the same time: %v, want %s", err, want)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	_, reg := newSource(t)
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{RuleFiles: []string{"testdata/alerts.yml"}, TimeScale: 2}, "engine: time scale 2: want a number in (0, 1]"},
		{Options{RuleFiles: []string{"testdata/alerts.yml"}, TimeScale: -0.5}, "engine: time scale -0.5: want a number in (0, 1]"},
		{Options{RuleFiles: []string{"testdata/alerts.yml"}, Labels: map[string]string{"__name__": "x"}}, `engine: label "__name__": not a valid label name`},
		{Options{RuleFiles: []string{"testdata/alerts.yml"}, Alertmanagers: []string{"localhost:9093"}}, `engine: alertmanager URL "localhost:9093": want http://HOST:PORT or https://HOST:PORT, with an optional path prefix`},
		{Options{}, "no rules: Options.RuleFiles is empty and Options.Bundled is nil"},
		{Options{Bundled: fstest.MapFS{}}, "no rules: Options.RuleFiles is empty and Options.Bundled has no *.yml file"},
	} {
		e, err := New(tc.opts, reg)
		if err == nil {
			e.Close()
			t.Errorf("New(%+v): no error, want %s", tc.opts, tc.want)
			continue
		}
		if err.Error() != tc.want {
			t.Errorf("New(%+v): %v\nwant %s", tc.opts, err, tc.want)
		}
	}
}

func assertAlerts(t testing.TB, e *Engine, want ...Alert) {
	t.Helper()
	got := e.Alerts()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("alerts:\n%+v\nwant:\n%+v", got, want)
	}
}

// TestRunCyclesUntilCancelled runs the engine on the wall clock while
// other goroutines read its alerts and query it, as the daemon's web
// handlers do.
func TestRunCyclesUntilCancelled(t *testing.T) {
	src, reg := newSource(t)
	src.gauge("tcpadvisor_outbound_port_pressure_ratio", 0.9, redis...)
	e, err := New(Options{RuleFiles: []string{"testdata/alerts.yml"}, Interval: 10 * time.Millisecond, Labels: target}, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- e.Run(ctx, nil) }()

	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := e.Query(context.Background(), "count_over_time(tcpadvisor_outbound_port_pressure_ratio[1m])")
		if err == nil && len(got) == 1 && got[0].Value >= 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10s of Run, the store does not hold 5 samples: %v, %v", got, err)
		}
		e.Alerts()
		time.Sleep(5 * time.Millisecond)
	}
	if a := e.Alerts(); len(a) != 1 || a[0].State != "pending" {
		t.Errorf("alerts %+v, want one pending", a)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return 10s after its context was cancelled")
	}

	dir := e.dir
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the store's directory %s is still there after Close: %v", dir, err)
	}
	if err := e.Cycle(context.Background(), time.Now()); err == nil || err.Error() != "engine: cycle after Close" {
		t.Errorf("Cycle after Close: %v", err)
	}
	if _, err := e.Query(context.Background(), "up"); err == nil || err.Error() != "engine: query after Close" {
		t.Errorf("Query after Close: %v", err)
	}
	if err := e.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestFailuresAreReportedNotFatal has a Gatherer that fails with part of
// its metrics, as a registry does when one collector fails, and a rule that
// fails at evaluation: the cycle says both and still does what it can.
func TestFailuresAreReportedNotFatal(t *testing.T) {
	src, reg := newSource(t)
	src.gauge("tcpadvisor_outbound_port_pressure_ratio", 0.9, redis...)
	src.gauge("a", 1, "k", "v")
	src.gauge("b", 1, "k", "v")
	failing := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		mfs, _ := reg.Gather()
		return mfs, errors.New("collector sockets: dump interrupted")
	})
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.yml")
	// Two series that differ only by name give one alert label set twice.
	if err := os.WriteFile(rules, []byte(`groups:
  - name: g
    rules:
      - alert: Duplicate
        expr: '{__name__=~"a|b"}'
`), 0o644); err != nil {
		t.Fatal(err)
	}
	e := newEngine(t, Options{RuleFiles: []string{rules, "testdata/alerts.yml"}}, failing)
	err := e.Cycle(context.Background(), t0)
	want := "gather: collector sockets: dump interrupted\n" +
		rules + `: group "g": rule "Duplicate": vector contains metrics with the same labelset after applying alert labels`
	if err == nil || err.Error() != want {
		t.Errorf("Cycle: %v\nwant %s", err, want)
	}
	if a := e.Alerts(); len(a) != 1 || a[0].Name != "TcpadvisorPortPressureHigh" {
		t.Errorf("alerts %+v, want the port pressure one, pending", a)
	}
}

func TestLongestWindow(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/w.yml"
	rule := "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: rate(x[5m]) > 0\n    for: 10m\n  - alert: B\n    expr: delta(y[15m]) > 0\n    for: 15m\n"
	if err := os.WriteFile(path, []byte(rule), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, scale := range []float64{1, 0.1} {
		e, err := New(Options{RuleFiles: []string{path}, TimeScale: scale, Interval: time.Second}, prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		want := time.Duration(float64(30*time.Minute) * scale)
		if got := e.LongestWindow(); got != want {
			t.Errorf("scale %v: LongestWindow = %v, want %v (the longest for: plus the longest range, of any rules)", scale, got, want)
		}
		e.Close()
	}
}

// TestProjectRulesLoad loads the rules the daemon embeds, YAML anchors and
// aliases included.
func TestProjectRulesLoad(t *testing.T) {
	e, err := New(Options{Bundled: rules.Files}, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if e.LongestWindow() <= 0 {
		t.Errorf("LongestWindow = %v for the bundled rules", e.LongestWindow())
	}
}

// TestTransitionsAreLogged: the rules loaded are logged at start, and one
// line when an alert starts firing and one when it resolves, with its
// advice and labels; nothing while it only stays firing.
func TestTransitionsAreLogged(t *testing.T) {
	var out strings.Builder
	logger := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))
	src, reg := newSource(t)
	e := newEngine(t, Options{RuleFiles: []string{"testdata/alerts.yml"}, Interval: 15 * time.Second, LogAlerts: true, Logger: logger}, reg)
	if out.Len() != 0 {
		t.Errorf("New logged %q: the daemon logs the rules once, not every engine (advise makes two)", out.String())
	}
	e.LogRules()
	if !strings.Contains(out.String(), `msg="rules loaded" files=[testdata/alerts.yml] groups=`) {
		t.Errorf("no rules loaded line:\n%s", out.String())
	}
	src.gauge("tcpadvisor_outbound_port_pressure_ratio", 0.6, redis...)
	for i := range 7 {
		cycle(t, e, t0.Add(time.Duration(i)*15*time.Second))
	}
	src.gauge("tcpadvisor_outbound_port_pressure_ratio", 0.1, redis...)
	cycle(t, e, t0.Add(2*time.Minute))
	var lines []string
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.Contains(l, "msg=\"advice ") {
			lines = append(lines, l)
		}
	}
	want := []string{
		`level=INFO msg="advice firing" advice="" alertname=TcpadvisorPortPressureHigh severity=warning labels="{destination_address=\"10.0.0.5\", destination_port=\"6379\", instance=\"host-a:10067\", job=\"tcpadvisor\", source_address=\"10.0.0.1\"}"`,
		`level=INFO msg="advice resolved" advice="" alertname=TcpadvisorPortPressureHigh severity=warning labels="{destination_address=\"10.0.0.5\", destination_port=\"6379\", instance=\"host-a:10067\", job=\"tcpadvisor\", source_address=\"10.0.0.1\"}"`,
	}
	if !slices.Equal(lines, want) {
		t.Errorf("transition lines:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

// TestTimeScaleAndWarmUntil: the engine tells its time scale, and until
// when it has not yet observed the rules' longest window.
func TestTimeScaleAndWarmUntil(t *testing.T) {
	_, reg := newSource(t)
	e := newEngine(t, Options{RuleFiles: []string{"testdata/alerts.yml"}, Interval: 15 * time.Second, TimeScale: 0.5}, reg)
	if e.TimeScale() != 0.5 {
		t.Errorf("TimeScale() = %v", e.TimeScale())
	}
	if got := e.WarmUntil(t0); !got.Equal(t0.Add(e.LongestWindow())) {
		t.Errorf("before a cycle: WarmUntil = %v, want now + %v", got, e.LongestWindow())
	}
	cycle(t, e, t0)
	cycle(t, e, t0.Add(15*time.Second))
	if got := e.WarmUntil(t0.Add(time.Hour)); !got.Equal(t0.Add(e.LongestWindow())) {
		t.Errorf("WarmUntil = %v, want the first cycle + %v", got, e.LongestWindow())
	}
}
