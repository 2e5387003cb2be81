package tracer

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/tcpadvisor/tcpadvisor/internal/netnstest"
	"golang.org/x/sys/unix"
)

// ownNetns returns the inode number of the test's network namespace.
func ownNetns(t *testing.T) uint32 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &st); err != nil {
		t.Fatal(err)
	}
	return uint32(st.Ino)
}

// loadOrSkip loads the tracer with hook, or skips where the kernel or the
// privileges do not allow it.
func loadOrSkip(t *testing.T, opts Options, hook string) *Tracer {
	t.Helper()
	opts = opts.withDefaults()
	cache := btf.NewCache()
	types, err := loadBTF(cache, opts.BTFPath)
	if err != nil {
		t.Skipf("no BTF: %v", err)
	}
	tr, err := load(opts, cache, types, hook)
	if err != nil {
		if reason := reasonOf(err); reason == ReasonNoPrivileges || reason == ReasonKernelTooOld {
			t.Skipf("cannot load the tracer (%s): %v", reason, err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// drainUntil drains tr, adding up the counts of every drain, until done
// says they are complete or 5 s passed: the peer's side of a close runs
// asynchronously.
func drainUntil(t *testing.T, tr *Tracer, done func(out map[uint16]OutboundCounts, in map[uint16]InboundCounts) bool, each ...func(Outbound)) (map[uint16]OutboundCounts, map[uint16]InboundCounts, *Drained) {
	t.Helper()
	out, in := map[uint16]OutboundCounts{}, map[uint16]InboundCounts{}
	deadline := time.Now().Add(5 * time.Second)
	for {
		d, err := tr.Drain()
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range d.Outbound {
			for _, fn := range each {
				fn(o)
			}
			c := out[o.Port]
			c.Add(&o.Counts)
			out[o.Port] = c
		}
		for _, i := range d.Inbound {
			c := in[i.Port]
			c.Add(&i.Counts)
			in[i.Port] = c
		}
		if done(out, in) || time.Now().After(deadline) {
			return out, in, d
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestIntegrationHooks checks, with each hook, what the tracer counts of
// connections closed by the client, closed by the server, and refused.
func TestIntegrationHooks(t *testing.T) {
	if !netnstest.Enter(t) {
		return
	}
	for _, hook := range []string{HookBTF, HookRaw} {
		t.Run(hook, func(t *testing.T) {
			tr := loadOrSkip(t, Options{Netns: ownNetns(t)}, hook)
			clientFirst := netnstest.Serve(t, "127.0.0.1:0", netnstest.Discard)
			serverFirst := netnstest.Serve(t, "127.0.0.1:0", func(net.Conn) {})
			refused := netnstest.FreeAddress(t)
			netnstest.Churn(t, clientFirst.Addr().String(), 3)
			for range 2 {
				c, err := net.Dial("tcp4", serverFirst.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				c.Read(make([]byte, 1)) // until the server's FIN
				c.Close()
			}
			if _, err := net.Dial("tcp4", refused); !errors.Is(err, unix.ECONNREFUSED) {
				t.Fatalf("dial %s: %v, want ECONNREFUSED", refused, err)
			}
			// And one over IPv6, where the namespace has it.
			var v6 uint16
			if ln6, err := net.Listen("tcp6", "[::1]:0"); err == nil {
				defer ln6.Close()
				go func() {
					if c, err := ln6.Accept(); err == nil {
						netnstest.Discard(c)
						c.Close()
					}
				}()
				c, err := net.Dial("tcp6", ln6.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				c.Close()
				v6 = port(ln6)
			} else {
				t.Logf("no IPv6 here, not checked: %v", err)
			}
			cf, sf := port(clientFirst), port(serverFirst)
			var v6Destination netip.Addr
			out, in, _ := drainUntil(t, tr, func(out map[uint16]OutboundCounts, in map[uint16]InboundCounts) bool {
				return in[cf].Closed[ClosedPeer] == 3 && in[sf].Closed[ClosedLocal] == 2
			}, func(o Outbound) {
				if v6 != 0 && o.Port == v6 {
					v6Destination = o.Destination
				}
			})
			if v6 != 0 {
				if got := out[v6]; got.Opened != 1 || got.Closed[ClosedLocal] != 1 || v6Destination != netip.MustParseAddr("::1") {
					t.Errorf("IPv6: toward %v port %d %+v, want one opened and closed toward ::1", v6Destination, v6, got)
				}
			}
			want := map[uint16]OutboundCounts{
				cf:             {Opened: 3, Closed: [NumClosers]uint64{ClosedLocal: 3}, Lifetimes: 3},
				sf:             {Opened: 2, Closed: [NumClosers]uint64{ClosedPeer: 2}, Lifetimes: 2},
				port2(refused): {Failed: [NumFailures]uint64{FailureECONNREFUSED: 1}},
			}
			wantIn := map[uint16]InboundCounts{
				cf: {Accepted: 3, Closed: [NumClosers]uint64{ClosedPeer: 3}, Lifetimes: 3},
				sf: {Accepted: 2, Closed: [NumClosers]uint64{ClosedLocal: 2}, Lifetimes: 2},
			}
			for p, w := range want {
				got := out[p]
				if w.Lifetimes > 0 && got.LifetimeNanos == 0 {
					t.Errorf("outbound to port %d: no lifetime summed", p)
				}
				got.LifetimeNanos = 0
				if got != w {
					t.Errorf("outbound to port %d = %+v, want %+v", p, got, w)
				}
			}
			for p, w := range wantIn {
				got := in[p]
				if got.LifetimeNanos == 0 {
					t.Errorf("inbound on port %d: no lifetime summed", p)
				}
				got.LifetimeNanos = 0
				if got != w {
					t.Errorf("inbound on port %d = %+v, want %+v", p, got, w)
				}
			}
		})
	}
}

func port(ln net.Listener) uint16 { return uint16(ln.Addr().(*net.TCPAddr).Port) }

func port2(addr string) uint16 {
	a, err := net.ResolveTCPAddr("tcp4", addr)
	if err != nil {
		panic(err)
	}
	return uint16(a.Port)
}

// TestIntegrationMapFull makes more destinations than the outbound map
// holds: what does not fit is counted in the overflow, and the totals add
// up.
func TestIntegrationMapFull(t *testing.T) {
	if !netnstest.Enter(t) {
		return
	}
	const mapSize, destinations = 4, 12
	tr := loadOrSkip(t, Options{Netns: ownNetns(t), MaxOutbound: mapSize, MaxInbound: mapSize}, HookBTF)
	for range destinations {
		ln := netnstest.Serve(t, "127.0.0.1:0", netnstest.Discard)
		netnstest.Churn(t, ln.Addr().String(), 1)
	}
	var opened, accepted uint64
	var d *Drained
	deadline := time.Now().Add(5 * time.Second)
	for {
		var err error
		if d, err = tr.Drain(); err != nil {
			t.Fatal(err)
		}
		if len(d.Outbound) > mapSize || len(d.Inbound) > mapSize {
			t.Fatalf("drained %d outbound and %d inbound keys from maps of %d", len(d.Outbound), len(d.Inbound), mapSize)
		}
		for _, o := range d.Outbound {
			opened += o.Counts.Opened
		}
		for _, i := range d.Inbound {
			accepted += i.Counts.Accepted
		}
		if opened+d.OutboundOverflow.Opened >= destinations && accepted+d.InboundOverflow.Accepted >= destinations || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := opened + d.OutboundOverflow.Opened; got != destinations {
		t.Errorf("opened %d in the map + %d in the overflow = %d, want %d", opened, d.OutboundOverflow.Opened, got, destinations)
	}
	if got := accepted + d.InboundOverflow.Accepted; got != destinations {
		t.Errorf("accepted %d in the map + %d in the overflow = %d, want %d", accepted, d.InboundOverflow.Accepted, got, destinations)
	}
	if d.Events[EventOutboundFull] == 0 || d.Events[EventInboundFull] == 0 {
		t.Errorf("events = %v, want outbound and inbound map-full events", d.Events)
	}
}

func TestNoBTF(t *testing.T) {
	missing := t.TempDir() + "/vmlinux"
	_, err := Load(Options{BTFPath: missing})
	var loadErr *LoadError
	if !errors.As(err, &loadErr) || loadErr.Reason != ReasonNoBTF {
		t.Fatalf("Load with BTF at a missing file: %v, want reason %s", err, ReasonNoBTF)
	}
}

// TestIntegrationCloseDetaches: after Close, neither the program nor its
// link exists in the kernel any more (nothing of it is pinned).
func TestIntegrationCloseDetaches(t *testing.T) {
	if !netnstest.Enter(t) {
		return
	}
	tr := loadOrSkip(t, Options{Netns: ownNetns(t)}, HookBTF)
	info, err := tr.prog.Info()
	if err != nil {
		t.Fatal(err)
	}
	progID, ok := info.ID()
	if !ok {
		t.Skip("the kernel does not tell program IDs")
	}
	linkInfo, err := tr.link.Info()
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	// The kernel frees a program once its last reference goes, after an
	// RCU grace period.
	deadline := time.Now().Add(5 * time.Second)
	for {
		// Each lookup that finds one holds it: let go at once.
		prog, progErr := ebpf.NewProgramFromID(progID)
		if progErr == nil {
			prog.Close()
		}
		l, linkErr := link.NewFromID(linkInfo.ID)
		if linkErr == nil {
			l.Close()
		}
		if errors.Is(progErr, os.ErrNotExist) && errors.Is(linkErr, os.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after Close: program %d: %v; link %d: %v; want both gone", progID, progErr, linkInfo.ID, linkErr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestIntegrationDrainByKey drains a map one key at a time, as on kernels
// without batch operations: every key is read once and the map is left
// empty.
func TestIntegrationDrainByKey(t *testing.T) {
	if !netnstest.Enter(t) {
		return
	}
	tr := loadOrSkip(t, Options{Netns: noNamespace, MaxInbound: 64}, HookBTF)
	for i := range 40 {
		key := tracerInboundKey{Port: uint16(i + 1)}
		if err := tr.maps.Inbound.Put(&key, &tracerInboundCounts{Accepted: uint64(i + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	var key tracerInboundKey
	var value tracerInboundCounts
	var keys int
	var accepted uint64
	if err := drainMapByKey(tr.maps.Inbound, &key, &value, func(_ *tracerInboundKey, v *tracerInboundCounts) {
		keys++
		accepted += v.Accepted
	}); err != nil {
		t.Fatal(err)
	}
	if keys != 40 || accepted != 40*41/2 {
		t.Errorf("drained %d keys, %d accepted; want 40 and %d", keys, accepted, 40*41/2)
	}
	if err := tr.maps.Inbound.NextKey(nil, &key); !errors.Is(err, ebpf.ErrKeyNotExist) {
		t.Errorf("the map is not empty after the drain: %v", err)
	}
}

// TestIntegrationAsyncFailures connects, in a namespace of its own, over
// two veth pairs of its own toward addresses that nothing answers: one
// whose peer is down, one whose peer is up. Each connect() fails after the
// SYN left, with EHOSTUNREACH (ARP failed) or ETIMEDOUT (the SYN's retries
// ended: tcp_syn_retries=2, 7 s), whichever comes first; the tracer, reading
// the socket's sk_err when it closes, must count the errno each connect()
// returned. A third connect() gives up after 500 ms (TCP_USER_TIMEOUT),
// before ARP fails: ETIMEDOUT.
func TestIntegrationAsyncFailures(t *testing.T) {
	if !netnstest.Enter(t) {
		return
	}
	for _, cmd := range [][]string{
		{"link", "add", "tcpadv-t0", "type", "veth", "peer", "name", "tcpadv-t1"},
		{"addr", "add", "198.18.0.1/24", "dev", "tcpadv-t0"},
		{"link", "set", "tcpadv-t0", "up"},
		{"link", "add", "tcpadv-h0", "type", "veth", "peer", "name", "tcpadv-h1"},
		{"addr", "add", "198.18.1.1/24", "dev", "tcpadv-h0"},
		{"link", "set", "tcpadv-h0", "up"},
		{"link", "set", "tcpadv-h1", "up"},
	} {
		if out, err := exec.Command("ip", cmd...).CombinedOutput(); err != nil {
			t.Skipf("ip %v: %v: %s", cmd, err, out)
		}
	}
	netnstest.Sysctl(t, "net.ipv4.tcp_syn_retries", "2")
	tr := loadOrSkip(t, Options{Netns: ownNetns(t)}, HookBTF)
	addrs := []string{"198.18.0.2", "198.18.1.2", "198.18.1.3"}
	type result struct {
		addr string
		err  error
	}
	results := make(chan result, len(addrs))
	for _, addr := range addrs {
		go func() {
			dialer := net.Dialer{Timeout: 30 * time.Second}
			if addr == "198.18.1.3" {
				dialer.Control = func(_, _ string, c syscall.RawConn) error {
					var err error
					c.Control(func(fd uintptr) {
						err = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, 500)
					})
					return err
				}
			}
			c, err := dialer.Dial("tcp4", addr+":80")
			if err == nil {
				c.Close()
			}
			results <- result{addr, err}
		}()
	}
	failures := map[unix.Errno]Failure{unix.ETIMEDOUT: FailureETIMEDOUT, unix.EHOSTUNREACH: FailureEHOSTUNREACH}
	seen := map[string]Failure{}
	for range addrs {
		r := <-results
		var errno unix.Errno
		if !errors.As(r.err, &errno) || (errno != unix.ETIMEDOUT && errno != unix.EHOSTUNREACH) {
			t.Fatalf("dial %s: %v, want ETIMEDOUT or EHOSTUNREACH", r.addr, r.err)
		}
		t.Logf("dial %s: %v", r.addr, errno)
		seen[r.addr] = failures[errno]
	}
	if seen["198.18.1.3"] != FailureETIMEDOUT {
		t.Errorf("the connect() with a user timeout of 500 ms failed with %v, want ETIMEDOUT", seen["198.18.1.3"])
	}
	d, err := tr.Drain()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]OutboundCounts{}
	for _, o := range d.Outbound {
		got[o.Destination.String()] = o.Counts
	}
	for addr, failure := range seen {
		var w OutboundCounts
		w.Failed[failure] = 1
		if got[addr] != w {
			t.Errorf("toward %s: %+v, want one failure with %v", addr, got[addr], failure)
		}
	}
}
