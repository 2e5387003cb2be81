// Package pipeline builds what every command of tcpadvisor runs: the
// exporter that reads the kernel, the engine that samples it and evaluates
// the rules over the samples, and the advisor that turns the engine's alerts
// into advice. serve, advise and workload each build one Pipeline and drive
// it with Run; none of them wires the parts itself.
package pipeline

import (
	"context"
	"io/fs"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tcpadvisor/tcpadvisor/advisor"
	"github.com/tcpadvisor/tcpadvisor/advisor/engine"
	"github.com/tcpadvisor/tcpadvisor/exporter"
	"github.com/tcpadvisor/tcpadvisor/rules"
)

// Options configure a Pipeline.
type Options struct {
	// Exporter configures the collectors.
	Exporter exporter.Options
	// RuleFiles replace the bundled rules when not empty.
	RuleFiles []string
	// Interval is how often Run samples the exporter and evaluates the
	// rules.
	Interval time.Duration
	// TimeScale multiplies every for: and range window of the rules; 0 or
	// 1 evaluates them as written.
	TimeScale float64
	// Alertmanagers receive the alerts, firing and resolved.
	Alertmanagers []string
	// ExternalURL is the daemon's URL, for the alerts' links.
	ExternalURL string
	// RunbookBase, when set, is the URL of a daemon that serves
	// /docs/advice.md, where the bundled rules' runbook links then point
	// instead of GitHub.
	RunbookBase string
	// Labels are added to every sample, as a scrape's target labels are.
	Labels map[string]string
	// Registerer, when set, gets the engine's and the notifier's metrics:
	// rule evaluations, failures and durations, and alerts sent, failed,
	// dropped and queued. Only one Pipeline of a process may have it.
	Registerer prometheus.Registerer
	// LogAdvice logs the rules loaded, at once, and one line each time an
	// advice fires or resolves: the daemon does, a one-off run need not.
	LogAdvice bool
	Logger    *slog.Logger
}

// Pipeline is an exporter, the engine sampling it, and the advisor reading
// the engine.
type Pipeline struct {
	// Exporter is the pipeline's exporter, for a caller that also serves
	// its metrics.
	Exporter *exporter.Exporter
	engine   *engine.Engine
	advisor  *advisor.Advisor
	logger   *slog.Logger
}

// New builds a Pipeline; Close releases it.
func New(opts Options) (*Pipeline, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	exp, err := exporter.NewFromOptions(opts.Exporter, logger)
	if err != nil {
		return nil, err
	}
	// The engine samples a registry of its own, holding only the
	// exporter: the rules read nothing else.
	sampled := prometheus.NewRegistry()
	sampled.MustRegister(exp)
	eng, err := engine.New(engineOptions(opts, logger), sampled)
	if err != nil {
		exp.Close()
		return nil, err
	}
	if opts.LogAdvice {
		eng.LogRules()
	}
	return &Pipeline{Exporter: exp, engine: eng, advisor: advisor.New(eng, logger), logger: logger}, nil
}

func engineOptions(opts Options, logger *slog.Logger) engine.Options {
	var bundled fs.FS = rules.Files
	if opts.RunbookBase != "" {
		bundled = rules.WithRunbooksAt(opts.RunbookBase)
	}
	return engine.Options{
		RuleFiles:     opts.RuleFiles,
		Bundled:       bundled,
		Interval:      opts.Interval,
		TimeScale:     opts.TimeScale,
		Alertmanagers: opts.Alertmanagers,
		ExternalURL:   opts.ExternalURL,
		Labels:        opts.Labels,
		Registerer:    opts.Registerer,
		LogAlerts:     opts.LogAdvice,
		Logger:        logger,
	}
}

// Run samples the exporter and evaluates the rules now and every Interval
// until ctx is done, calling afterCycle (when not nil) with the time of
// each cycle once it is over. A failing cycle is logged: what could be
// sampled and evaluated was. When Run returns, the notifier has been given
// a few seconds to send what it holds.
func (p *Pipeline) Run(ctx context.Context, afterCycle func(now time.Time)) {
	p.engine.Run(ctx, afterCycle)
}

// Cycle samples and evaluates once, at now.
func (p *Pipeline) Cycle(ctx context.Context, now time.Time) error {
	return p.engine.Cycle(ctx, now)
}

// Reload loads the rule files again, keeping the state of the alerts whose
// rules did not change (engine.Reload), and logs the rules loaded. When a
// file fails to load, the rules loaded before stay.
func (p *Pipeline) Reload() error {
	if err := p.engine.Reload(); err != nil {
		return err
	}
	p.engine.LogRules()
	return nil
}

// Report returns the advice of the last cycle.
func (p *Pipeline) Report(ctx context.Context, now time.Time) advisor.Report {
	return p.advisor.Report(ctx, now)
}

// Query evaluates PromQL over the samples, at the time of the last cycle.
func (p *Pipeline) Query(ctx context.Context, expr string) ([]engine.Sample, error) {
	return p.engine.Query(ctx, expr)
}

// Alerts returns the active alerts of the last cycle.
func (p *Pipeline) Alerts() []engine.Alert { return p.engine.Alerts() }

// Advisor returns the advisor, for the handlers that serve its advice.
func (p *Pipeline) Advisor() *advisor.Advisor { return p.advisor }

// Close stops the notifier, frees the engine's store and detaches the
// exporter's connection tracer.
func (p *Pipeline) Close() error {
	err := p.engine.Close()
	p.Exporter.Close()
	return err
}

// FitTimeScale returns the time scale that makes the rules' longest window
// (for: plus range) take half of duration, so that a condition that holds
// from the start fires within it; 1 when they already fit.
func FitTimeScale(ruleFiles []string, duration time.Duration, logger *slog.Logger) (float64, error) {
	probe, err := engine.New(engine.Options{RuleFiles: ruleFiles, Bundled: rules.Files, TimeScale: 1, Logger: logger}, prometheus.NewRegistry())
	if err != nil {
		return 0, err
	}
	longest := probe.LongestWindow()
	if err := probe.Close(); err != nil {
		return 0, err
	}
	if longest <= duration/2 {
		return 1, nil
	}
	return float64(duration/2) / float64(longest), nil
}
