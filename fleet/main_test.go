package fleet

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/tcpadvisor/tcpadvisor/internal/buildtest"
	"github.com/tcpadvisor/tcpadvisor/internal/proctest"
	"github.com/tcpadvisor/tcpadvisor/internal/promtest"
	"github.com/tcpadvisor/tcpadvisor/internal/tlstest"
	"github.com/vishvananda/netns"
	"go.yaml.in/yaml/v3"
)

// binary is the tcpadvisor built once for these tests.
var binary string

func TestMain(m *testing.M) { buildtest.Main(m, &binary) }

// timeScale shrinks the rules' windows that the test's Prometheus
// evaluates: the pool advice's for: 5m holds after 3 s.
const timeScale = 0.01

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
func startPrometheus(t testing.TB, nsName, addr string, targets []scrapeTarget, withRules bool, access prometheusAccess, args ...string) {
	t.Helper()
	bin := proctest.LookPath(t, "prometheus", "prometheus")
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
		cfg["rule_files"] = []string{promtest.ScaledRules(t, dir, timeScale)}
	}
	content, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	p := proctest.Start(t, "prometheus", inNetns(nsName, bin, append([]string{
		"--config.file=" + path,
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + addr,
	}, args...)...))
	client := httpClientIn(t, nsName)
	if access.tls != nil {
		client = access.tls.Client(30 * time.Second)
	}
	p.WaitReady(t, client, access.url(addr)+"/-/ready")
}

// prometheusAccess is how a test reaches a Prometheus started with a
// --web.config.file; the zero value is plain HTTP without credentials.
type prometheusAccess struct {
	credentials string          // user:password of its basic auth
	tls         *tlstest.Server // the certificate it serves HTTPS with
}

// url returns the base URL of the Prometheus at addr, with the
// credentials.
func (a prometheusAccess) url(addr string) string {
	scheme, userinfo := "http://", ""
	if a.tls != nil {
		scheme = "https://"
	}
	if a.credentials != "" {
		userinfo = a.credentials + "@"
	}
	return scheme + userinfo + addr
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
