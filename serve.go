package main

import (
	"context"
	"errors"
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
	"github.com/tcpadvisor/tcpadvisor/advisor/engine"
	"github.com/tcpadvisor/tcpadvisor/advisor/render"
	"github.com/tcpadvisor/tcpadvisor/exporter"
	"github.com/tcpadvisor/tcpadvisor/rules"
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
		telemetryPath: cmd.Flag("web.telemetry-path", "Path under which to expose metrics.").Default("/metrics").String(),
		maxRequests:   intFlag(cmd, "web.max-requests", "Most scrapes served in parallel; further ones get 503. 0 disables the limit.", 40, 0),
		externalURL:   cmd.Flag("web.external-url", "The URL under which tcpadvisor is reached, for the links in alerts. Default: http://HOSTNAME:PORT.").PlaceHolder("URL").String(),
		interval:      durationFlag(cmd, "rules.evaluation-interval", "How often the advisor samples the collectors and evaluates the rules.", 15*time.Second),
		timeScale: fractionFlag(cmd, "rules.time-scale",
			"Multiplies every for: and range window of the rules, to see advice sooner in tests and demonstrations (0.1: a for: 5m holds after 30s). 1 evaluates them as written.", 1),
		alertmanagers: urlFlags(cmd, "alertmanager.url", "Alertmanager to send the advisor's alerts to (API v2), such as http://127.0.0.1:9093. Repeatable."),
	}
}

// run serves until the listener fails.
func (s *serveCommand) run(opts exporter.Options, ruleFiles []string, logger *slog.Logger) error {
	if path := *s.web.WebConfigFile; path != "" {
		if err := web.Validate(path); err != nil {
			return fmt.Errorf("--web.config.file=%s: %v; fix the file or leave the flag out", path, err)
		}
	}
	exp, err := exporter.NewFromOptions(opts, logger)
	if err != nil {
		return err
	}
	// Detaches the connection tracer, also on SIGTERM (run returns then).
	defer exp.Close()
	// The advisor samples a registry of its own, holding only the exporter:
	// the rules read nothing else.
	sampled := prometheus.NewRegistry()
	sampled.MustRegister(exp)
	eng, err := engine.New(engine.Options{
		RuleFiles:     ruleFiles,
		Bundled:       rules.Files,
		Interval:      *s.interval,
		TimeScale:     *s.timeScale,
		Alertmanagers: *s.alertmanagers,
		ExternalURL:   s.externalURLOrDefault(),
		Labels:        map[string]string{"instance": s.instance(), "job": "tcpadvisor"},
		Logger:        logger,
	}, sampled)
	if err != nil {
		return err
	}
	defer eng.Close()

	handler, err := newHandler(exp, advisor.New(eng, sysctlReader(opts.ProcPath), logger), *s.telemetryPath, *s.maxRequests, logger)
	if err != nil {
		return err
	}
	logger.Info("starting tcpadvisor", "version", version.Info(), "build_context", version.BuildContext())
	if os.Geteuid() == 0 {
		logger.Warn("running as root: tcpadvisor needs no more than CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH (to name socket owners), and CAP_SYS_ADMIN with --collector.netns; run it as an unprivileged user with those (deploy/systemd)")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go eng.Run(ctx)

	server := &http.Server{Handler: handler}
	// On SIGTERM or SIGINT, finish the requests under way and return, so
	// that the deferred Close removes the advisor's store and flushes its
	// alerts.
	go func() {
		<-ctx.Done()
		logger.Info("shutting down")
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		server.Shutdown(shutdownCtx)
	}()
	err = web.ListenAndServe(server, s.web, logger)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("--web.listen-address=%v: address already in use; stop what listens there or choose another address", *s.web.WebListenAddresses)
	}
	if err != nil {
		return fmt.Errorf("serve on --web.listen-address=%v: %w", *s.web.WebListenAddresses, err)
	}
	return nil
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

// sysctlReader reads a sysctl by its dotted name under procPath.
func sysctlReader(procPath string) func(string) (string, error) {
	return func(name string) (string, error) {
		b, err := os.ReadFile(advisor.SysctlPath(procPath, name))
		return string(b), err
	}
}

// newHandler returns the daemon's HTTP handler: the landing page, the
// advice, and the metrics of the exporter, of the Go runtime and of the
// process.
func newHandler(exp *exporter.Exporter, adv *advisor.Advisor, telemetryPath string, maxRequests int, logger *slog.Logger) (http.Handler, error) {
	registry := prometheus.NewRegistry()
	registry.MustRegister(
		exp,
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
	mux.Handle("/advice", adviceHandler(adv, logger))
	if telemetryPath != "/" {
		landing, err := web.NewLandingPage(web.LandingConfig{
			Name:        "tcpadvisor",
			Description: "TCP socket states and ephemeral-port pressure, per destination, and what to change",
			Version:     version.Info(),
			Links: []web.LandingLinks{
				{Address: telemetryPath, Text: "Metrics"},
				{Address: "/advice", Text: "Advice", Description: "What to change, with the evidence (JSON: ?format=json)"},
			},
		})
		if err != nil {
			return nil, fmt.Errorf("landing page: %w", err)
		}
		mux.Handle("/", landing)
	}
	return mux, nil
}

// adviceHandler serves the current advice: an HTML page, or JSON for
// ?format=json or Accept: application/json.
func adviceHandler(adv *advisor.Advisor, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		report := adv.Report(r.Context(), time.Now())
		var err error
		if r.URL.Query().Get("format") == "json" || strings.Contains(r.Header.Get("Accept"), "application/json") {
			w.Header().Set("Content-Type", "application/json")
			err = render.JSON(w, report)
		} else {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			err = render.HTML(w, report)
		}
		if err != nil {
			logger.Error("write advice", "err", err)
		}
	})
}
