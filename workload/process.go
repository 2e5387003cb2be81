package workload

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// process is a server (or siege) the workload started, in a process group
// of its own so that stopping it stops its workers too.
type process struct {
	name string
	cmd  *exec.Cmd
	// log is the file its output goes to, quoted in errors.
	log string
	// out is the file its output goes to, when log is another.
	out  string
	done chan struct{}
	err  error // of Wait, once done is closed
}

// stopSignal stops each server at once, without draining: nginx and
// gunicorn take SIGINT as a quick shutdown (SIGTERM is gunicorn's graceful
// one, up to 30 s), redis-server as a shutdown.
const stopSignal = syscall.SIGINT

// startProcess starts name with args, its output to logPath, in the
// directory of logPath. It dies with the thread that started it
// (Pdeathsig), so the goroutine that starts it stays locked to its thread
// until it exits: a killed workload leaves no server behind.
//
// The working directory is the arm's own: in an arm's mount namespace the
// workload's may be hidden under the tmpfs mounted on the temporary
// directory, and gunicorn cannot start where getcwd() fails.
func startProcess(name, logPath string, env []string, args ...string) (*process, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Dir = filepath.Dir(logPath)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: stopSignal}
	p := &process{name: name, cmd: cmd, log: logPath, out: logPath, done: make(chan struct{})}
	started := make(chan error)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer logFile.Close()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return p, nil
}

// exited returns an error saying that the process ended, with the last line
// of its log, or of its output when it ended before it opened its log.
func (p *process) exited() error {
	line := lastLine(p.log)
	if _, err := os.Stat(p.log); err != nil {
		line = lastLine(p.out)
	}
	return fmt.Errorf("%s exited (%v): %s", p.name, p.err, line)
}

// stop stops the process group and waits for the process, killing the group
// if it takes more than 5 s.
func (p *process) stop() {
	pgid := p.cmd.Process.Pid
	select {
	case <-p.done:
	default:
		_ = syscall.Kill(-pgid, stopSignal)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-p.done
		}
	}
	// nginx and gunicorn reap their workers before they exit; a worker
	// still in the group would be one that outlived its master.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// waitListening waits until addr accepts connections, for at most 15 s, and
// fails at once if the process exits first.
func (p *process) waitListening(ctx context.Context, addr string) error {
	return waitListening(ctx, addr, p.done, p.exited)
}

func waitListening(ctx context.Context, addr string, done <-chan struct{}, exited func() error) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			// Reset, not closed: a probe must leave no TIME_WAIT for the
			// advisor to see.
			_ = c.(*net.TCPConn).SetLinger(0)
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on %s after 15 s: %w", addr, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-done:
			return exited()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// lastLine returns the last non-empty line of a log file.
func lastLine(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	if line := strings.TrimSpace(string(lines[len(lines)-1])); line != "" {
		return line
	}
	return "no output"
}
