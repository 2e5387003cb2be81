package exporter

import (
	"net"
	"strconv"
	"testing"

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
	before := gather(t, e)[counter]
	const closes = 1000
	netnstest.Churn(t, ln.Addr().String(), closes)
	values := waitFor(t, e, map[string]float64{
		`tcpadvisor_outbound_sockets{destination_address="127.0.0.1",destination_port="` + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port) + `",source_address="127.0.0.1",state="time_wait"}`: closes,
	})
	// A close or two may still be in flight; one that expired would need
	// 60 s.
	if got := values[counter] - before; got < 0.99*closes || got > closes {
		t.Errorf("tcpadvisor_tcpext_tw_total rose by %v after %d client-first closes, want about %d at once: the counter counts sockets entering TIME_WAIT", got, closes, closes)
	}
}
