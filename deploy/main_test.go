package deploy

import (
	"bytes"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tcpadvisor/tcpadvisor/internal/buildtest"
)

// binary is the tcpadvisor built once for these tests.
var binary string

func TestMain(m *testing.M) { buildtest.Main(m, &binary) }

// lookPath returns the path of a program, or skips the test, naming the
// Debian package that has it.
func lookPath(t *testing.T, program, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(program)
	if err != nil {
		t.Skipf("%s not found (Debian package %s; ./test.sh installs it)", program, pkg)
	}
	return p
}

// serverFlags are the flags of `tcpadvisor serve`, as its help lists them,
// without the leading dashes.
func serverFlags(t *testing.T) map[string]bool {
	t.Helper()
	out, err := exec.Command(binary, "serve", "--help").Output()
	if err != nil {
		t.Fatalf("tcpadvisor serve --help: %v", err)
	}
	flags := map[string]bool{}
	for _, f := range strings.Fields(string(out)) {
		name, ok := strings.CutPrefix(f, "--")
		if !ok {
			continue
		}
		name, _, _ = strings.Cut(name, "=")
		if negatable, ok := strings.CutPrefix(name, "[no-]"); ok {
			flags["no-"+negatable] = true
			name = negatable
		}
		flags[name] = true
	}
	if !flags["web.listen-address"] || !flags["no-collector.sockets"] {
		t.Fatalf("could not read the flags from tcpadvisor serve --help:\n%s", out)
	}
	return flags
}

// checkFlags checks that every argument of args that starts with -- is a
// flag of tcpadvisor serve.
func checkFlags(t *testing.T, where string, args []string) {
	t.Helper()
	flags := serverFlags(t)
	for _, a := range args {
		name, ok := strings.CutPrefix(a, "--")
		if !ok {
			continue
		}
		name, _, _ = strings.Cut(name, "=")
		if !flags[name] {
			t.Errorf("%s: %s is not a flag of tcpadvisor serve", where, a)
		}
	}
}

// process is a server a test started; it is stopped, by its PID, when the
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
func start(t *testing.T, name string, cmd *exec.Cmd) *process {
	t.Helper()
	p := &process{name: name, cmd: cmd, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &p.output, &p.output
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

// waitReady polls url until it answers 200, for at most 30 s.
func (p *process) waitReady(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url)
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

// get returns the body of a 200 answer to GET url.
func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, body)
	}
	return string(body)
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
