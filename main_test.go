package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// binary is the tcpadvisor built once for these tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tcpadvisor-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "tcpadvisor")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// runBinary runs tcpadvisor with args for at most 10 s.
func runBinary(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

func freeAddress(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestBadInput gives each bad input and checks for one line on stderr that
// names the input and the fix, a non-zero exit, and no stack trace.
func TestBadInput(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.yml")
	badConfig := filepath.Join(t.TempDir(), "web.yml")
	if err := os.WriteFile(badConfig, []byte("tls_server_config:\n  cert_file: /nonexistent.crt\n  key_file: /nonexistent.key\nnot_a_field: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	occupied, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer occupied.Close()

	tests := []struct {
		name string
		args []string
		want string
		code int
	}{
		{"unknown flag", []string{"--no-such-flag"}, `tcpadvisor: unknown long flag '--no-such-flag', try --help`, 2},
		{"unknown command", []string{"frobnicate"}, `tcpadvisor: unexpected argument "frobnicate": the commands are serve, advise and version, try --help`, 2},
		{"top destinations zero", []string{"--collector.sockets.top-destinations=0"}, `tcpadvisor: --collector.sockets.top-destinations="0": want a whole number of at least 1, try --help`, 2},
		{"top destinations negative", []string{"--collector.sockets.top-destinations=-5"}, `--collector.sockets.top-destinations="-5": want a whole number of at least 1`, 2},
		{"top destinations not a number", []string{"--collector.sockets.top-destinations=many"}, `--collector.sockets.top-destinations="many": want a whole number of at least 1`, 2},
		{"max service ports zero", []string{"--collector.sockets.max-service-ports=0"}, `--collector.sockets.max-service-ports="0": want a whole number of at least 1`, 2},
		{"pin destination without port", []string{"--collector.sockets.pin-destination=10.0.0.5"}, `tcpadvisor: --collector.sockets.pin-destination="10.0.0.5": want ADDRESS:PORT with a literal IP, such as 10.0.0.5:6379 or [2001:db8::5]:6379`, 2},
		{"pin destination with a hostname", []string{"--collector.sockets.pin-destination=redis:6379"}, `--collector.sockets.pin-destination="redis:6379": want ADDRESS:PORT`, 2},
		{"pin port out of range", []string{"--collector.sockets.pin-service-port=70000"}, `--collector.sockets.pin-service-port="70000": want a port number from 1 to 65535`, 2},
		{"timeout not a duration", []string{"--collector.timeout=soon"}, `--collector.timeout="soon": want a positive duration`, 2},
		{"log level unknown", []string{"--log.level=loud"}, `loud`, 2},
		{"timeout zero", []string{"--collector.timeout=0s"}, `--collector.timeout="0s": want a positive duration such as 10s or 500ms`, 2},
		{"procfs missing", []string{"--path.procfs=/nonexistent", "--web.listen-address=" + freeAddress(t)}, `--path.procfs=/nonexistent:`, 1},
		{"web config missing", []string{"--web.config.file=" + missing, "--web.listen-address=" + freeAddress(t)}, `--web.config.file=` + missing + `:`, 1},
		{"web config invalid", []string{"--web.config.file=" + badConfig, "--web.listen-address=" + freeAddress(t)}, `--web.config.file=` + badConfig + `:`, 1},
		{"listen address occupied", []string{"--web.listen-address=" + occupied.Addr().String()}, `--web.listen-address=[` + occupied.Addr().String() + `]: address already in use; stop what listens there or choose another address`, 1},
		{"listen address malformed", []string{"--web.listen-address=nope"}, `--web.listen-address=[nope]`, 1},
		{"max requests negative", []string{"--web.max-requests=-1"}, `--web.max-requests="-1": want a whole number of at least 0`, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, code := runBinary(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit code %d, want %d", code, tt.code)
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			last := lines[len(lines)-1]
			if !strings.Contains(last, tt.want) {
				t.Errorf("last stderr line %q, want it to contain %q", last, tt.want)
			}
			if !strings.HasPrefix(last, "tcpadvisor: ") {
				t.Errorf("last stderr line %q does not start with the program name", last)
			}
			if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic") {
				t.Errorf("stack trace on stderr:\n%s", stderr)
			}
		})
	}
}

func TestHelpExitsZeroWithoutServing(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"serve", "--help"}, {"help"}, {"--version"}} {
		stdout, stderr, code := runBinary(t, args...)
		if code != 0 || stdout == "" || stderr != "" {
			t.Errorf("%v: exit code %d, stdout %d bytes, stderr %q; want 0, usage, nothing", args, code, len(stdout), stderr)
		}
	}
}

func TestVersion(t *testing.T) {
	stdout, _, code := runBinary(t, "version")
	if code != 0 || !strings.HasPrefix(stdout, "tcpadvisor, version ") {
		t.Errorf("version printed %q with exit code %d", stdout, code)
	}
}

// TestIntegrationServe runs the daemon with no subcommand on the real kernel
// and scrapes it: every collector succeeds, and the landing page links the
// metrics.
func TestIntegrationServe(t *testing.T) {
	serveAndScrape(t, binary)
}

// TestIntegrationServeUnprivileged runs the daemon as nobody with no
// capability at all: sock_diag and /proc need none, so every collector still
// succeeds.
func TestIntegrationServeUnprivileged(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch to nobody with setpriv")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("needs setpriv (Debian package util-linux)")
	}
	// nobody must be able to execute the binary from its temporary dir.
	if err := os.Chmod(filepath.Dir(binary), 0o755); err != nil {
		t.Fatal(err)
	}
	serveAndScrape(t, setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", binary)
}

// serveAndScrape starts command (the daemon, or a wrapper then the daemon)
// and checks what it serves.
func serveAndScrape(t *testing.T, command string, args ...string) {
	addr := freeAddress(t)
	cmd := exec.Command(command, append(args, "--web.listen-address="+addr, "--log.level=warn")...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	get := func(path string) string {
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, err := http.Get("http://" + addr + path)
			if err == nil {
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != 200 {
					t.Fatalf("GET %s: %s", path, resp.Status)
				}
				return string(body)
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s: %v\nstderr:\n%s", path, err, stderr.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	metrics := get("/metrics")
	for _, name := range []string{"netstat", "sockets", "sockstat", "sysctl"} {
		if want := fmt.Sprintf("tcpadvisor_scrape_collector_success{collector=%q} 1", name); !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	for _, want := range []string{"tcpadvisor_build_info{", "go_goroutines ", "process_resident_memory_bytes ", `tcpadvisor_inbound_sockets{port="` + addr[strings.LastIndex(addr, ":")+1:] + `",state="established"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if landing := get("/"); !regexp.MustCompile(`href="/metrics"`).MatchString(landing) {
		t.Errorf("landing page does not link /metrics:\n%s", landing)
	}
}
