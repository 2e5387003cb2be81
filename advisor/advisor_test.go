package advisor

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/tcpadvisor/tcpadvisor/advisor/engine"
	"github.com/tcpadvisor/tcpadvisor/exporter/owners"
)

var redis = map[string]string{"source_address": "10.0.0.1", "destination_address": "10.0.0.5", "destination_port": "6379"}

const redisFlow = `
tcpadvisor_outbound_sockets{source_address="10.0.0.1",destination_address="10.0.0.5",destination_port="6379",state="time_wait"} 13155
tcpadvisor_outbound_sockets{source_address="10.0.0.1",destination_address="10.0.0.5",destination_port="6379",state="established"} 3
`

func TestPoolAdvice(t *testing.T) {
	f := newFixture(t, 1, hostSysctls+twReuse("2")+redisFlow)
	f.alerts = []engine.Alert{alert("TcpadvisorConnectionPerRequest", "pool", "warning", "firing", redis)}
	r := f.report()
	if len(r.Advice) != 1 {
		t.Fatalf("got %d advice, want 1: %+v", len(r.Advice), r)
	}
	adv := r.Advice[0]
	if adv.ID != Pool || adv.Target["destination_address"] != "10.0.0.5" || adv.Target["instance"] != "" || !adv.Since.Equal(since) {
		t.Errorf("advice = %+v", adv)
	}
	if adv.Scope["instance"] != "web-1:10067" || adv.Scope["job"] != "tcpadvisor" {
		t.Errorf("scope = %v, want the instance and job", adv.Scope)
	}
	if len(adv.Evidence) < 2 || adv.Evidence[0].Value != 13155 || adv.Evidence[1].Value != 3 {
		t.Errorf("evidence = %+v, want TIME_WAIT 13155 then ESTABLISHED 3", adv.Evidence)
	}
	if !strings.Contains(adv.Recommendation, "the Redis server at 10.0.0.5:6379") || len(adv.Fixes) != 2 ||
		!strings.Contains(adv.Fixes[0].Text, `redis.NewClient(&redis.Options{Addr: "10.0.0.5:6379"})`) ||
		!strings.Contains(adv.Fixes[1].Text, `r = redis.Redis(host="10.0.0.5", port=6379)`) {
		t.Errorf("pool advice for Redis lacks the go-redis and redis-py fixes: %s %+v", adv.Recommendation, adv.Fixes)
	}
	if adv.Server == nil || adv.Server.Protocol != "redis" || adv.Server.KnownBy != "port" {
		t.Errorf("server = %+v, want Redis known by its port", adv.Server)
	}
	if len(adv.Sysctls) != 0 {
		t.Errorf("pool advice changes sysctls %+v: churn is fixed in the client", adv.Sysctls)
	}
	for _, e := range adv.Evidence {
		if !strings.Contains(e.Query, `instance="web-1:10067"`) || !strings.Contains(e.Query, `job="tcpadvisor"`) {
			t.Errorf("evidence query %s is not restricted to the alert's instance and job", e.Query)
		}
	}
}

func TestPortPressureSysctls(t *testing.T) {
	tests := []struct {
		name     string
		twReuse  string
		reserved string
		want     map[string]string
	}{
		{"reuse loopback-only: enable it, widen the range, reserve the listener inside it", "2",
			"tcpadvisor_ephemeral_ports_reserved_ranges 0\n",
			map[string]string{"net.ipv4.tcp_tw_reuse": "1", "net.ipv4.ip_local_port_range": "16384 65535", "net.ipv4.ip_local_reserved_ports": "27017"}},
		{"reuse already on: only the range; reserved ports merged", "1",
			"tcpadvisor_ephemeral_ports_reserved_ranges 2\n" +
				`tcpadvisor_ephemeral_ports_reserved_range_info{first="8080",last="8080"} 1` + "\n" +
				`tcpadvisor_ephemeral_ports_reserved_range_info{first="9000",last="9010"} 1`,
			map[string]string{"net.ipv4.ip_local_port_range": "16384 65535", "net.ipv4.ip_local_reserved_ports": "8080,9000-9010,27017"}},
		{"a reserved list longer than exported: no reserved-port change, which would drop the rest", "1",
			"tcpadvisor_ephemeral_ports_reserved_ranges 65\n" +
				`tcpadvisor_ephemeral_ports_reserved_range_info{first="8080",last="8080"} 1`,
			map[string]string{"net.ipv4.ip_local_port_range": "16384 65535"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sysctls := strings.NewReplacer("tcpadvisor_ephemeral_ports_reserved_ranges 2\n", "",
				`tcpadvisor_ephemeral_ports_reserved_range_info{first="8080",last="8080"} 1`+"\n", "",
				`tcpadvisor_ephemeral_ports_reserved_range_info{first="9000",last="9010"} 1`+"\n", "").Replace(hostSysctls)
			f := newFixture(t, 1, sysctls+twReuse(tt.twReuse)+tt.reserved)
			f.alerts = []engine.Alert{alert("TcpadvisorEphemeralPortPressure", "port-pressure", "critical", "firing", redis)}
			r := f.report()
			got := map[string]string{}
			for _, s := range r.Advice[0].Sysctls {
				got[s.Name] = s.Value
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("sysctls = %v, want %v", got, tt.want)
			}
			if reuse := strings.Contains(r.Advice[0].Recommendation, "tcp_tw_reuse=1"); reuse != (tt.twReuse != "1") {
				t.Errorf("recommendation mentions tcp_tw_reuse=1: %v, want %v", reuse, tt.twReuse != "1")
			}
		})
	}
}

// TestNeverAdvised checks every advice against the kernel facts: none sets
// tcp_fin_timeout (it does not shorten TIME_WAIT) or turns tcp_tw_recycle on
// (removed in 4.12, broke NAT).
func TestNeverAdvised(t *testing.T) {
	f := newFixture(t, 1, hostSysctls+twReuse("0")+redisFlow)
	for _, id := range IDs() {
		for _, alerts := range [][]string{Alerts(id)} {
			f.alerts = []engine.Alert{alert(alerts[0], string(id), "warning", "firing", redis)}
			r := f.report()
			if len(r.Advice) != 1 {
				t.Fatalf("%s: %d advice", id, len(r.Advice))
			}
			adv := r.Advice[0]
			for _, s := range adv.Sysctls {
				if s.Name == "net.ipv4.tcp_fin_timeout" || (s.Name == "net.ipv4.tcp_tw_recycle" && s.Value != "0") {
					t.Errorf("%s sets %s=%s", id, s.Name, s.Value)
				}
			}
			for _, fix := range adv.Fixes {
				if strings.Contains(fix.Text, "tcp_fin_timeout =") || strings.Contains(fix.Text, "tcp_tw_recycle = 1") {
					t.Errorf("%s fix %q sets a forbidden sysctl", id, fix.Title)
				}
			}
			if adv.Recommendation == "" {
				t.Errorf("%s has no recommendation", id)
			}
		}
	}
}

func TestStrongestAdvicePerTarget(t *testing.T) {
	f := newFixture(t, 1, hostSysctls+twReuse("2"))
	f.alerts = []engine.Alert{
		alert("TcpadvisorEphemeralPortPressure", "port-pressure", "warning", "firing", redis),
		alert("TcpadvisorEphemeralPortPressure", "port-pressure", "critical", "firing", redis),
		alert("TcpadvisorServerSideChurn", "upstream-keepalive", "warning", "pending", map[string]string{"port": "5000"}),
		alert("MyOwnAlert", "my-own-advice", "warning", "firing", nil),
	}
	r := f.report()
	if len(r.Advice) != 2 || r.Advice[0].Severity != "critical" || r.Advice[0].ID != PortPressure || r.Advice[1].ID != "my-own-advice" {
		t.Errorf("advice = %+v, want the critical port-pressure, then the user's own", r.Advice)
	}
	if r.Advice[1].Recommendation != "MyOwnAlert description" {
		t.Errorf("an unknown advice ID should carry its alert's description, got %q", r.Advice[1].Recommendation)
	}
	if len(r.Pending) != 1 || r.Pending[0].Target["port"] != "5000" {
		t.Errorf("pending = %+v, want the server-side churn on port 5000", r.Pending)
	}
}

func TestDropIn(t *testing.T) {
	sysctls := strings.NewReplacer("tcpadvisor_ephemeral_ports_reserved_ranges 2", "tcpadvisor_ephemeral_ports_reserved_ranges 1",
		`tcpadvisor_ephemeral_ports_reserved_range_info{first="9000",last="9010"} 1`, "").Replace(hostSysctls)
	f := newFixture(t, 1, sysctls+twReuse("2"))
	f.alerts = []engine.Alert{
		alert("TcpadvisorEphemeralPortPressure", "port-pressure", "critical", "firing", redis),
		alert("TcpadvisorServicePortInEphemeralRange", "service-port-in-ephemeral-range", "warning", "firing", map[string]string{"port": "45000"}),
		alert("TcpadvisorConnectionPerRequest", "pool", "warning", "firing", redis),
	}
	r := f.report()
	r.GeneratedAt = since
	var b strings.Builder
	if err := WriteDropIn(&b, r); err != nil {
		t.Fatal(err)
	}
	want := `# Written by tcpadvisor advise at 2026-11-27 12:00:00 UTC.
# Each setting is one that a firing advice justifies; the advice (tcpadvisor advise) says why
# and what to fix first. Install: cp THIS /etc/sysctl.d/90-tcpadvisor.conf && sysctl --system

# port-pressure: lets connect() reuse a TIME_WAIT port toward a destination after 1 s (outgoing connections only, needs tcp_timestamps=1): relief for port pressure, not a fix for churn (now 2)
net.ipv4.tcp_tw_reuse = 1

# port-pressure: more ephemeral ports toward every destination; a service listening on a port from 16384 up must be listed in net.ipv4.ip_local_reserved_ports (now 32768 60999)
net.ipv4.ip_local_port_range = 16384 65535

# port-pressure: keeps the listening ports tcpadvisor saw inside the wider range out of connect()'s reach; service-port-in-ephemeral-range: keeps connect() from handing out service port 45000 (now 8080)
net.ipv4.ip_local_reserved_ports = 8080,27017,45000
`
	if b.String() != want {
		t.Errorf("drop-in:\n%s\nwant:\n%s", b.String(), want)
	}
}

// TestAdviceNamesTheOwner: with owner series, the advice names the unit and
// process that open the connections, and keeps the fixes for that kind of
// process; without them, it speaks of the host and keeps every fix.
func TestAdviceNamesTheOwner(t *testing.T) {
	ownerSeries := func(process string) string {
		return `
tcpadvisor_outbound_owner_sockets{source_address="10.0.0.1",destination_address="10.0.0.5",destination_port="6379",owner="unknown",process="unknown"} 500
tcpadvisor_outbound_owner_sockets{source_address="10.0.0.1",destination_address="10.0.0.5",destination_port="6379",owner="redis-client.service",process="` + process + `"} 300
tcpadvisor_outbound_owner_sockets{source_address="10.0.0.1",destination_address="10.0.0.5",destination_port="6379",owner="cache-warmer.service",process="warmer"} 2
`
	}
	upstream := map[string]string{"source_address": "127.0.0.1", "destination_address": "127.0.0.1", "destination_port": "5000"}
	tests := []struct {
		name, id    string
		target      map[string]string
		series      string
		wantText    string
		wantOwner   *Owner
		wantFixLang []string
	}{
		{"python pool", "pool", redis, ownerSeries("python3"),
			"Unit redis-client.service (process python3) on this host opens a new TCP connection to the Redis server at 10.0.0.5:6379",
			&Owner{Owner: owners.Owner{Unit: "redis-client.service", Process: "python3"}, Sockets: 300}, []string{"python"}},
		{"unrecognised process", "pool", redis, ownerSeries("redis-bench"),
			"Unit redis-client.service (process redis-bench) on this host opens",
			&Owner{Owner: owners.Owner{Unit: "redis-client.service", Process: "redis-bench"}, Sockets: 300}, []string{"go", "python"}},
		{"no owners", "pool", redis, "",
			"This host opens a new TCP connection", nil, []string{"go", "python"}},
		{"go pool", "pool", redis, ownerSeries("redis-client"),
			"Unit redis-client.service (process redis-client) on this host opens",
			&Owner{Owner: owners.Owner{Unit: "redis-client.service", Process: "redis-client"}, Runtime: "go", Sockets: 300}, []string{"go"}},
		{"nginx without upstream keepalive", "upstream-keepalive", upstream,
			`tcpadvisor_outbound_owner_sockets{source_address="127.0.0.1",destination_address="127.0.0.1",destination_port="5000",owner="nginx.service",process="nginx"} 900`,
			"Unit nginx.service (process nginx) on this host opens a new HTTP connection to the HTTP server at 127.0.0.1:5000",
			&Owner{Owner: owners.Owner{Unit: "nginx.service", Process: "nginx"}, Sockets: 900}, []string{"nginx"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, 1, hostSysctls+twReuse("2")+tt.series+`
tcpadvisor_owner_runtime_info{process="redis-client",runtime="go"} 1
tcpadvisor_owner_runtime_info{process="python3",runtime="python"} 1`)
			f.alerts = []engine.Alert{alert("A", tt.id, "warning", "firing", tt.target)}
			adv := f.report().Advice[0]
			if !strings.Contains(adv.Recommendation, tt.wantText) {
				t.Errorf("recommendation %q lacks %q", adv.Recommendation, tt.wantText)
			}
			if tt.wantOwner != nil && tt.wantOwner.Process == "python3" {
				tt.wantOwner.Runtime = "python"
			}
			if (adv.Owner == nil) != (tt.wantOwner == nil) || adv.Owner != nil && *adv.Owner != *tt.wantOwner {
				t.Errorf("owner %+v, want %+v", adv.Owner, tt.wantOwner)
			}
			var languages []string
			for _, f := range adv.Fixes {
				languages = append(languages, f.Language)
			}
			if !slices.Equal(languages, tt.wantFixLang) {
				t.Errorf("fixes in %v, want %v", languages, tt.wantFixLang)
			}
			if tt.wantOwner != nil && !slices.ContainsFunc(adv.Evidence, func(e Evidence) bool {
				return e.Name == "sockets held by "+tt.wantOwner.Unit && e.Value == tt.wantOwner.Sockets
			}) {
				t.Errorf("evidence lacks the owner's sockets: %+v", adv.Evidence)
			}
		})
	}
}

// TestWarmingUp: until the rules' longest window has been observed, the
// report says so and until when; then it does not.
func TestWarmingUp(t *testing.T) {
	f := newFixture(t, 0.01, hostSysctls+twReuse("2"))
	r := f.report()
	longest := f.LongestWindow()
	if !r.WarmingUp || r.WarmUntil == nil || !r.WarmUntil.Equal(since.Add(longest)) {
		t.Fatalf("report after one cycle: warming up %v until %v, want until %v", r.WarmingUp, r.WarmUntil, since.Add(longest))
	}
	f.run(t, longest)
	if r := f.report(); r.WarmingUp || r.WarmUntil != nil {
		t.Errorf("report after %v: warming up %v until %v", longest, r.WarmingUp, r.WarmUntil)
	}
}

// TestOwnerWithProcessFirst: an owner whose process the exporter found is
// named before a busier one whose process it did not (short-lived sockets
// are gone before their process is looked up).
func TestOwnerWithProcessFirst(t *testing.T) {
	f := newFixture(t, 1, hostSysctls+twReuse("2")+redisFlow+`
tcpadvisor_outbound_owner_sockets{source_address="10.0.0.1",destination_address="10.0.0.5",destination_port="6379",owner="app.scope",process="unknown"} 900
tcpadvisor_outbound_owner_sockets{source_address="10.0.0.1",destination_address="10.0.0.5",destination_port="6379",owner="app.scope",process="python3"} 3
`)
	f.alerts = []engine.Alert{alert("TcpadvisorConnectionPerRequest", "pool", "warning", "firing", redis)}
	adv := f.report().Advice[0]
	if adv.Client == nil || adv.Client.Process != "python3" {
		t.Errorf("client %+v, want python3", adv.Client)
	}
}
