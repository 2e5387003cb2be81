package advisor

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tcpadvisor/tcpadvisor/advisor/engine"
)

// arm3 is the seed's third arm as the exporter shows it: nginx proxies to a
// gunicorn app on 127.0.0.1:18002 without upstream keepalive. gunicorn
// closes first, so most TIME_WAIT is on its service port; nginx's side
// holds the rest, toward the app. Both ends are on this host.
const arm3 = `
tcpadvisor_outbound_sockets{source_address="127.0.0.1",destination_address="127.0.0.1",destination_port="18002",state="time_wait"} 2600
tcpadvisor_outbound_sockets{source_address="127.0.0.1",destination_address="127.0.0.1",destination_port="18002",state="established"} 2
tcpadvisor_outbound_ephemeral_sockets{source_address="127.0.0.1",destination_address="127.0.0.1",destination_port="18002"} 2602
tcpadvisor_outbound_port_pressure_ratio{source_address="127.0.0.1",destination_address="127.0.0.1",destination_port="18002"} 0.092
tcpadvisor_outbound_owner_sockets{source_address="127.0.0.1",destination_address="127.0.0.1",destination_port="18002",owner="nginx.service",process="nginx"} 2
tcpadvisor_outbound_owner_sockets{source_address="127.0.0.1",destination_address="127.0.0.1",destination_port="18002",owner="unknown",process="unknown"} 2600
tcpadvisor_inbound_sockets{port="18002",state="time_wait"} 11000
tcpadvisor_inbound_sockets{port="18002",state="established"} 2
tcpadvisor_inbound_peer_addresses{port="18002"} 1
tcpadvisor_inbound_peer_sockets{port="18002",peer_address="127.0.0.1"} 11002
tcpadvisor_inbound_owner_sockets{port="18002",owner="app.service",process="gunicorn"} 11002
tcpadvisor_listen_owner_info{port="18002",owner="app.service",process="gunicorn"} 1
tcpadvisor_owner_runtime_info{process="gunicorn",runtime="python"} 1
`

// TestOneFlowOneAdvice: the arm-3 flow, seen from nginx (a connection per
// request toward 127.0.0.1:18002, which the rules' port list does not call
// HTTP) and from gunicorn (TIME_WAIT on its service port), fires both rules
// and gives exactly one advice: upstream-keepalive, naming nginx and
// gunicorn, with the nginx fix.
func TestOneFlowOneAdvice(t *testing.T) {
	f := newFixture(t, 0.01, hostSysctls+twReuse("2")+arm3)
	f.run(t, 10*time.Second)
	var names []string
	for _, a := range f.Engine.Alerts() {
		names = append(names, a.Name+"/"+a.Labels["advice"]+"/"+a.State)
	}
	slices.Sort(names)
	if want := []string{"TcpadvisorConnectionPerRequest/pool/firing", "TcpadvisorServerSideChurn/upstream-keepalive/firing"}; !slices.Equal(names, want) {
		t.Fatalf("alerts %v, want %v: the fixture must fire both views", names, want)
	}
	r := f.report()
	if len(r.Advice) != 1 || len(r.Pending) != 0 {
		t.Fatalf("advice %+v, pending %+v: want exactly one advice", r.Advice, r.Pending)
	}
	adv := r.Advice[0]
	if adv.ID != UpstreamKeepalive {
		t.Errorf("advice %s, want upstream-keepalive", adv.ID)
	}
	if adv.Client == nil || adv.Client.Process != "nginx" {
		t.Errorf("client %+v, want nginx", adv.Client)
	}
	if adv.Server == nil || adv.Server.Name != "gunicorn" || adv.Server.Protocol != "http" || adv.Server.KnownBy != "listener" {
		t.Errorf("server %+v, want gunicorn, HTTP, known by its listener", adv.Server)
	}
	if !strings.Contains(adv.Recommendation, "nginx") || !strings.Contains(adv.Recommendation, "gunicorn at 127.0.0.1:18002") {
		t.Errorf("recommendation %q names neither nginx nor gunicorn at 127.0.0.1:18002", adv.Recommendation)
	}
	if len(adv.Fixes) == 0 || adv.Fixes[0].Language != "nginx" || !strings.Contains(adv.Fixes[0].Text, "server 127.0.0.1:18002;") {
		t.Errorf("fixes %+v, want the nginx upstream keepalive toward 127.0.0.1:18002 first", adv.Fixes)
	}
	if slices.ContainsFunc(adv.Fixes, func(f Fix) bool { return strings.Contains(f.Text, "http.Client") || strings.Contains(f.Text, "redis") }) {
		t.Errorf("fixes %+v hold a client's code, for nginx", adv.Fixes)
	}
	if !strings.HasSuffix(adv.RunbookURL, "#upstream-keepalive") {
		t.Errorf("runbook %s", adv.RunbookURL)
	}
	if want := []string{"TcpadvisorConnectionPerRequest", "TcpadvisorServerSideChurn"}; !slices.Equal(slices.Sorted(slices.Values(adv.Alerts)), want) {
		t.Errorf("alerts %v, want both views %v", adv.Alerts, want)
	}
	if !slices.ContainsFunc(adv.Evidence, func(e Evidence) bool { return e.Name == "TIME_WAIT sockets on service port 18002" && e.Value == 11000 }) ||
		!slices.ContainsFunc(adv.Evidence, func(e Evidence) bool { return e.Name == "TIME_WAIT sockets toward 127.0.0.1:18002" && e.Value == 2600 }) {
		t.Errorf("evidence %+v lacks one end's TIME_WAIT", adv.Evidence)
	}
}

// TestServiceKindFromListener: the protocol of a local destination comes
// from the owner of its listener, whatever its port; then from the port;
// then the advice says it does not know and shows both fixes.
func TestServiceKindFromListener(t *testing.T) {
	flow := func(port string) string {
		return strings.ReplaceAll(`
tcpadvisor_outbound_sockets{source_address="127.0.0.1",destination_address="127.0.0.1",destination_port="PORT",state="time_wait"} 9000
tcpadvisor_outbound_sockets{source_address="127.0.0.1",destination_address="127.0.0.1",destination_port="PORT",state="established"} 1
tcpadvisor_outbound_owner_sockets{source_address="127.0.0.1",destination_address="127.0.0.1",destination_port="PORT",owner="app.service",process="gunicorn"} 3
tcpadvisor_owner_runtime_info{process="gunicorn",runtime="python"} 1
`, "PORT", port)
	}
	tests := []struct {
		name, series      string
		wantID            ID
		wantText, wantFix string
		wantServer        Service
	}{
		{"redis on 16379", flow("16379") + `tcpadvisor_listen_owner_info{port="16379",owner="redis-server.service",process="redis-server"} 1`,
			Pool, "redis-server at 127.0.0.1:16379", `r = redis.Redis(host="127.0.0.1", port=16379)`,
			Service{Address: "127.0.0.1", Port: "16379", Name: "redis-server", Protocol: "redis", KnownBy: "listener"}},
		{"redis on 30079, owner from its inbound sockets", flow("30079") + `tcpadvisor_inbound_owner_sockets{port="30079",owner="redis.service",process="redis-server"} 4`,
			Pool, "redis-server at 127.0.0.1:30079", `port=30079`,
			Service{Address: "127.0.0.1", Port: "30079", Name: "redis-server", Protocol: "redis", KnownBy: "listener"}},
		{"postgres on 15432", flow("15432") + `tcpadvisor_listen_owner_info{port="15432",owner="postgresql.service",process="postgres"} 1`,
			Pool, "postgres at 127.0.0.1:15432", `create_engine(url, pool_size=20`,
			Service{Address: "127.0.0.1", Port: "15432", Name: "postgres", Protocol: "postgresql", KnownBy: "listener"}},
		{"no listener here: the well-known port", flow("6379"),
			Pool, "the Redis server at 127.0.0.1:6379", `port=6379`,
			Service{Address: "127.0.0.1", Port: "6379", Name: "Redis", Protocol: "redis", KnownBy: "port"}},
		{"a Go program on 6379: the port says Redis", flow("6379") + `tcpadvisor_listen_owner_info{port="6379",owner="x.service",process="cache-proxy"} 1
tcpadvisor_owner_runtime_info{process="cache-proxy",runtime="go"} 1`,
			Pool, "cache-proxy at 127.0.0.1:6379", `port=6379`,
			Service{Address: "127.0.0.1", Port: "6379", Name: "cache-proxy", Protocol: "redis", KnownBy: "port"}},
		{"a Go program on 18002: its runtime says HTTP", flow("18002") + `tcpadvisor_listen_owner_info{port="18002",owner="x.service",process="api"} 1
tcpadvisor_owner_runtime_info{process="api",runtime="go"} 1`,
			UpstreamKeepalive, "api at 127.0.0.1:18002", `requests.Session()`,
			Service{Address: "127.0.0.1", Port: "18002", Name: "api", Protocol: "http", KnownBy: "runtime"}},
		{"a listener whose process tells nothing, on no well-known port", flow("7000") + `tcpadvisor_listen_owner_info{port="7000",owner="x.service",process="mystery"} 1`,
			Pool, "mystery at 127.0.0.1:7000", "tcpadvisor cannot tell what mystery at 127.0.0.1:7000 speaks",
			Service{Address: "127.0.0.1", Port: "7000", Name: "mystery"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, 1, hostSysctls+twReuse("2")+tt.series)
			f.alerts = []engine.Alert{alert("TcpadvisorConnectionPerRequest", "pool", "warning", "firing",
				map[string]string{"source_address": "127.0.0.1", "destination_address": "127.0.0.1", "destination_port": tt.wantServer.Port})}
			r := f.report()
			if len(r.Advice) != 1 {
				t.Fatalf("%d advice", len(r.Advice))
			}
			adv := r.Advice[0]
			if adv.ID != tt.wantID || !strings.Contains(adv.Recommendation, tt.wantText) {
				t.Errorf("advice %s: %q; want %s naming %q", adv.ID, adv.Recommendation, tt.wantID, tt.wantText)
			}
			if adv.Server == nil {
				t.Fatal("no server")
			}
			got := *adv.Server
			got.Owner = nil
			if got != tt.wantServer {
				t.Errorf("server %+v, want %+v", got, tt.wantServer)
			}
			text := ""
			for _, f := range adv.Fixes {
				text += f.Text + "\n"
			}
			if !strings.Contains(text, tt.wantFix) {
				t.Errorf("fixes lack %q:\n%s", tt.wantFix, text)
			}
			if tt.wantServer.Protocol == "" && !(strings.Contains(text, "requests.Session") || strings.Contains(text, "keepalive")) {
				t.Errorf("an unknown protocol's fixes lack the keepalive fix:\n%s", text)
			}
		})
	}
}

// TestOneFlowUnknownServer: the arm-3 flow without owner series (no
// attribution): the service port 18002 is no well-known one, so the
// protocol is unknown; the server closing every connection first still
// makes it one advice, upstream-keepalive, whose fixes say the protocol is
// not known and show both.
func TestOneFlowUnknownServer(t *testing.T) {
	var series []string
	for _, l := range strings.Split(arm3, "\n") {
		if !strings.Contains(l, "owner") {
			series = append(series, l)
		}
	}
	f := newFixture(t, 0.01, hostSysctls+twReuse("2")+strings.Join(series, "\n"))
	f.run(t, 10*time.Second)
	r := f.report()
	if len(r.Advice) != 1 || r.Advice[0].ID != UpstreamKeepalive {
		t.Fatalf("advice %+v, want one upstream-keepalive", r.Advice)
	}
	adv := r.Advice[0]
	if adv.Server == nil || adv.Server.Protocol != "" || len(adv.Fixes) == 0 || adv.Fixes[0].Title != "The protocol is not known" {
		t.Errorf("server %+v, fixes %+v: want an unknown protocol, said so first", adv.Server, adv.Fixes)
	}
}
