package advisor

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tcpadvisor/tcpadvisor/advisor/engine"
)

// fakeSource answers queries from a table keyed by the exact expression.
type fakeSource struct {
	alerts  []engine.Alert
	answers map[string][]engine.Sample
	queries []string
}

func (f *fakeSource) Alerts() []engine.Alert { return f.alerts }

func (f *fakeSource) Query(_ context.Context, expr string) ([]engine.Sample, error) {
	f.queries = append(f.queries, expr)
	if s, ok := f.answers[expr]; ok {
		return s, nil
	}
	return nil, nil
}

func one(v float64) []engine.Sample { return []engine.Sample{{Labels: map[string]string{}, Value: v}} }

var since = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

const scope = `instance="web-1:10067",job="tcpadvisor"`

// hostSysctls answers the facts queries of a default Linux host.
func hostSysctls(twReuse float64) map[string][]engine.Sample {
	return map[string][]engine.Sample{
		"tcpadvisor_sysctl_net_ipv4_tcp_tw_reuse{" + scope + "}":            one(twReuse),
		"tcpadvisor_sysctl_net_ipv4_tcp_timestamps{" + scope + "}":          one(1),
		"tcpadvisor_sysctl_net_ipv4_ip_local_port_range_min{" + scope + "}": one(32768),
		"tcpadvisor_sysctl_net_ipv4_ip_local_port_range_max{" + scope + "}": one(60999),
		"tcpadvisor_sysctl_net_ipv4_tcp_max_tw_buckets{" + scope + "}":      one(131072),
		"tcpadvisor_sysctl_net_core_somaxconn{" + scope + "}":               one(4096),
		"tcpadvisor_sysctl_net_ipv4_tcp_max_syn_backlog{" + scope + "}":     one(1024),
		"tcpadvisor_listen_queue_limit{" + scope + "}": {
			{Labels: map[string]string{"port": "22"}, Value: 128},
			{Labels: map[string]string{"port": "27017"}, Value: 128},
		},
	}
}

func alert(name, id, severity, state string, target map[string]string) engine.Alert {
	labels := map[string]string{"alertname": name, "advice": id, "severity": severity, "instance": "web-1:10067", "job": "tcpadvisor"}
	for k, v := range target {
		labels[k] = v
	}
	return engine.Alert{Name: name, Labels: labels, State: state, ActiveAt: since, Value: 1,
		Annotations: map[string]string{"summary": name + " summary", "description": name + " description", "runbook_url": "https://example.com/docs/advice.md#" + id}}
}

var redis = map[string]string{"source_address": "10.0.0.1", "destination_address": "10.0.0.5", "destination_port": "6379"}

func newAdvisor(src *fakeSource, reserved string) *Advisor {
	return New(src, func(name string) (string, error) {
		if name != "net.ipv4.ip_local_reserved_ports" {
			return "", fmt.Errorf("unexpected sysctl %s", name)
		}
		return reserved + "\n", nil
	}, slog.New(slog.DiscardHandler))
}

func TestPoolAdvice(t *testing.T) {
	src := &fakeSource{alerts: []engine.Alert{alert("TcpadvisorConnectionPerRequest", "pool", "warning", "firing", redis)}, answers: hostSysctls(2)}
	src.answers[`tcpadvisor_outbound_sockets{`+scope+`,source_address="10.0.0.1",destination_address="10.0.0.5",destination_port="6379",state="time_wait"}`] = one(13155)
	src.answers[`tcpadvisor_outbound_sockets{`+scope+`,source_address="10.0.0.1",destination_address="10.0.0.5",destination_port="6379",state="established"}`] = one(3)
	r := newAdvisor(src, "").Report(context.Background(), since.Add(time.Hour))
	if len(r.Advice) != 1 {
		t.Fatalf("got %d advice, want 1: %+v", len(r.Advice), r)
	}
	adv := r.Advice[0]
	if adv.ID != Pool || adv.Target["destination_address"] != "10.0.0.5" || adv.Target["instance"] != "" || !adv.Since.Equal(since) {
		t.Errorf("advice = %+v", adv)
	}
	if len(adv.Evidence) < 2 || adv.Evidence[0].Value != 13155 || adv.Evidence[1].Value != 3 {
		t.Errorf("evidence = %+v, want TIME_WAIT 13155 then ESTABLISHED 3", adv.Evidence)
	}
	if !strings.Contains(adv.Recommendation, "Redis") || len(adv.Fixes) != 2 ||
		!strings.Contains(adv.Fixes[0].Text, `redis.NewClient(&redis.Options{Addr: "10.0.0.5:6379"})`) ||
		!strings.Contains(adv.Fixes[1].Text, `r = redis.Redis(host="10.0.0.5", port=6379)`) {
		t.Errorf("pool advice for Redis lacks the go-redis and redis-py fixes: %+v", adv.Fixes)
	}
	if len(adv.Sysctls) != 0 {
		t.Errorf("pool advice changes sysctls %+v: churn is fixed in the client", adv.Sysctls)
	}
}

func TestPortPressureSysctls(t *testing.T) {
	tests := []struct {
		name     string
		twReuse  float64
		reserved string
		want     map[string]string
	}{
		{"reuse loopback-only: enable it, widen the range, reserve the listener inside it", 2, "",
			map[string]string{"net.ipv4.tcp_tw_reuse": "1", "net.ipv4.ip_local_port_range": "16384 65535", "net.ipv4.ip_local_reserved_ports": "27017"}},
		{"reuse already on: only the range; reserved ports merged", 1, "8080,9000-9010",
			map[string]string{"net.ipv4.ip_local_port_range": "16384 65535", "net.ipv4.ip_local_reserved_ports": "8080,9000-9010,27017"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &fakeSource{alerts: []engine.Alert{alert("TcpadvisorEphemeralPortPressure", "port-pressure", "critical", "firing", redis)}, answers: hostSysctls(tt.twReuse)}
			r := newAdvisor(src, tt.reserved).Report(context.Background(), since)
			got := map[string]string{}
			for _, s := range r.Advice[0].Sysctls {
				got[s.Name] = s.Value
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("sysctls = %v, want %v", got, tt.want)
			}
			if reuse := strings.Contains(r.Advice[0].Recommendation, "tcp_tw_reuse=1"); reuse != (tt.twReuse != 1) {
				t.Errorf("recommendation mentions tcp_tw_reuse=1: %v, want %v", reuse, tt.twReuse != 1)
			}
		})
	}
}

// TestNeverAdvised checks every advice against the kernel facts: none sets
// tcp_fin_timeout (it does not shorten TIME_WAIT) or turns tcp_tw_recycle on
// (removed in 4.12, broke NAT).
func TestNeverAdvised(t *testing.T) {
	for _, id := range IDs {
		src := &fakeSource{alerts: []engine.Alert{alert("A", string(id), "warning", "firing", redis)}, answers: hostSysctls(0)}
		for k, v := range map[string]float64{
			"tcpadvisor_sysctl_net_ipv4_tcp_max_orphans{" + scope + "}": 4096,
			"tcpadvisor_conntrack_entries_limit{" + scope + "}":         262144,
		} {
			src.answers[k] = one(v)
		}
		r := newAdvisor(src, "").Report(context.Background(), since)
		adv := r.Advice[0]
		for _, s := range adv.Sysctls {
			if s.Name == "net.ipv4.tcp_fin_timeout" || (s.Name == "net.ipv4.tcp_tw_recycle" && s.Value != "0") {
				t.Errorf("%s sets %s=%s", id, s.Name, s.Value)
			}
		}
		for _, f := range adv.Fixes {
			if strings.Contains(f.Text, "tcp_fin_timeout =") || strings.Contains(f.Text, "tcp_tw_recycle = 1") {
				t.Errorf("%s fix %q sets a forbidden sysctl", id, f.Title)
			}
		}
		if adv.Recommendation == "" {
			t.Errorf("%s has no recommendation", id)
		}
	}
}

func TestStrongestAdvicePerTarget(t *testing.T) {
	src := &fakeSource{alerts: []engine.Alert{
		alert("TcpadvisorEphemeralPortPressure", "port-pressure", "warning", "firing", redis),
		alert("TcpadvisorEphemeralPortPressure", "port-pressure", "critical", "firing", redis),
		alert("TcpadvisorServerSideChurn", "upstream-keepalive", "warning", "pending", map[string]string{"port": "5000"}),
		alert("MyOwnAlert", "my-own-advice", "warning", "firing", nil),
	}, answers: hostSysctls(2)}
	r := newAdvisor(src, "").Report(context.Background(), since)
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

func TestScoped(t *testing.T) {
	tests := map[string]string{
		`tcpadvisor_sockstat_tcp_tw`:                                         `tcpadvisor_sockstat_tcp_tw{` + scope + `}`,
		`tcpadvisor_inbound_sockets{port="80",state="close_wait"}`:           `tcpadvisor_inbound_sockets{` + scope + `,port="80",state="close_wait"}`,
		`rate(tcpadvisor_tcpext_tw_total[5m])`:                               `rate(tcpadvisor_tcpext_tw_total{` + scope + `}[5m])`,
		`tcpadvisor_listen_queue_length / tcpadvisor_listen_queue_limit > 0`: `tcpadvisor_listen_queue_length{` + scope + `} / tcpadvisor_listen_queue_limit{` + scope + `} > 0`,
	}
	for in, want := range tests {
		if got := scoped(in, scope); got != want {
			t.Errorf("scoped(%s) = %s, want %s", in, got, want)
		}
	}
	if got := scoped("tcpadvisor_x", ""); got != "tcpadvisor_x" {
		t.Errorf("scoped without scope = %s", got)
	}
}

func TestDropIn(t *testing.T) {
	src := &fakeSource{alerts: []engine.Alert{
		alert("TcpadvisorEphemeralPortPressure", "port-pressure", "critical", "firing", redis),
		alert("TcpadvisorServicePortInEphemeralRange", "service-port-in-ephemeral-range", "warning", "firing", map[string]string{"port": "45000"}),
		alert("TcpadvisorConnectionPerRequest", "pool", "warning", "firing", redis),
	}, answers: hostSysctls(2)}
	r := newAdvisor(src, "8080").Report(context.Background(), since)
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
	ownerSamples := func(process string) []engine.Sample {
		return []engine.Sample{
			{Labels: map[string]string{"owner": "unknown", "process": "unknown"}, Value: 500},
			{Labels: map[string]string{"owner": "redis-client.service", "process": process}, Value: 300},
			{Labels: map[string]string{"owner": "cache-warmer.service", "process": "warmer"}, Value: 2},
		}
	}
	redisOwners := `tcpadvisor_outbound_owner_sockets{` + scope + `,source_address="10.0.0.1",destination_address="10.0.0.5",destination_port="6379"}`
	upstream := map[string]string{"source_address": "127.0.0.1", "destination_address": "127.0.0.1", "destination_port": "5000"}
	upstreamOwners := `tcpadvisor_outbound_owner_sockets{` + scope + `,source_address="127.0.0.1",destination_address="127.0.0.1",destination_port="5000"}`
	tests := []struct {
		name, id    string
		target      map[string]string
		query       string
		owners      []engine.Sample
		wantText    string
		wantOwner   *Owner
		wantFixLang []string
	}{
		{"python pool", "pool", redis, redisOwners, ownerSamples("python3"),
			"Unit redis-client.service (process python3) on this host opens a new TCP connection to 10.0.0.5:6379",
			&Owner{Unit: "redis-client.service", Process: "python3", Sockets: 300}, []string{"python"}},
		{"unrecognised process", "pool", redis, redisOwners, ownerSamples("redis-bench"),
			"Unit redis-client.service (process redis-bench) on this host opens",
			&Owner{Unit: "redis-client.service", Process: "redis-bench", Sockets: 300}, []string{"go", "python"}},
		{"no owners", "pool", redis, redisOwners, nil,
			"This host opens a new TCP connection", nil, []string{"go", "python"}},
		{"go pool", "pool", redis, redisOwners, ownerSamples("redis-client"),
			"Unit redis-client.service (process redis-client) on this host opens",
			&Owner{Unit: "redis-client.service", Process: "redis-client", Runtime: "go", Sockets: 300}, []string{"go"}},
		{"nginx without upstream keepalive", "upstream-keepalive", upstream, upstreamOwners,
			[]engine.Sample{{Labels: map[string]string{"owner": "nginx.service", "process": "nginx"}, Value: 900}},
			"Unit nginx.service (process nginx) on this host opens a new HTTP connection to 127.0.0.1:5000",
			&Owner{Unit: "nginx.service", Process: "nginx", Sockets: 900}, []string{"nginx"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &fakeSource{alerts: []engine.Alert{alert("A", tt.id, "warning", "firing", tt.target)}, answers: hostSysctls(2)}
			src.answers[tt.query] = tt.owners
			src.answers[`tcpadvisor_owner_runtime_info{`+scope+`,process="redis-client"}`] = []engine.Sample{
				{Labels: map[string]string{"process": "redis-client", "runtime": "go"}, Value: 1}}
			adv := newAdvisor(src, "").Report(context.Background(), since.Add(time.Hour)).Advice[0]
			if !strings.Contains(adv.Recommendation, tt.wantText) {
				t.Errorf("recommendation %q lacks %q", adv.Recommendation, tt.wantText)
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
			if tt.owners != nil && !slices.ContainsFunc(adv.Evidence, func(e Evidence) bool {
				return e.Name == "sockets held by "+tt.wantOwner.Unit && e.Value == tt.wantOwner.Sockets
			}) {
				t.Errorf("evidence lacks the owner's sockets: %+v", adv.Evidence)
			}
		})
	}
}
