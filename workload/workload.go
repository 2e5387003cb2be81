// Package workload runs the seed's experiment as a reference workload: an app
// that sets and gets a Redis key per request, with and without a connection
// pool, behind nginx with and without upstream keepalive, under a
// closed-loop load, while the real exporter and advisor watch the sockets.
//
// Each arm starts its own redis-server, app and nginx on loopback, drives
// them for a duration, samples the exporter and evaluates the bundled rules
// all along, and stops everything it started. As root every arm runs in a
// child process in fresh network and PID namespaces (see InNamespace), so
// that one arm's TIME_WAIT never reaches the next and nothing can outlive
// the run; without root the arms run in this process on the host's
// loopback, on fresh ports each.
package workload

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tcpadvisor/tcpadvisor/exporter"
)

// The apps and loads a Config names.
const (
	AppGo       = "go"
	AppFlask    = "flask"
	LoadBuiltin = "builtin"
	LoadSiege   = "siege"
)

// Config is what every arm of a run shares.
type Config struct {
	Arms []int
	// App is AppGo or AppFlask.
	App string
	// ServicePorts is PortsWellKnown or PortsUnusual.
	ServicePorts string
	// Load is LoadBuiltin or LoadSiege.
	Load string
	// Duration is how long the load runs in each arm; with Requests it is
	// the bound on time.
	Duration time.Duration
	// Rounds, when above 1, interleaves the arms: their servers all start,
	// then each arm's load runs for Duration/Rounds in turn, Rounds times
	// over, every other round in reverse (1, 2, 3, 4, 4, 3, 2, 1, 1, 2, …).
	Rounds int
	// Requests, when above 0, stops the built-in load after that many
	// requests.
	Requests    int
	Concurrency int
	// PortRange, when set, narrows ip_local_port_range in each arm's
	// namespace.
	PortRange PortRange
	// TimeScale multiplies the rules' for: and range windows.
	TimeScale float64
	Exporter  exporter.Options
	// RuleFiles replace the bundled rules when not empty.
	RuleFiles []string
	Logger    *slog.Logger
	// Progress receives a progress line, redrawn every second; nil for
	// none.
	Progress io.Writer
}

// The choices of Config.ServicePorts: the servers on the ports their kind
// is known by (Redis 6379, the app on a port the rules call HTTP), or on
// ports that tell nothing (Redis from 16379, the app from 18002), where the
// advisor must learn what serves from the listening process.
const (
	PortsWellKnown = "well-known"
	PortsUnusual   = "unusual"
)

// PortRange is an ip_local_port_range; the zero value leaves the range as
// it is.
type PortRange struct{ Low, High int }

// IsSet reports whether the range is to be set.
func (r PortRange) IsSet() bool { return r.Low != 0 }

func (r PortRange) String() string { return fmt.Sprintf("%d-%d", r.Low, r.High) }

// ParsePortRange parses LOW-HIGH with 1 <= LOW <= HIGH <= 65535. Whether the
// kernel takes it (the low end must be at least
// net.ipv4.ip_unprivileged_port_start) is only known when it is written.
func ParsePortRange(s string) (PortRange, bool) {
	lo, hi, ok := strings.Cut(s, "-")
	if !ok {
		return PortRange{}, false
	}
	var r PortRange
	if _, err := fmt.Sscanf(lo+" "+hi, "%d %d", &r.Low, &r.High); err != nil {
		return PortRange{}, false
	}
	if r.String() != s || r.Low < 1 || r.Low > r.High || r.High > 65535 {
		return PortRange{}, false
	}
	return r, true
}

// ParseArms parses a comma-separated list of arm numbers, such as "1,2",
// into a sorted list without repeats.
func ParseArms(s string) ([]int, bool) {
	var arms []int
	for field := range strings.SplitSeq(s, ",") {
		var n int
		if _, err := fmt.Sscanf(field, "%d", &n); err != nil || fmt.Sprint(n) != field {
			return nil, false
		}
		if _, ok := ArmByNumber(n); !ok {
			return nil, false
		}
		if !slices.Contains(arms, n) {
			arms = append(arms, n)
		}
	}
	slices.Sort(arms)
	return arms, true
}

// Arm is one configuration of the experiment.
type Arm struct {
	N    int
	Name string
	// Pool: the app shares one Redis client; otherwise it opens one per
	// request.
	Pool bool
	// Proxy: the load goes through nginx to the app.
	Proxy bool
	// Keepalive: nginx keeps its upstream connections open (keepalive 32,
	// HTTP/1.1, Connection "").
	Keepalive bool
}

// ArmByNumber returns arm n, from 1 to 4.
func ArmByNumber(n int) (Arm, bool) {
	switch n {
	case 1:
		return Arm{N: 1, Name: "app → Redis, no pool"}, true
	case 2:
		return Arm{N: 2, Name: "app → Redis, pool", Pool: true}, true
	case 3:
		return Arm{N: 3, Name: "nginx → app, no upstream keepalive", Pool: true, Proxy: true}, true
	case 4:
		return Arm{N: 4, Name: "nginx → app, upstream keepalive", Pool: true, Proxy: true, Keepalive: true}, true
	}
	return Arm{}, false
}

// Ports are the loopback ports of one arm's servers.
type Ports struct{ Redis, App, Nginx int }

// The ports in a namespace of the arm's own: the seed's (Redis' 6379,
// Flask's 5000) and nginx on 8080, all below the default ephemeral range.
// The app's port must be one the rules know as HTTP, so that a proxy
// churning toward it is told about upstream keepalive, not about a
// connection pool.
const (
	namespaceRedisPort = 6379
	namespaceAppPort   = 5000
	namespaceNginxPort = 8080
)

// namespacePorts returns the ports of an arm in a namespace of its own:
// the ones above, or with PortsUnusual ports that tell nothing of their
// servers' kind.
func namespacePorts(cfg Config) Ports {
	if cfg.ServicePorts == PortsUnusual {
		return Ports{Redis: 16379, App: 18002, Nginx: namespaceNginxPort}
	}
	return Ports{Redis: namespaceRedisPort, App: namespaceAppPort, Nginx: namespaceNginxPort}
}

// InputError is bad input: the command exits 2 for it.
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

// CheckPackages reports the first program or Python module the run needs
// that is missing, naming the Debian package that brings it.
func CheckPackages(cfg Config, isolated bool) error {
	// Programs named as the Debian packages that install them.
	need := []string{"redis-server"}
	if slices.ContainsFunc(cfg.Arms, func(n int) bool { a, _ := ArmByNumber(n); return a.Proxy }) {
		need = append(need, "nginx")
	}
	if cfg.App == AppFlask {
		need = append(need, "gunicorn")
	}
	if cfg.Load == LoadSiege {
		need = append(need, "siege")
	}
	for _, program := range need {
		if _, err := exec.LookPath(program); err != nil {
			return &InputError{fmt.Sprintf("%s not found: install the Debian package %s", program, program)}
		}
	}
	if cfg.App == AppFlask {
		python := gunicornPython()
		for _, module := range []string{"flask", "redis"} {
			if err := exec.Command(python[0], append(python[1:], "-c", "import "+module)...).Run(); err != nil {
				return &InputError{fmt.Sprintf("--app flask needs the Python module %s: install the Debian package python3-%s", module, module)}
			}
		}
	}
	if cfg.PortRange.IsSet() && !isolated {
		return &InputError{fmt.Sprintf("--port-range=%s needs root: it narrows ip_local_port_range in a network namespace of the workload's own; run as root or leave it out", cfg.PortRange)}
	}
	return nil
}

// gunicornPython returns the command line of the Python that runs
// gunicorn, from its #! line: the Flask app's modules must be that
// Python's, whatever python3 comes first in PATH.
func gunicornPython() []string {
	fallback := []string{"python3"}
	path, err := exec.LookPath("gunicorn")
	if err != nil {
		return fallback
	}
	f, err := os.Open(path)
	if err != nil {
		return fallback
	}
	defer f.Close()
	line, err := bufio.NewReader(f).ReadString('\n')
	interpreter, ok := strings.CutPrefix(line, "#!")
	if err != nil || !ok || len(strings.Fields(interpreter)) == 0 {
		return fallback
	}
	return strings.Fields(interpreter)
}

// Report is the result of a run. Its JSON form is what --output json
// prints.
type Report struct {
	// Isolation is "namespace" (a fresh network namespace per arm) or
	// "host" (the host's loopback).
	Isolation   string      `json:"isolation"`
	App         string      `json:"app"`
	Load        string      `json:"load"`
	Duration    float64     `json:"duration_seconds"`
	Rounds      int         `json:"rounds"`
	Requests    int         `json:"requests_limit,omitempty"`
	Concurrency int         `json:"concurrency"`
	TimeScale   float64     `json:"rules_time_scale"`
	Arms        []ArmResult `json:"arms"`
}

// ArmResult is what one arm measured.
type ArmResult struct {
	Arm  int    `json:"arm"`
	Name string `json:"name"`
	// Servers: the addresses of redis-server, the app and nginx.
	Redis string `json:"redis"`
	App   string `json:"app"`
	Nginx string `json:"nginx,omitempty"`
	// Sysctls of the network namespace the arm ran in.
	PortRange string `json:"ip_local_port_range"`
	TwReuse   string `json:"tcp_tw_reuse"`

	Requests int64   `json:"requests"`
	Seconds  float64 `json:"seconds"`
	TPS      float64 `json:"tps"`
	// Latencies in milliseconds; absent when the load tool does not give
	// them (siege).
	LatencyP50 *float64 `json:"latency_p50_ms,omitempty"`
	LatencyP99 *float64 `json:"latency_p99_ms,omitempty"`
	Errors     int64    `json:"errors"`
	// ConnectErrors are the errors where connect() failed for want of a
	// local port (EADDRNOTAVAIL); absent when the load tool cannot tell.
	ConnectErrors *int64 `json:"connect_errors,omitempty"`

	Measurement
}

// ArmRun is an arm whose servers are up and sampled: its load runs in one
// or more turns, then Finish samples on for the settle time, stops
// everything and returns what the arm measured.
type ArmRun interface {
	// Load runs the arm's load for d and adds what it measured to the arm's.
	Load(ctx context.Context, d time.Duration) error
	Finish(ctx context.Context) (ArmResult, error)
	// Close stops everything the arm started; after Finish it does nothing.
	Close()
}

// StartArm starts an arm's servers and its sampling.
type StartArm func(context.Context, Arm) (ArmRun, error)

// Run runs the arms of cfg, each started with start. With one round the
// arms run one after the other. With more, they are interleaved: every
// arm's servers start, then the arms take turns of Duration/Rounds, so that
// other work on the machine, which comes and goes over seconds, weighs on
// every arm alike; the arms start together and settle together. Every
// other round runs the arms in reverse order, so that no arm always runs
// just after another: in a run whose TPS drifts, a fixed order would favour
// the later arm.
func Run(ctx context.Context, cfg Config, isolation string, start StartArm) (Report, error) {
	report := Report{
		Isolation: isolation, App: cfg.App, Load: cfg.Load, Duration: cfg.Duration.Seconds(), Rounds: max(cfg.Rounds, 1),
		Requests: cfg.Requests, Concurrency: cfg.Concurrency, TimeScale: cfg.TimeScale,
	}
	fail := func(arm Arm, err error) error {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted during arm %d; everything it started is stopped", arm.N)
		}
		var input *InputError
		if errors.As(err, &input) {
			return err
		}
		return fmt.Errorf("arm %d (%s): %w", arm.N, arm.Name, err)
	}
	if report.Rounds == 1 {
		for _, n := range cfg.Arms {
			arm, _ := ArmByNumber(n)
			res, err := runOnce(ctx, cfg, arm, start)
			if err != nil {
				return report, fail(arm, err)
			}
			report.Arms = append(report.Arms, res)
		}
		return report, nil
	}

	runs := make([]ArmRun, len(cfg.Arms))
	defer func() {
		for _, r := range runs {
			if r != nil {
				r.Close()
			}
		}
	}()
	// The arms start together: a Python app takes seconds to start.
	arms := make([]Arm, len(cfg.Arms))
	errs := make([]error, len(cfg.Arms))
	var wg sync.WaitGroup
	for i, n := range cfg.Arms {
		arms[i], _ = ArmByNumber(n)
		wg.Go(func() { runs[i], errs[i] = start(ctx, arms[i]) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return report, fail(arms[i], err)
		}
	}
	turn := cfg.Duration / time.Duration(report.Rounds)
	for round := range report.Rounds {
		for k := range runs {
			i := k
			if round%2 == 1 {
				i = len(runs) - 1 - k
			}
			if err := runs[i].Load(ctx, turn); err != nil {
				return report, fail(arms[i], err)
			}
		}
	}
	results := make([]ArmResult, len(runs))
	for i, r := range runs {
		wg.Go(func() { results[i], errs[i] = r.Finish(ctx) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return report, fail(arms[i], err)
		}
	}
	report.Arms = results
	return report, nil
}

// runOnce starts an arm, runs its load for the whole duration and finishes
// it.
func runOnce(ctx context.Context, cfg Config, arm Arm, start StartArm) (ArmResult, error) {
	r, err := start(ctx, arm)
	if err != nil {
		return ArmResult{}, err
	}
	defer r.Close()
	if err := r.Load(ctx, cfg.Duration); err != nil {
		return ArmResult{}, err
	}
	return r.Finish(ctx)
}

// addrString formats a loopback address.
func addrString(port int) string {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(port)).String()
}
