package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"syscall"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"
	"github.com/tcpadvisor/tcpadvisor/exporter"
)

// defaultListenAddress is outside the fully allocated 9100-9999 block of
// Prometheus' default port allocations, and outside the default ephemeral
// range, so that tcpadvisor never flags its own listener.
const defaultListenAddress = ":10067"

type serveCommand struct {
	web           *web.FlagConfig
	telemetryPath *string
	maxRequests   *int
}

func addServeCommand(app *kingpin.Application) *serveCommand {
	cmd := app.Command("serve", "Run the exporter (the default command).").Default()
	return &serveCommand{
		web:           kingpinflag.AddFlags(cmd, defaultListenAddress),
		telemetryPath: cmd.Flag("web.telemetry-path", "Path under which to expose metrics.").Default("/metrics").String(),
		maxRequests:   intFlag(cmd, "web.max-requests", "Most scrapes served in parallel; further ones get 503. 0 disables the limit.", 40, 0),
	}
}

// run serves until the listener fails.
func (s *serveCommand) run(opts exporter.Options, logger *slog.Logger) error {
	if path := *s.web.WebConfigFile; path != "" {
		if err := web.Validate(path); err != nil {
			return fmt.Errorf("--web.config.file=%s: %v; fix the file or leave the flag out", path, err)
		}
	}
	handler, err := newHandler(opts, *s.telemetryPath, *s.maxRequests, logger)
	if err != nil {
		return err
	}
	logger.Info("starting tcpadvisor", "version", version.Info(), "build_context", version.BuildContext())
	if os.Geteuid() == 0 {
		logger.Warn("running as root: tcpadvisor reads sock_diag and /proc as any user; run it as an unprivileged user")
	}
	server := &http.Server{Handler: handler}
	err = web.ListenAndServe(server, s.web, logger)
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("--web.listen-address=%v: address already in use; stop what listens there or choose another address", *s.web.WebListenAddresses)
	}
	if err != nil {
		return fmt.Errorf("serve on --web.listen-address=%v: %w", *s.web.WebListenAddresses, err)
	}
	return nil
}

// newHandler returns the daemon's HTTP handler: the landing page and the
// metrics of the exporter, of the Go runtime and of the process.
func newHandler(opts exporter.Options, telemetryPath string, maxRequests int, logger *slog.Logger) (http.Handler, error) {
	exp, err := exporter.NewFromOptions(opts, logger)
	if err != nil {
		return nil, err
	}
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
	if telemetryPath != "/" {
		landing, err := web.NewLandingPage(web.LandingConfig{
			Name:        "tcpadvisor",
			Description: "TCP socket states and ephemeral-port pressure, per destination",
			Version:     version.Info(),
			Links:       []web.LandingLinks{{Address: telemetryPath, Text: "Metrics"}},
		})
		if err != nil {
			return nil, fmt.Errorf("landing page: %w", err)
		}
		mux.Handle("/", landing)
	}
	return mux, nil
}
