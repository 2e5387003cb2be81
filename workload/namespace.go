package workload

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"

	"github.com/tcpadvisor/tcpadvisor/exporter/netns"
	"github.com/tcpadvisor/tcpadvisor/internal/sysctl"
	"golang.org/x/sys/unix"
)

// childOutput is a message of a child on its stdout, one JSON object a
// line: ready once its servers are up, loaded after each turn of load, and
// last the arm's result or its error.
type childOutput struct {
	Ready    bool       `json:"ready,omitempty"`
	Loaded   bool       `json:"loaded,omitempty"`
	Result   *ArmResult `json:"result,omitempty"`
	Error    string     `json:"error,omitempty"`
	BadInput bool       `json:"bad_input,omitempty"`
}

// childCommand is what the workload tells a child on its stdin, one JSON
// object a line: run the load for Load, or finish.
type childCommand struct {
	Load   time.Duration `json:"load_ns,omitempty"`
	Finish bool          `json:"finish,omitempty"`
}

// InNamespace returns a starter of arms, each in a child process, exe with
// args(arm), in new network, PID and mount namespaces. The child calls
// ChildMain, and runs the arm's turns of load and finishes it when the
// workload tells it to.
//
// Nothing of an arm can outlive it. The network namespace has no name: the
// kernel frees it, with the TIME_WAIT sockets in it, when its last process
// exits. The child is PID 1 of its PID namespace, so when it exits, however
// it exits, the kernel kills every process left in it (nginx's workers
// included). Its temporary directory is a tmpfs of its mount namespace,
// gone with it: the servers' files and the advisor's store. And the child
// gets SIGKILL when this process dies (Pdeathsig), even by SIGKILL. On
// ctx's end, or on Close before Finish, the child gets SIGTERM and stops its
// servers itself.
func InNamespace(exe string, args func(arm int) []string, stderr io.Writer) StartArm {
	return func(ctx context.Context, arm Arm) (ArmRun, error) {
		c, err := startChild(exe, args(arm.N), stderr)
		if err != nil {
			if errors.Is(err, syscall.EPERM) {
				return nil, &InputError{"cannot create a network namespace (operation not permitted): run as root with CAP_SYS_ADMIN"}
			}
			return nil, fmt.Errorf("start the arm in new namespaces: %w", err)
		}
		if _, err := c.receive(ctx, func(out childOutput) bool { return out.Ready }); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}
}

// child is an arm's process, seen from the workload.
type child struct {
	cmd      *exec.Cmd
	commands *os.File // its stdin
	// out gets its messages, and is closed when its stdout is.
	out    <-chan childOutput
	waited chan struct{} // closed once it has exited
	err    error         // of Wait, once waited is closed
}

func startChild(exe string, args []string, stderr io.Writer) (*child, error) {
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	stdoutR, stdoutW, err := os.Pipe()
	if err != nil {
		stdinR.Close()
		stdinW.Close()
		return nil, err
	}
	cmd := exec.Command(exe, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdinR, stdoutW, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNET | syscall.CLONE_NEWPID | syscall.CLONE_NEWNS,
		Pdeathsig:  syscall.SIGKILL,
	}
	c := &child{cmd: cmd, commands: stdinW, waited: make(chan struct{})}
	started := make(chan error)
	go func() {
		// Pdeathsig follows the thread that started the child.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		err := cmd.Start()
		// The child's ends: this process keeps none open, so that the child's
		// exit is the end of its stdout.
		stdinR.Close()
		stdoutW.Close()
		started <- err
		if err != nil {
			return
		}
		c.err = cmd.Wait()
		close(c.waited)
	}()
	if err := <-started; err != nil {
		stdinW.Close()
		stdoutR.Close()
		return nil, err
	}
	out := make(chan childOutput)
	c.out = out
	go func() {
		defer close(out)
		defer stdoutR.Close()
		dec := json.NewDecoder(stdoutR)
		for {
			var msg childOutput
			if err := dec.Decode(&msg); err != nil {
				return
			}
			out <- msg
		}
	}()
	return c, nil
}

// receive returns the child's next message, which want must accept: an
// error message, another message, the end of its output, or ctx's end is an
// error.
func (c *child) receive(ctx context.Context, want func(childOutput) bool) (childOutput, error) {
	select {
	case <-ctx.Done():
		c.Close()
		return childOutput{}, ctx.Err()
	case msg, ok := <-c.out:
		switch {
		case !ok:
			<-c.waited
			return childOutput{}, fmt.Errorf("the arm's process ended without a result (%v)", c.err)
		case msg.BadInput:
			return childOutput{}, &InputError{msg.Error}
		case msg.Error != "":
			return childOutput{}, errors.New(msg.Error)
		case !want(msg):
			return childOutput{}, fmt.Errorf("the arm's process said %+v out of turn", msg)
		}
		return msg, nil
	}
}

// send writes a command to the child.
func (c *child) send(cmd childCommand) error {
	if err := json.NewEncoder(c.commands).Encode(cmd); err != nil {
		return fmt.Errorf("tell the arm's process: %w", err)
	}
	return nil
}

// Load runs a turn of the arm's load in the child.
func (c *child) Load(ctx context.Context, d time.Duration) error {
	if err := c.send(childCommand{Load: d}); err != nil {
		return err
	}
	_, err := c.receive(ctx, func(out childOutput) bool { return out.Loaded })
	return err
}

// Finish has the child settle, stop everything and send its result.
func (c *child) Finish(ctx context.Context) (ArmResult, error) {
	defer c.Close()
	if err := c.send(childCommand{Finish: true}); err != nil {
		return ArmResult{}, err
	}
	out, err := c.receive(ctx, func(out childOutput) bool { return out.Result != nil })
	if err != nil {
		return ArmResult{}, err
	}
	return *out.Result, nil
}

// Close ends the child: its stdin closes, which tells it to stop its
// servers and exit, and so does SIGTERM; after 15 s it gets SIGKILL. Once
// the child has exited it does nothing more.
func (c *child) Close() {
	c.commands.Close()
	select {
	case <-c.waited:
	default:
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.waited:
		case <-time.After(15 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.waited
		}
	}
	// What it said after it was given up on.
	go func() {
		for range c.out {
		}
	}()
}

// ChildMain runs arm n inside the namespaces InNamespace made. It starts
// the arm, then takes the workload's commands from r, and writes its
// messages, last the arm's result or its error, to w.
func ChildMain(ctx context.Context, cfg Config, n int, r io.Reader, w io.Writer) error {
	out := json.NewEncoder(w)
	fail := func(err error) error {
		msg := childOutput{Error: err.Error()}
		var input *InputError
		msg.BadInput = errors.As(err, &input)
		if ctx.Err() != nil {
			msg.Error = "interrupted"
		}
		return out.Encode(msg)
	}
	a, err := childArm(ctx, cfg, n)
	if err != nil {
		return fail(err)
	}
	defer a.close()
	if err := out.Encode(childOutput{Ready: true}); err != nil {
		return err
	}
	// The commands are read apart, so that ctx's end (SIGTERM) is seen while
	// the arm waits for its next turn.
	commands := make(chan childCommand)
	go func() {
		defer close(commands)
		dec := json.NewDecoder(r)
		for {
			var cmd childCommand
			if err := dec.Decode(&cmd); err != nil {
				return
			}
			commands <- cmd
		}
	}()
	for {
		var cmd childCommand
		var ok bool
		select {
		case <-ctx.Done():
			return fail(ctx.Err())
		case cmd, ok = <-commands:
		}
		switch {
		case !ok:
			// The workload closed our stdin: it gave up on the arm.
			return fail(errors.New("the workload ended the arm"))
		case cmd.Finish:
			res, err := a.Finish(ctx)
			if err != nil {
				return fail(err)
			}
			return out.Encode(childOutput{Result: &res})
		case cmd.Load > 0:
			if err := a.Load(ctx, cmd.Load); err != nil {
				return fail(err)
			}
			if err := out.Encode(childOutput{Loaded: true}); err != nil {
				return err
			}
		default:
			return fail(fmt.Errorf("unknown command %+v", cmd))
		}
	}
}

func childArm(ctx context.Context, cfg Config, n int) (*armRun, error) {
	arm, ok := ArmByNumber(n)
	if !ok {
		return nil, &InputError{fmt.Sprintf("no arm %d", n)}
	}
	if err := setUpNamespace(cfg); err != nil {
		return nil, err
	}
	return startArm(ctx, cfg, arm, namespacePorts(cfg))
}

// setUpNamespace mounts the arm's temporary directory, brings loopback up
// and, with a port range, sets the namespace's sysctls for it.
func setUpNamespace(cfg Config) error {
	// Mounts made here stay here, and the temporary directory is a tmpfs
	// that the kernel frees with the mount namespace.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make the arm's mounts private: %w", err)
	}
	if err := unix.Mount("tcpadvisor-workload", os.TempDir(), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777"); err != nil {
		return fmt.Errorf("mount a tmpfs on %s for the arm: %w", os.TempDir(), err)
	}
	if err := netns.LoopbackUp(); err != nil {
		return fmt.Errorf("bring loopback up in the arm's network namespace: %w", err)
	}
	r := cfg.PortRange
	if !r.IsSet() {
		return nil
	}
	if err := writeSysctl("net.ipv4.ip_local_port_range", fmt.Sprintf("%d %d", r.Low, r.High)); err != nil {
		if errors.Is(err, syscall.EINVAL) {
			start, _ := sysctl.Read(cfg.Exporter.ProcPath, "net.ipv4.ip_unprivileged_port_start")
			return &InputError{fmt.Sprintf("--port-range=%s: the kernel refuses it: the low end must be at least net.ipv4.ip_unprivileged_port_start (%s); choose a range such as 40000-40199",
				r, start)}
		}
		return err
	}
	// tcp_tw_reuse is 2 in a new namespace: TIME_WAIT ports are reused over
	// loopback, which hides the exhaustion a host talking to another host
	// gets. 0 shows it.
	if err := writeSysctl("net.ipv4.tcp_tw_reuse", "0"); err != nil {
		return err
	}
	// A range that covers a server's port must not hand it to connect().
	ports := namespacePorts(cfg)
	return writeSysctl("net.ipv4.ip_local_reserved_ports", fmt.Sprintf("%d,%d,%d", ports.App, ports.Redis, ports.Nginx))
}

// writeSysctl writes a sysctl of this process's network namespace.
func writeSysctl(name, value string) error {
	return sysctl.Write(sysctl.DefaultProcPath, name, value)
}
