package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"
	"github.com/tcpadvisor/tcpadvisor/advisor"
	"github.com/tcpadvisor/tcpadvisor/advisor/render"
	"github.com/tcpadvisor/tcpadvisor/docs"
	"github.com/tcpadvisor/tcpadvisor/exporter"
	"github.com/tcpadvisor/tcpadvisor/internal/cliflag"
	"github.com/tcpadvisor/tcpadvisor/internal/pipeline"
)

// defaultListenAddress is outside the fully allocated 9100-9999 block of
// Prometheus' default port allocations, and outside the default ephemeral
// range, so that tcpadvisor never flags its own listener.
const defaultListenAddress = ":10067"

type serveCommand struct {
	web           *web.FlagConfig
	telemetryPath *string
	maxRequests   *int
	externalURL   *string
	interval      *time.Duration
	timeScale     *float64
	alertmanagers *[]string
}

func addServeCommand(app *kingpin.Application) *serveCommand {
	cmd := app.Command("serve", "Run the exporter and the advisor (the default command).").Default()
	return &serveCommand{
		web:           kingpinflag.AddFlags(cmd, defaultListenAddress),
		telemetryPath: telemetryPathFlag(cmd),
		maxRequests:   cliflag.Int(cmd, "web.max-requests", "Most scrapes served in parallel; further ones get 503. 0 disables the limit.", 40, 0),
		externalURL:   cmd.Flag("web.external-url", "The URL under which tcpadvisor is reached, for the links in alerts. Default: http://HOSTNAME:PORT.").PlaceHolder("URL").String(),
		interval:      cliflag.Duration(cmd, "rules.evaluation-interval", "How often the advisor samples the collectors and evaluates the rules.", 15*time.Second),
		timeScale: cliflag.Fraction(cmd, "rules.time-scale",
			"Multiplies every for: and range window of the rules, to see advice sooner in tests and demonstrations (0.1: a for: 5m holds after 30s). 1 evaluates them as written.", 1),
		alertmanagers: cliflag.URLs(cmd, "alertmanager.url", "Alertmanager to send the advisor's alerts to (API v2), such as http://127.0.0.1:9093. Repeatable."),
	}
}

// run serves until the listener fails.
func (s *serveCommand) run(opts exporter.Options, ruleFiles []string, logger *slog.Logger) error {
	if path := *s.web.WebConfigFile; path != "" {
		if err := web.Validate(path); err != nil {
			return fmt.Errorf("--web.config.file=%s: %v; fix the file or leave the flag out", path, err)
		}
	}
	// The served registry gets the engine's and the notifier's metrics
	// beside the exporter's.
	registry := prometheus.NewRegistry()
	p, err := pipeline.New(pipeline.Options{
		Exporter:  opts,
		RuleFiles: ruleFiles,
		// The bundled rules' runbook links lead to the daemon's own
		// /docs/advice.md.
		RunbookBase:   s.externalURLOrDefault(),
		Interval:      *s.interval,
		TimeScale:     *s.timeScale,
		Alertmanagers: *s.alertmanagers,
		ExternalURL:   s.externalURLOrDefault(),
		Labels:        map[string]string{"instance": s.instance(), "job": "tcpadvisor"},
		Registerer:    registry,
		LogAdvice:     true,
		Logger:        logger,
	})
	if err != nil {
		return err
	}
	defer p.Close()

	handler, err := newHandler(registry, p, *s.telemetryPath, *s.maxRequests, logger)
	if err != nil {
		return err
	}
	logger.Info("starting tcpadvisor", "version", version.Info(), "build_context", version.BuildContext())
	if os.Geteuid() == 0 {
		logger.Warn("running as root: tcpadvisor needs no more than CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH (to name socket owners), and CAP_SYS_ADMIN with --collector.netns; run it as an unprivileged user with those (deploy/systemd)")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The engine's cycle ends before the deferred Close closes its
	// store and its Alertmanager queues under it.
	engineDone := make(chan struct{})
	go func() {
		defer close(engineDone)
		p.Run(ctx, nil)
	}()
	defer func() {
		stop()
		<-engineDone
	}()
	reloadOnSIGHUP(ctx, p, logger)

	// On SIGTERM or SIGINT, finish the requests under way and return, so
	// that the deferred Close removes the advisor's store and flushes its
	// alerts.
	limits := defaultHTTPLimits(opts.Timeout)
	logger.Debug("HTTP limits", "max_connections", limits.maxConnections, "read_header_timeout", limits.readHeaderTimeout, "write_timeout", limits.writeTimeout)
	return serveHTTP(ctx, newHTTPServer(handler, limits, logger), s.web, limits.shutdownGrace, logger)
}

// reloadOnSIGHUP loads the rule files again on each SIGHUP until ctx ends,
// as Prometheus does (systemctl reload sends it): a file that fails to
// load is logged, and the rules loaded before are still evaluated.
func reloadOnSIGHUP(ctx context.Context, p *pipeline.Pipeline, logger *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := p.Reload(); err != nil {
					logger.Error("reload of the rule files failed: the rules loaded before are still evaluated; fix the file and send SIGHUP again", "err", err)
				}
			}
		}
	}()
}

// instance is the instance label of the advisor's samples: this host and
// the port it serves on, as a Prometheus scrape of it would name it.
func (s *serveCommand) instance() string {
	host, _ := os.Hostname()
	if addrs := *s.web.WebListenAddresses; len(addrs) > 0 {
		if _, port, err := net.SplitHostPort(addrs[0]); err == nil {
			return net.JoinHostPort(host, port)
		}
	}
	return host
}

func (s *serveCommand) externalURLOrDefault() string {
	if *s.externalURL != "" {
		return strings.TrimRight(*s.externalURL, "/")
	}
	return "http://" + s.instance()
}

// newHandler returns the daemon's HTTP handler: the landing page, the
// advice, and the metrics of registry (the engine's and the notifier's),
// of the pipeline's exporter, of the Go runtime and of the process.
func newHandler(registry *prometheus.Registry, p *pipeline.Pipeline, telemetryPath string, maxRequests int, logger *slog.Logger) (http.Handler, error) {
	registry.MustRegister(
		p.Exporter,
		// The advice as metrics, for a Prometheus that does not load the
		// rules: on the served registry only, never on the one the
		// engine samples.
		advisor.NewCollector(p.Advisor()),
		versioncollector.NewCollector(exporter.Namespace),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	mux := http.NewServeMux()
	mux.Handle(telemetryPath, promhttp.HandlerFor(registry, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(logger.Handler(), slog.LevelError),
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: maxRequests,
	}))
	mux.Handle("/advice", adviceHandler(p.Advisor(), telemetryPath, logger))
	mux.Handle("/docs/", docs.Handler(render.PageCSS))
	if telemetryPath != "/" {
		landing, err := web.NewLandingPage(web.LandingConfig{
			Name:        "tcpadvisor",
			Description: "TCP socket states and ephemeral-port pressure, per destination, and what to change",
			Version:     version.Info(),
			Links: []web.LandingLinks{
				{Address: telemetryPath, Text: "Metrics"},
				{Address: "/advice", Text: "Advice", Description: "What to change, with the evidence (JSON: ?format=json; reloaded every 30 s: ?refresh=30)"},
				{Address: "/docs/advice.md", Text: "Advice reference", Description: "What each advice means, its fix, and how to silence it"},
				{Address: "/docs/", Text: "Documentation"},
			},
		})
		if err != nil {
			return nil, fmt.Errorf("landing page: %w", err)
		}
		mux.Handle("/", landing)
	}
	return mux, nil
}

// adviceHandler serves the current advice: an HTML page, reloaded every N
// seconds with ?refresh=N, or JSON for ?format=json or Accept:
// application/json.
func adviceHandler(adv *advisor.Advisor, telemetryPath string, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		refresh, err := render.ParseRefresh(r.URL.Query().Get("refresh"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		page := render.Page{MetricsPath: telemetryPath, Refresh: refresh}
		report := adv.Report(r.Context(), time.Now())
		if r.URL.Query().Get("format") == "json" || strings.Contains(r.Header.Get("Accept"), "application/json") {
			w.Header().Set("Content-Type", "application/json")
			err = render.JSON(w, report)
		} else {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			err = render.HTMLPage(w, report, page)
		}
		if err != nil {
			logger.Error("write advice", "err", err)
		}
	})
}
