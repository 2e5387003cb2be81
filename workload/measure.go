package workload

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tcpadvisor/tcpadvisor/internal/pipeline"
)

// Measurement is what the exporter and the advisor saw during an arm.
type Measurement struct {
	// PeakTimeWait is the most TIME_WAIT sockets at once; PeakClientTimeWait
	// those of them on the client side (ephemeral or bound local ports),
	// PeakServiceTimeWait those on service ports (the server closed first).
	// Each is a peak of its own, not necessarily at the same sample.
	PeakTimeWait        float64 `json:"peak_time_wait"`
	PeakClientTimeWait  float64 `json:"peak_client_time_wait"`
	PeakServiceTimeWait float64 `json:"peak_service_time_wait"`
	// Busiest is the destination with the most TIME_WAIT at one sample,
	// and BusiestServicePort the service port.
	Busiest            Peak    `json:"busiest_destination"`
	BusiestServicePort Peak    `json:"busiest_service_port"`
	PeakPortPressure   float64 `json:"peak_port_pressure_ratio"`
	// Advice is every advice about the arm's servers that fired during the
	// arm, in the order it first fired.
	Advice []FiredAdvice `json:"advice"`
	// TimeWait is the TIME_WAIT count at each sample.
	TimeWait []Point `json:"time_wait"`
	// Tracer is what the connection tracer counted toward the arm's
	// servers between the first sample and the last; nil when it was not
	// up.
	Tracer *TracerFigures `json:"tracer,omitempty"`
}

// TracerFigures are the connection tracer's counts toward an arm's servers.
type TracerFigures struct {
	// Opened is the connections established; OpensPerSecond divides it
	// by the load's duration.
	Opened         float64 `json:"opened"`
	OpensPerSecond float64 `json:"opens_per_second"`
	// ConnectFailures counts the connect() calls that failed, by errno
	// (EADDRNOTAVAIL, ECONNREFUSED, ...): calls, not requests, since a
	// client may try again (Go's net.Dial calls connect() three times
	// before it returns EADDRNOTAVAIL).
	ConnectFailures map[string]float64 `json:"connect_failures"`
	// MeanLifetime is the mean time, in seconds, the connections that
	// ended stayed established; nil when none ended.
	MeanLifetime *float64 `json:"mean_lifetime_seconds,omitempty"`
}

// tracerTotals are the tracer's cumulative counters at one sample.
type tracerTotals struct {
	opened, lifetimeSum, lifetimeCount float64
	failures                           map[string]float64
}

// Peak is the largest value of one label set's series.
type Peak struct {
	// Name is ADDRESS:PORT for a destination, the port for a service port;
	// empty when there was none.
	Name  string  `json:"name"`
	Value float64 `json:"value"`
}

// FiredAdvice is an advice that fired.
type FiredAdvice struct {
	ID       string            `json:"id"`
	Severity string            `json:"severity"`
	Target   map[string]string `json:"target"`
	Summary  string            `json:"summary"`
	// Client is the process that opens the connections of a churn advice,
	// and Server what serves them (its process, or its protocol's name),
	// when the advisor knows.
	Client string `json:"client,omitempty"`
	Server string `json:"server,omitempty"`
	// After is the time from the start of the load to the first sample it
	// fired at, in seconds.
	After float64 `json:"after_seconds"`
}

// Point is one sample of a time series: seconds from the start of the load.
type Point struct {
	T     float64 `json:"t"`
	Value float64 `json:"v"`
}

// meter samples the exporter in the arm's network namespace and evaluates
// the rules over the samples, as the daemon does, and keeps what the report
// needs.
type meter struct {
	pipeline *pipeline.Pipeline
	logger   *slog.Logger
	ports    []string // the arm's server ports, as label values
	// start is when the meter was made, just before the load starts.
	start time.Time

	mu sync.Mutex
	m  Measurement
	// firstTracer and lastTracer are the tracer's totals at the first
	// and the last sample it was up at.
	firstTracer, lastTracer *tracerTotals
}

func newMeter(cfg Config, ports []int) (*meter, error) {
	p, err := pipeline.New(pipeline.Options{
		Exporter: cfg.Exporter, RuleFiles: cfg.RuleFiles,
		Interval: sampleInterval(cfg.Duration), TimeScale: cfg.TimeScale, Logger: cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	m := &meter{pipeline: p, logger: cfg.Logger, start: time.Now(), m: Measurement{Advice: []FiredAdvice{}}}
	for _, p := range ports {
		m.ports = append(m.ports, strconv.Itoa(p))
	}
	return m, nil
}

// sampleInterval is about 30 samples an arm, at least one a second and at
// most four.
func sampleInterval(duration time.Duration) time.Duration {
	return min(max(duration/30, 250*time.Millisecond), time.Second)
}

// settleTime is how long sampling goes on after the load: a quarter of the
// duration, from 2 to 5 s. The TIME_WAIT sockets outlive the load by 60 s,
// so a condition that held at its end still holds, and an alert that was
// pending then gets the time to fire.
func settleTime(duration time.Duration) time.Duration {
	return min(max(duration/4, 2*time.Second), 5*time.Second)
}

// run samples now and every interval of the pipeline until ctx is done,
// recording what each cycle saw.
func (m *meter) run(ctx context.Context) {
	m.pipeline.Run(ctx, m.record)
}

// record queries what the cycle at now saw and keeps it. Its queries run
// to the end even when the sampling has just been stopped: cut, they would
// fail half-way.
func (m *meter) record(now time.Time) {
	ctx := context.Background()
	value := func(expr string) float64 {
		samples, err := m.pipeline.Query(ctx, expr)
		if err != nil || len(samples) == 0 {
			return 0
		}
		return samples[0].Value
	}
	top := func(expr string, name func(map[string]string) string) Peak {
		samples, err := m.pipeline.Query(ctx, "topk(1, "+expr+")")
		if err != nil || len(samples) == 0 {
			return Peak{}
		}
		return Peak{Name: name(samples[0].Labels), Value: samples[0].Value}
	}
	total := value(`sum(tcpadvisor_sockets{state="time_wait"})`)
	service := value(`sum(tcpadvisor_inbound_sockets{state="time_wait"})`)
	busiest := top(`tcpadvisor_outbound_sockets{state="time_wait",destination_address!="other"}`,
		func(l map[string]string) string { return l["destination_address"] + ":" + l["destination_port"] })
	busiestPort := top(`tcpadvisor_inbound_sockets{state="time_wait",port!="other"}`,
		func(l map[string]string) string { return l["port"] })
	pressure := value(`max(tcpadvisor_outbound_port_pressure_ratio)`)
	tracer := m.tracerTotals(ctx, value)
	report := m.pipeline.Report(ctx, now)

	m.mu.Lock()
	defer m.mu.Unlock()
	m.m.TimeWait = append(m.m.TimeWait, Point{T: now.Sub(m.start).Seconds(), Value: total})
	m.m.PeakTimeWait = max(m.m.PeakTimeWait, total)
	m.m.PeakClientTimeWait = max(m.m.PeakClientTimeWait, total-service)
	m.m.PeakServiceTimeWait = max(m.m.PeakServiceTimeWait, service)
	if busiest.Value > m.m.Busiest.Value {
		m.m.Busiest = busiest
	}
	if busiestPort.Value > m.m.BusiestServicePort.Value {
		m.m.BusiestServicePort = busiestPort
	}
	m.m.PeakPortPressure = max(m.m.PeakPortPressure, pressure)
	if tracer != nil {
		if m.firstTracer == nil {
			m.firstTracer = tracer
		}
		m.lastTracer = tracer
	}
	for _, a := range report.Advice {
		if !m.about(a.Target) || slices.ContainsFunc(m.m.Advice, func(f FiredAdvice) bool {
			return f.ID == string(a.ID) && maps.Equal(f.Target, a.Target)
		}) {
			continue
		}
		fired := FiredAdvice{
			ID: string(a.ID), Severity: a.Severity, Target: a.Target, Summary: a.Summary,
			After: max(0, now.Sub(m.start).Seconds()),
		}
		if a.Client != nil {
			fired.Client = a.Client.Process
		}
		if a.Server != nil {
			fired.Server = a.Server.Name
		}
		m.m.Advice = append(m.m.Advice, fired)
	}
}

// tracerTotals reads the tracer's counters toward the arm's servers, or
// returns nil when the tracer is not up.
func (m *meter) tracerTotals(ctx context.Context, value func(string) float64) *tracerTotals {
	if value(`max(tcpadvisor_tracer_up)`) != 1 {
		return nil
	}
	toServers := `{destination_port=~"` + strings.Join(m.ports, "|") + `"}`
	t := &tracerTotals{
		opened:        value(`sum(tcpadvisor_outbound_connections_opened_total` + toServers + `)`),
		lifetimeSum:   value(`sum(tcpadvisor_outbound_connection_lifetime_seconds_sum` + toServers + `)`),
		lifetimeCount: value(`sum(tcpadvisor_outbound_connection_lifetime_seconds_count` + toServers + `)`),
		failures:      map[string]float64{},
	}
	samples, err := m.pipeline.Query(ctx, `sum by (errno) (tcpadvisor_outbound_connect_failures_total`+toServers+`)`)
	if err == nil {
		for _, s := range samples {
			t.failures[s.Labels["errno"]] = s.Value
		}
	}
	return t
}

// tracerFigures returns what the tracer counted between the first sample
// and the last, over a load of seconds; nil when it was never up.
func (m *meter) tracerFigures(seconds float64) *TracerFigures {
	m.mu.Lock()
	defer m.mu.Unlock()
	first, last := m.firstTracer, m.lastTracer
	if first == nil {
		return nil
	}
	f := &TracerFigures{Opened: last.opened - first.opened, ConnectFailures: map[string]float64{}}
	if seconds > 0 {
		f.OpensPerSecond = f.Opened / seconds
	}
	for errno, n := range last.failures {
		f.ConnectFailures[errno] = n - first.failures[errno]
	}
	if ended := last.lifetimeCount - first.lifetimeCount; ended > 0 {
		mean := (last.lifetimeSum - first.lifetimeSum) / ended
		f.MeanLifetime = &mean
	}
	return f
}

// about reports whether an advice's target is one of the arm's servers, or
// the whole host. On the host's loopback an earlier arm's TIME_WAIT, or the
// host's own services, would be advised about too.
func (m *meter) about(target map[string]string) bool {
	port, ok := target["destination_port"]
	if !ok {
		port, ok = target["port"]
	}
	return !ok || slices.Contains(m.ports, port)
}

// lastTimeWait is the TIME_WAIT count of the last sample, for the progress
// line.
func (m *meter) lastTimeWait() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.m.TimeWait) == 0 {
		return 0
	}
	return m.m.TimeWait[len(m.m.TimeWait)-1].Value
}

// measurement returns what was measured.
func (m *meter) measurement() Measurement {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.m
}

func (m *meter) close() { _ = m.pipeline.Close() }

// String names an advice and its target, as the table shows it: "pool
// 127.0.0.1:6379", "upstream-keepalive :5000".
func (f FiredAdvice) String() string {
	switch {
	case f.Target["destination_address"] != "":
		return fmt.Sprintf("%s %s:%s", f.ID, f.Target["destination_address"], f.Target["destination_port"])
	case f.Target["port"] != "":
		return fmt.Sprintf("%s :%s", f.ID, f.Target["port"])
	}
	return f.ID
}
