// Package tracer watches TCP connections being made and closed, in the
// kernel, with one eBPF program on the sock:inet_sock_set_state tracepoint:
// connections opened and accepted, connect() failures by errno (the
// synchronous EADDRNOTAVAIL of port exhaustion included), who closed first,
// and how long connections lived. The program counts in fixed-size kernel
// maps, keyed by network namespace, cgroup, process and destination or
// service port; Drain empties them into userspace, which keeps the
// cumulative totals (see Tables).
//
// The C source is bpf/tracer.bpf.c; the compiled object and its Go bindings
// (tracer_bpfel.o, tracer_bpfel.go) are checked in, so that building needs
// no clang. generate.sh rebuilds them.
package tracer

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Failure is why a connect() failed: the errno, one of the few that tell
// a cause apart, or FailureOther.
type Failure int

// The failures, in label order.
const (
	FailureEADDRNOTAVAIL Failure = iota
	FailureECONNREFUSED
	FailureETIMEDOUT
	FailureENETUNREACH
	FailureEHOSTUNREACH
	FailureOther
	NumFailures
)

var failureNames = [NumFailures]string{"EADDRNOTAVAIL", "ECONNREFUSED", "ETIMEDOUT", "ENETUNREACH", "EHOSTUNREACH", "other"}

// String returns the failure's label value.
func (f Failure) String() string { return failureNames[f] }

// Closer is who ended an established connection.
type Closer int

// The closers, in label order.
const (
	// ClosedLocal: this host closed first (ESTABLISHED -> FIN_WAIT1), and
	// its side holds the TIME_WAIT.
	ClosedLocal Closer = iota
	// ClosedPeer: the peer closed first (ESTABLISHED -> CLOSE_WAIT).
	ClosedPeer
	// ClosedReset: a reset, sent or received (ESTABLISHED -> CLOSE).
	ClosedReset
	NumClosers
)

var closerNames = [NumClosers]string{"local", "peer", "reset"}

// String returns the closer's label value.
func (c Closer) String() string { return closerNames[c] }

// Event indexes what the kernel side could not count in full.
type Event int

// The events, as bpf/tracer.bpf.c numbers them.
const (
	// EventOutboundFull: a change whose key did not fit in the outbound
	// map, counted in the drain's OutboundOverflow instead.
	EventOutboundFull Event = iota
	// EventInboundFull: same for the inbound map.
	EventInboundFull
	// EventUntrackedClose: an established connection ended that the
	// tracer did not see open (older than the tracer, or evicted from its
	// socket map): it is not counted.
	EventUntrackedClose
	NumEvents
)

// Reason says why the tracer is not running, as a label value.
type Reason string

// The reasons.
const (
	// ReasonNoBTF: the kernel has no BTF (/sys/kernel/btf/vmlinux) and no
	// BTF file was given, or the one given cannot be read.
	ReasonNoBTF Reason = "no_btf"
	// ReasonNoPrivileges: the kernel refused the maps or the program
	// (CAP_BPF and CAP_PERFMON missing, or the memlock limit on kernels
	// before 5.11).
	ReasonNoPrivileges Reason = "no_privileges"
	// ReasonKernelTooOld: neither tp_btf nor raw tracepoint programs, or
	// the tracepoint, exist in this kernel.
	ReasonKernelTooOld Reason = "kernel_too_old"
	// ReasonVerifierRejected: the verifier refused the program.
	ReasonVerifierRejected Reason = "verifier_rejected"
	// ReasonLoadFailed: anything else.
	ReasonLoadFailed Reason = "load_failed"
)

// LoadError is why Load failed.
type LoadError struct {
	Reason Reason
	Err    error
}

func (e *LoadError) Error() string { return fmt.Sprintf("%s: %v", e.Reason, e.Err) }
func (e *LoadError) Unwrap() error { return e.Err }

// The hooks the program attaches with, best first.
const (
	HookBTF = "tp_btf"
	HookRaw = "raw_tracepoint"
)

// tracepoint is the one tracepoint the tracer attaches to.
const tracepoint = "inet_sock_set_state"

// Options configure Load. Zero values take the defaults.
type Options struct {
	// BTFPath is a BTF file describing the running kernel, for kernels
	// that do not expose /sys/kernel/btf/vmlinux; "" uses the kernel's.
	BTFPath string
	// Netns is the inode number of the one network namespace to trace;
	// 0 traces every namespace.
	Netns uint32
	// MaxOutbound and MaxInbound size the kernel's counter maps: the
	// distinct (namespace, cgroup, process, destination) and (namespace,
	// service port) keys that fit between two drains. MaxSockets sizes
	// the map of live connections, for their opener and lifetime; each
	// CPU has its share of it (an LRU per CPU).
	MaxOutbound, MaxInbound, MaxSockets int
}

// The defaults of Options. The map of live connections holds
// DefaultMaxSockets, or socketsPerCPU per possible CPU where that is more.
const (
	DefaultMaxOutbound = 4096
	DefaultMaxInbound  = 1024
	DefaultMaxSockets  = 32768
	socketsPerCPU      = 1024
)

func (o Options) withDefaults() Options {
	if o.MaxOutbound <= 0 {
		o.MaxOutbound = DefaultMaxOutbound
	}
	if o.MaxInbound <= 0 {
		o.MaxInbound = DefaultMaxInbound
	}
	if o.MaxSockets <= 0 {
		o.MaxSockets = DefaultMaxSockets
		if cpus, err := ebpf.PossibleCPU(); err == nil {
			o.MaxSockets = max(o.MaxSockets, socketsPerCPU*cpus)
		}
	}
	return o
}

// Tracer is the loaded and attached program and its maps.
type Tracer struct {
	opts Options
	hook string
	maps tracerMaps
	prog *ebpf.Program
	link link.Link

	// Reused by each Drain.
	outKeys  []tracerOutboundKey
	outVals  []tracerOutboundCounts
	inKeys   []tracerInboundKey
	inVals   []tracerInboundCounts
	drainBuf Drained

	// Reused by each Sockets, which may run beside a Drain.
	sockMu   sync.Mutex
	sockKeys []uint64
	sockVals []tracerSocketInfo
	comms    map[[16]int8]string
}

// Load loads the program and attaches it: with tp_btf where the kernel
// takes it, else as a raw tracepoint. The error is a *LoadError.
func Load(opts Options) (*Tracer, error) {
	opts = opts.withDefaults()
	// One cache, for the field relocations and the attach target, so
	// that the kernel's BTF (some 5 MiB, more once decoded) is read once.
	cache := btf.NewCache()
	kernelTypes, err := loadBTF(cache, opts.BTFPath)
	if err != nil {
		return nil, &LoadError{Reason: ReasonNoBTF, Err: err}
	}
	var errs []error
	for _, hook := range []string{HookBTF, HookRaw} {
		t, err := load(opts, cache, kernelTypes, hook)
		if err == nil {
			// The decoded BTF is garbage once Load returns: hand it
			// back to the OS before the daemon's tables grow, so that
			// it does not add to the daemon's peak RSS.
			runtime.GC()
			debug.FreeOSMemory()
			return t, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", hook, err))
		if errors.Is(err, unix.EPERM) {
			// The other hook needs the same privileges.
			break
		}
	}
	err = errors.Join(errs...)
	return nil, &LoadError{Reason: reasonOf(err), Err: oneLine(err)}
}

// loadBTF reads the BTF that the program's field accesses are relocated
// against.
func loadBTF(cache *btf.Cache, path string) (*btf.Spec, error) {
	if path == "" {
		spec, err := cache.Kernel()
		if err != nil {
			return nil, fmt.Errorf("read the kernel's BTF (/sys/kernel/btf/vmlinux; CONFIG_DEBUG_INFO_BTF): %w", err)
		}
		return spec, nil
	}
	spec, err := btf.LoadSpec(path)
	if err != nil {
		return nil, fmt.Errorf("--collector.connections.btf-path=%s: %w", path, err)
	}
	return spec, nil
}

func load(opts Options, cache *btf.Cache, kernelTypes *btf.Spec, hook string) (*Tracer, error) {
	spec, err := loadTracer()
	if err != nil {
		return nil, err
	}
	spec.Maps[tracerMapOutbound].MaxEntries = uint32(opts.MaxOutbound)
	spec.Maps[tracerMapInbound].MaxEntries = uint32(opts.MaxInbound)
	spec.Maps[tracerMapSockets].MaxEntries = uint32(opts.MaxSockets)
	if err := spec.Variables[tracerVarTargetNetns].Set(opts.Netns); err != nil {
		return nil, err
	}
	keep, drop := tracerProgInetSockSetStateBtf, tracerProgInetSockSetStateRaw
	if hook == HookRaw {
		keep, drop = drop, keep
	}
	delete(spec.Programs, drop)

	t := &Tracer{opts: opts, hook: hook}
	objs := struct {
		tracerMaps
		Program *ebpf.Program `ebpf:"inet_sock_set_state"`
	}{}
	spec.Programs[tracepoint] = spec.Programs[keep]
	delete(spec.Programs, keep)
	if err := spec.LoadAndAssign(&objs, &ebpf.CollectionOptions{
		Programs: ebpf.ProgramOptions{KernelTypes: kernelTypes},
		Cache:    cache,
	}); err != nil {
		return nil, err
	}
	t.maps, t.prog = objs.tracerMaps, objs.Program
	if hook == HookBTF {
		t.link, err = link.AttachTracing(link.TracingOptions{Program: t.prog})
	} else {
		t.link, err = link.AttachRawTracepoint(link.RawTracepointOptions{Name: tracepoint, Program: t.prog})
	}
	if err != nil {
		t.prog.Close()
		t.maps.Close()
		return nil, fmt.Errorf("attach: %w", err)
	}
	return t, nil
}

// reasonOf classifies a load failure.
func reasonOf(err error) Reason {
	var verr *ebpf.VerifierError
	switch {
	case errors.Is(err, unix.EPERM):
		return ReasonNoPrivileges
	case errors.As(err, &verr):
		// EACCES, most often: the verifier refused the program.
		return ReasonVerifierRejected
	case errors.Is(err, os.ErrPermission):
		return ReasonNoPrivileges
	case errors.Is(err, ebpf.ErrNotSupported), errors.Is(err, unix.ENOENT), errors.Is(err, os.ErrNotExist):
		return ReasonKernelTooOld
	default:
		return ReasonLoadFailed
	}
}

// oneLine makes err fit one log line. A verifier error says the verifier's
// last lines (where it says what it refused, as cilium/ebpf summarises it)
// and its first, not the whole log.
func oneLine(err error) error {
	msg := err.Error()
	var verr *ebpf.VerifierError
	if errors.As(err, &verr) {
		for _, line := range verr.Log {
			if line = strings.TrimSpace(line); line != "" {
				msg += "; the verifier's first line: " + line
				break
			}
		}
	}
	return errors.New(strings.Join(strings.Fields(msg), " "))
}

// Hook returns how the program is attached: HookBTF or HookRaw.
func (t *Tracer) Hook() string { return t.hook }

// Close detaches the program and frees its maps: nothing is pinned, so
// nothing stays in the kernel.
func (t *Tracer) Close() error {
	return errors.Join(t.link.Close(), t.prog.Close(), t.maps.Close())
}

// OutboundCounts are what happened to the connections toward one
// destination of one owner.
type OutboundCounts struct {
	Opened uint64
	Failed [NumFailures]uint64
	Closed [NumClosers]uint64
	// LifetimeNanos sums the time from established to closed of the
	// Lifetimes connections closed.
	LifetimeNanos, Lifetimes uint64
}

// Add adds o to c.
func (c *OutboundCounts) Add(o *OutboundCounts) {
	c.Opened += o.Opened
	for i := range c.Failed {
		c.Failed[i] += o.Failed[i]
	}
	for i := range c.Closed {
		c.Closed[i] += o.Closed[i]
	}
	c.LifetimeNanos += o.LifetimeNanos
	c.Lifetimes += o.Lifetimes
}

// InboundCounts are what happened to the connections accepted on one
// service port.
type InboundCounts struct {
	Accepted                 uint64
	Closed                   [NumClosers]uint64
	LifetimeNanos, Lifetimes uint64
}

// Add adds o to c.
func (c *InboundCounts) Add(o *InboundCounts) {
	c.Accepted += o.Accepted
	for i := range c.Closed {
		c.Closed[i] += o.Closed[i]
	}
	c.LifetimeNanos += o.LifetimeNanos
	c.Lifetimes += o.Lifetimes
}

// Outbound is one key of the outbound map with the counts since the last
// drain.
type Outbound struct {
	Netns       uint32
	Cgroup      uint64
	Process     string
	Source      netip.Addr
	Destination netip.Addr
	Port        uint16
	Counts      OutboundCounts
}

// Inbound is one key of the inbound map with the counts since the last
// drain.
type Inbound struct {
	Netns  uint32
	Port   uint16
	Counts InboundCounts
}

// Drained is what one Drain read.
type Drained struct {
	// Outbound and Inbound are the counts since the last drain.
	Outbound []Outbound
	Inbound  []Inbound
	// OutboundOverflow and InboundOverflow are the cumulative counts
	// that found their map full, since Load.
	OutboundOverflow OutboundCounts
	InboundOverflow  InboundCounts
	// Events are cumulative since Load.
	Events [NumEvents]uint64
}

// maxComms caps the process names Sockets keeps interned.
const maxComms = 4096

// Sockets calls fn for each live connection the tracer saw a process open
// with connect(), with the socket's inode number (as sock_diag and
// /proc/PID/fd show it), its cgroup and the name of that process. It reads
// the kernel's map of live connections without changing it.
func (t *Tracer) Sockets(fn func(inode uint32, cgroup uint64, process string)) error {
	t.sockMu.Lock()
	defer t.sockMu.Unlock()
	if t.sockKeys == nil {
		t.sockKeys = make([]uint64, drainBatch)
		t.sockVals = make([]tracerSocketInfo, drainBatch)
		t.comms = map[[16]int8]string{}
	}
	var cursor ebpf.MapBatchCursor
	for {
		n, err := t.maps.Sockets.BatchLookup(&cursor, t.sockKeys, t.sockVals, nil)
		for i := range n {
			v := &t.sockVals[i]
			if v.Outbound == 0 || v.Inode == 0 {
				continue
			}
			fn(v.Inode, v.Cgroup, t.comm(v.Comm))
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read the map of live connections: %w", err)
		}
	}
}

// comm interns a process name, so that reading the live connections
// allocates nothing once their names are known.
func (t *Tracer) comm(c [16]int8) string {
	if s, ok := t.comms[c]; ok {
		return s
	}
	s := comm(c)
	if len(t.comms) < maxComms {
		t.comms[c] = s
	}
	return s
}

// drainBatch is how many keys one batch syscall moves.
const drainBatch = 256

// Drain moves the counts out of the kernel maps. The slices of the result
// are reused by the next Drain. On an error, the result still holds the
// keys drained before it (they are gone from the kernel), and no overflow
// or event counts.
func (t *Tracer) Drain() (*Drained, error) {
	d := &t.drainBuf
	d.Outbound, d.Inbound = d.Outbound[:0], d.Inbound[:0]
	if t.outKeys == nil {
		t.outKeys = make([]tracerOutboundKey, drainBatch)
		t.outVals = make([]tracerOutboundCounts, drainBatch)
		t.inKeys = make([]tracerInboundKey, drainBatch)
		t.inVals = make([]tracerInboundCounts, drainBatch)
	}
	err := drainMap(t.maps.Outbound, t.outKeys, t.outVals, func(k *tracerOutboundKey, v *tracerOutboundCounts) {
		d.Outbound = append(d.Outbound, Outbound{
			Netns:       k.Netns,
			Cgroup:      k.Cgroup,
			Process:     comm(k.Comm),
			Source:      netip.AddrFrom16(k.Saddr).Unmap(),
			Destination: netip.AddrFrom16(k.Daddr).Unmap(),
			Port:        k.Dport,
			Counts:      outboundCounts(v),
		})
	})
	if err != nil {
		return d, fmt.Errorf("drain the outbound map: %w", err)
	}
	err = drainMap(t.maps.Inbound, t.inKeys, t.inVals, func(k *tracerInboundKey, v *tracerInboundCounts) {
		d.Inbound = append(d.Inbound, Inbound{Netns: k.Netns, Port: k.Port, Counts: inboundCounts(v)})
	})
	if err != nil {
		return d, fmt.Errorf("drain the inbound map: %w", err)
	}
	var out tracerOutboundCounts
	if err := t.maps.OutboundOverflow.Lookup(uint32(0), &out); err != nil {
		return nil, fmt.Errorf("read the outbound overflow: %w", err)
	}
	d.OutboundOverflow = outboundCounts(&out)
	var in tracerInboundCounts
	if err := t.maps.InboundOverflow.Lookup(uint32(0), &in); err != nil {
		return nil, fmt.Errorf("read the inbound overflow: %w", err)
	}
	d.InboundOverflow = inboundCounts(&in)
	for i := range d.Events {
		if err := t.maps.Events.Lookup(uint32(i), &d.Events[i]); err != nil {
			return nil, fmt.Errorf("read the event counters: %w", err)
		}
	}
	return d, nil
}

// drainMap looks up and deletes every key of m, in batches. A change that
// the program counts in an entry between its lookup and its deletion is
// lost: the window is one syscall, and the entries are freed after an RCU
// grace period (BPF_F_NO_PREALLOC), so no count lands on another key.
// Kernels before 5.6, which have no batch operations, are drained one key
// at a time.
func drainMap[K, V any](m *ebpf.Map, keys []K, values []V, fn func(*K, *V)) error {
	var cursor ebpf.MapBatchCursor
	for {
		n, err := m.BatchLookupAndDelete(&cursor, keys, values, nil)
		for i := range n {
			fn(&keys[i], &values[i])
		}
		switch {
		case errors.Is(err, ebpf.ErrKeyNotExist):
			return nil
		case errors.Is(err, ebpf.ErrNotSupported):
			return drainMapByKey(m, &keys[0], &values[0], fn)
		case err != nil:
			return err
		}
	}
}

// drainMapByKey drains m one key at a time: each key is read, then
// deleted; a change counted between the two is lost.
func drainMapByKey[K, V any](m *ebpf.Map, key *K, value *V, fn func(*K, *V)) error {
	// Deleting while iterating could skip keys: collect them first, up to
	// the map's size.
	var pending []K
	iter := m.Iterate()
	for iter.Next(key, value) {
		pending = append(pending, *key)
		if len(pending) == int(m.MaxEntries()) {
			break
		}
	}
	if err := iter.Err(); err != nil {
		return err
	}
	for i := range pending {
		if err := m.LookupAndDelete(&pending[i], value); err != nil {
			if !errors.Is(err, ebpf.ErrNotSupported) {
				if errors.Is(err, ebpf.ErrKeyNotExist) {
					continue
				}
				return err
			}
			// Before 5.14, hash maps have no lookup-and-delete.
			if err := m.Lookup(&pending[i], value); err != nil {
				continue
			}
			if err := m.Delete(&pending[i]); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return err
			}
		}
		fn(&pending[i], value)
	}
	return nil
}

func outboundCounts(v *tracerOutboundCounts) OutboundCounts {
	return OutboundCounts{Opened: v.Opened, Failed: v.Failed, Closed: v.Closed, LifetimeNanos: v.LifetimeNs, Lifetimes: v.Lifetimes}
}

func inboundCounts(v *tracerInboundCounts) InboundCounts {
	return InboundCounts{Accepted: v.Accepted, Closed: v.Closed, LifetimeNanos: v.LifetimeNs, Lifetimes: v.Lifetimes}
}

// comm returns a task's comm, "" when the tracer recorded none.
func comm(c [16]int8) string {
	b := make([]byte, 0, len(c))
	for _, ch := range c {
		if ch == 0 {
			break
		}
		b = append(b, byte(ch))
	}
	return string(b)
}
