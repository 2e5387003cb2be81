package workload

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/tcpadvisor/tcpadvisor/internal/sysctl"
)

// OnHost returns a runner of arms in this process, on the host's loopback.
// The arms share the host's TIME_WAIT, which lasts 60 s: each arm's servers
// get ports no earlier arm of the run used, so that what is counted toward
// them is theirs. Arms may start together (Config.Rounds): they pick their
// ports one at a time.
func OnHost(cfg Config) StartArm {
	var mu sync.Mutex
	used := map[int]bool{}
	pick := func(candidates []int) (int, error) {
		for _, port := range candidates {
			if used[port] {
				continue
			}
			if ln, err := net.Listen("tcp4", addrString(port)); err == nil {
				ln.Close()
				used[port] = true
				return port, nil
			}
		}
		// None free: one the kernel picks, in the ephemeral range, which
		// the advisor then flags (service-port-in-ephemeral-range).
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		defer ln.Close()
		port := ln.Addr().(*net.TCPAddr).Port
		used[port] = true
		return port, nil
	}
	pickAll := func(arm Arm) (Ports, error) {
		mu.Lock()
		defer mu.Unlock()
		var ports Ports
		var err error
		redisPorts, appPorts := portsFrom(6379, 20), []int{5000, 8000, 8008, 8080, 8081, 8888, 3000} // the HTTP ports the rules know
		if cfg.ServicePorts == PortsUnusual {
			redisPorts, appPorts = portsFrom(16379, 20), portsFrom(18002, 20)
		}
		if ports.Redis, err = pick(redisPorts); err != nil {
			return ports, err
		}
		if ports.App, err = pick(appPorts); err != nil {
			return ports, err
		}
		if arm.Proxy {
			ports.Nginx, err = pick(portsFrom(18080, 20))
		}
		return ports, err
	}
	return func(ctx context.Context, arm Arm) (ArmRun, error) {
		ports, err := pickAll(arm)
		if err != nil {
			return nil, err
		}
		a, err := startArm(ctx, cfg, arm, ports)
		if err != nil {
			return nil, err
		}
		return a, nil
	}
}

// portsFrom returns n ports from first on.
func portsFrom(first, n int) []int {
	ports := make([]int, n)
	for i := range ports {
		ports[i] = first + i
	}
	return ports
}

// armRun is an arm started in this process: its servers are up and the
// meter samples until finish.
type armRun struct {
	cfg    Config
	arm    Arm
	res    ArmResult
	dir    string
	target string
	// stops stops the servers, in the reverse order of their start: nginx,
	// the app, then Redis.
	stops        []func()
	m            *meter
	stopSampling context.CancelFunc
	sampled      chan struct{}
	counters     loadCounters
	// builtin is the built-in load, nil with siege; total sums the turns.
	builtin *builtinLoad
	total   loadResult
	closed  bool
}

// startArm starts one arm with its servers on ports, and the sampling. On
// error, everything it started is stopped.
func startArm(ctx context.Context, cfg Config, arm Arm, ports Ports) (_ *armRun, err error) {
	a := &armRun{cfg: cfg, arm: arm, res: ArmResult{
		Arm: arm.N, Name: arm.Name, Redis: addrString(ports.Redis), App: addrString(ports.App),
		PortRange: readSysctl(cfg, "net.ipv4.ip_local_port_range"), TwReuse: readSysctl(cfg, "net.ipv4.tcp_tw_reuse"),
	}}
	defer func() {
		if err != nil {
			a.close()
		}
	}()
	serverPorts := []int{ports.Redis, ports.App}
	a.target = a.res.App
	if arm.Proxy {
		a.res.Nginx = addrString(ports.Nginx)
		serverPorts = append(serverPorts, ports.Nginx)
		a.target = a.res.Nginx
	}
	if a.dir, err = os.MkdirTemp("", "tcpadvisor-workload-"); err != nil {
		return nil, err
	}
	redis, err := startRedis(ctx, a.dir, ports.Redis)
	if err != nil {
		return nil, err
	}
	a.stops = append(a.stops, redis.stop)
	if cfg.App == AppFlask {
		app, err := startFlask(ctx, a.dir, ports.App, ports.Redis, arm.Pool)
		if err != nil {
			return nil, err
		}
		a.stops = append(a.stops, app.stop)
	} else {
		app, err := startGoApp(ctx, a.res.App, a.res.Redis, arm.Pool)
		if err != nil {
			return nil, err
		}
		a.stops = append(a.stops, app.stop)
	}
	if arm.Proxy {
		nginx, err := startNginx(ctx, a.dir, ports.Nginx, ports.App, arm.Keepalive)
		if err != nil {
			return nil, err
		}
		a.stops = append(a.stops, nginx.stop)
	}

	if a.m, err = newMeter(cfg, serverPorts); err != nil {
		return nil, err
	}
	// The sampling goes on between the arm's turns of load: the TIME_WAIT
	// of a turn lasts 60 s, and the rules see it all along.
	sampling, stopSampling := context.WithCancel(ctx)
	a.stopSampling, a.sampled = stopSampling, make(chan struct{})
	go func() {
		defer close(a.sampled)
		a.m.run(sampling)
	}()
	a.total = loadResult{latency: &Histogram{}, connectErrors: new(int64)}
	if cfg.Load == LoadSiege {
		a.total = loadResult{}
	} else {
		a.builtin = newBuiltinLoad("http://"+a.target, cfg.Concurrency, cfg.Requests, &a.counters)
	}
	return a, nil
}

// Load runs a turn of the load, for d, and adds what it measured to the
// arm's.
func (a *armRun) Load(ctx context.Context, d time.Duration) error {
	stopProgress := showProgress(a.cfg, a.arm, a.m, &a.counters, a.total.elapsed)
	defer stopProgress()
	var turn loadResult
	if a.builtin != nil {
		turn = a.builtin.run(ctx, d)
	} else {
		var err error
		if turn, err = siegeLoad(ctx, a.dir, "http://"+a.target+"/test/1", a.cfg.Concurrency, d); err != nil {
			return err
		}
	}
	a.total.add(turn)
	return ctx.Err()
}

// Finish samples on for the settle time after the load, stops everything
// and returns what the arm measured.
func (a *armRun) Finish(ctx context.Context) (ArmResult, error) {
	defer a.close()
	a.counters.done.Store(true)
	if a.cfg.Rounds <= 1 {
		// Arms that finish together would draw over each other's line.
		stopProgress := showProgress(a.cfg, a.arm, a.m, &a.counters, a.total.elapsed)
		defer stopProgress()
	}
	select {
	case <-ctx.Done():
		return a.res, ctx.Err()
	case <-time.After(settleTime(a.cfg.Duration)):
	}
	a.stopSampling()
	<-a.sampled

	res := a.res
	res.Measurement = a.m.measurement()
	load := a.total
	res.Requests, res.Errors = load.requests, load.errors
	res.ConnectErrors = load.connectErrors
	if a.arm.Proxy && res.ConnectErrors != nil {
		// nginx answers 502 with a page of its own when it cannot connect
		// to the app; its error log says why.
		*res.ConnectErrors += countIn(filepath.Join(a.dir, "nginx-error.log"), connectErrorText)
	}
	res.Seconds = load.elapsed.Seconds()
	if res.Seconds > 0 {
		res.TPS = float64(load.successes) / res.Seconds
	}
	res.Tracer = a.m.tracerFigures(res.Seconds)
	if load.latency != nil && load.latency.Count() > 0 {
		p50, p99 := milliseconds(load.latency.Quantile(0.5)), milliseconds(load.latency.Quantile(0.99))
		res.LatencyP50, res.LatencyP99 = &p50, &p99
	}
	return res, nil
}

// Close stops everything the arm started; after Finish it does nothing.
func (a *armRun) Close() { a.close() }

func (a *armRun) close() {
	if a.closed {
		return
	}
	a.closed = true
	if a.stopSampling != nil {
		a.stopSampling()
		<-a.sampled
	}
	if a.builtin != nil {
		a.builtin.close()
	}
	if a.m != nil {
		a.m.close()
	}
	for i := len(a.stops) - 1; i >= 0; i-- {
		a.stops[i]()
	}
	if a.dir != "" {
		os.RemoveAll(a.dir)
	}
}

// countIn counts the occurrences of s in a file, in any case.
func countIn(path, s string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return int64(strings.Count(strings.ToLower(string(b)), s))
}

func milliseconds(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// readSysctl returns a sysctl's value with its fields joined by "-" (the
// port range's "32768	60999" as "32768-60999").
func readSysctl(cfg Config, name string) string {
	v, err := sysctl.Read(cfg.Exporter.ProcPath, name)
	if err != nil {
		return "?"
	}
	return strings.ReplaceAll(v, " ", "-")
}

// showProgress redraws a progress line every second until the returned
// func is called, which clears it. done is the time the arm's load has
// already run, in earlier turns.
func showProgress(cfg Config, arm Arm, m *meter, counters *loadCounters, done time.Duration) func() {
	if cfg.Progress == nil {
		return func() {}
	}
	stop := make(chan struct{})
	finished := make(chan struct{})
	start := time.Now().Add(-done)
	go func() {
		defer close(finished)
		ticker := time.NewTicker(time.Second)
		defer ticker.Stop()
		for {
			elapsed := time.Since(start).Truncate(time.Second)
			line := fmt.Sprintf("tcpadvisor: arm %d (%s): %v of %v", arm.N, arm.Name, min(elapsed, cfg.Duration), cfg.Duration)
			if counters.done.Load() {
				line += ", load done, sampling on"
			}
			if cfg.Load == LoadBuiltin {
				line += fmt.Sprintf(", %d requests, %d errors", counters.requests.Load(), counters.errors.Load())
			}
			fmt.Fprintf(cfg.Progress, "\r\033[K%s, TIME_WAIT %.0f", line, m.lastTimeWait())
			select {
			case <-stop:
				fmt.Fprint(cfg.Progress, "\r\033[K")
				return
			case <-ticker.C:
			}
		}
	}()
	return func() {
		close(stop)
		<-finished
	}
}
