package workload

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// childOutput is what a child writes on its stdout: the arm's result, or
// its error.
type childOutput struct {
	Result   *ArmResult `json:"result,omitempty"`
	Error    string     `json:"error,omitempty"`
	BadInput bool       `json:"bad_input,omitempty"`
}

// InNamespace returns a runner that runs each arm in a child process, exe
// with args(arm), in new network, PID and mount namespaces. The child calls
// ChildMain.
//
// Nothing of an arm can outlive it. The network namespace has no name: the
// kernel frees it, with the TIME_WAIT sockets in it, when its last process
// exits. The child is PID 1 of its PID namespace, so when it exits, however
// it exits, the kernel kills every process left in it (nginx's workers
// included). Its temporary directory is a tmpfs of its mount namespace,
// gone with it: the servers' files and the advisor's store. And the child
// gets SIGKILL when this process dies (Pdeathsig), even by SIGKILL. On
// ctx's end the child gets SIGTERM and stops its servers itself.
func InNamespace(exe string, args func(arm int) []string, stderr io.Writer) func(context.Context, Arm) (ArmResult, error) {
	return func(ctx context.Context, arm Arm) (ArmResult, error) {
		cmd := exec.Command(exe, args(arm.N)...)
		var stdout bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Cloneflags: syscall.CLONE_NEWNET | syscall.CLONE_NEWPID | syscall.CLONE_NEWNS,
			Pdeathsig:  syscall.SIGKILL,
		}
		started := make(chan error)
		waited := make(chan error, 1)
		go func() {
			// Pdeathsig follows the thread that started the child.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			if err := cmd.Start(); err != nil {
				started <- err
				return
			}
			started <- nil
			waited <- cmd.Wait()
		}()
		if err := <-started; err != nil {
			if errors.Is(err, syscall.EPERM) {
				return ArmResult{}, &InputError{"cannot create a network namespace (operation not permitted): run as root with CAP_SYS_ADMIN"}
			}
			return ArmResult{}, fmt.Errorf("start the arm in new namespaces: %w", err)
		}
		var err error
		select {
		case err = <-waited:
		case <-ctx.Done():
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case err = <-waited:
			case <-time.After(15 * time.Second):
				_ = cmd.Process.Kill()
				err = <-waited
			}
		}
		var out childOutput
		if jsonErr := json.Unmarshal(stdout.Bytes(), &out); jsonErr != nil {
			return ArmResult{}, fmt.Errorf("the arm's process ended without a result (%v)", err)
		}
		switch {
		case out.BadInput:
			return ArmResult{}, &InputError{out.Error}
		case out.Error != "":
			return ArmResult{}, errors.New(out.Error)
		case out.Result == nil:
			return ArmResult{}, errors.New("the arm's process wrote no result")
		}
		return *out.Result, nil
	}
}

// ChildMain runs arm n inside the namespaces InNamespace made and writes
// the result, or the error, to w as JSON.
func ChildMain(ctx context.Context, cfg Config, n int, w io.Writer) error {
	var out childOutput
	res, err := childArm(ctx, cfg, n)
	if err != nil {
		var input *InputError
		out.Error, out.BadInput = err.Error(), errors.As(err, &input)
		if ctx.Err() != nil {
			out.Error = "interrupted"
		}
	} else {
		out.Result = &res
	}
	return json.NewEncoder(w).Encode(out)
}

func childArm(ctx context.Context, cfg Config, n int) (ArmResult, error) {
	arm, ok := ArmByNumber(n)
	if !ok {
		return ArmResult{}, &InputError{fmt.Sprintf("no arm %d", n)}
	}
	if err := setUpNamespace(cfg); err != nil {
		return ArmResult{}, err
	}
	return runArm(ctx, cfg, arm, Ports{Redis: namespaceRedisPort, App: namespaceAppPort, Nginx: namespaceNginxPort})
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
	if err := loopbackUp(); err != nil {
		return fmt.Errorf("bring loopback up in the arm's network namespace: %w", err)
	}
	r := cfg.PortRange
	if !r.IsSet() {
		return nil
	}
	if err := writeSysctl("net.ipv4.ip_local_port_range", fmt.Sprintf("%d %d", r.Low, r.High)); err != nil {
		if errors.Is(err, syscall.EINVAL) {
			start, _ := cfg.ReadSysctl("net.ipv4.ip_unprivileged_port_start")
			return &InputError{fmt.Sprintf("--port-range=%s: the kernel refuses it: the low end must be at least net.ipv4.ip_unprivileged_port_start (%s); choose a range such as 40000-40199",
				r, strings.TrimSpace(start))}
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
	return writeSysctl("net.ipv4.ip_local_reserved_ports", fmt.Sprintf("%d,%d,%d", namespaceAppPort, namespaceRedisPort, namespaceNginxPort))
}

// writeSysctl writes a sysctl of this process's network namespace.
func writeSysctl(name, value string) error {
	return os.WriteFile("/proc/sys/"+strings.ReplaceAll(name, ".", "/"), []byte(value), 0o644)
}

// loopbackUp sets lo up, which a new network namespace has down.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}
