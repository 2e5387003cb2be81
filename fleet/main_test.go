package fleet

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tcpadvisor/tcpadvisor/advisor/engine"
	"github.com/tcpadvisor/tcpadvisor/internal/buildtest"
	"github.com/tcpadvisor/tcpadvisor/rules"
	"github.com/vishvananda/netns"
	"go.yaml.in/yaml/v3"
)

// binary is the tcpadvisor built once for these tests.
var binary string

func TestMain(m *testing.M) { buildtest.Main(m, &binary) }

// timeScale shrinks the rules' windows that the test's Prometheus
// evaluates: the pool advice's for: 5m holds after 3 s.
const timeScale = 0.01

// lookPath returns the path of a program, or skips the test, naming the
// Debian package that has it.
func lookPath(t testing.TB, program, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(program)
	if err != nil {
		t.Skipf("%s not found (Debian package %s)", program, pkg)
	}
	return p
}

// process is a program a test started; it is stopped, by its PID, when the
// test ends.
type process struct {
	name   string
	cmd    *exec.Cmd
	output syncBuffer
	exited chan struct{}
	err    error
}

// start starts cmd and registers its stop: SIGTERM, then SIGKILL after 10 s.
// Its output is logged if the test fails.
func start(t testing.TB, name string, cmd *exec.Cmd) *process {
	t.Helper()
	p := &process{name: name, cmd: cmd, exited: make(chan struct{})}
	if cmd.Stdout == nil {
		cmd.Stdout = &p.output
	}
	cmd.Stderr = &p.output
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.output.String())
		}
	})
	return p
}

// waitReady polls url with client until it answers 200, for at most 30 s.
func (p *process) waitReady(t testing.TB, client *http.Client, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-p.exited:
			t.Fatalf("%s exited: %v\n%s", p.name, p.err, p.output.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s not ready after 30s:\n%s", p.name, url, p.output.String())
		}
	}
}

// syncBuffer collects a process's output while the test may read it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// scrapeTarget is one static target of the test's Prometheus.
type scrapeTarget struct {
	Address  string
	Instance string
}

// startPrometheus starts Debian's Prometheus on addr (in the network
// namespace nsName, or this one when it is ""), scraping the targets every
// second as job tcpadvisor, and evaluating the project's rules scaled by
// timeScale every second when withRules.
// Further arguments are Prometheus' own; credentials ("user:password", or
// "") are those it asks for.
func startPrometheus(t testing.TB, nsName, addr string, targets []scrapeTarget, withRules bool, credentials string, args ...string) {
	t.Helper()
	bin := lookPath(t, "prometheus", "prometheus")
	dir := t.TempDir()
	var configs []any
	for _, target := range targets {
		configs = append(configs, map[string]any{
			"targets": []string{target.Address},
			"labels":  map[string]string{"instance": target.Instance},
		})
	}
	cfg := map[string]any{
		"global":         map[string]any{"scrape_interval": "1s", "evaluation_interval": "1s"},
		"scrape_configs": []any{map[string]any{"job_name": "tcpadvisor", "static_configs": configs}},
	}
	if withRules {
		content, err := rules.Files.ReadFile("tcpadvisor.rules.yml")
		if err != nil {
			t.Fatal(err)
		}
		scaled, err := engine.ScaleRuleFile("rules/tcpadvisor.rules.yml", content, timeScale)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "tcpadvisor.rules.yml")
		if err := os.WriteFile(path, scaled, 0o644); err != nil {
			t.Fatal(err)
		}
		cfg["rule_files"] = []string{path}
	}
	content, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	p := start(t, "prometheus", inNetns(nsName, bin, append([]string{
		"--config.file=" + path,
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + addr,
	}, args...)...))
	userinfo := ""
	if credentials != "" {
		userinfo = credentials + "@"
	}
	p.waitReady(t, httpClientIn(t, nsName), "http://"+userinfo+addr+"/-/ready")
}

// inNetns returns the command of program run in the network namespace
// nsName (kept by ip netns), or here when nsName is "". nsenter, unlike ip
// netns exec, keeps /sys and its cgroup hierarchy, where the exporter
// finds the sockets' owners.
func inNetns(nsName, program string, args ...string) *exec.Cmd {
	if nsName == "" {
		return exec.Command(program, args...)
	}
	return exec.Command("nsenter", append([]string{"--net=/run/netns/" + nsName, "--", program}, args...)...)
}

// httpClientIn returns an HTTP client whose connections are made in the
// network namespace nsName, or here when it is "".
func httpClientIn(t testing.TB, nsName string) *http.Client {
	if nsName == "" {
		return &http.Client{Timeout: 30 * time.Second}
	}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		// A socket is made in the namespace of the thread that makes
		// it: this goroutine's, locked to its thread while it is moved.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		here, err := netns.Get()
		if err != nil {
			return nil, err
		}
		defer here.Close()
		there, err := netns.GetFromName(nsName)
		if err != nil {
			return nil, err
		}
		defer there.Close()
		if err := netns.Set(there); err != nil {
			return nil, err
		}
		defer netns.Set(here)
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}}
}

// get returns the status and body of GET url.
func get(t testing.TB, client *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// freeAddress returns a 127.0.0.1 ADDRESS:PORT that nothing listens on.
func freeAddress(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// listenSilently returns the address of a listener that accepts
// connections and never answers, until the test ends.
func listenSilently(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}
