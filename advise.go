package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/tcpadvisor/tcpadvisor/advisor"
	"github.com/tcpadvisor/tcpadvisor/advisor/render"
	"github.com/tcpadvisor/tcpadvisor/exporter"
	"github.com/tcpadvisor/tcpadvisor/internal/cliflag"
	"github.com/tcpadvisor/tcpadvisor/internal/pipeline"
	"golang.org/x/sys/unix"
)

// The exit codes of advise, for cron and CI.
const (
	exitNoAdvice = 0
	exitAdvice   = 1
	exitError    = 2
)

type adviseCommand struct {
	cmd        *kingpin.CmdClause
	url        *string
	duration   *time.Duration
	output     *string
	sysctlFile *string
	apply      *bool
	prometheus *prometheusFlags
}

func addAdviseCommand(app *kingpin.Application) *adviseCommand {
	cmd := app.Command("advise", "Print the advice: from a running daemon (--url), or by sampling this host for --duration. "+
		"Exit code 0: no advice; 1: advice found; 2: error.")
	return &adviseCommand{
		cmd: cmd,
		url: cmd.Flag("url", "URL of a running tcpadvisor daemon to ask, such as http://127.0.0.1:10067. Without it, advise samples this host itself.").
			PlaceHolder("URL").String(),
		duration: cliflag.Duration(cmd, "duration", "How long to sample this host when there is no --url. The rules' for: and range windows are scaled to fit in it.", time.Minute),
		output:   cmd.Flag("output", "Output format: text or json.").Short('o').Default("text").Enum("text", "json"),
		sysctlFile: cmd.Flag("sysctl-file", "Write a commented drop-in for /etc/sysctl.d with only the sysctl changes the advice justifies.").
			PlaceHolder("PATH").String(),
		apply:      cmd.Flag("apply", "Write the justified sysctl changes to /proc/sys now (root only), printing each value before and after. Nothing is changed without this flag.").Bool(),
		prometheus: addPrometheusFlags(cmd, "URL of a Prometheus-compatible server that scrapes the daemons and loads rules/, such as http://prometheus:9090: print the advice of every host it scrapes (docs/fleet.md)."),
	}
}

// run prints the advice and returns the exit code.
func (a *adviseCommand) run(opts exporter.Options, ruleFiles []string, logger *slog.Logger) int {
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "%s: %s\n", programName, oneLine(err))
		return exitError
	}
	if *a.prometheus.url != "" {
		return a.prometheus.advise(*a.output, map[string]bool{"--url": *a.url != "", "--sysctl-file": *a.sysctlFile != "", "--apply": *a.apply}, logger)
	}
	if *a.apply && os.Geteuid() != 0 {
		return fail(advisor.ErrNotRoot)
	}
	if *a.sysctlFile != "" {
		if err := checkOutputFile("sysctl-file", *a.sysctlFile); err != nil {
			return fail(err)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var report advisor.Report
	var err error
	if *a.url != "" {
		report, err = fetchReport(ctx, *a.url)
	} else {
		report, err = a.sample(ctx, opts, ruleFiles, logger)
	}
	if err != nil {
		return fail(err)
	}

	if *a.output == "json" {
		err = render.JSON(os.Stdout, report)
	} else {
		err = render.Text(os.Stdout, report)
	}
	if err != nil {
		return fail(err)
	}
	if *a.sysctlFile != "" {
		if err := writeDropIn(*a.sysctlFile, report); err != nil {
			return fail(err)
		}
	}
	if *a.apply {
		if err := advisor.Apply(os.Stdout, opts.ProcPath, report.Changes()); err != nil {
			return fail(err)
		}
	}
	if len(report.Advice) > 0 {
		return exitAdvice
	}
	return exitNoAdvice
}

func writeDropIn(path string, report advisor.Report) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("--sysctl-file=%s: %w", path, err)
	}
	if err := advisor.WriteDropIn(f, report); err != nil {
		f.Close()
		return fmt.Errorf("--sysctl-file=%s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("--sysctl-file=%s: %w", path, err)
	}
	return nil
}

// fetchReport asks a running daemon for its advice.
func fetchReport(ctx context.Context, base string) (advisor.Report, error) {
	var report advisor.Report
	url := strings.TrimRight(base, "/") + "/advice?format=json"
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return report, fmt.Errorf("--url=%s: %w; want the daemon's base URL, such as http://127.0.0.1:10067", base, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return report, fmt.Errorf("--url=%s: %w; is tcpadvisor serve running there?", base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return report, fmt.Errorf("--url=%s: GET /advice answered %s: %s", base, resp.Status, body)
	}
	if err := json.NewDecoder(resp.Body).Decode(&report); err != nil {
		return report, fmt.Errorf("--url=%s: the answer is not tcpadvisor advice: %w", base, err)
	}
	return report, nil
}

// sample runs the exporter and the rules on this host for the duration,
// with the rules' windows scaled to fit, and returns the advice at the end.
func (a *adviseCommand) sample(ctx context.Context, opts exporter.Options, ruleFiles []string, logger *slog.Logger) (advisor.Report, error) {
	duration := *a.duration
	scale, err := pipeline.FitTimeScale(ruleFiles, duration, logger)
	if err != nil {
		return advisor.Report{}, err
	}
	p, err := pipeline.New(pipeline.Options{
		Exporter:  opts,
		RuleFiles: ruleFiles,
		// Sixty cycles over the duration, within what a collection can
		// keep up with.
		Interval:  min(max(duration/60, 200*time.Millisecond), 15*time.Second),
		TimeScale: scale,
		Logger:    logger,
	})
	if err != nil {
		return advisor.Report{}, err
	}
	defer p.Close()

	progress := isTerminal(os.Stderr)
	start := time.Now()
	// Run stops at the end of the duration, or at Ctrl-C: the report then
	// says what the samples so far say.
	sampling, cancel := context.WithTimeout(ctx, duration)
	defer cancel()
	p.Run(sampling, func(now time.Time) {
		if progress {
			fmt.Fprintf(os.Stderr, "\rtcpadvisor: sampling this host, %2.0f s of %.0f s, %d alert(s) active ", now.Sub(start).Seconds(), duration.Seconds(), len(p.Alerts()))
		}
	})
	if ctx.Err() == nil {
		// The last tick may have lost its race with the deadline: the
		// report is of a cycle at the end of the duration.
		if err := p.Cycle(ctx, time.Now()); err != nil {
			logger.Warn("advisor cycle failed", "err", err)
		}
	}
	if progress {
		fmt.Fprint(os.Stderr, "\r\033[K")
	}
	return p.Report(context.WithoutCancel(ctx), time.Now()), nil
}

// isTerminal reports whether f is a terminal, where a progress line may be
// redrawn.
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
