// Package exporter turns what the kernel says about TCP (sock_diag, /proc/net
// and /proc/sys) into Prometheus metrics. Each source is a Collector in a file
// of its own; the Exporter runs them together for every scrape and reports
// each one's success and duration, so that a failing source never sinks the
// scrape.
package exporter

import (
	"context"
	"errors"
	"fmt"
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
//
// A collection ends at its deadline whatever its collectors do: one still
// running then is reported failed, and is not started again until its
// Update returns (a read of a hung file can block in the kernel, deaf to
// any context), so a stuck source costs one goroutine, not one a scrape.
type Exporter struct {
	collectors map[string]Collector
	names      []string
	timeout    time.Duration
	logger     *slog.Logger

	mu       sync.Mutex
	inflight *collection
	// running holds the collectors whose Update has not returned yet,
	// whether of the collection under way or of one that gave up on it.
	running map[string]bool
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
	return &Exporter{collectors: collectors, names: names, timeout: timeout, logger: logger, running: map[string]bool{}}
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

// outcome is what one collector's Update gave.
type outcome struct {
	metrics  []prometheus.Metric
	duration time.Duration
	err      error
}

// errStillRunning fails a collector whose Update from an earlier collection
// has not returned.
var errStillRunning = errors.New("still running since an earlier collection passed its deadline (--collector.timeout); not started again until it returns")

// run updates every collector concurrently and gathers the metrics of those
// done by the deadline; the others report failure.
func (e *Exporter) run() []prometheus.Metric {
	ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
	defer cancel()
	start := time.Now()

	outcomes := make([]chan outcome, len(e.names))
	for i, name := range e.names {
		outcomes[i] = make(chan outcome, 1)
		if !e.start(name) {
			outcomes[i] <- outcome{err: errStillRunning}
			continue
		}
		go func() {
			metrics, duration, err := runCollector(ctx, e.collectors[name])
			e.finish(name)
			outcomes[i] <- outcome{metrics, duration, err}
		}()
	}
	results := make([][]prometheus.Metric, len(e.names))
	for i, name := range e.names {
		var o outcome
		select {
		case o = <-outcomes[i]:
		case <-ctx.Done():
			// A collector that heeds ctx returns at once; one that
			// does not is left behind.
			select {
			case o = <-outcomes[i]:
			default:
				o = outcome{duration: time.Since(start), err: fmt.Errorf("no answer within --collector.timeout=%v: %w", e.timeout, ctx.Err())}
			}
		}
		results[i] = e.report(name, o)
	}
	return slices.Concat(results...)
}

// start marks name running, unless it already is.
func (e *Exporter) start(name string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.running[name] {
		return false
	}
	e.running[name] = true
	return true
}

func (e *Exporter) finish(name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.running, name)
}

// report returns a collector's metrics with its success and duration.
func (e *Exporter) report(name string, o outcome) []prometheus.Metric {
	success := 1.0
	if o.err != nil {
		success = 0
		e.logger.Error("collector failed", "collector", name, "duration_seconds", o.duration.Seconds(), "err", o.err)
	} else {
		e.logger.Debug("collector succeeded", "collector", name, "duration_seconds", o.duration.Seconds())
	}
	return append(o.metrics,
		prometheus.MustNewConstMetric(scrapeDurationDesc, prometheus.GaugeValue, o.duration.Seconds(), name),
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
