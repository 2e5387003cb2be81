package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/config"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"
	"github.com/tcpadvisor/tcpadvisor/fleet"
	"github.com/tcpadvisor/tcpadvisor/internal/cliflag"
)

// defaultFleetListenAddress is the daemon's port plus one.
const defaultFleetListenAddress = ":10068"

// prometheusFlags say which Prometheus-compatible server holds the fleet's
// alerts and metrics, for advise --prometheus.url and fleet.
type prometheusFlags struct {
	url        *string
	configFile *string
	timeout    *time.Duration
	match      *string
	limit      *int
}

func addPrometheusFlags(g cliflag.Group, urlHelp string) *prometheusFlags {
	return &prometheusFlags{
		url: g.Flag("prometheus.url", urlHelp).PlaceHolder("URL").String(),
		configFile: g.Flag("prometheus.config.file",
			"File of HTTP client options for --prometheus.url, in the format of Prometheus' http_config: basic_auth, authorization (bearer token or credentials_file), tls_config (ca_file, cert_file, key_file), http_headers, proxy_url.").
			PlaceHolder("FILE").String(),
		timeout: cliflag.Duration(g, "timeout", "Deadline of the answers of --prometheus.url, for one report.", 30*time.Second),
		match: g.Flag("match", "Series selector that limits the advice to part of the fleet, matched against the alerts' labels, such as '{job=\"tcpadvisor\",instance=~\"app-.*\"}'.").
			PlaceHolder("SELECTOR").String(),
		limit: cliflag.Int(g, "limit", "Most series one query to --prometheus.url reads (topk on the server).", fleet.DefaultLimit, 1),
	}
}

// client checks the flags and returns a client of the server.
func (f *prometheusFlags) client() (*fleet.Client, error) {
	httpConfig := config.DefaultHTTPClientConfig
	if *f.configFile != "" {
		var err error
		if httpConfig, err = fleet.LoadHTTPConfig(*f.configFile); err != nil {
			return nil, err
		}
	}
	return fleet.NewClient(fleet.Options{URL: *f.url, HTTP: httpConfig, Match: *f.match, Limit: *f.limit})
}

// advise prints the fleet's advice and returns advise's exit code. set
// holds advise's flags that are about one host, and whether each was given:
// with --prometheus.url they are an error.
func (f *prometheusFlags) advise(output string, set map[string]bool, logger *slog.Logger) int {
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "%s: %s\n", programName, oneLine(err))
		return exitError
	}
	for _, name := range slices.Sorted(maps.Keys(set)) {
		if set[name] {
			return fail(fmt.Errorf("%s is about one host; --prometheus.url asks for every host the server scrapes: leave one of them out (run advise on a host for its --sysctl-file or --apply)", name))
		}
	}
	c, err := f.client()
	if err != nil {
		return fail(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *f.timeout)
	defer cancel()
	report, err := fleet.Build(ctx, c, time.Now(), logger)
	if err != nil {
		return fail(err)
	}
	if output == "json" {
		err = fleet.JSON(os.Stdout, report)
	} else {
		err = fleet.Text(os.Stdout, report)
	}
	if err != nil {
		return fail(err)
	}
	fmt.Fprintf(os.Stderr, "%s: read %d series in %d queries from %s\n", programName, report.Cost.Series, report.Cost.Queries, *f.url)
	if len(report.Advice) > 0 {
		return exitAdvice
	}
	return exitNoAdvice
}

type fleetCommand struct {
	cmd        *kingpin.CmdClause
	prometheus *prometheusFlags
	web        *web.FlagConfig
}

func addFleetCommand(app *kingpin.Application) *fleetCommand {
	cmd := app.Command("fleet", "Serve the advice of every host that a Prometheus-compatible server scrapes, read-only, at /advice (HTML, or JSON with ?format=json).")
	return &fleetCommand{
		cmd:        cmd,
		prometheus: addPrometheusFlags(cmd, "URL of the Prometheus-compatible server (Prometheus, Thanos, Mimir, VictoriaMetrics) that scrapes the daemons and loads rules/, such as http://prometheus:9090. Required."),
		web:        kingpinflag.AddFlags(cmd, defaultFleetListenAddress),
	}
}

// run serves the fleet page until SIGTERM or SIGINT.
func (f *fleetCommand) run(logger *slog.Logger) error {
	if *f.prometheus.url == "" {
		return errors.New("--prometheus.url is required: the URL of the server that scrapes the daemons, such as http://prometheus:9090")
	}
	if path := *f.web.WebConfigFile; path != "" {
		if err := web.Validate(path); err != nil {
			return fmt.Errorf("--web.config.file=%s: %v; fix the file or leave the flag out", path, err)
		}
	}
	c, err := f.prometheus.client()
	if err != nil {
		return err
	}
	landing, err := web.NewLandingPage(web.LandingConfig{
		Name:        "tcpadvisor fleet",
		Description: "The advice of every host scraped by " + *f.prometheus.url,
		Version:     version.Info(),
		Links:       []web.LandingLinks{{Address: "/advice", Text: "Advice", Description: "What to change, host by host (JSON: ?format=json; reloaded every 30 s: ?refresh=30)"}},
	})
	if err != nil {
		return fmt.Errorf("landing page: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/advice", fleet.Handler(c, *f.prometheus.timeout, logger))
	mux.Handle("/", landing)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The daemon's limits: a report waits at most --timeout for the
	// server, as a scrape waits for its collectors.
	limits := defaultHTTPLimits(*f.prometheus.timeout)
	logger.Info("starting tcpadvisor fleet", "prometheus", *f.prometheus.url, "version", version.Info())
	return serveHTTP(ctx, newHTTPServer(mux, limits, logger), f.web, limits.shutdownGrace, logger)
}
