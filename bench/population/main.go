// Command population builds a TCP socket population on loopback, in the
// network namespace it runs in, and holds it while a benchmark counts it.
//
// It makes -time-wait TIME_WAIT sockets (the client sends its FIN first, the
// server reads EOF and closes, which leaves the client side in TIME_WAIT) and
// -established connection pairs held open, about -ipv6-percent of each toward
// [::1] and the rest toward 127.0.0.1. Connections are spread over several
// listener ports, at most -per-listener toward each, because a client can
// hold only one socket per ephemeral port toward one destination.
//
// Once built it prints one line, "ready <sockets>", on stdout: the TIME_WAIT
// sockets, both ends of every held pair and the listeners. It then holds until
// -hold has passed, stdin reaches EOF, or it gets SIGTERM or SIGINT. TIME_WAIT
// sockets expire on their own about 60 s after they are made, whatever it
// holds.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Bounds of the flags, so that a typo cannot exhaust the machine.
const (
	maxTimeWait    = 1_000_000
	maxEstablished = 100_000
	maxHold        = time.Hour
	maxWorkers     = 256
	// maxDestinations stays within 127.1.0.0-127.63.255.255.
	maxDestinations = 1 << 22
)

type config struct {
	timeWait     int
	established  int
	ipv6Percent  float64
	perListener  int
	basePort     int
	workers      int
	hold         time.Duration
	buildTimeout time.Duration
	// destinations, heavy and heavySockets spread TIME_WAIT sockets over
	// many distinct destinations: see spreadDestinations.
	destinations     int
	heavy            int
	heavySockets     int
	destinationsPort int
}

func main() {
	var cfg config
	flag.IntVar(&cfg.timeWait, "time-wait", 10_000, "TIME_WAIT sockets to make")
	flag.IntVar(&cfg.established, "established", 500, "ESTABLISHED connection pairs to hold open (two sockets each)")
	flag.Float64Var(&cfg.ipv6Percent, "ipv6-percent", 2, "share of the connections made toward [::1], in percent")
	flag.IntVar(&cfg.perListener, "per-listener", 10_000, "most connections toward one listener port; keep it well under the size of net.ipv4.ip_local_port_range")
	flag.IntVar(&cfg.basePort, "base-port", 5000, "first listener port; the listeners take consecutive ports from it")
	flag.IntVar(&cfg.workers, "workers", 8, "connections made in parallel")
	flag.DurationVar(&cfg.hold, "hold", 5*time.Minute, "how long to hold the population at most")
	flag.DurationVar(&cfg.buildTimeout, "build-timeout", 40*time.Second, "give up if building takes longer")
	flag.IntVar(&cfg.destinations, "destinations", 0, "also make one TIME_WAIT socket toward each of this many distinct destinations, 127.1.0.0 and up on -destinations-port")
	flag.IntVar(&cfg.heavy, "heavy", 20, "with -destinations: the first this many destinations get more sockets, the busiest first")
	flag.IntVar(&cfg.heavySockets, "heavy-sockets", 100, "with -destinations: the last heavy destination gets this many sockets, each one before it one more")
	flag.IntVar(&cfg.destinationsPort, "destinations-port", 4999, "with -destinations: the port of the wildcard listener they all lead to")
	flag.Parse()
	if err := run(cfg); err != nil {
		fmt.Fprintf(os.Stderr, "population: %v\n", err)
		os.Exit(1)
	}
}

func (c config) validate() error {
	switch {
	case c.timeWait < 0 || c.timeWait > maxTimeWait:
		return fmt.Errorf("-time-wait=%d: want 0 to %d", c.timeWait, maxTimeWait)
	case c.established < 0 || c.established > maxEstablished:
		return fmt.Errorf("-established=%d: want 0 to %d", c.established, maxEstablished)
	case c.ipv6Percent < 0 || c.ipv6Percent > 100:
		return fmt.Errorf("-ipv6-percent=%g: want 0 to 100", c.ipv6Percent)
	case c.perListener < 1 || c.perListener > 60_000:
		return fmt.Errorf("-per-listener=%d: want 1 to 60000", c.perListener)
	case c.workers < 1 || c.workers > maxWorkers:
		return fmt.Errorf("-workers=%d: want 1 to %d", c.workers, maxWorkers)
	case c.hold <= 0 || c.hold > maxHold:
		return fmt.Errorf("-hold=%s: want more than 0 and at most %s", c.hold, maxHold)
	case c.buildTimeout <= 0 || c.buildTimeout > maxHold:
		return fmt.Errorf("-build-timeout=%s: want more than 0 and at most %s", c.buildTimeout, maxHold)
	case c.destinations < 0 || c.destinations > maxDestinations:
		return fmt.Errorf("-destinations=%d: want 0 to %d", c.destinations, maxDestinations)
	case c.heavy < 0 || c.heavy > c.destinations && c.destinations > 0:
		return fmt.Errorf("-heavy=%d: want 0 to -destinations", c.heavy)
	case c.heavySockets < 1 || c.heavySockets > 10_000:
		return fmt.Errorf("-heavy-sockets=%d: want 1 to 10000", c.heavySockets)
	}
	return nil
}

// listener is one listening socket and the connections planned toward it.
type listener struct {
	ln          *net.TCPListener
	timeWait    int
	established int
}

func run(cfg config) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	deadline := time.Now().Add(cfg.buildTimeout)

	listeners, err := listen(cfg)
	if err != nil {
		return err
	}
	if err := raiseFileLimit(uint64(2*cfg.established + len(listeners) + 4*cfg.workers + 1024)); err != nil {
		return err
	}

	// The server side: every accepted connection waits for the client's
	// FIN and then closes. For the TIME_WAIT connections that is at once;
	// the held ones wait until the process ends.
	for _, l := range listeners {
		go serve(l, deadline, cfg.hold)
	}

	held, err := holdEstablished(listeners, deadline)
	if err != nil {
		return err
	}
	if err := makeTimeWait(listeners, cfg.workers, deadline); err != nil {
		return err
	}
	spread, err := spreadDestinations(cfg, deadline)
	if err != nil {
		return err
	}
	if spread != nil {
		defer spread.Close()
	}

	fmt.Printf("ready %d\n", cfg.timeWait+2*cfg.established+len(listeners)+spreadSockets(cfg))
	why := wait(cfg.hold)
	fmt.Fprintf(os.Stderr, "population: released (%s)\n", why)
	// Closing the listeners here also keeps them reachable until now: the
	// runtime closes the descriptor of an unreachable listener.
	for _, l := range listeners {
		l.ln.Close()
	}
	for _, c := range held {
		c.Close()
	}
	return nil
}

// listen opens enough listeners on 127.0.0.1 and [::1] that none gets more
// than cfg.perListener connections, and shares the connections out.
func listen(cfg config) ([]*listener, error) {
	v6TimeWait := int(float64(cfg.timeWait)*cfg.ipv6Percent/100 + 0.5)
	v6Established := int(float64(cfg.established)*cfg.ipv6Percent/100 + 0.5)
	groups := []struct {
		addr                  string
		timeWait, established int
	}{
		{"127.0.0.1", cfg.timeWait - v6TimeWait, cfg.established - v6Established},
		{"::1", v6TimeWait, v6Established},
	}
	var listeners []*listener
	port := cfg.basePort
	for _, g := range groups {
		total := g.timeWait + g.established
		if total == 0 {
			continue
		}
		n := (total + cfg.perListener - 1) / cfg.perListener
		for i := range n {
			if port > 65535 {
				return nil, fmt.Errorf("-base-port=%d leaves too few ports for the listeners", cfg.basePort)
			}
			ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.ParseIP(g.addr), Port: port})
			if err != nil {
				return nil, fmt.Errorf("listen: %w", err)
			}
			port++
			// Share the connections out evenly: the first ones get
			// the remainder.
			listeners = append(listeners, &listener{
				ln:          ln,
				timeWait:    share(g.timeWait, n, i),
				established: share(g.established, n, i),
			})
		}
	}
	return listeners, nil
}

// share returns part i of total split into n parts as evenly as possible.
func share(total, n, i int) int {
	s := total / n
	if i < total%n {
		s++
	}
	return s
}

// raiseFileLimit makes sure RLIMIT_NOFILE allows need descriptors. Go already
// raises the soft limit to the hard one at start; root can raise the hard one.
func raiseFileLimit(need uint64) error {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("getrlimit: %w", err)
	}
	if lim.Cur >= need {
		return nil
	}
	lim.Cur = need
	lim.Max = max(lim.Max, need)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("raise RLIMIT_NOFILE to %d for the held connections: %w (run as root or hold fewer)", need, err)
	}
	return nil
}

// serve accepts the connections planned toward l, and no more, before the
// build deadline. Each one is closed once its client has closed, or when the
// hold ends.
func serve(l *listener, deadline time.Time, hold time.Duration) {
	l.ln.SetDeadline(deadline)
	for range l.timeWait + l.established {
		c, err := l.ln.Accept()
		if err != nil {
			// The build fails on the client side, which reports it.
			return
		}
		go func() {
			c.SetReadDeadline(time.Now().Add(hold))
			var b [1]byte
			c.Read(b[:])
			c.Close()
		}()
	}
}

// holdEstablished opens the planned held connections and returns their
// client ends.
func holdEstablished(listeners []*listener, deadline time.Time) ([]net.Conn, error) {
	var held []net.Conn
	d := net.Dialer{Deadline: deadline}
	for _, l := range listeners {
		for range l.established {
			c, err := d.Dial("tcp", l.ln.Addr().String())
			if err != nil {
				return nil, fmt.Errorf("hold a connection: %w", err)
			}
			held = append(held, c)
		}
	}
	return held, nil
}

// makeTimeWait opens and closes the planned TIME_WAIT connections with a
// pool of workers. When it returns, every one of their client sockets has
// had the server's FIN, so is in TIME_WAIT.
func makeTimeWait(listeners []*listener, workers int, deadline time.Time) error {
	type job struct {
		addr  string
		count int
	}
	jobs := make(chan job, len(listeners)*workers)
	for _, l := range listeners {
		addr := l.ln.Addr().String()
		for i := range workers {
			if n := share(l.timeWait, workers, i); n > 0 {
				jobs <- job{addr, n}
			}
		}
	}
	close(jobs)

	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if first == nil {
			first = err
		}
	}
	d := net.Dialer{Deadline: deadline}
	for range workers {
		wg.Go(func() {
			var b [1]byte
			for j := range jobs {
				for range j.count {
					c, err := d.Dial("tcp", j.addr)
					if err != nil {
						fail(fmt.Errorf("make a TIME_WAIT connection: %w (widen net.ipv4.ip_local_port_range, set net.ipv4.tcp_tw_reuse=0, or lower -per-listener)", err))
						return
					}
					// Send the FIN first but close only once the
					// server's FIN is in: closing at once orphans the
					// socket, and on Linux 6.18 about 0.15 % of
					// orphans were reset instead of entering
					// TIME_WAIT, against about 0.01 % this way.
					c.SetReadDeadline(deadline)
					c.(*net.TCPConn).CloseWrite()
					_, err = c.Read(b[:])
					c.Close()
					if !errors.Is(err, io.EOF) {
						fail(fmt.Errorf("wait for the server to close %s: %v", j.addr, err))
						return
					}
				}
			}
		})
	}
	wg.Wait()
	return first
}

// wait holds until the hold ends, stdin reaches EOF or a signal comes, and
// says which.
func wait(hold time.Duration) string {
	stdin := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(stdin)
	}()
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-time.After(hold):
		return "hold of " + hold.String() + " over"
	case <-stdin:
		return "stdin closed"
	case s := <-signals:
		return s.String()
	}
}

// destinationAddress is the i-th destination of -destinations: 127.1.0.0 and
// up, every one of them on loopback.
func destinationAddress(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{127, byte(1 + i>>16), byte(i >> 8), byte(i)})
}

// heavySocketsOf is how many TIME_WAIT sockets destination i gets: the
// heavy ones more, each one more than the next, so that their ranking is
// known; the others one.
func heavySocketsOf(cfg config, i int) int {
	if i < cfg.heavy {
		return cfg.heavySockets + cfg.heavy - 1 - i
	}
	return 1
}

// spreadSockets is how many sockets -destinations makes, its listener
// included.
func spreadSockets(cfg config) int {
	if cfg.destinations == 0 {
		return 0
	}
	n := 1
	for i := range cfg.destinations {
		n += heavySocketsOf(cfg, i)
	}
	return n
}

// spreadDestinations makes the TIME_WAIT sockets of -destinations, toward
// one wildcard listener through cfg.destinations loopback addresses, and
// returns the listener, to be closed once the population is released.
// Sockets toward different addresses share ephemeral ports, so no port range
// limits their number; net.ipv4.tcp_max_tw_buckets must hold them all.
func spreadDestinations(cfg config, deadline time.Time) (*net.TCPListener, error) {
	if cfg.destinations == 0 {
		return nil, nil
	}
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4zero, Port: cfg.destinationsPort})
	if err != nil {
		return nil, fmt.Errorf("listen for -destinations: %w", err)
	}
	l := &listener{ln: ln, timeWait: spreadSockets(cfg) - 1}
	go serve(l, deadline, cfg.hold)
	jobs := make(chan netip.AddrPort, 4*cfg.workers)
	go func() {
		defer close(jobs)
		// Round robin over the destinations, so that the sockets of
		// a heavy one are spread over the dump as in a real host.
		for round := 0; ; round++ {
			sent := false
			for i := range cfg.destinations {
				if round >= heavySocketsOf(cfg, i) {
					if i >= cfg.heavy {
						break
					}
					continue
				}
				jobs <- netip.AddrPortFrom(destinationAddress(i), uint16(cfg.destinationsPort))
				sent = true
			}
			if !sent {
				return
			}
		}
	}()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	d := net.Dialer{Deadline: deadline}
	for range cfg.workers {
		wg.Go(func() {
			var b [1]byte
			for dest := range jobs {
				c, err := d.Dial("tcp4", dest.String())
				if err == nil {
					c.SetReadDeadline(deadline)
					c.(*net.TCPConn).CloseWrite()
					_, err = c.Read(b[:])
					c.Close()
					if errors.Is(err, io.EOF) {
						err = nil
					}
				}
				if err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("make a TIME_WAIT connection toward %s: %w", dest, err)
					}
					mu.Unlock()
					for range jobs {
					}
					return
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		ln.Close()
		return nil, first
	}
	return ln, nil
}
