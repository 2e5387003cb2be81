package fleet

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tcpadvisor/tcpadvisor/internal/cgrouptest"
	"github.com/tcpadvisor/tcpadvisor/internal/netnstest"
	"github.com/tcpadvisor/tcpadvisor/internal/proctest"
	"github.com/tcpadvisor/tcpadvisor/internal/tlstest"
)

// The test's hosts: three network namespaces the test makes, joined by
// veth pairs with addresses of their own. "mon" runs Prometheus and the
// advise and fleet commands; "app" and "redis" each run a daemon, listening
// on their side of their pair with mon, and are joined by a third pair, over
// which app's client talks to redis-server. A fourth, "decoy", when a test
// asks for it, has redis's address too (on an interface of its own,
// unreachable from app), runs a redis-server there and a daemon on its pair with mon: a
// second host with the destination address, as Docker's 172.17.0.1 or
// overlapping private networks make.
const (
	monApp     = "198.18.0.1/30"
	appMon     = "198.18.0.2/30"
	monRedis   = "198.18.0.5/30"
	redisMon   = "198.18.0.6/30"
	appRedis   = "198.18.0.9/30"
	redisApp   = "198.18.0.10/30"
	monDecoy   = "198.18.0.13/30"
	decoyMon   = "198.18.0.14/30"
	decoyRedis = "198.18.0.10/32"
	daemonPort = "10067"
	prometheus = "127.0.0.1:9090"
	fleetPage  = "127.0.0.1:10068"
)

// hosts are the namespaces of one test; decoy is "" unless asked for.
type hosts struct {
	mon, app, redis, decoy string
}

// addr returns the address of a CIDR.
func addr(cidr string) string { return strings.Split(cidr, "/")[0] }

// makeHosts makes the three namespaces and their links, and the decoy
// when asked, or skips the test where it cannot.
func makeHosts(t *testing.T, decoy bool) hosts {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to make network namespaces")
	}
	proctest.LookPath(t, "ip", "iproute2")
	proctest.LookPath(t, "nsenter", "util-linux")
	prefix := fmt.Sprintf("tcpadv-fleet-%d-", os.Getpid())
	h := hosts{mon: prefix + "mon", app: prefix + "app", redis: prefix + "redis"}
	names := []string{h.mon, h.app, h.redis}
	if decoy {
		h.decoy = prefix + "decoy"
		names = append(names, h.decoy)
	}
	for _, name := range names {
		if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
			t.Skipf("cannot make a network namespace: %v: %s", err, out)
		}
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "delete", name).CombinedOutput(); err != nil {
				t.Errorf("delete network namespace %s: %v: %s", name, err, out)
			}
		})
		ipIn(t, name, "link", "set", "lo", "up")
	}
	link := func(ns1, if1, cidr1, ns2, if2, cidr2 string) {
		ipIn(t, ns1, "link", "add", if1, "type", "veth", "peer", "name", if2, "netns", ns2)
		ipIn(t, ns1, "addr", "add", cidr1, "dev", if1)
		ipIn(t, ns2, "addr", "add", cidr2, "dev", if2)
		ipIn(t, ns1, "link", "set", if1, "up")
		ipIn(t, ns2, "link", "set", if2, "up")
	}
	link(h.mon, "app0", monApp, h.app, "mon0", appMon)
	link(h.mon, "redis0", monRedis, h.redis, "mon0", redisMon)
	link(h.app, "redis0", appRedis, h.redis, "app0", redisApp)
	if decoy {
		link(h.mon, "decoy0", monDecoy, h.decoy, "mon0", decoyMon)
		// A veth pair of its own, where a dummy interface would do: the
		// kernel's dummy module is not on every machine.
		ipIn(t, h.decoy, "link", "add", "shared0", "type", "veth", "peer", "name", "shared1")
		ipIn(t, h.decoy, "addr", "add", decoyRedis, "dev", "shared0")
		ipIn(t, h.decoy, "link", "set", "shared0", "up")
		ipIn(t, h.decoy, "link", "set", "shared1", "up")
	}
	// Churn shows well before the range runs out: 1 % of 5,000 ports is
	// 50 TIME_WAIT sockets.
	sysctlIn(t, h.app, "net.ipv4.ip_local_port_range", "40000 44999")
	return h
}

func ipIn(t *testing.T, ns string, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("ip -n %s %s: %v: %s", ns, strings.Join(args, " "), err, out)
	}
}

func sysctlIn(t *testing.T, ns, name, value string) {
	t.Helper()
	if out, err := inNetns(ns, "sysctl", "-q", "-w", name+"="+value).CombinedOutput(); err != nil {
		t.Fatalf("sysctl %s=%s in %s: %v: %s", name, value, ns, err, out)
	}
}

// inCgroup returns cmd run from a shell that first moves itself into the
// cgroup dir, so that every socket the program makes is the unit's.
func inCgroup(dir string, cmd *exec.Cmd) *exec.Cmd {
	script := `echo $$ > "$0/cgroup.procs" && exec "$@"`
	c := exec.Command("sh", append([]string{"-c", script, dir}, cmd.Args...)...)
	c.Stdin, c.Stdout = cmd.Stdin, cmd.Stdout
	return c
}

// startFleet makes the hosts and starts redis-server on redis, a daemon on
// app and on redis, and Prometheus on mon, scraping the daemons as
// instances app-1 and redis-1 with the project's rules loaded and scaled;
// with the decoy, redis-server and a daemon there too, scraped as decoy-1.
func startFleet(t *testing.T, decoy bool) hosts {
	t.Helper()
	redisServer := proctest.LookPath(t, "redis-server", "redis-server")
	proctest.LookPath(t, "prometheus", "prometheus")
	h := makeHosts(t, decoy)
	redisUnit := cgrouptest.Child(t, fmt.Sprintf("tcpadvisor-fleet-test-redis-%d.service", os.Getpid()))
	redisArgs := []string{"--port", "6379", "--bind", addr(redisApp), "--save", "", "--appendonly", "no", "--protected-mode", "no"}
	proctest.Start(t, "redis-server", inCgroup(redisUnit, inNetns(h.redis, redisServer, redisArgs...)))
	daemons := []struct{ ns, cidr, instance string }{{h.app, appMon, "app-1"}, {h.redis, redisMon, "redis-1"}}
	if decoy {
		proctest.Start(t, "redis-server on the decoy", inNetns(h.decoy, redisServer, redisArgs...))
		daemons = append(daemons, struct{ ns, cidr, instance string }{h.decoy, decoyMon, "decoy-1"})
	}
	var targets []scrapeTarget
	for _, d := range daemons {
		listen := addr(d.cidr) + ":" + daemonPort
		p := proctest.Start(t, "tcpadvisor on "+d.instance, inNetns(d.ns, binary, "--web.listen-address="+listen))
		p.WaitReady(t, httpClientIn(t, h.mon), "http://"+listen+"/")
		targets = append(targets, scrapeTarget{Address: listen, Instance: d.instance})
	}
	startPrometheus(t, h.mon, prometheus, targets, true, prometheusAccess{})
	return h
}

// redisClient is a Python client of redis-py, as a Flask app's: per
// request, with one connection per request (closed by the client first)
// or one pool for the process; each request holds its connection for
// 20 ms of work. It waits for a line on stdin, after its move into its
// cgroup, runs for argv[3] seconds at most and prints the requests done.
const redisClient = `
import sys, time, redis
mode, host, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
sys.stdin.readline()
pool = redis.Redis(host=host, port=6379) if mode == "pooled" else None
end, n = time.time() + seconds, 0
while time.time() < end and n < 5000:
    r = pool or redis.Redis(host=host, port=6379)
    r.ping()
    time.sleep(0.02)
    if pool is None:
        r.connection_pool.disconnect()
    n += 1
print(n, flush=True)
`

// startClient starts the Python client on app, in a unit of its own, for
// seconds.
func startClient(t *testing.T, h hosts, mode string, seconds int) *proctest.Process {
	t.Helper()
	python := "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import redis").Run(); err != nil {
		t.Skip("needs Debian's python3 with redis-py (package python3-redis)")
	}
	unit := cgrouptest.Child(t, fmt.Sprintf("tcpadvisor-fleet-test-app-%d.service", os.Getpid()))
	cmd := inNetns(h.app, python, "-c", redisClient, mode, addr(redisApp), strconv.Itoa(seconds))
	stdin := &bytes.Buffer{}
	stdin.WriteString("go\n")
	cmd.Stdin = stdin
	return proctest.Start(t, "redis client ("+mode+")", inCgroup(unit, cmd))
}

// joinedAdvice waits, for 60 s at most, until advise --prometheus.url on
// mon reports advice whose both ends are named, and returns the report
// after checking that it holds one advice, pool on app-1 toward
// redis-1:6379.
func joinedAdvice(t *testing.T, h hosts, client *proctest.Process) Report {
	t.Helper()
	var report Report
	deadline := time.Now().Add(60 * time.Second)
	for {
		stdout, stderr, code := advise(t, h.mon, "--output=json")
		if code == 2 {
			t.Fatalf("advise failed: %s", stderr)
		}
		report = Report{}
		if err := json.Unmarshal([]byte(stdout), &report); err != nil {
			t.Fatalf("advise -o json: %v\n%s", err, stdout)
		}
		// The exporter names a socket's process once its scan of /proc
		// has reached the process, and the tracer names the opener's
		// process before its unit: wait for both ends' names.
		if code == 1 && len(report.Advice) > 0 && report.Advice[0].Server != nil && report.Advice[0].Server.Owner != nil &&
			report.Advice[0].Owner != nil && report.Advice[0].Owner.Process != "unknown" && report.Advice[0].Owner.Unit != "unknown" && report.Advice[0].Owner.Unit != "" &&
			report.Advice[0].Server.Owner.Process != "unknown" {
			if !strings.Contains(stderr, "series in") {
				t.Errorf("advise does not say what it read: stderr %q", stderr)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no joined advice after 60 s; last report:\n%s\nstderr: %s\nclient: %s", stdout, stderr, client.Output())
		}
		time.Sleep(2 * time.Second)
	}
	t.Logf("joined after %d queries, %d series", report.Cost.Queries, report.Cost.Series)
	if len(report.Advice) != 1 {
		t.Fatalf("%d advice, want exactly one: %+v", len(report.Advice), report.Advice)
	}
	a := report.Advice[0]
	if a.ID != "pool" || a.Instance != "app-1" || a.Server.Instance != "redis-1" || a.Server.Port != "6379" {
		t.Errorf("advice %s on %s toward %s:%s, want pool on app-1 toward redis-1:6379", a.ID, a.Instance, a.Server.Instance, a.Server.Port)
	}
	return report
}

// advise runs tcpadvisor advise --prometheus.url on mon and returns its
// standard output, standard error and exit code.
func advise(t *testing.T, ns string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return proctest.Run(t, inNetns(ns, binary, append([]string{"advise", "--prometheus.url=http://" + prometheus}, args...)...))
}

// TestIntegrationFleetJoinsBothEnds: app-1's Python client opens a
// connection per request to redis-server on redis-1; both hosts run a
// daemon and Prometheus scrapes both. advise --prometheus.url prints one
// advice, pool, naming app-1 and its process and redis-1:6379 and
// redis-server, and the fleet page serves the same.
func TestIntegrationFleetJoinsBothEnds(t *testing.T) {
	h := startFleet(t, false)
	report := joinedAdvice(t, h, startClient(t, h, "per-request", 60))
	a := report.Advice[0]
	if !strings.HasPrefix(a.Owner.Process, "python3") || !strings.HasPrefix(a.Owner.Unit, "tcpadvisor-fleet-test-app-") {
		t.Errorf("client owner unit %q process %q, want the Python client's unit and process", a.Owner.Unit, a.Owner.Process)
	}
	if a.Server.Owner.Process != "redis-server" || !strings.HasPrefix(a.Server.Owner.Unit, "tcpadvisor-fleet-test-redis-") {
		t.Errorf("server owner %+v, want redis-server in its unit", a.Server.Owner)
	}
	want := fmt.Sprintf("app-1 (%s) opens a connection per request to redis-1:6379 (redis-server)", a.Owner.Process)
	if a.Summary != want {
		t.Errorf("summary %q, want %q", a.Summary, want)
	}
	if a.Target["destination_address"] != addr(redisApp) || a.Target["source_address"] != addr(appRedis) || a.Pressure <= 0 {
		t.Errorf("target %v pressure %v, want %s -> %s:6379 with some pressure", a.Target, a.Pressure, addr(appRedis), addr(redisApp))
	}

	// The join was by address: redis-1's exporter lists the addresses of
	// its own namespace, and no other.
	mon := httpClientIn(t, h.mon)
	status, body := proctest.Get(t, mon, "http://"+prometheus+`/api/v1/query?query=tcpadvisor_local_address_info{instance="redis-1"}`)
	var answer struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &answer); status != 200 || err != nil {
		t.Fatalf("query the addresses: %d %v %s", status, err, body)
	}
	var addresses []string
	for _, r := range answer.Data.Result {
		addresses = append(addresses, r.Metric["address"])
	}
	slices.Sort(addresses)
	if want := []string{addr(redisApp), addr(redisMon)}; !slices.Equal(addresses, want) {
		t.Errorf("redis-1's local addresses %v, want %v", addresses, want)
	}

	text, _, code := advise(t, h.mon)
	t.Logf("advise --prometheus.url:\n%s", text)
	if code != 1 || !strings.Contains(text, "pool: 1 host(s)\n  [warning] "+want+", pressure ") {
		t.Errorf("text view (exit %d) lacks the one joined line %q:\n%s", code, want, text)
	}

	// The fleet page, in mon, serves the same advice.
	page := proctest.Start(t, "tcpadvisor fleet", inNetns(h.mon, binary, "fleet", "--prometheus.url=http://"+prometheus, "--web.listen-address="+fleetPage))
	page.WaitReady(t, mon, "http://"+fleetPage+"/")
	status, body = proctest.Get(t, mon, "http://"+fleetPage+"/advice?format=json")
	var served Report
	if err := json.Unmarshal([]byte(body), &served); status != 200 || err != nil {
		t.Fatalf("fleet page: %d %v\n%s", status, err, body)
	}
	if len(served.Advice) != 1 || served.Advice[0].Summary != want || served.Advice[0].Server == nil {
		t.Errorf("fleet page advice %+v, want the one joined advice %q", served.Advice, want)
	}
	status, html := proctest.Get(t, mon, "http://"+fleetPage+"/advice")
	if status != 200 || !strings.Contains(html, "redis-1:6379 (redis-server)") {
		t.Errorf("fleet page HTML (%d) lacks the joined advice:\n%s", status, html)
	}
	if resp, err := mon.Post("http://"+fleetPage+"/advice", "text/plain", nil); err != nil || resp.StatusCode != 405 {
		t.Errorf("POST /advice: %v %v, want 405: the page is read-only", resp, err)
	}
}

// TestIntegrationFleetJoinsByPeers: with the decoy, two scraped hosts have
// the destination address and listen on its port, so the address alone
// cannot name the server; the server's own view of the client (its busiest
// peers on the port) does: the advice joins redis-1, never decoy-1.
func TestIntegrationFleetJoinsByPeers(t *testing.T) {
	h := startFleet(t, true)
	a := joinedAdvice(t, h, startClient(t, h, "per-request", 60)).Advice[0]
	if a.Server.Owner.Process != "redis-server" || !strings.HasPrefix(a.Server.Owner.Unit, "tcpadvisor-fleet-test-redis-") {
		t.Errorf("server owner %+v, want redis-server in redis-1's unit", a.Server.Owner)
	}

	// The address was ambiguous: both hosts export it.
	status, body := proctest.Get(t, httpClientIn(t, h.mon), "http://"+prometheus+`/api/v1/query?query=count(tcpadvisor_local_address_info{address="`+addr(redisApp)+`"})`)
	if status != 200 || !strings.Contains(body, `"2"]`) {
		t.Errorf("hosts with %s: %d %s, want 2: the test would not reach the peer fallback", addr(redisApp), status, body)
	}
}

// TestIntegrationFleetPooledClient: the same hosts with a pooled client
// give no advice from either end.
func TestIntegrationFleetPooledClient(t *testing.T) {
	h := startFleet(t, false)
	client := startClient(t, h, "pooled", 15)
	select {
	case <-client.Exited():
	case <-time.After(30 * time.Second):
		t.Fatal("the pooled client did not end in 30 s")
	}
	requests, err := strconv.Atoi(strings.TrimSpace(client.Output()))
	if err != nil || requests < 100 {
		t.Fatalf("the pooled client made %q requests, want at least 100", client.Output())
	}
	// Fifteen seconds of requests: five times the scaled for: of the
	// churn rules.
	stdout, stderr, code := advise(t, h.mon, "--output=json")
	var report Report
	if err := json.Unmarshal([]byte(stdout), &report); err != nil || code != 0 {
		t.Fatalf("advise: exit %d, %v, stderr %s\n%s", code, err, stderr, stdout)
	}
	if len(report.Advice)+len(report.Pending) != 0 {
		t.Errorf("advice for a pooled client: %+v %+v", report.Advice, report.Pending)
	}
}

// TestIntegrationFleetErrors: a server that is down, one that never
// answers and one without the rules each give one line and exit code 2,
// within --timeout.
func TestIntegrationFleetErrors(t *testing.T) {
	silent := listenSilently(t)
	bare := netnstest.FreeAddress(t)
	startPrometheus(t, "", bare, nil, false, prometheusAccess{})
	cases := []struct {
		name, url, want string
	}{
		{"down", "http://" + netnstest.FreeAddress(t), "connection refused; is Prometheus running there?"},
		{"never answers", "http://" + silent, "no answer to query topk(500, ALERTS{advice!=\"\"}) within --timeout"},
		{"no rules", "http://" + bare, "evaluates none of tcpadvisor's rules"},
		{"wrong path", "http://" + bare + "/prometheus", "not found (HTTP 404): is it the server's base URL"},
		{"HTTPS to plain HTTP", "https://" + bare, "the server speaks plain HTTP: use http:// in --prometheus.url"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			begin := time.Now()
			stdout, stderr, code := proctest.Run(t, exec.Command(binary, "advise", "--prometheus.url="+c.url, "--timeout=2s"))
			took := time.Since(begin)
			if code != 2 {
				t.Errorf("exit code %d, want 2", code)
			}
			lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], c.want) || !strings.HasPrefix(lines[0], "tcpadvisor: --prometheus.url=") {
				t.Errorf("stderr %q, want one line naming --prometheus.url and saying %q", stderr, c.want)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
			if took > 10*time.Second {
				t.Errorf("took %v with --timeout=2s", took)
			}
		})
	}
}

// TestFleetFlagErrors: bad flags are one line and exit code 2, before any
// query.
func TestFleetFlagErrors(t *testing.T) {
	dir := t.TempDir()
	badConfig := filepath.Join(dir, "http.yml")
	if err := os.WriteFile(badConfig, []byte("basic_auth: {username: u, password: p}\nauthorization: {credentials: t}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"advise", "--prometheus.url=http://127.0.0.1:1", "--match=up{"}, `tcpadvisor: --match="up{": `},
		{[]string{"advise", "--prometheus.url=http://127.0.0.1:1", "--match=up"}, `names a metric; want label matchers only`},
		{[]string{"advise", "--prometheus.url=localhost:9090"}, `tcpadvisor: --prometheus.url="localhost:9090": want an http:// or https:// URL`},
		{[]string{"advise", "--prometheus.url=http://127.0.0.1:1", "--prometheus.config.file=" + filepath.Join(dir, "missing.yml")}, "tcpadvisor: --prometheus.config.file="},
		{[]string{"advise", "--prometheus.url=http://127.0.0.1:1", "--prometheus.config.file=" + badConfig}, "tcpadvisor: --prometheus.config.file"},
		{[]string{"advise", "--prometheus.url=http://127.0.0.1:1", "--apply"}, "tcpadvisor: --apply is about one host"},
		{[]string{"advise", "--prometheus.url=http://127.0.0.1:1", "--url=http://127.0.0.1:10067"}, "tcpadvisor: --url is about one host"},
		{[]string{"fleet"}, "tcpadvisor: --prometheus.url is required"},
	}
	for _, c := range cases {
		_, got, code := proctest.Run(t, exec.Command(binary, c.args...))
		if code != 2 {
			t.Errorf("%v: exit code %d, want 2", c.args, code)
		}
		if strings.Count(got, "\n") != 1 || !strings.Contains(got, c.want) {
			t.Errorf("%v: stderr %q, want one line with %q", c.args, got, c.want)
		}
	}
}

// TestIntegrationFleetClientConfig: a Prometheus that serves HTTPS with a
// certificate of its own and asks for basic auth refuses advise without
// --prometheus.config.file, and without the CA or the credentials in it, in
// one line naming the fix, and answers with both; the fleet page uses the
// file too, and reports a server that is down as 502 with the reason.
func TestIntegrationFleetClientConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(path, content string) {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// bcrypt of fleet-test-password, cost 4: Prometheus' web configuration
	// keeps only hashes.
	server := tlstest.WriteServer(t, "basic_auth_users:\n  fleet: $2a$04$I/Qo20k6D99jON6.fdR18eA2nmZ7jDn1BRMdmkUc2WNq3DUuZeOwC\n")
	password := filepath.Join(dir, "password")
	write(password, "fleet-test-password\n")
	withoutCA := filepath.Join(dir, "without-ca.yml")
	write(withoutCA, "basic_auth:\n  username: fleet\n  password_file: "+password+"\n")
	withoutCredentials := filepath.Join(dir, "without-credentials.yml")
	write(withoutCredentials, "tls_config:\n  ca_file: "+server.CertFile+"\n")
	clientConfig := filepath.Join(dir, "client.yml")
	write(clientConfig, "basic_auth:\n  username: fleet\n  password_file: "+password+"\ntls_config:\n  ca_file: "+server.CertFile+"\n")

	addr := netnstest.FreeAddress(t)
	startPrometheus(t, "", addr, nil, true, prometheusAccess{credentials: "fleet:fleet-test-password", tls: &server}, "--web.config.file="+server.WebConfig)

	for _, c := range []struct {
		name, url, config, want string
	}{
		{"plain HTTP to the HTTPS port", "http://" + addr, clientConfig, "the server speaks HTTPS: use https:// in --prometheus.url"},
		{"without the CA", "https://" + addr, withoutCA, "the server's certificate is not trusted (x509: certificate signed by unknown authority): give its CA in --prometheus.config.file (tls_config: ca_file;"},
		{"without credentials", "https://" + addr, withoutCredentials, "the server refused the request (HTTP 401): give its credentials in --prometheus.config.file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, stderr, code := proctest.Run(t, exec.Command(binary, "advise", "--prometheus.url="+c.url, "--prometheus.config.file="+c.config, "--timeout=10s"))
			if code != 2 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, c.want) {
				t.Errorf("exit %d, stderr %q; want 2 and one line saying %q", code, stderr, c.want)
			}
		})
	}
	stdout, stderr, code := proctest.Run(t, exec.Command(binary, "advise", "--prometheus.url=https://"+addr, "--prometheus.config.file="+clientConfig, "--timeout=10s"))
	if code != 0 || !strings.Contains(stdout, "no advice for any host") || !strings.Contains(stderr, "series in") {
		t.Errorf("with the CA and credentials: exit %d\n%s\n%s\nwant exit 0, no advice", code, stdout, stderr)
	}

	page := netnstest.FreeAddress(t)
	p := proctest.Start(t, "tcpadvisor fleet", exec.Command(binary, "fleet", "--prometheus.url=https://"+addr, "--prometheus.config.file="+clientConfig, "--web.listen-address="+page))
	client := httpClientIn(t, "")
	p.WaitReady(t, client, "http://"+page+"/")
	if status, body := proctest.Get(t, client, "http://"+page+"/advice?format=json"); status != 200 || !strings.Contains(body, `"advice": []`) {
		t.Errorf("fleet page with the CA and credentials: %d\n%s", status, body)
	}

	down := netnstest.FreeAddress(t)
	p = proctest.Start(t, "tcpadvisor fleet toward nothing", exec.Command(binary, "fleet", "--prometheus.url=http://"+netnstest.FreeAddress(t), "--web.listen-address="+down))
	p.WaitReady(t, client, "http://"+down+"/")
	if status, body := proctest.Get(t, client, "http://"+down+"/advice"); status != 502 || !strings.Contains(body, "connection refused; is Prometheus running there?") {
		t.Errorf("fleet page toward a server that is down: %d %q, want 502 and the reason", status, body)
	}
}

// TestFleetTimeoutAmidTheEvidence: a server that answers the alerts and
// then stalls (a fault injected by a fixture server) gives one line and
// exit code 2 at --timeout, not one warning per evidence query that
// failed.
func TestFleetTimeoutAmidTheEvidence(t *testing.T) {
	alert := `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"ALERTS","alertname":"TcpadvisorConnectionPerRequest","alertstate":"firing","advice":"pool","severity":"warning","instance":"app-1","job":"tcpadvisor","source_address":"10.0.0.1","destination_address":"10.0.0.5","destination_port":"6379"},"value":[1,"1"]}]}}`
	empty := `{"status":"success","data":{"resultType":"vector","result":[]}}`
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		query := r.Form.Get("query")
		switch {
		case r.URL.Path == "/api/v1/rules":
			io.WriteString(w, `{"status":"success","data":{"groups":[]}}`)
		case strings.Contains(query, "ALERTS_FOR_STATE"):
			io.WriteString(w, empty)
		case strings.Contains(query, "ALERTS"):
			io.WriteString(w, alert)
		default:
			<-r.Context().Done()
		}
	}))
	defer server.Close()
	begin := time.Now()
	_, stderr, code := proctest.Run(t, exec.Command(binary, "advise", "--prometheus.url="+server.URL, "--timeout=1s"))
	if code != 2 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "within --timeout") {
		t.Errorf("exit %d, stderr %q: want 2 and one line saying the deadline passed", code, stderr)
	}
	if took := time.Since(begin); took > 8*time.Second {
		t.Errorf("took %v with --timeout=1s", took)
	}
}
