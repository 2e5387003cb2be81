package exporter

import (
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/tcpadvisor/tcpadvisor/internal/netnstest"
)

// TestIntegrationTimeWaitCounterCountsEntries pins what TcpExt TW counts on
// this kernel: a socket entering TIME_WAIT, not one leaving it. In a fresh
// namespace, 1,000 connections closed by the client raise
// tcpadvisor_tcpext_tw_total by about 1,000 at once (measured: 998 to 1,000), long before the 60 s of
// TIME_WAIT have run, and the sockets are still there.
func TestIntegrationTimeWaitCounterCountsEntries(t *testing.T) {
	if !netnstest.Enter(t) {
		return
	}
	// Reuse would recycle loopback TIME_WAIT ports; the count of sockets
	// would then be lower than the closes.
	netnstest.Sysctl(t, "net.ipv4.tcp_tw_reuse", "0")
	ln := netnstest.Serve(t, "127.0.0.1:0", netnstest.Discard)
	e := realExporter(t)
	const counter = `tcpadvisor_tcpext_tw_total{}`
	timeWait := `tcpadvisor_outbound_sockets{destination_address="127.0.0.1",destination_port="` +
		strconv.Itoa(ln.Addr().(*net.TCPAddr).Port) + `",source_address="127.0.0.1",state="time_wait"}`
	before := gather(t, e)[counter]
	const closes = 1000
	netnstest.Churn(t, ln.Addr().String(), closes)
	// A socket enters TIME_WAIT when the server's FIN arrives: on a busy
	// machine the last few take a moment. None leaves it for 60 s. The
	// collectors of one scrape run side by side, so the counter may be
	// read before the last sockets entered TIME_WAIT and the dump after:
	// scrape until both have seen them all.
	var rise, sockets float64
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		values := gather(t, e)
		rise, sockets = values[counter]-before, values[timeWait]
		if sockets == closes && rise >= closes || time.Now().After(deadline) {
			break
		}
	}
	if rise < 0.99*closes || rise > closes || rise < sockets-2 {
		t.Errorf("tcpadvisor_tcpext_tw_total rose by %v after %d client-first closes, with %v sockets in TIME_WAIT: want about %d at once: the counter counts sockets entering TIME_WAIT", rise, closes, sockets, closes)
	}
}
