package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/tcpadvisor/tcpadvisor/exporter"
	"github.com/tcpadvisor/tcpadvisor/internal/cliflag"
	"github.com/tcpadvisor/tcpadvisor/internal/pipeline"
	"github.com/tcpadvisor/tcpadvisor/internal/term"
	"github.com/tcpadvisor/tcpadvisor/workload"
)

// armFlag is the hidden flag with which the workload runs one arm in the
// namespaces it made (see workload.InNamespace).
const armFlag = "internal.workload-arm"

// minTurn is the shortest turn of an arm's load that --rounds may make: at
// the end of a turn the load's clients finish the request each waits for,
// a tail that must stay a small part of the turn.
const minTurn = 250 * time.Millisecond

type workloadCommand struct {
	cmd          *kingpin.CmdClause
	arms         *[]int
	app          *string
	servicePorts *string
	load         *string
	duration     *time.Duration
	requests     *int
	rounds       *int
	concurrency  *int
	portRange    *workload.PortRange
	output       *string
	out          *string
	timeScale    *float64
	timeScaleSet bool
	arm          *int
}

func addWorkloadCommand(app *kingpin.Application) *workloadCommand {
	cmd := app.Command("workload", "Run the seed's experiment (an app setting and getting a Redis key per request, with and without a pool, "+
		"behind nginx with and without upstream keepalive) under load, and show what tcpadvisor measured and advised in each arm. "+
		"As root each arm runs in network namespaces of its own; without root, on the host's loopback.")
	w := &workloadCommand{cmd: cmd, arms: new([]int), portRange: new(workload.PortRange), timeScale: new(float64), requests: new(int)}
	cmd.Flag("arms", "Arms to run, comma-separated: 1 app → Redis without a pool, 2 with a pool, 3 nginx → app without upstream keepalive, 4 with it.").
		Default("1,2,3,4").SetValue(&cliflag.Value[[]int]{
		Flag: "arms", Dst: w.arms, Parse: workload.ParseArms,
		Want: "arm numbers from 1 to 4 separated by commas, such as 1,2",
	})
	w.app = cmd.Flag("app", "The app: go (go-redis, served in-process) or flask (the seed's Flask app under gunicorn).").Default(workload.AppGo).Enum(workload.AppGo, workload.AppFlask)
	w.servicePorts = cmd.Flag("service-ports", "The ports of the arms' servers: well-known (Redis 6379, the app on a port the rules call HTTP, such as 5000) "+
		"or unusual (Redis from 16379, the app from 18002), whose kind the advisor must learn from the listening process.").
		Default(workload.PortsWellKnown).Enum(workload.PortsWellKnown, workload.PortsUnusual)
	w.load = cmd.Flag("load", "The load: builtin (a closed loop of keep-alive connections) or siege.").Default(workload.LoadBuiltin).Enum(workload.LoadBuiltin, workload.LoadSiege)
	w.duration = cliflag.Duration(cmd, "duration", "How long the load runs in each arm.", 20*time.Second)
	cmd.Flag("requests", "Stop the built-in load of each arm after this many requests (or --duration, whichever comes first).").
		PlaceHolder("N").SetValue(&cliflag.Value[int]{
		Flag: "requests", Dst: w.requests, Want: "a whole number of at least 1",
		Parse: func(s string) (int, bool) {
			n, err := strconv.Atoi(s)
			return n, err == nil && n >= 1
		},
	})
	w.rounds = cliflag.Int(cmd, "rounds", "Interleave the arms: start them all, then run each arm's load for --duration/N in turn, N times over, "+
		"every other round in reverse order, so that other work on the machine weighs on every arm alike. 1: the arms run one after the other.", 1, 1)
	w.concurrency = cliflag.Int(cmd, "concurrency", "Clients of the load, each with a connection of its own.", 20, 1)
	cmd.Flag("port-range", "Narrow net.ipv4.ip_local_port_range in each arm's namespace to LOW-HIGH, and set tcp_tw_reuse=0 there, so that port exhaustion shows in seconds. Root only.").
		PlaceHolder("LOW-HIGH").SetValue(&cliflag.Value[workload.PortRange]{
		Flag: "port-range", Dst: w.portRange, Parse: workload.ParsePortRange,
		Want: "LOW-HIGH with 1 <= LOW <= HIGH <= 65535, such as 40000-40199",
	})
	w.output = cmd.Flag("output", "Output format: text, json or markdown.").Short('o').Default("text").Enum("text", "json", "markdown")
	w.out = cmd.Flag("out", "Also write report.json, report.md and chart.svg (TIME_WAIT over time and TPS per arm) to this directory.").PlaceHolder("DIR").String()
	cmd.Flag("rules.time-scale", "Multiplies every for: and range window of the rules. Default: what fits the longest window in half of --duration.").
		IsSetByUser(&w.timeScaleSet).SetValue(&cliflag.Value[float64]{
		Flag: "rules.time-scale", Dst: w.timeScale, Want: "a number above 0 and at most 1, such as 0.1",
		Parse: cliflag.ParseFraction,
	})
	w.arm = cmd.Flag(armFlag, "Run this one arm here, in the namespaces the workload made.").Hidden().Int()
	return w
}

// run runs the workload and returns the exit code: 0 done, 1 failed, 2 bad
// input. args are the command line's, given again to each arm's process.
func (w *workloadCommand) run(args []string, opts exporter.Options, ruleFiles []string, logger *slog.Logger) int {
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "%s: %s\n", programName, oneLine(err))
		var input *workload.InputError
		if errors.As(err, &input) {
			return 2
		}
		return 1
	}
	if *w.load == workload.LoadSiege && *w.requests > 0 {
		return fail(&workload.InputError{Msg: "--requests works with the built-in load only: siege runs for --duration"})
	}
	if *w.rounds > 1 && *w.load == workload.LoadSiege {
		return fail(&workload.InputError{Msg: "--rounds works with the built-in load only: siege would reconnect at each turn"})
	}
	if turn := *w.duration / time.Duration(*w.rounds); turn < minTurn {
		return fail(&workload.InputError{Msg: fmt.Sprintf("--rounds=%d: each turn of an arm would last %v, want at least %v: lower --rounds or raise --duration", *w.rounds, turn, minTurn)})
	}
	if *w.out != "" {
		if err := checkOutputDir("out", *w.out); err != nil {
			return fail(&workload.InputError{Msg: err.Error()})
		}
	}
	cfg := workload.Config{
		Arms: *w.arms, App: *w.app, ServicePorts: *w.servicePorts, Load: *w.load, Duration: *w.duration, Rounds: *w.rounds, Requests: *w.requests,
		Concurrency: *w.concurrency, PortRange: *w.portRange, TimeScale: *w.timeScale,
		Exporter: opts, RuleFiles: ruleFiles, Logger: logger,
	}
	if !w.timeScaleSet {
		scale, err := pipeline.FitTimeScale(ruleFiles, cfg.Duration, logger)
		if err != nil {
			return fail(err)
		}
		cfg.TimeScale = scale
	}
	if term.IsTerminal(os.Stderr) {
		cfg.Progress = os.Stderr
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if *w.arm != 0 {
		// In an arm's namespaces: the parent gives commands on stdin and reads
		// the result on stdout.
		if err := workload.ChildMain(ctx, cfg, *w.arm, os.Stdin, os.Stdout); err != nil {
			return fail(err)
		}
		return 0
	}

	isolated := os.Geteuid() == 0
	if !isolated {
		// The connection tracer needs CAP_BPF and CAP_PERFMON: rather than
		// a warning per arm, the "not root" line says it is off.
		cfg.Exporter.Collectors = slices.DeleteFunc(slices.Clone(cfg.Exporter.Collectors), func(c string) bool { return c == "connections" })
	}
	if err := workload.CheckPackages(cfg, isolated); err != nil {
		return fail(err)
	}
	runArm, isolation := workload.OnHost(cfg), "host"
	if isolated {
		exe, err := os.Executable()
		if err != nil {
			return fail(err)
		}
		runArm, isolation = workload.InNamespace(exe, func(arm int) []string {
			return append(slices.Clone(args), fmt.Sprintf("--%s=%d", armFlag, arm))
		}, os.Stderr), "namespace"
	} else {
		fmt.Fprintf(os.Stderr, "%s: not root: the arms run on the host's loopback and change no sysctl; they share the host's TIME_WAIT, so each arm gets fresh server ports; the connection tracer is off\n", programName)
	}
	report, err := workload.Run(ctx, cfg, isolation, runArm)
	if err != nil {
		return fail(err)
	}

	switch *w.output {
	case "json":
		err = workload.JSON(os.Stdout, report)
	case "markdown":
		err = workload.Markdown(os.Stdout, report)
	default:
		err = workload.StyledText(os.Stdout, report, term.StyleOf(os.Stdout))
	}
	if err != nil {
		return fail(err)
	}
	if *w.out != "" {
		if err := writeReports(*w.out, report); err != nil {
			return fail(fmt.Errorf("--out=%s: %w", *w.out, err))
		}
	}
	return 0
}

// writeReports writes report.json, report.md and chart.svg to dir.
func writeReports(dir string, report workload.Report) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, write := range map[string]func(io.Writer, workload.Report) error{
		"report.json": workload.JSON, "report.md": workload.Markdown, "chart.svg": workload.Chart,
	} {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		if err := write(f, report); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}
