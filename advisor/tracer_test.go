package advisor

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// tracerSeries is what the connection tracer exports after secs seconds of
// a per-request Redis client in a 10-port namespace: process "child" of
// child.service opens 2 connections a second toward 127.0.0.1:16379, each
// living 5 ms, and fails 3 times a second with EADDRNOTAVAIL and once with
// ECONNREFUSED. redis-server listens there.
func tracerSeries(secs int) string {
	return strings.NewReplacer("@OPENED@", fmt.Sprint(2*secs), "@LIFETIME@", fmt.Sprint(0.01*float64(secs)),
		"@NOPORT@", fmt.Sprint(3*secs), "@REFUSED@", fmt.Sprint(secs)).Replace(`
tcpadvisor_outbound_connections_opened_total{source_address="127.0.0.1",destination_address="127.0.0.1",destination_port="16379",owner="child.service",process="child"} @OPENED@
tcpadvisor_outbound_connection_lifetime_seconds_sum{source_address="127.0.0.1",destination_address="127.0.0.1",destination_port="16379",owner="child.service",process="child"} @LIFETIME@
tcpadvisor_outbound_connection_lifetime_seconds_count{source_address="127.0.0.1",destination_address="127.0.0.1",destination_port="16379",owner="child.service",process="child"} @OPENED@
tcpadvisor_outbound_connect_failures_total{source_address="127.0.0.1",destination_address="127.0.0.1",destination_port="16379",owner="child.service",process="child",errno="EADDRNOTAVAIL"} @NOPORT@
tcpadvisor_outbound_connect_failures_total{source_address="127.0.0.1",destination_address="127.0.0.1",destination_port="16379",owner="child.service",process="child",errno="ECONNREFUSED"} @REFUSED@
tcpadvisor_outbound_connect_failures_total{source_address="127.0.0.1",destination_address="127.0.0.1",destination_port="16379",owner="child.service",process="child",errno="ETIMEDOUT"} 0
tcpadvisor_outbound_sockets{source_address="127.0.0.1",destination_address="127.0.0.1",destination_port="16379",state="time_wait"} 10
tcpadvisor_outbound_sockets{source_address="127.0.0.1",destination_address="127.0.0.1",destination_port="16379",state="established"} 0
tcpadvisor_outbound_port_pressure_ratio{source_address="127.0.0.1",destination_address="127.0.0.1",destination_port="16379"} 1
tcpadvisor_outbound_owner_sockets{source_address="127.0.0.1",destination_address="127.0.0.1",destination_port="16379",owner="unknown",process="unknown"} 10
tcpadvisor_listen_owner_info{port="16379",owner="redis.service",process="redis-server"} 1
tcpadvisor_sysctl_net_ipv4_ip_local_port_range_min 40000
tcpadvisor_sysctl_net_ipv4_ip_local_port_range_max 40009
tcpadvisor_sysctl_net_ipv4_tcp_timestamps 1
tcpadvisor_sysctl_net_ipv4_tcp_tw_reuse 0
tcpadvisor_ephemeral_ports_range_size 10
tcpadvisor_ephemeral_ports_reserved 0
tcpadvisor_ephemeral_ports_reserved_ranges 0
`)
}

// runTracer cycles the fixture for secs seconds of the tracer's counters.
func runTracer(t *testing.T, f *fixture, secs int) {
	t.Helper()
	for i := 1; i <= secs; i++ {
		f.exp.set(tracerSeries(i))
		f.cycle(t)
	}
}

// TestConnectFailures: connect() failing with EADDRNOTAVAIL raises one
// critical advice that names the failing process, the server behind the
// destination and the failures per second, and gives the Redis pool fix
// before the port-pressure relief. The per-request churn it comes from is
// one pool advice, its owner named by the tracer although no socket sample
// holds one.
func TestConnectFailures(t *testing.T) {
	// At a time scale of 0.05 the rules' 1m rate reads 3 s, three cycles.
	f := newFixture(t, 0.05, tracerSeries(0))
	runTracer(t, f, 40)
	r := f.report()
	i := slices.IndexFunc(r.Advice, func(a Advice) bool { return a.ID == ConnectFailures })
	if i < 0 {
		t.Fatalf("no connect-failures advice in %+v (pending %+v)", r.Advice, r.Pending)
	}
	adv := r.Advice[i]
	if adv.Severity != "critical" || i != 0 {
		t.Errorf("connect-failures is %s at rank %d, want critical, first", adv.Severity, i)
	}
	if adv.Owner == nil || adv.Owner.Process != "child" || adv.Owner.Unit != "child.service" {
		t.Errorf("owner %+v, want child.service (process child)", adv.Owner)
	}
	if adv.Server == nil || adv.Server.Name != "redis-server" || adv.Server.Protocol != "redis" {
		t.Errorf("server %+v, want redis-server", adv.Server)
	}
	for _, want := range []string{"child", "redis-server at 127.0.0.1:16379", "EADDRNOTAVAIL"} {
		if !strings.Contains(adv.Recommendation, want) {
			t.Errorf("recommendation %q lacks %q", adv.Recommendation, want)
		}
	}
	failures := func(name string) float64 {
		for _, e := range adv.Evidence {
			if e.Name == name {
				return e.Value
			}
		}
		return -1
	}
	const toward = "connect() failures per second toward 127.0.0.1:16379, errno "
	if got := failures(toward + "EADDRNOTAVAIL"); got < 2.9 || got > 3.1 {
		t.Errorf("EADDRNOTAVAIL evidence %v/s, want 3/s (evidence %+v)", got, adv.Evidence)
	}
	if got := failures(toward + "ECONNREFUSED"); got < 0.9 || got > 1.1 {
		t.Errorf("ECONNREFUSED evidence %v/s, want 1/s (evidence %+v)", got, adv.Evidence)
	}
	if failures(toward+"ETIMEDOUT") != -1 {
		t.Error("an errno that never failed is shown")
	}
	if len(adv.Fixes) == 0 || !strings.Contains(adv.Fixes[0].Title, "redis") || !strings.Contains(adv.Fixes[0].Text, "16379") {
		t.Errorf("first fix %+v, want a Redis pool toward port 16379", adv.Fixes)
	}
	var sysctls []string
	for _, s := range adv.Sysctls {
		sysctls = append(sysctls, s.Name+"="+s.Value)
	}
	if want := []string{"net.ipv4.tcp_tw_reuse=1", "net.ipv4.ip_local_port_range=16384 65535"}; !slices.Equal(sysctls, want) {
		t.Errorf("sysctls %v, want %v", sysctls, want)
	}

	// The churn itself: one pool advice, its owner from the tracer.
	j := slices.IndexFunc(r.Advice, func(a Advice) bool { return a.ID == Pool })
	if j < 0 {
		t.Fatalf("no pool advice in %+v", r.Advice)
	}
	pool := r.Advice[j]
	if pool.Client == nil || pool.Client.Process != "child" {
		t.Errorf("pool advice client %+v, want child, from the tracer", pool.Client)
	}
	if !slices.Contains(pool.Alerts, "TcpadvisorShortLivedConnections") {
		t.Errorf("pool advice alerts %v, want the tracer's", pool.Alerts)
	}
	var opens, lifetime float64
	for _, e := range pool.Evidence {
		switch e.Name {
		case "connections opened per second toward 127.0.0.1:16379":
			opens = e.Value
		case "mean connection lifetime in seconds toward 127.0.0.1:16379":
			lifetime = e.Value
		}
	}
	if opens < 1.9 || opens > 2.1 || lifetime < 0.0049 || lifetime > 0.0051 {
		t.Errorf("pool evidence: %v opens/s and %v s mean lifetime, want 2/s and 5 ms (%+v)", opens, lifetime, pool.Evidence)
	}
}

// TestNoTracerNoTracerEvidence: without the tracer's series the churn
// advice shows no tracer evidence, and no connect-failures advice fires.
func TestNoTracerNoTracerEvidence(t *testing.T) {
	f := newFixture(t, 0.01, hostSysctls+twReuse("2")+arm3)
	f.run(t, 10*time.Second)
	for _, a := range f.report().Advice {
		if a.ID == ConnectFailures {
			t.Errorf("connect-failures without the tracer: %+v", a)
		}
		for _, e := range a.Evidence {
			if strings.Contains(e.Name, "opened per second") || strings.Contains(e.Name, "lifetime") || strings.Contains(e.Name, "connect() failures") {
				t.Errorf("%s shows tracer evidence %q without the tracer", a.ID, e.Name)
			}
		}
	}
}
