// Command tcpadvisor exports TCP socket states and ephemeral-port pressure,
// read from the kernel with sock_diag, as Prometheus metrics.
//
// Subcommands: serve (the daemon, also what runs with no subcommand) and
// version. Every error from bad input is one line on stderr naming the input
// and the fix, and a non-zero exit.
package main

import (
	"fmt"
	"os"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/promslog"
	promslogflag "github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
)

const programName = "tcpadvisor"

func main() {
	os.Exit(run(os.Args[1:]))
}

// run parses args and runs the chosen subcommand; it returns the exit code.
func run(args []string) int {
	app := kingpin.New(programName, "Exports TCP socket states and ephemeral-port pressure, per destination, as Prometheus metrics.")
	app.Version(version.Print(programName))
	app.HelpFlag.Short('h')
	app.UsageWriter(os.Stdout)
	app.ErrorWriter(os.Stderr)
	app.Terminate(nil)

	logConfig := &promslog.Config{}
	promslogflag.AddFlags(app, logConfig)
	collectorFlags := addCollectorFlags(app)
	serve := addServeCommand(app)
	versionCmd := app.Command("version", "Print the version and build information.")

	command, err := app.Parse(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v, try --help\n", programName, err)
		return 2
	}
	switch command {
	case versionCmd.FullCommand():
		fmt.Println(version.Print(programName))
		return 0
	case "":
		// --help or --version was handled by kingpin.
		return 0
	}
	opts, err := collectorFlags.options()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", programName, err)
		return 2
	}
	logger := promslog.New(logConfig)
	if err := serve.run(opts, logger); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", programName, err)
		return 1
	}
	return 0
}
