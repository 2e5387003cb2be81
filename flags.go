package main

import (
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/tcpadvisor/tcpadvisor/exporter"
	"github.com/tcpadvisor/tcpadvisor/exporter/census"
)

// collectorFlags are the flags of the collectors. They are the
// application's, not serve's, so that later subcommands that collect share
// them.
type collectorFlags struct {
	procPath        *string
	timeout         *time.Duration
	enabled         map[string]*bool
	topDestinations *int
	maxServicePorts *int
	pinDestinations *[]string
	pinPorts        *[]string
}

func addCollectorFlags(app *kingpin.Application) *collectorFlags {
	f := &collectorFlags{enabled: map[string]*bool{}}
	f.procPath = app.Flag("path.procfs", "Mount point of the proc filesystem.").Default("/proc").String()
	f.timeout = app.Flag("collector.timeout", "Deadline of one collection; a collector still dumping sockets then reports failure.").Default("10s").Duration()
	for _, name := range exporter.CollectorNames {
		f.enabled[name] = app.Flag("collector."+name, fmt.Sprintf("Enable the %s collector (--no-collector.%s disables it).", name, name)).Default("true").Bool()
	}
	f.topDestinations = app.Flag("collector.sockets.top-destinations",
		"Outbound destinations (source, destination address, destination port) reported with their own series, by sockets holding ephemeral ports; the rest are summed into \"other\".").
		Default(strconv.Itoa(census.DefaultTopDestinations)).Int()
	f.maxServicePorts = app.Flag("collector.sockets.max-service-ports",
		"Listening ports reported with their own series; the rest are summed into port=\"other\".").
		Default(strconv.Itoa(census.DefaultMaxServicePorts)).Int()
	f.pinDestinations = app.Flag("collector.sockets.pin-destination",
		"ADDRESS:PORT of a destination always reported, e.g. 10.0.0.5:6379 or [2001:db8::5]:6379. Repeatable.").PlaceHolder("ADDRESS:PORT").Strings()
	f.pinPorts = app.Flag("collector.sockets.pin-service-port",
		"Listening port always reported. Repeatable.").PlaceHolder("PORT").Strings()
	return f
}

// options validates the flags and returns the exporter's options.
func (f *collectorFlags) options() (exporter.Options, error) {
	opts := exporter.Options{ProcPath: *f.procPath, Timeout: *f.timeout}
	if *f.timeout <= 0 {
		return opts, fmt.Errorf("--collector.timeout=%s: must be a positive duration such as 10s", *f.timeout)
	}
	for _, name := range exporter.CollectorNames {
		if *f.enabled[name] {
			opts.Collectors = append(opts.Collectors, name)
		}
	}
	if *f.topDestinations <= 0 {
		return opts, fmt.Errorf("--collector.sockets.top-destinations=%d: must be at least 1", *f.topDestinations)
	}
	if *f.maxServicePorts <= 0 {
		return opts, fmt.Errorf("--collector.sockets.max-service-ports=%d: must be at least 1", *f.maxServicePorts)
	}
	opts.Limits.TopDestinations = *f.topDestinations
	opts.Limits.MaxServicePorts = *f.maxServicePorts
	for _, s := range *f.pinDestinations {
		d, err := netip.ParseAddrPort(s)
		if err != nil {
			return opts, fmt.Errorf("--collector.sockets.pin-destination=%q: want ADDRESS:PORT with a literal IP, such as 10.0.0.5:6379 or [2001:db8::5]:6379", s)
		}
		opts.Limits.PinnedDestinations = append(opts.Limits.PinnedDestinations, d)
	}
	for _, s := range *f.pinPorts {
		p, err := strconv.ParseUint(s, 10, 16)
		if err != nil || p == 0 {
			return opts, fmt.Errorf("--collector.sockets.pin-service-port=%q: want a port number from 1 to 65535", s)
		}
		opts.Limits.PinnedPorts = append(opts.Limits.PinnedPorts, uint16(p))
	}
	return opts, nil
}
