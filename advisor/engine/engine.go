// Package engine evaluates Prometheus alerting rules in-process over samples
// of a prometheus.Gatherer, as a Prometheus server scraping it would, and
// sends the alerts to Alertmanagers as that server would.
//
// It is the only package of tcpadvisor that imports
// github.com/prometheus/prometheus, whose Go API is not stable: the module is
// pinned, and every use of it stays behind this package's API.
//
// Each Cycle gathers the source and appends every sample at one timestamp
// to an in-memory TSDB head (no WAL; a temporary directory, removed by
// Close, holds its chunk files), with the target labels of Options.Labels.
// Series that were there in the last cycle and are gone get a staleness
// marker, as a scrape gives them, so an alert on them resolves at once. The
// cycle then evaluates every rule group at that timestamp with the rules
// package of Prometheus, which keeps the alerts' state, expands their
// annotations (the query template function included) and hands firing and
// resolved alerts to the notifier package of Prometheus: a bounded queue per
// Alertmanager, batches, a timeout per send, API v2. Run does this every
// Interval; tests call Cycle with the times they want.
//
// Sending never blocks a cycle. A firing alert is sent again every minute
// and a resolved one for 15 minutes, as Prometheus does, which is what makes
// up for a failed send. Stopping gives the queues 3 seconds to drain. An
// Alertmanager URL may carry user:password@ for basic authentication.
//
// # Retention
//
// The head keeps what the rules need and drops older data as it goes, so
// memory stays flat however long the engine runs. Retention is the longest
// for: plus keep_firing_for: of an alerting rule, plus the longest window an
// expression reads (the range of a range selector, plus the ranges and
// offsets of the subqueries around it, plus its offset), plus the PromQL
// lookback delta (5m), plus four intervals. Data goes in whole chunks, so
// the head holds up to half as much again. Queries in annotation templates
// and through Query are sure of that much history, no more.
//
// # TimeScale
//
// Options.TimeScale, in (0, 1], multiplies while loading every for:,
// keep_firing_for:, range selector range and subquery range and step of any
// rule file, to the millisecond: with 0.1, "for: 10m" holds for 1m and
// rate(x[5m]) reads 30s. It lets a demonstration or a test fire the real
// rules in minutes. Durations written as expressions (x[5m+1m]) are refused,
// since their value is only known at query time.
//
// # Rule files
//
// Rule files are Prometheus rule files, validated as promtool check rules
// does, with unknown fields refused. Groups are evaluated at every cycle: a
// group's interval: is refused rather than ignored. Errors are one line:
// the file (bundled:NAME for a bundled one), the line when known, the group
// and rule, and the problem.
package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"math"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
)

const (
	defaultInterval = 15 * time.Second
	// lookbackDelta is PromQL's default: how far back an instant selector
	// looks for a sample.
	lookbackDelta = 5 * time.Minute
	// resendDelay is Prometheus' default --rules.alert.resend-delay.
	resendDelay = time.Minute
	// queryTimeout and maxSamples bound one PromQL query, as Prometheus'
	// defaults do.
	queryTimeout = 2 * time.Minute
	maxSamples   = 50000000
)

// Options configure an Engine.
type Options struct {
	RuleFiles     []string          // rule files on disk; when empty, every *.yml of Bundled is used
	Bundled       fs.FS             // the embedded bundled rules (the caller passes rules.Files, an embed.FS)
	Interval      time.Duration     // sampling and evaluation interval; default 15s
	TimeScale     float64           // multiplies every for:, keep_firing_for: and range/subquery duration in the rules; 1 (or 0 = default 1) = as written; must be in (0, 1]
	Alertmanagers []string          // Alertmanager base URLs (http://host:9093[/prefix]); alerts go to their API v2
	ExternalURL   string            // the daemon's URL, for each alert's generatorURL
	Labels        map[string]string // labels added to every sample, like a scrape's target labels (the daemon passes instance and job)
	// Registerer, when set, gets the metrics of the rule groups and of the
	// notifier, under the names Prometheus gives them
	// (prometheus_rule_evaluation_failures_total,
	// prometheus_notifications_sent_total, ...), so that the alerts users
	// already have for a Prometheus server apply. Only one Engine of a
	// process may have it.
	Registerer prometheus.Registerer
	LogAlerts  bool // log one line when an alert starts firing and one when it resolves (the daemon does; a one-off run need not)
	Logger     *slog.Logger
}

// Alert is an active alert: pending or firing.
type Alert struct {
	Name        string
	Labels      map[string]string // the alert's labels (alertname included)
	Annotations map[string]string // expanded
	State       string            // "pending" or "firing"
	ActiveAt    time.Time         // since when the condition holds
	FiredAt     time.Time         // zero while pending
	Value       float64           // the value of the alert expression
}

// Sample is one element of a query result.
type Sample struct {
	Labels map[string]string // __name__ included when the result has a name
	Value  float64
}

// Engine samples a Gatherer and evaluates rules over the samples.
type Engine struct {
	source    prometheus.Gatherer
	interval  time.Duration
	scale     float64
	longest   time.Duration
	retention time.Duration
	logger    *slog.Logger

	dir       string
	head      *tsdb.Head
	queryable storage.Queryable
	promql    *promql.Engine
	ams       *alertmanagers // nil without Alertmanagers
	stopAMs   sync.Once

	// What Reload loads the rules again with.
	opts        Options
	parser      parser.Parser
	ruleOpts    *rules.ManagerOptions
	externalURL string
	reloads     *reloadMetrics

	// files and groups are the rules loaded; Reload replaces them, with
	// longest and retention, under mu.
	files  []string // as errors name them
	groups []*rules.Group

	// mu is held by Cycle and Close while they change the store, and read
	// by Query.
	mu          sync.RWMutex
	closed      bool
	first, last time.Time // of the first and the last Cycle
	// firing holds the firing alerts of the last Cycle, by their labels,
	// to log the ones that start and stop firing, with logAlerts.
	firing       map[string]labels.Labels
	logAlerts    bool
	lastTruncate time.Time
	sampler      *sampler
}

// New loads and validates the rules, and builds the in-memory store, the
// rule groups and the notifier. Close releases them.
func New(opts Options, source prometheus.Gatherer) (*Engine, error) {
	if source == nil {
		return nil, errors.New("engine: no source to gather")
	}
	interval := opts.Interval
	switch {
	case interval == 0:
		interval = defaultInterval
	case interval < time.Millisecond:
		return nil, fmt.Errorf("engine: interval %v: want 1ms or more", interval)
	}
	scale := opts.TimeScale
	if scale == 0 {
		scale = 1
	}
	if !(scale > 0 && scale <= 1) {
		return nil, fmt.Errorf("engine: time scale %v: want a number in (0, 1]", opts.TimeScale)
	}
	for name := range opts.Labels {
		if !model.UTF8Validation.IsValidLabelName(name) || name == model.MetricNameLabel {
			return nil, fmt.Errorf("engine: label %q: not a valid label name", name)
		}
	}
	externalURL, err := url.Parse(strings.TrimSuffix(opts.ExternalURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("engine: external URL %q: %w", opts.ExternalURL, err)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}

	p := newParser()
	files, err := loadRules(opts, p, scale)
	if err != nil {
		return nil, err
	}

	e := &Engine{
		source:      source,
		interval:    interval,
		scale:       scale,
		logAlerts:   opts.LogAlerts,
		logger:      logger,
		sampler:     newSampler(opts.Labels),
		opts:        opts,
		parser:      p,
		externalURL: externalURL.String(),
	}
	e.setWindows(files) // the store's chunk range follows the retention
	if err := e.openHead(); err != nil {
		return nil, err
	}
	e.queryable = storage.QueryableFunc(func(mint, maxt int64) (storage.Querier, error) {
		return tsdb.NewBlockQuerier(tsdb.NewRangeHead(e.head, mint, maxt), mint, maxt)
	})
	e.promql = promql.NewEngine(promql.EngineOpts{
		Logger:                   logger.With("component", "promql"),
		MaxSamples:               maxSamples,
		Timeout:                  queryTimeout,
		LookbackDelta:            lookbackDelta,
		NoStepSubqueryIntervalFn: func(int64) int64 { return interval.Milliseconds() },
		EnableAtModifier:         true,
		EnableNegativeOffset:     true,
		Parser:                   p,
	})

	notify := func(context.Context, string, ...*rules.Alert) {}
	if len(opts.Alertmanagers) > 0 {
		e.ams, err = startAlertmanagers(opts.Alertmanagers, opts.Registerer, logger.With("component", "notifier"))
		if err != nil {
			e.closeHead()
			return nil, fmt.Errorf("engine: %w", err)
		}
		notify = rules.SendAlerts(e.ams.manager, externalURL.String())
	}

	ruleOpts := &rules.ManagerOptions{
		ExternalURL:  externalURL,
		QueryFunc:    rules.EngineQueryFunc(e.promql, e.queryable),
		NotifyFunc:   notify,
		Context:      context.Background(),
		AppendableV2: e.head,
		Queryable:    e.queryable,
		Logger:       logger.With("component", "rules"),
		ResendDelay:  resendDelay,
		Metrics:      rules.NewGroupMetrics(opts.Registerer),
	}
	e.ruleOpts = ruleOpts
	e.files, e.groups = e.newGroups(files)
	e.reloads = newReloadMetrics(opts.Registerer)
	return e, nil
}

// newGroups returns the names of files and the rule groups they hold.
func (e *Engine) newGroups(files []ruleFile) (names []string, groups []*rules.Group) {
	for _, f := range files {
		names = append(names, f.name)
		for _, g := range f.groups {
			groups = append(groups, newGroup(f.name, g, e.interval, e.ruleOpts, e.externalURL))
		}
	}
	return names, groups
}

// Reload loads the rule files again, as Prometheus does on SIGHUP: a group
// of the same file and name keeps the state of its alerts (pending since,
// firing since) for each rule of the same name and labels, so that an
// unchanged rule neither fires again nor starts its for: over; a rule that
// is gone resolves. When a file fails to load, Reload returns its error and
// the rules loaded before stay. The outcome is exported as Prometheus
// exports a configuration reload's.
func (e *Engine) Reload() error {
	files, err := loadRules(e.opts, e.parser, e.scale)
	if err != nil {
		e.reloads.failed()
		return err
	}
	names, groups := e.newGroups(files)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return errors.New("engine: reload after Close")
	}
	old := map[string]*rules.Group{}
	for _, g := range e.groups {
		old[rules.GroupKey(g.File(), g.Name())] = g
	}
	for _, g := range groups {
		key := rules.GroupKey(g.File(), g.Name())
		if from, ok := old[key]; ok {
			g.CopyState(from)
			delete(old, key)
		}
	}
	for key := range old {
		e.deleteGroupMetrics(key)
	}
	e.files, e.groups = names, groups
	e.setWindows(files)
	e.reloads.succeeded(time.Now())
	return nil
}

// setWindows sets the longest window of the rules of files and the history
// they need.
func (e *Engine) setWindows(files []ruleFile) {
	e.longest = longestWindow(files)
	e.retention = retention(e.longest, e.interval)
}

// deleteGroupMetrics removes the series of a group that is gone, as
// Prometheus' rule manager does.
func (e *Engine) deleteGroupMetrics(key string) {
	m := e.ruleOpts.Metrics
	for _, v := range []interface{ DeleteLabelValues(...string) bool }{
		m.IterationsMissed, m.IterationsScheduled, m.EvalTotal, m.EvalFailures, m.GroupInterval, m.GroupLastEvalTime,
		m.GroupLastDuration, m.GroupRules, m.GroupSamples, m.GroupLastRuleDurationSum, m.GroupLastRestoreDuration,
	} {
		v.DeleteLabelValues(key)
	}
}

func newGroup(file string, g ruleGroup, interval time.Duration, opts *rules.ManagerOptions, externalURL string) *rules.Group {
	rs := make([]rules.Rule, 0, len(g.rules))
	for _, r := range g.rules {
		lset := rules.FromMaps(g.labels, r.labels)
		if r.alert != "" {
			rs = append(rs, rules.NewAlertingRule(r.alert, r.expr, r.hold, r.keepFiringFor,
				lset, labels.FromMap(r.annotations), labels.EmptyLabels(), externalURL,
				true, // no state to restore: write ALERTS_FOR_STATE from the start
				opts.Logger.With("alert", r.alert)))
			continue
		}
		rs = append(rs, rules.NewRecordingRule(r.record, r.expr, lset))
	}
	return rules.NewGroup(rules.GroupOptions{
		Name:        g.name,
		File:        file,
		Interval:    interval,
		Limit:       g.limit,
		Rules:       rs,
		Opts:        opts,
		QueryOffset: g.queryOffset,
	})
}

// longestWindow is the longest for: (with keep_firing_for:) plus the longest
// window an expression reads, of any rule: how long a condition must hold
// before the slowest rule can fire.
func longestWindow(files []ruleFile) time.Duration {
	var hold, win time.Duration
	for _, f := range files {
		for _, g := range f.groups {
			for _, r := range g.rules {
				hold = max(hold, r.hold+r.keepFiringFor)
				w := window(r.expr)
				if g.queryOffset != nil {
					w += max(*g.queryOffset, 0)
				}
				win = max(win, w)
			}
		}
	}
	return hold + win
}

// retention is the history the rules need; see the package doc.
func retention(longest, interval time.Duration) time.Duration {
	return longest + lookbackDelta + 4*interval
}

// openHead opens the in-memory head. Chunks are cut at most every quarter
// of the retention and the head is truncated every quarter of the
// retention, so it holds at most 1.5 times the retention.
func (e *Engine) openHead() error {
	dir, err := os.MkdirTemp("", "tcpadvisor-engine-")
	if err != nil {
		return fmt.Errorf("engine: temporary directory for the store: %w", err)
	}
	opts := tsdb.DefaultHeadOptions()
	opts.ChunkDirRoot = dir
	opts.ChunkRange = max(e.retention.Milliseconds()/4, 1)
	opts.StripeSize = 1024 // the exporter has a few thousand series, not millions
	// The head logs every truncation at info level: keep its warnings only.
	head, err := tsdb.NewHead(nil, slog.New(minLevel{e.logger.Handler(), slog.LevelWarn}).With("component", "tsdb"), nil, nil, opts, nil)
	if err == nil {
		err = head.Init(math.MinInt64)
	}
	if err != nil {
		os.RemoveAll(dir)
		return fmt.Errorf("engine: store: %w", err)
	}
	e.dir, e.head = dir, head
	return nil
}

// Cycle gathers the source, appends its samples at now, evaluates every
// rule group at now and hands the alerts to the notifier. Its error (a
// failing gather, samples the store refused, rules that failed) leaves the
// engine usable: what could be appended and evaluated was.
func (e *Engine) Cycle(ctx context.Context, now time.Time) error {
	// Gathering may take as long as the exporter's collection: do it before
	// taking the lock that Query waits for.
	families, gatherErr := e.source.Gather()
	if gatherErr != nil {
		gatherErr = fmt.Errorf("gather: %w", gatherErr)
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return errors.New("engine: cycle after Close")
	}
	now = timestamp.Time(timestamp.FromTime(now)) // the store's millisecond
	if !e.last.IsZero() && !now.After(e.last) {
		return fmt.Errorf("engine: cycle at %s, not after the last one at %s", now.Format(time.RFC3339Nano), e.last.Format(time.RFC3339Nano))
	}

	app := e.head.AppenderV2(ctx)
	_, appendErr := e.sampler.append(ctx, app, families, timestamp.FromTime(now))
	if err := app.Commit(); err != nil {
		return errors.Join(gatherErr, fmt.Errorf("append: %w", err))
	}
	if e.last.IsZero() {
		e.first = now
	}
	e.last = now
	if appendErr != nil {
		appendErr = fmt.Errorf("append: %w", appendErr)
	}
	if err := ctx.Err(); err != nil {
		return errors.Join(gatherErr, appendErr, err)
	}

	for _, g := range e.groups {
		g.Eval(ctx, now)
	}
	if e.logAlerts {
		e.logTransitions()
	}
	var ruleErrs []error
	for _, g := range e.groups {
		for _, r := range g.Rules() {
			if r.Health() == rules.HealthBad {
				ruleErrs = append(ruleErrs, fmt.Errorf("%s: group %q: rule %q: %w", g.File(), g.Name(), r.Name(), r.LastError()))
			}
		}
	}

	var truncErr error
	if now.Sub(e.lastTruncate) >= e.retention/4 {
		if err := e.head.Truncate(timestamp.FromTime(now.Add(-e.retention))); err != nil {
			truncErr = fmt.Errorf("truncate the store: %w", err)
		}
		e.lastTruncate = now
	}
	return errors.Join(gatherErr, appendErr, errors.Join(ruleErrs...), truncErr)
}

// Run calls Cycle now and every Interval with the time until ctx is done,
// then stops the notifier, giving it a few seconds to send what it holds.
// afterCycle, when not nil, is called with the time of each cycle once it
// is over. A failing cycle is logged.
func (e *Engine) Run(ctx context.Context, afterCycle func(now time.Time)) error {
	defer e.stopAlertmanagers()
	ticker := time.NewTicker(e.interval)
	defer ticker.Stop()
	for {
		now := time.Now()
		if err := e.Cycle(ctx, now); err != nil && ctx.Err() == nil {
			e.logger.Warn("advisor cycle failed", "err", err)
		}
		if afterCycle != nil {
			afterCycle(now)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

// logTransitions logs one line for each alert that started firing since
// the last cycle, and one for each that stopped: the advice it gives, and
// where.
func (e *Engine) logTransitions() {
	firing := map[string]labels.Labels{}
	for _, g := range e.groups {
		for _, r := range g.AlertingRules() {
			for _, a := range r.ActiveAlerts() {
				if a.State == rules.StateFiring {
					firing[a.Labels.String()] = a.Labels
				}
			}
		}
	}
	log := func(msg string, lset labels.Labels) {
		e.logger.Info(msg, "advice", lset.Get("advice"), "alertname", lset.Get(labels.AlertName), "severity", lset.Get("severity"),
			"labels", lset.MatchLabels(false, labels.AlertName, "advice", "severity").String())
	}
	for _, key := range slices.Sorted(maps.Keys(firing)) {
		if _, was := e.firing[key]; !was {
			log("advice firing", firing[key])
		}
	}
	for _, key := range slices.Sorted(maps.Keys(e.firing)) {
		if _, is := firing[key]; !is {
			log("advice resolved", e.firing[key])
		}
	}
	e.firing = firing
}

// Alerts returns the active alerts, pending and firing, sorted by name and
// then labels.
func (e *Engine) Alerts() []Alert {
	type alert struct {
		Alert
		lset labels.Labels
	}
	e.mu.RLock()
	groups := e.groups
	e.mu.RUnlock()
	var all []alert
	for _, g := range groups {
		for _, r := range g.AlertingRules() {
			for _, a := range r.ActiveAlerts() {
				if a.State != rules.StatePending && a.State != rules.StateFiring {
					continue
				}
				all = append(all, alert{Alert{
					Name:        r.Name(),
					Labels:      a.Labels.Map(),
					Annotations: a.Annotations.Map(),
					State:       a.State.String(),
					ActiveAt:    a.ActiveAt,
					FiredAt:     a.FiredAt,
					Value:       a.Value,
				}, a.Labels})
			}
		}
	}
	slices.SortFunc(all, func(a, b alert) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return labels.Compare(a.lset, b.lset)
	})
	res := make([]Alert, len(all))
	for i, a := range all {
		res[i] = a.Alert
	}
	return res
}

// Query evaluates expr at the time of the last Cycle. The result must be an
// instant vector or a scalar (one Sample without labels).
func (e *Engine) Query(ctx context.Context, expr string) ([]Sample, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return nil, errors.New("engine: query after Close")
	}
	if e.last.IsZero() {
		return nil, errors.New("engine: no samples yet: no cycle has run")
	}
	q, err := e.promql.NewInstantQuery(ctx, e.queryable, nil, expr, e.last)
	if err != nil {
		return nil, err
	}
	defer q.Close()
	res := q.Exec(ctx)
	if res.Err != nil {
		return nil, res.Err
	}
	switch v := res.Value.(type) {
	case promql.Vector:
		samples := make([]Sample, 0, len(v))
		for _, s := range v {
			if s.H != nil {
				continue // no native histograms are stored
			}
			samples = append(samples, Sample{Labels: s.Metric.Map(), Value: s.F})
		}
		return samples, nil
	case promql.Scalar:
		return []Sample{{Labels: map[string]string{}, Value: v.V}}, nil
	default:
		return nil, fmt.Errorf("query %q: the result is a %s; ask for an instant vector or a scalar", expr, res.Value.Type())
	}
}

// Retention is how much history the store keeps (see the package doc).
func (e *Engine) Retention() time.Duration {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.retention
}

// LongestWindow returns how long a condition must hold before the slowest
// rule can fire: its for: (and keep_firing_for:) plus the window its
// expression reads, after TimeScale.
func (e *Engine) LongestWindow() time.Duration {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.longest
}

// LogRules logs, in one line, the rules the engine loaded: the daemon does
// it at start and after each Reload.
func (e *Engine) LogRules() {
	e.mu.RLock()
	defer e.mu.RUnlock()
	alerting, recording := 0, 0
	for _, g := range e.groups {
		for _, r := range g.Rules() {
			if _, ok := r.(*rules.AlertingRule); ok {
				alerting++
			} else {
				recording++
			}
		}
	}
	e.logger.Info("rules loaded", "files", e.files, "groups", len(e.groups), "alerting_rules", alerting, "recording_rules", recording,
		"time_scale", e.scale, "longest_window", e.longest)
}

// TimeScale returns the factor of Options.TimeScale that multiplies the
// rules' windows (1 when they are as written): a query that quotes a
// rule's window scales it with ScaleWindows to read what the rule read.
func (e *Engine) TimeScale() float64 { return e.scale }

// WarmUntil returns when the engine will have observed the rules' longest
// window (LongestWindow) since its first Cycle: before then a condition
// can hold without its alert having had the time to fire. Before the first
// Cycle it counts from now.
func (e *Engine) WarmUntil(now time.Time) time.Time {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.first.IsZero() {
		return now.Add(e.longest)
	}
	return e.first.Add(e.longest)
}

// Close stops the notifier, as Run does, and frees the store. Cycle and
// Query fail after it.
func (e *Engine) Close() error {
	e.stopAlertmanagers()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	return e.closeHead()
}

func (e *Engine) closeHead() error {
	err := e.head.Close()
	if rmErr := os.RemoveAll(e.dir); rmErr != nil {
		err = errors.Join(err, rmErr)
	}
	if err != nil {
		return fmt.Errorf("engine: close the store: %w", err)
	}
	return nil
}

func (e *Engine) stopAlertmanagers() {
	if e.ams != nil {
		e.stopAMs.Do(e.ams.stop)
	}
}

// minLevel passes on the records of its handler at min or above.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(attrs []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(attrs), h.min}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.min}
}
