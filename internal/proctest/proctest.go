// Package proctest starts the programs a test runs (the built tcpadvisor,
// Debian's Prometheus, Alertmanager, redis-server), collects their output,
// waits until they serve and stops them when the test ends.
package proctest

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// LookPath returns the path of a program, or skips the test, naming the
// Debian package that has it.
func LookPath(t testing.TB, program, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(program)
	if err != nil {
		t.Skipf("%s not found (Debian package %s; ./test.sh installs it)", program, pkg)
	}
	return p
}

// Process is a program a test started; it is stopped, by its PID, when the
// test ends.
type Process struct {
	// Cmd is the command started.
	Cmd    *exec.Cmd
	name   string
	output SyncBuffer
	exited chan struct{}
	err    error
}

// Start starts cmd and registers its stop: SIGTERM, then SIGKILL after 10 s.
// Its standard error, and its standard output unless cmd has one already,
// are kept (Output) and logged if the test fails.
func Start(t testing.TB, name string, cmd *exec.Cmd) *Process {
	t.Helper()
	p := &Process{Cmd: cmd, name: name, exited: make(chan struct{})}
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

// Output returns what the process has written so far.
func (p *Process) Output() string { return p.output.String() }

// Exited is closed once the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// WaitReady polls url with client until it answers 200, for at most 30 s,
// and fails the test if the process exits first.
func (p *Process) WaitReady(t testing.TB, client *http.Client, url string) {
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

// Get returns the status and body of GET url with client.
func Get(t testing.TB, client *http.Client, url string) (status int, body string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	content, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(content)
}

// Run runs cmd to its end and returns its standard output, standard error
// and exit code; it fails the test if cmd cannot be run at all.
func Run(t testing.TB, cmd *exec.Cmd) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("run %s: %v", cmd.Path, err)
	}
	return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
}

// SyncBuffer collects a process's output while the test may read it.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Renamed returns the path of the test binary under another name, so that
// the process that runs it is called name (as the kernel keeps a process
// name: its first 15 bytes).
func Renamed(t testing.TB, name string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.Symlink(os.Args[0], path); err != nil {
		t.Fatal(err)
	}
	return path
}
