// Command tcpadvisor exports TCP socket states and ephemeral-port pressure,
// read from the kernel with sock_diag, as Prometheus metrics.
//
// Subcommands: serve (the daemon, also what runs with no subcommand),
// advise, fleet (the advice of every host a Prometheus scrapes), workload
// (the seed's experiment, measured and advised on) and version. Every error from bad input is one line on stderr naming the input
// and the fix, and a non-zero exit.
package main

import (
	_ "embed"
	"fmt"
	"os"
	"strings"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/promslog"
	promslogflag "github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
	"github.com/tcpadvisor/tcpadvisor/exporter"
	"github.com/tcpadvisor/tcpadvisor/internal/buildinfo"
	"github.com/tcpadvisor/tcpadvisor/internal/pipeline"
)

const programName = "tcpadvisor"

// releaseVersion is the version a build reports unless the release build
// sets github.com/prometheus/common/version.Version with -ldflags.
//
//go:embed VERSION
var releaseVersion string

func main() {
	buildinfo.Stamp(releaseVersion)
	os.Exit(run(os.Args[1:]))
}

// run parses args and runs the chosen subcommand; it returns the exit code.
func run(args []string) int {
	app := kingpin.New(programName, "Exports the TCP socket states and ephemeral-port pressure of this host as Prometheus metrics, and tells what to change: a pool, upstream keepalive, a sysctl.")
	app.Version(version.Print(programName))
	setManPage(app.Name, app.Help)
	app.HelpFlag.Short('h')
	app.UsageTemplate(usageTemplate)
	app.UsageWriter(os.Stdout)
	app.ErrorWriter(os.Stderr)
	// kingpin calls Terminate after --help and --version; run returns
	// instead of exiting, so that tests can call it.
	terminated := false
	app.Terminate(func(int) { terminated = true })

	logConfig := &promslog.Config{}
	promslogflag.AddFlags(app, logConfig)
	collectorFlags := exporter.AddFlags(app)
	ruleFiles := pipeline.AddRuleFilesFlag(app)
	serve := addServeCommand(app)
	advise := addAdviseCommand(app)
	workloadCmd := addWorkloadCommand(app)
	fleetCmd := addFleetCommand(app)
	versionCmd := app.Command("version", "Print the version and build information.")

	command, err := app.Parse(args)
	if terminated {
		return 0
	}
	if err != nil {
		if arg, ok := strings.CutPrefix(err.Error(), "unexpected "); ok {
			fmt.Fprintf(os.Stderr, "%s: unexpected argument %q: the commands are serve, advise, fleet, workload and version, try --help\n", programName, arg)
		} else {
			fmt.Fprintf(os.Stderr, "%s: %s, try --help\n", programName, oneLine(err))
		}
		return 2
	}
	if command == versionCmd.FullCommand() {
		fmt.Println(version.Print(programName))
		return 0
	}
	logger := promslog.New(logConfig)
	if command == advise.cmd.FullCommand() {
		return advise.run(collectorFlags.Options(), *ruleFiles, logger)
	}
	if command == fleetCmd.cmd.FullCommand() {
		if err := fleetCmd.run(logger); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %s\n", programName, oneLine(err))
			return 2
		}
		return 0
	}
	if command == workloadCmd.cmd.FullCommand() {
		return workloadCmd.run(args, collectorFlags.Options(), *ruleFiles, logger)
	}
	if err := serve.run(collectorFlags.Options(), *ruleFiles, logger); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %s\n", programName, oneLine(err))
		return 1
	}
	return 0
}

// oneLine folds a multi-line error (YAML errors list one problem a line)
// into the one line a user reads.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
