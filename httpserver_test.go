package main

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// startHTTPServer serves handler within limits on a free loopback port and
// returns its address.
func startHTTPServer(t *testing.T, handler http.Handler, limits httpLimits) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := newHTTPServer(handler, limits, slog.New(slog.DiscardHandler))
	go server.Serve(ln)
	t.Cleanup(func() { server.Close() })
	return ln.Addr().String()
}

// halfSentRequests opens n connections that each send the start of a
// request and never end its headers.
func halfSentRequests(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("slow client %d: %v", len(conns), err)
		}
		conns = append(conns, c)
		if _, err := io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n"); err != nil {
			t.Fatal(err)
		}
	}
	return conns
}

// closedWithin reports how many of conns the server closed within d.
func closedWithin(conns []net.Conn, d time.Duration) int {
	closed := 0
	deadline := time.Now().Add(d)
	for _, c := range conns {
		c.SetReadDeadline(deadline)
		// Copy returns nil at the end of the stream, a reset when the
		// server closed with data unread; only a timeout means open.
		_, err := io.Copy(io.Discard, c)
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			closed++
		}
	}
	return closed
}

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })

func testLimits(maxConnections int) httpLimits {
	return httpLimits{
		readHeaderTimeout: 500 * time.Millisecond,
		readTimeout:       time.Second,
		writeTimeout:      2 * time.Second,
		idleTimeout:       2 * time.Second,
		maxConnections:    maxConnections,
		shutdownGrace:     time.Second,
	}
}

// TestSlowClientsAreClosedAtReadHeaderTimeout: requests whose headers never
// end are closed once the header timeout passes, not kept forever.
func TestSlowClientsAreClosedAtReadHeaderTimeout(t *testing.T) {
	addr := startHTTPServer(t, okHandler, testLimits(100))
	start := time.Now()
	slow := halfSentRequests(t, addr, 10)
	if n := closedWithin(slow, 3*time.Second); n != len(slow) {
		t.Fatalf("%d of %d half-sent requests closed within 3 s, with a 500 ms header timeout", n, len(slow))
	}
	if elapsed := time.Since(start); elapsed < 400*time.Millisecond {
		t.Errorf("half-sent requests closed after %v, before the 500 ms header timeout", elapsed)
	}
}

// TestSlowClientsCannotCrowdOutAScrape opens more half-sent requests than
// the connection cap: a normal request is still answered at once, the slow
// ones making room for it, and the server never holds more connections
// than the cap.
func TestSlowClientsCannotCrowdOutAScrape(t *testing.T) {
	const maxConnections = 20
	limits := testLimits(maxConnections)
	limits.readHeaderTimeout = time.Minute
	limits.readTimeout = time.Minute
	addr := startHTTPServer(t, okHandler, limits)
	slow := halfSentRequests(t, addr, 5*maxConnections)

	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("a scrape behind %d slow clients: %v", len(slow), err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok\n" {
		t.Errorf("scrape answered %s %q", resp.Status, body)
	}
	if open := len(slow) - closedWithin(slow, 200*time.Millisecond); open > maxConnections {
		t.Errorf("%d slow clients still open, above the cap of %d", open, maxConnections)
	}
}

// TestBusyConnectionsAreNotEvicted: a connection whose request is being
// answered keeps its place; past the cap, the newcomer is closed instead.
func TestBusyConnectionsAreNotEvicted(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 2)
	slowHandler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release
		io.WriteString(w, "ok\n")
	})
	addr := startHTTPServer(t, slowHandler, testLimits(2))
	type result struct {
		body string
		err  error
	}
	results := make(chan result, 2)
	for range 2 {
		go func() {
			resp, err := http.Get("http://" + addr + "/")
			if err != nil {
				results <- result{err: err}
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			results <- result{string(b), err}
		}()
	}
	<-started
	<-started
	// The cap is full of requests being answered: a third is refused.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := c.Read(make([]byte, 64)); err == nil || n > 0 {
		t.Errorf("a connection past a cap full of busy ones was answered (%d bytes, %v)", n, err)
	}
	close(release)
	for range 2 {
		if r := <-results; r.err != nil || r.body != "ok\n" {
			t.Errorf("a busy request got %q, %v: it was evicted", r.body, r.err)
		}
	}
}

func TestListenErrorNamesTheAddress(t *testing.T) {
	occupied, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer occupied.Close()
	_, listenErr := net.Listen("tcp", occupied.Addr().String())
	got := listenError(listenErr, []string{"127.0.0.1:1", occupied.Addr().String()}).Error()
	want := "--web.listen-address=" + occupied.Addr().String() + ": address already in use"
	if !strings.HasPrefix(got, want) {
		t.Errorf("listenError = %q, want it to start with %q", got, want)
	}
}
