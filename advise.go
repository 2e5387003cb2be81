package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
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
	"github.com/tcpadvisor/tcpadvisor/internal/term"
)

// The exit codes of advise, for cron and CI.
const (
	exitNoAdvice = 0
	exitAdvice   = 1
	exitError    = 2
)

type adviseCommand struct {
	cmd         *kingpin.CmdClause
	url         *string
	duration    *time.Duration
	durationSet bool
	output      *string
	sysctlFile  *string
	apply       *bool
	prometheus  *prometheusFlags
}

// localDaemon is where advise asks first when given neither --url nor
// --duration: a daemon on this host's default port.
const localDaemon = "http://127.0.0.1" + defaultListenAddress

// localDaemonTimeout bounds the question to the local daemon, which
// answers at once when it runs.
const localDaemonTimeout = 5 * time.Second

// dropInPath is where a sysctl drop-in is kept across reboots.
const dropInPath = "/etc/sysctl.d/90-tcpadvisor.conf"

func addAdviseCommand(app *kingpin.Application) *adviseCommand {
	cmd := app.Command("advise", "Print the advice: of the daemon on this host ("+localDaemon+"), of another (--url), "+
		"or, with --duration or when no daemon answers, by sampling this host. Exit code 0: no advice; 1: advice found; 2: error.")
	a := &adviseCommand{
		cmd: cmd,
		url: cmd.Flag("url", "Address of a running tcpadvisor daemon to ask, such as 127.0.0.1:10067 or https://host:10067. Default: the daemon on this host, if one answers.").
			PlaceHolder("URL").String(),
		duration: cliflag.Duration(cmd, "duration", "Sample this host for this long instead of asking a daemon; the rules' for: and range windows are scaled to fit in it. Also how long advise samples when no daemon answers.", time.Minute),
		output:   cmd.Flag("output", "Output format: text or json.").Short('o').Default("text").Enum("text", "json"),
		sysctlFile: cmd.Flag("sysctl-file", "Write a commented drop-in for /etc/sysctl.d with only the sysctl changes the advice justifies, such as "+dropInPath+".").
			PlaceHolder("PATH").String(),
		apply:      cmd.Flag("apply", "Write the justified sysctl changes to /proc/sys now (root only), printing each value before and after; they last until the next reboot (--sysctl-file keeps them). Nothing is changed without this flag.").Bool(),
		prometheus: addPrometheusFlags(cmd, "URL of a Prometheus-compatible server that scrapes the daemons and loads rules/, such as http://prometheus:9090: print the advice of every host it scrapes (docs/fleet.md)."),
	}
	cmd.GetFlag("duration").IsSetByUser(&a.durationSet)
	return a
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

	report, err := a.report(ctx, opts, ruleFiles, logger)
	if err != nil {
		return fail(err)
	}

	if *a.output == "json" {
		err = render.JSON(os.Stdout, report)
	} else {
		err = render.StyledText(os.Stdout, report, term.StyleOf(os.Stdout))
	}
	if err != nil {
		return fail(err)
	}
	changes := report.Changes()
	if *a.sysctlFile != "" {
		if err := writeDropIn(*a.sysctlFile, report); err != nil {
			return fail(err)
		}
		if len(changes) == 0 {
			fmt.Fprintf(os.Stderr, "%s: wrote %s with no change: the advice justifies none\n", programName, *a.sysctlFile)
		} else {
			fmt.Fprintf(os.Stderr, "%s: wrote %d sysctl change(s) to %s (%s); to apply them now and at every boot, copy it to /etc/sysctl.d/ and run sysctl --system\n",
				programName, len(changes), *a.sysctlFile, sysctlNames(changes))
		}
	}
	if *a.apply {
		if err := advisor.Apply(os.Stdout, opts.ProcPath, changes); err != nil {
			return fail(err)
		}
		if len(changes) > 0 {
			fmt.Fprintf(os.Stderr, "%s: these changes last until the next reboot; to keep them: tcpadvisor advise --sysctl-file %s, then sysctl --system\n", programName, dropInPath)
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

// report returns the advice: of the daemon --url names; from sampling
// this host for --duration; or of the local daemon, sampling when none
// answers. What it does is said on stderr.
func (a *adviseCommand) report(ctx context.Context, opts exporter.Options, ruleFiles []string, logger *slog.Logger) (advisor.Report, error) {
	switch {
	case *a.url != "":
		base, err := daemonURL(*a.url)
		if err != nil {
			return advisor.Report{}, err
		}
		return fetchReport(ctx, base, "--url="+*a.url, 30*time.Second)
	case a.durationSet:
		return a.sample(ctx, opts, ruleFiles, logger)
	}
	report, err := fetchReport(ctx, localDaemon, localDaemon, localDaemonTimeout)
	if err == nil {
		fmt.Fprintf(os.Stderr, "%s: the advice of the daemon at %s (--duration samples this host instead)\n", programName, localDaemon)
		return report, nil
	}
	fmt.Fprintf(os.Stderr, "%s: no daemon answers at %s; sampling this host for %s\n", programName, localDaemon, *a.duration)
	logger.Debug("local daemon", "err", err)
	return a.sample(ctx, opts, ruleFiles, logger)
}

// daemonURL returns the base URL of the daemon --url names: a URL, or a
// host:port, which is asked over http.
func daemonURL(s string) (string, error) {
	raw := s
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("--url=%q: want a daemon's address, such as 127.0.0.1:10067 or https://host:10067", s)
	}
	return strings.TrimRight(raw, "/"), nil
}

// fetchReport asks a running daemon for its advice; what names the daemon
// in errors.
func fetchReport(ctx context.Context, base, what string, timeout time.Duration) (advisor.Report, error) {
	var report advisor.Report
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/advice?format=json", nil)
	if err != nil {
		return report, fmt.Errorf("%s: %w; want the daemon's address, such as 127.0.0.1:10067", what, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return report, fmt.Errorf("%s: %w; is tcpadvisor serve running there?", what, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return report, fmt.Errorf("%s: GET /advice answered %s: %s", what, resp.Status, body)
	}
	if err := json.NewDecoder(resp.Body).Decode(&report); err != nil {
		return report, fmt.Errorf("%s: the answer is not tcpadvisor advice: %w", what, err)
	}
	return report, nil
}

// sysctlNames lists the sysctls of changes, comma-separated.
func sysctlNames(changes []advisor.SysctlChange) string {
	names := make([]string, len(changes))
	for i, c := range changes {
		names[i] = c.Name + "=" + c.Value
	}
	return strings.Join(names, ", ")
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

	progress := term.IsTerminal(os.Stderr)
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
