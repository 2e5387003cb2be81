package pipeline

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/tcpadvisor/tcpadvisor/exporter"
)

// hostExporter reads the kernel the test runs on, without owner
// attribution, which needs capabilities.
var hostExporter = exporter.Options{ProcPath: "/proc", Collectors: exporter.CollectorNames, Timeout: 10 * time.Second}

// deadAlertmanager returns the URL of a loopback port nothing listens on.
func deadAlertmanager(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// TestRunRegistersEngineAndNotifierMetrics runs a pipeline on the host
// with an always-firing rule and an Alertmanager that refuses connections:
// the served registry shows the rule evaluations, and the failed sends
// count as errors, not only as log lines.
func TestRunRegistersEngineAndNotifierMetrics(t *testing.T) {
	registry := prometheus.NewRegistry()
	p, err := New(Options{
		Exporter:      hostExporter,
		RuleFiles:     []string{"testdata/always.yml"},
		Interval:      50 * time.Millisecond,
		Alertmanagers: []string{deadAlertmanager(t)},
		Labels:        map[string]string{"instance": "test:10067", "job": "tcpadvisor"},
		Registerer:    registry,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	ctx, cancel := context.WithCancel(context.Background())
	cycles := make(chan time.Time, 1000)
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Run(ctx, func(now time.Time) { cycles <- now })
	}()

	// Until the notifier has counted a failed send, bounded: the first
	// cycle fires the alert and a send to a refused port fails at once.
	deadline := time.After(20 * time.Second)
	for counter(t, registry, "prometheus_notifications_errors_total") == 0 {
		select {
		case <-deadline:
			cancel()
			t.Fatalf("no prometheus_notifications_errors_total after 20s of cycles; sent %v",
				counter(t, registry, "prometheus_notifications_sent_total"))
		case <-time.After(50 * time.Millisecond):
		}
	}
	cancel()
	<-done
	if len(cycles) == 0 {
		t.Fatal("Run never called afterCycle")
	}
	if n := counter(t, registry, "prometheus_rule_evaluations_total"); n < 1 {
		t.Errorf("prometheus_rule_evaluations_total = %v, want at least 1", n)
	}
	if n := counter(t, registry, "prometheus_rule_evaluation_failures_total"); n != 0 {
		t.Errorf("prometheus_rule_evaluation_failures_total = %v, want 0", n)
	}
	report := p.Report(context.Background(), time.Now())
	if len(report.Advice) != 1 || report.Advice[0].Alert != "TcpadvisorTestAlways" {
		t.Errorf("report advice = %+v, want the always-firing alert", report.Advice)
	}
}

// TestRunWithoutRegisterer builds two pipelines in one process, as advise
// and the workload's arms do: without a Registerer, their metrics clash
// nowhere.
func TestRunWithoutRegisterer(t *testing.T) {
	for range 2 {
		p, err := New(Options{Exporter: hostExporter, RuleFiles: []string{"testdata/always.yml"}, Interval: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Cycle(context.Background(), time.Now()); err != nil {
			t.Errorf("Cycle: %v", err)
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFitTimeScale(t *testing.T) {
	for _, tc := range []struct {
		duration time.Duration
		want     float64
	}{
		// The bundled rules' longest window is a 15m for: over a 15m
		// delta: 30m.
		{duration: 2 * time.Hour, want: 1},
		{duration: time.Hour, want: 1},
		{duration: time.Minute, want: 1.0 / 60},
	} {
		got, err := FitTimeScale(nil, tc.duration, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("FitTimeScale(%v) = %v, want %v", tc.duration, got, tc.want)
		}
	}
	if _, err := FitTimeScale([]string{"testdata/missing.yml"}, time.Minute, nil); err == nil {
		t.Error("FitTimeScale of a missing rule file: no error")
	}
}

// counter sums the values of every series of the counter name.
func counter(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			sum += value(f.GetType(), m)
		}
	}
	return sum
}

func value(kind dto.MetricType, m *dto.Metric) float64 {
	switch kind {
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue()
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue()
	}
	return 0
}
