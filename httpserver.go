package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/exporter-toolkit/web"
	"github.com/tcpadvisor/tcpadvisor/internal/cliflag"
)

// httpLimits bound what a peer can hold of the daemon: how long it may take
// to send a request, to read the reply and to sit idle, and how many
// connections it may keep open.
type httpLimits struct {
	// readHeaderTimeout closes a connection whose request headers are
	// not complete in time: a slow or half-sent request.
	readHeaderTimeout time.Duration
	readTimeout       time.Duration
	// writeTimeout exceeds the collector timeout, so that a scrape that
	// waits the whole collection still gets its reply.
	writeTimeout time.Duration
	idleTimeout  time.Duration
	// maxConnections caps the open connections, below the file
	// descriptor limit, so that the collectors keep theirs.
	maxConnections int
	// shutdownGrace is how long a SIGTERM waits for the requests under
	// way: a full collection and the writing of its reply.
	shutdownGrace time.Duration
}

// defaultMaxConnections is the connection cap where file descriptors are
// plenty; a few Prometheus servers and browsers need a handful.
const defaultMaxConnections = 1024

// defaultHTTPLimits returns the limits for a daemon whose collections take at
// most collectorTimeout. The connection cap is at most half the soft limit
// on open files (which the Go runtime raises to the hard limit at start),
// leaving the other half to the collectors: sock_diag sockets, /proc files,
// one socket per network namespace.
func defaultHTTPLimits(collectorTimeout time.Duration) httpLimits {
	maxConnections := defaultMaxConnections
	var nofile syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &nofile); err == nil && nofile.Cur/2 < uint64(maxConnections) {
		maxConnections = max(int(nofile.Cur/2), 1)
	}
	return httpLimits{
		readHeaderTimeout: 10 * time.Second,
		readTimeout:       30 * time.Second,
		writeTimeout:      collectorTimeout + 30*time.Second,
		idleTimeout:       2 * time.Minute,
		maxConnections:    maxConnections,
		shutdownGrace:     collectorTimeout + 5*time.Second,
	}
}

// newHTTPServer returns a server of handler within limits. What the server
// itself reports (a failed TLS handshake, an accept error) goes to logger
// at error level, as Prometheus' own server does, not to the standard log
// in another format.
func newHTTPServer(handler http.Handler, limits httpLimits, logger *slog.Logger) *http.Server {
	connections := newConnCap(limits.maxConnections)
	return &http.Server{
		Handler:           connections.track(handler),
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelError),
		ReadHeaderTimeout: limits.readHeaderTimeout,
		ReadTimeout:       limits.readTimeout,
		WriteTimeout:      limits.writeTimeout,
		IdleTimeout:       limits.idleTimeout,
		ConnState:         connections.connState,
		ConnContext:       connections.connContext,
	}
}

// serveHTTP serves on the listeners flags name (or systemd's sockets, with
// TLS and basic auth from --web.config.file) until ctx ends, then lets the
// requests under way finish, for at most limits.shutdownGrace, before it
// returns.
func serveHTTP(ctx context.Context, server *http.Server, flags *web.FlagConfig, grace time.Duration, logger *slog.Logger) error {
	served := make(chan struct{})
	shutDown := make(chan struct{})
	go func() {
		defer close(shutDown)
		select {
		case <-served:
			return
		case <-ctx.Done():
		}
		logger.Info("shutting down: finishing the requests under way", "grace_period", grace)
		graceCtx, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		if err := server.Shutdown(graceCtx); err != nil {
			logger.Warn("requests still under way after the grace period: closing them", "grace_period", grace, "err", err)
			server.Close()
		}
	}()
	err := web.ListenAndServe(server, flags, logger)
	close(served)
	<-shutDown
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return listenError(err, *flags.WebListenAddresses)
}

// listenError names the listen address that failed, and how to fix it.
func listenError(err error, addresses []string) error {
	if err == nil {
		return nil
	}
	address := fmt.Sprint(addresses)
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "listen" && opErr.Addr != nil {
		address = opErr.Addr.String()
	}
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("--web.listen-address=%s: address already in use; stop what listens there or choose another address", address)
	}
	return fmt.Errorf("serve on --web.listen-address=%s: %w", address, err)
}

// connCap keeps at most max connections open. A connection past the cap
// evicts the oldest one that is not being answered (idle between requests,
// or still sending its request headers, as a slow client does), so that
// slow clients cannot crowd out a scrape; when every connection is being
// answered, the new one is closed.
type connCap struct {
	max int

	mu    sync.Mutex
	next  uint64
	conns map[net.Conn]*trackedConn
}

// trackedConn is an open connection: its accept order, and how many of its
// requests are in a handler (more than one with HTTP/2).
type trackedConn struct {
	order    uint64
	handling int
}

type connKey struct{}

func newConnCap(max int) *connCap {
	return &connCap{max: max, conns: map[net.Conn]*trackedConn{}}
}

// connState is the server's ConnState hook: the server calls it with
// StateNew before it reads from a connection, so that a connection past the
// cap costs no more than its accept.
func (c *connCap) connState(conn net.Conn, state http.ConnState) {
	switch state {
	case http.StateNew:
		if evict := c.admit(conn); evict != nil {
			evict.Close()
		}
	case http.StateClosed, http.StateHijacked:
		c.mu.Lock()
		delete(c.conns, conn)
		c.mu.Unlock()
	}
}

// admit records conn and returns the connection to close to keep within
// the cap: the oldest one not being answered, or conn itself.
func (c *connCap) admit(conn net.Conn) net.Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	var evict net.Conn
	if len(c.conns) >= c.max {
		var oldest *trackedConn
		for other, t := range c.conns {
			if t.handling == 0 && (oldest == nil || t.order < oldest.order) {
				evict, oldest = other, t
			}
		}
		if evict == nil {
			return conn
		}
		delete(c.conns, evict)
	}
	c.next++
	c.conns[conn] = &trackedConn{order: c.next}
	return evict
}

// connContext is the server's ConnContext hook: it gives each request the
// connection it came on, for track.
func (c *connCap) connContext(ctx context.Context, conn net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, conn)
}

// track marks a request's connection as being answered while h handles it,
// which keeps it from eviction.
func (c *connCap) track(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _ := r.Context().Value(connKey{}).(net.Conn)
		c.handling(conn, 1)
		defer c.handling(conn, -1)
		h.ServeHTTP(w, r)
	})
}

func (c *connCap) handling(conn net.Conn, delta int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.conns[conn]; ok {
		t.handling += delta
	}
}

// telemetryPathFlag adds --web.telemetry-path: an absolute URL path of plain
// characters (no space, query, wildcard or dot segment), other than the
// daemon's own /advice.
func telemetryPathFlag(g cliflag.Group) *string {
	dst := new(string)
	g.Flag("web.telemetry-path", "Path under which to expose metrics.").Default("/metrics").SetValue(&cliflag.Value[string]{
		Flag: "web.telemetry-path", Dst: dst,
		Want:  "a path such as /metrics: starting with /, of letters, digits and -._~/, other than /advice",
		Parse: func(s string) (string, bool) { return s, validTelemetryPath(s) },
	})
	return dst
}

func validTelemetryPath(p string) bool {
	if !strings.HasPrefix(p, "/") || p == "/advice" {
		return false
	}
	// A dot segment or a doubled slash would be redirected by the mux.
	if p != "/" && path.Clean(p) != strings.TrimSuffix(p, "/") {
		return false
	}
	for _, r := range p {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("-._~/", r)) {
			return false
		}
	}
	return true
}
