package workload

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// OnHost returns a runner of arms in this process, on the host's loopback.
// The arms share the host's TIME_WAIT, which lasts 60 s: each arm's servers
// get ports no earlier arm of the run used, so that what is counted toward
// them is theirs.
func OnHost(cfg Config) func(context.Context, Arm) (ArmResult, error) {
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
	return func(ctx context.Context, arm Arm) (ArmResult, error) {
		var ports Ports
		var err error
		if ports.Redis, err = pick(portsFrom(6379, 20)); err != nil {
			return ArmResult{}, err
		}
		// The HTTP ports the rules know, as in a namespace.
		if ports.App, err = pick([]int{5000, 8000, 8008, 8080, 8081, 8888, 3000}); err != nil {
			return ArmResult{}, err
		}
		if arm.Proxy {
			if ports.Nginx, err = pick(portsFrom(18080, 20)); err != nil {
				return ArmResult{}, err
			}
		}
		return runArm(ctx, cfg, arm, ports)
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

// runArm runs one arm with its servers on ports, and stops everything it
// started before it returns, whatever happens.
func runArm(ctx context.Context, cfg Config, arm Arm, ports Ports) (ArmResult, error) {
	res := ArmResult{
		Arm: arm.N, Name: arm.Name, Redis: addrString(ports.Redis), App: addrString(ports.App),
		PortRange: readSysctl(cfg, "net.ipv4.ip_local_port_range"), TwReuse: readSysctl(cfg, "net.ipv4.tcp_tw_reuse"),
	}
	serverPorts := []int{ports.Redis, ports.App}
	target := res.App
	if arm.Proxy {
		res.Nginx = addrString(ports.Nginx)
		serverPorts = append(serverPorts, ports.Nginx)
		target = res.Nginx
	}

	dir, err := os.MkdirTemp("", "tcpadvisor-workload-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	// Servers are stopped in the reverse order of their start: nginx, the
	// app, then Redis.
	var stops []func()
	defer func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}()
	redis, err := startRedis(ctx, dir, ports.Redis)
	if err != nil {
		return res, err
	}
	stops = append(stops, redis.stop)
	if cfg.App == AppFlask {
		app, err := startFlask(ctx, dir, ports.App, ports.Redis, arm.Pool)
		if err != nil {
			return res, err
		}
		stops = append(stops, app.stop)
	} else {
		app, err := startGoApp(ctx, res.App, res.Redis, arm.Pool)
		if err != nil {
			return res, err
		}
		stops = append(stops, app.stop)
	}
	if arm.Proxy {
		nginx, err := startNginx(ctx, dir, ports.Nginx, ports.App, arm.Keepalive)
		if err != nil {
			return res, err
		}
		stops = append(stops, nginx.stop)
	}

	m, err := newMeter(cfg, serverPorts)
	if err != nil {
		return res, err
	}
	defer m.close()
	m.sample(ctx)
	sampling, stopSampling := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		m.run(sampling, sampleInterval(cfg.Duration))
	}()
	var counters loadCounters
	stopProgress := showProgress(cfg, arm, m, &counters)

	var load loadResult
	if cfg.Load == LoadSiege {
		load, err = siegeLoad(ctx, dir, "http://"+target+"/test/1", cfg.Concurrency, cfg.Duration)
	} else {
		var closeLoad func()
		load, closeLoad = builtinLoad(ctx, "http://"+target, cfg.Concurrency, cfg.Requests, cfg.Duration, &counters)
		defer closeLoad()
	}
	counters.done.Store(true)
	if err == nil {
		select {
		case <-ctx.Done():
		case <-time.After(settleTime(cfg.Duration)):
		}
	}
	stopSampling()
	<-sampled
	stopProgress()
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return res, err
	}

	res.Measurement = m.measurement()
	res.Requests, res.Errors = load.requests, load.errors
	res.ConnectErrors = load.connectErrors
	if arm.Proxy && res.ConnectErrors != nil {
		// nginx answers 502 with a page of its own when it cannot connect
		// to the app; its error log says why.
		*res.ConnectErrors += countIn(filepath.Join(dir, "nginx-error.log"), connectErrorText)
	}
	res.Seconds = load.elapsed.Seconds()
	if res.Seconds > 0 {
		res.TPS = float64(load.successes) / res.Seconds
	}
	if load.latency != nil && load.latency.Count() > 0 {
		p50, p99 := milliseconds(load.latency.Quantile(0.5)), milliseconds(load.latency.Quantile(0.99))
		res.LatencyP50, res.LatencyP99 = &p50, &p99
	}
	return res, nil
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
	v, err := cfg.ReadSysctl(name)
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(v), "-")
}

// showProgress redraws a progress line every second until the returned
// func is called, which clears it.
func showProgress(cfg Config, arm Arm, m *meter, counters *loadCounters) func() {
	if cfg.Progress == nil {
		return func() {}
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
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
		<-done
	}
}
