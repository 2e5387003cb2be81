// Package exporter turns what the kernel says about TCP (sock_diag, /proc/net
// and /proc/sys) into Prometheus metrics. Each source is a Collector in a file
// of its own; the Exporter runs them together for every scrape and reports
// each one's success and duration, so that a failing source never sinks the
// scrape.
package exporter

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Namespace prefixes every metric name tcpadvisor exports.
const Namespace = "tcpadvisor"

// Collector is one source of metrics.
type Collector interface {
	// Update sends the source's metrics to ch. It returns an error when
	// the source could not be read; "nothing here" (an optional file that
	// does not exist) is not an error. Update must give up once ctx is done.
	Update(ctx context.Context, ch chan<- prometheus.Metric) error
}

var (
	scrapeSuccessDesc = prometheus.NewDesc(
		prometheus.BuildFQName(Namespace, "scrape", "collector_success"),
		"Whether the collector succeeded in this scrape (1) or failed (0).",
		[]string{"collector"}, nil)
	scrapeDurationDesc = prometheus.NewDesc(
		prometheus.BuildFQName(Namespace, "scrape", "collector_duration_seconds"),
		"How long the collector took in this scrape.",
		[]string{"collector"}, nil)
)

// Exporter is a prometheus.Collector that runs a set of named Collectors.
// Scrapes that arrive while a collection is running wait for it and share
// its result, so any number of concurrent scrapes cost one collection.
type Exporter struct {
	collectors map[string]Collector
	names      []string
	timeout    time.Duration
	logger     *slog.Logger

	mu       sync.Mutex
	inflight *collection
}

type collection struct {
	done    chan struct{}
	metrics []prometheus.Metric
}

// New returns an Exporter running collectors, each collection bounded by
// timeout.
func New(collectors map[string]Collector, timeout time.Duration, logger *slog.Logger) *Exporter {
	names := make([]string, 0, len(collectors))
	for name := range collectors {
		names = append(names, name)
	}
	slices.Sort(names)
	return &Exporter{collectors: collectors, names: names, timeout: timeout, logger: logger}
}

// Close releases what the collectors hold: the connection tracer's program
// is detached, nothing of it stays in the kernel.
func (e *Exporter) Close() {
	closeCollectors(e.collectors)
}

// Describe sends nothing: the Exporter is an unchecked collector, because
// which series exist (destinations, ports) is only known once collected.
func (e *Exporter) Describe(chan<- *prometheus.Desc) {}

// Collect runs a collection, or joins the one under way, and sends its
// metrics.
func (e *Exporter) Collect(ch chan<- prometheus.Metric) {
	for _, m := range e.collect() {
		ch <- m
	}
}

func (e *Exporter) collect() []prometheus.Metric {
	e.mu.Lock()
	if c := e.inflight; c != nil {
		e.mu.Unlock()
		<-c.done
		return c.metrics
	}
	c := &collection{done: make(chan struct{})}
	e.inflight = c
	e.mu.Unlock()

	c.metrics = e.run()

	e.mu.Lock()
	e.inflight = nil
	e.mu.Unlock()
	close(c.done)
	return c.metrics
}

// run updates every collector concurrently and gathers their metrics.
func (e *Exporter) run() []prometheus.Metric {
	ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
	defer cancel()

	results := make([][]prometheus.Metric, len(e.names))
	var wg sync.WaitGroup
	for i, name := range e.names {
		wg.Go(func() { results[i] = e.runOne(ctx, name) })
	}
	wg.Wait()
	return slices.Concat(results...)
}

func (e *Exporter) runOne(ctx context.Context, name string) []prometheus.Metric {
	metrics, duration, err := runCollector(ctx, e.collectors[name])
	success := 1.0
	if err != nil {
		success = 0
		e.logger.Error("collector failed", "collector", name, "duration_seconds", duration.Seconds(), "err", err)
	} else {
		e.logger.Debug("collector succeeded", "collector", name, "duration_seconds", duration.Seconds())
	}
	return append(metrics,
		prometheus.MustNewConstMetric(scrapeDurationDesc, prometheus.GaugeValue, duration.Seconds(), name),
		prometheus.MustNewConstMetric(scrapeSuccessDesc, prometheus.GaugeValue, success, name),
	)
}

// runCollector runs one collector's Update and returns the metrics it sent,
// how long it took, and its error.
func runCollector(ctx context.Context, c Collector) ([]prometheus.Metric, time.Duration, error) {
	ch := make(chan prometheus.Metric, 64)
	var metrics []prometheus.Metric
	drained := make(chan struct{})
	go func() {
		for m := range ch {
			metrics = append(metrics, m)
		}
		close(drained)
	}()
	start := time.Now()
	err := c.Update(ctx, ch)
	duration := time.Since(start)
	close(ch)
	<-drained
	return metrics, duration, err
}
