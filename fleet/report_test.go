package fleet

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/config"
	"github.com/tcpadvisor/tcpadvisor/advisor"
	"github.com/tcpadvisor/tcpadvisor/advisor/engine"
	"github.com/tcpadvisor/tcpadvisor/exporter/owners"
)

// sample returns a series of labels given as name, value pairs.
func sample(value float64, pairs ...string) engine.Sample {
	labels := map[string]string{"job": "tcpadvisor"}
	for i := 0; i+1 < len(pairs); i += 2 {
		labels[pairs[i]] = pairs[i+1]
	}
	return engine.Sample{Labels: labels, Value: value}
}

// clientAdvice is pool advice of instance toward 10.0.0.5:6379 from
// source.
func clientAdvice(instance, source, destination string) Advice {
	return Advice{
		Advice: advisor.Advice{
			ID: advisor.Pool, Severity: "warning", State: "firing",
			Target: map[string]string{"source_address": source, "destination_address": destination, "destination_port": "6379"},
			Owner:  &advisor.Owner{Owner: owners.Owner{Unit: "app.service", Process: "gunicorn"}, Sockets: 10},
		},
		Instance: instance, Job: "tcpadvisor",
	}
}

func TestFindServers(t *testing.T) {
	listening := []engine.Sample{
		sample(1, "instance", "redis-1", "address", "10.0.0.5", "port", "6379"),
		// 172.17.0.1, Docker's bridge, is on both hosts.
		sample(1, "instance", "redis-1", "address", "172.17.0.1", "port", "6379"),
		sample(1, "instance", "redis-2", "address", "172.17.0.1", "port", "6379"),
		sample(1, "instance", "app-1", "address", "10.0.0.1", "port", "6379"),
	}
	peers := []engine.Sample{
		sample(3, "instance", "redis-2", "peer_address", "10.0.0.1", "port", "6379"),
		sample(2, "instance", "redis-3", "peer_address", "10.0.0.7", "port", "6379"),
		sample(2, "instance", "redis-3", "peer_address", "10.0.0.8", "port", "6379"),
		sample(2, "instance", "redis-4", "peer_address", "10.0.0.8", "port", "6379"),
	}
	cases := []struct {
		name   string
		advice Advice
		want   string // the server's instance, or "" for none
		asks   bool   // whether the peers are needed
	}{
		{"by address", clientAdvice("app-1", "10.0.0.1", "10.0.0.5"), "redis-1", false},
		{"an address of two hosts: the one that saw the client", clientAdvice("app-1", "10.0.0.1", "172.17.0.1"), "redis-2", true},
		{"the client's own address: no join", clientAdvice("app-1", "10.0.0.1", "10.0.0.1"), "", false},
		{"a service IP no host has: the host that saw the client", clientAdvice("app-7", "10.0.0.7", "10.96.0.10"), "redis-3", true},
		{"two hosts saw the client: no join", clientAdvice("app-8", "10.0.0.8", "10.96.0.10"), "", true},
		{"nobody: stands alone", clientAdvice("app-9", "10.0.0.9", "10.96.0.10"), "", true},
		{"loopback: never", clientAdvice("app-1", "127.0.0.1", "127.0.0.1"), "", false},
	}
	for _, c := range cases {
		asked := false
		servers, err := findServers([]Advice{c.advice}, listening, func() ([]engine.Sample, error) { asked = true; return peers, nil })
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		if s, ok := servers[0]; ok {
			got = s.Labels["instance"]
		}
		if got != c.want || asked != c.asks {
			t.Errorf("%s: server %q (peers asked %v), want %q (%v)", c.name, got, asked, c.want, c.asks)
		}
	}
	failing := func() ([]engine.Sample, error) { return nil, errors.New("no answer") }
	if _, err := findServers([]Advice{clientAdvice("app-9", "10.0.0.9", "10.96.0.10")}, nil, failing); err == nil {
		t.Error("the peers' query failed: no error")
	}
}

func TestFoldJoinsBothViews(t *testing.T) {
	client := clientAdvice("app-1", "10.0.0.1", "10.0.0.5")
	server := Advice{
		Advice: advisor.Advice{
			ID: advisor.UpstreamKeepalive, Severity: "critical", State: "firing",
			Target:   map[string]string{"port": "6379"},
			Evidence: []advisor.Evidence{{Name: "TIME_WAIT sockets on service port 6379", Value: 900}},
		},
		Instance: "redis-1:10067", Job: "tcpadvisor",
	}
	elsewhere := Advice{Advice: advisor.Advice{ID: advisor.UpstreamKeepalive, Target: map[string]string{"port": "6379"}}, Instance: "redis-2:10067", Job: "tcpadvisor"}
	owners := []engine.Sample{
		sample(1, "instance", "redis-1:10067", "port", "6379", "owner", "unknown", "process", "unknown"),
		sample(5, "instance", "redis-1:10067", "port", "6379", "owner", "redis.service", "process", "redis-server"),
		sample(9, "instance", "redis-2:10067", "port", "6379", "owner", "other.service", "process", "other"),
	}
	got := fold([]Advice{client, server, elsewhere}, map[int]engine.Sample{0: sample(1, "instance", "redis-1:10067")}, owners)
	if len(got) != 2 || got[1].Instance != "redis-2:10067" {
		t.Fatalf("fold kept %d advice, want the joined one and redis-2's: %+v", len(got), got)
	}
	a := got[0]
	if a.Server == nil || a.Server.Owner == nil || a.Server.Owner.Process != "redis-server" || a.Server.Advice == nil || a.Server.Advice.ID != advisor.UpstreamKeepalive {
		t.Fatalf("server end %+v, want redis-1 with redis-server and its own advice folded in", a.Server)
	}
	if want := "app-1 (gunicorn) opens a connection per request to redis-1:6379 (redis-server)"; a.Summary != want {
		t.Errorf("summary %q, want %q", a.Summary, want)
	}
	if a.Severity != "critical" || len(a.Evidence) != 1 || a.Evidence[0].Name != "redis-1: TIME_WAIT sockets on service port 6379" {
		t.Errorf("severity %s, evidence %+v: want the stronger severity and the server's evidence named by its host", a.Severity, a.Evidence)
	}
}

func TestRankAndText(t *testing.T) {
	list := []Advice{
		{Advice: advisor.Advice{ID: advisor.Pool, Severity: "warning", State: "firing", Target: map[string]string{"source_address": "10.0.0.2", "destination_address": "10.0.0.5", "destination_port": "6379"}}, Instance: "app-2", Pressure: 0.1},
		{Advice: advisor.Advice{ID: advisor.TwRecycleSet, Severity: "warning", State: "firing", Target: map[string]string{}}, Instance: "db-1"},
		{Advice: advisor.Advice{ID: advisor.Pool, Severity: "warning", State: "firing", Target: map[string]string{"source_address": "10.0.0.1", "destination_address": "10.0.0.5", "destination_port": "6379"}, Recommendation: "Pool it."}, Instance: "app-1", Pressure: 0.6},
		{Advice: advisor.Advice{ID: advisor.PortPressure, Severity: "critical", State: "firing", Target: map[string]string{"source_address": "10.0.0.3", "destination_address": "10.0.0.5", "destination_port": "6379"}}, Instance: "app-3", Pressure: 0.9},
	}
	rank(list)
	var order []string
	for _, a := range list {
		order = append(order, a.Instance)
	}
	if got, want := strings.Join(order, " "), "app-3 app-1 app-2 db-1"; got != want {
		t.Errorf("ranked %s, want %s: severity, then pressure", got, want)
	}
	var b strings.Builder
	if err := Text(&b, Report{Prometheus: "http://p:9090", Advice: list, Cost: Cost{Queries: 7, Series: 42}}); err != nil {
		t.Fatal(err)
	}
	want := `tcpadvisor: 4 advice on 4 host(s), from http://p:9090.

port-pressure: 1 host(s)
  [critical] app-3: 10.0.0.3 -> 10.0.0.5:6379, pressure 90.0%

pool: 2 host(s)
  [warning] app-1: 10.0.0.1 -> 10.0.0.5:6379, pressure 60.0%
  [warning] app-2: 10.0.0.2 -> 10.0.0.5:6379, pressure 10.0%
  What to do:
    Pool it.

tw-recycle-set: 1 host(s)
  [warning] db-1: this host

Read 42 series in 7 queries.
`
	if b.String() != want {
		t.Errorf("text:\n%s\nwant:\n%s", b.String(), want)
	}
}

// TestTextQuotesControlCharacters: an instance or process name holding a
// terminal escape shows it quoted, never raw.
func TestTextQuotesControlCharacters(t *testing.T) {
	list := []Advice{{Advice: advisor.Advice{ID: advisor.Pool, Severity: "warning", State: "firing",
		Target: map[string]string{"source_address": "10.0.0.1", "destination_address": "10.0.0.5\x1b[2J", "destination_port": "6379"},
		Owner:  &advisor.Owner{Owner: owners.Owner{Unit: "app.service", Process: "app\x1b]0;pwned\a"}}}, Instance: "app-1\r"}}
	var b strings.Builder
	if err := Text(&b, Report{Prometheus: "http://p:9090", Advice: list}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{`app-1\r`, `app\x1b]0;pwned\a`, `10.0.0.5\x1b[2J:6379`} {
		if !strings.Contains(out, want) {
			t.Errorf("the text lacks %s:\n%s", want, out)
		}
	}
	if strings.ContainsAny(out, "\x1b\a\r") {
		t.Errorf("a control character reached the text:\n%q", out)
	}
}

// TestHTMLRefresh: ?refresh=N makes the fleet page reload itself every N
// seconds, as the daemon's /advice does, and a bad value is a 400 naming
// it, before the server is asked anything.
func TestHTMLRefresh(t *testing.T) {
	report := Report{Prometheus: "http://p:9090"}
	for refresh, want := range map[int]string{30: `<meta http-equiv="refresh" content="30">`, 0: `href="?refresh=30"`} {
		var b strings.Builder
		if err := HTML(&b, report, refresh); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), want) || (refresh == 0) == strings.Contains(b.String(), `http-equiv="refresh"`) {
			t.Errorf("page with refresh %d lacks %s, or reloads when it should not:\n%s", refresh, want, b.String())
		}
	}

	c, err := NewClient(Options{URL: "http://127.0.0.1:1", HTTP: config.DefaultHTTPClientConfig})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	Handler(c, time.Second, discard).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/advice?refresh=0", nil))
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), `refresh="0": want a number of seconds from 1 to 3600`) {
		t.Errorf("?refresh=0: %d %q, want 400 naming the value", rec.Code, rec.Body.String())
	}
}
