package advisor

import (
	"fmt"
	"strings"
)

// entry is what the advisor knows about one advice ID beyond the alert.
type entry struct {
	// evidence lists the series to show, given the alert's target.
	evidence func(t target) []evidenceQuery
	// recommendation says what to change, in a sentence or three.
	recommendation func(t target, f facts) string
	// fixes are the exact changes, specialised from the target.
	fixes func(t target, f facts) []Fix
	// sysctls are the sysctl changes the advice justifies.
	sysctls func(t target, f facts) []SysctlChange
}

type evidenceQuery struct {
	name string
	// expr is PromQL; the advisor adds the alert's instance and job.
	expr string
	// by, when set, names each sample of the result by this label.
	by string
}

// target is the labels of an alert that say where.
type target map[string]string

func (t target) destination() string {
	addr := t["destination_address"]
	if strings.Contains(addr, ":") {
		addr = "[" + addr + "]"
	}
	return addr + ":" + t["destination_port"]
}

// ownersQuery returns the query of the owners of the target's sockets: those
// toward its destination, or on its service port.
func (t target) ownersQuery() (string, bool) {
	if _, ok := t["destination_port"]; ok {
		return fmt.Sprintf("tcpadvisor_outbound_owner_sockets{%s}", t.selector("netns", "source_address", "destination_address", "destination_port")), true
	}
	if _, ok := t["port"]; ok {
		return fmt.Sprintf("tcpadvisor_inbound_owner_sockets{%s}", t.selector("netns", "port")), true
	}
	return "", false
}

// who names what opens the connections: the owner when known, else "This
// host".
func (f facts) who() string {
	if f.owner == nil {
		return "This host"
	}
	return "Unit " + f.owner.String() + " on this host"
}

// forProcess keeps the fixes written for the owner's kind of process, when
// it is one the fixes know (nginx, a Go or Python program), else all of
// them.
func (f facts) forProcess(fixes []Fix) []Fix {
	if f.owner == nil {
		return fixes
	}
	language := ""
	switch p := f.owner.Process; {
	case p == "nginx":
		language = "nginx"
	case f.owner.Runtime == "go":
		language = "go"
	case f.owner.Runtime == "python", strings.HasPrefix(p, "python"), p == "gunicorn", p == "uwsgi", p == "celery":
		language = "python"
	}
	var kept []Fix
	for _, fix := range fixes {
		if fix.Language == language {
			kept = append(kept, fix)
		}
	}
	if len(kept) == 0 {
		return fixes
	}
	return kept
}

// selector returns label matchers for the target's labels among names.
func (t target) selector(names ...string) string {
	var m []string
	for _, n := range names {
		if v, ok := t[n]; ok {
			m = append(m, fmt.Sprintf("%s=%q", n, v))
		}
	}
	return strings.Join(m, ",")
}

// wellKnownPorts names the services whose clients the pool advice knows.
var wellKnownPorts = map[string]string{
	"6379":  "Redis",
	"5432":  "PostgreSQL",
	"3306":  "MySQL",
	"11211": "memcached",
}

var catalog = map[ID]entry{
	Pool:                        {evidence: destinationEvidence, recommendation: poolRecommendation, fixes: poolFixes},
	UpstreamKeepalive:           {evidence: keepaliveEvidence, recommendation: keepaliveRecommendation, fixes: keepaliveFixes},
	PortPressure:                {evidence: pressureEvidence, recommendation: pressureRecommendation, fixes: pressureFixes, sysctls: pressureSysctls},
	TimeWaitBucketOverflow:      {evidence: twBucketEvidence, recommendation: twBucketRecommendation, sysctls: twBucketSysctls},
	ServicePortInEphemeralRange: {evidence: portInRangeEvidence, recommendation: portInRangeRecommendation, sysctls: portInRangeSysctls},
	AcceptQueueOverflow:         {evidence: acceptQueueEvidence, recommendation: acceptQueueRecommendation, sysctls: acceptQueueSysctls},
	SynQueueOverflow:            {evidence: synQueueEvidence, recommendation: synQueueRecommendation, sysctls: synQueueSysctls},
	CloseWaitLeak:               {evidence: closeWaitEvidence, recommendation: closeWaitRecommendation},
	Orphans:                     {evidence: orphansEvidence, recommendation: orphansRecommendation, sysctls: orphansSysctls},
	ConntrackFull:               {evidence: conntrackEvidence, recommendation: conntrackRecommendation, sysctls: conntrackSysctls},
	TwRecycleSet:                {evidence: twRecycleEvidence, recommendation: twRecycleRecommendation, sysctls: twRecycleSysctls},
}

func destinationEvidence(t target) []evidenceQuery {
	d := t.selector("source_address", "destination_address", "destination_port")
	return []evidenceQuery{
		{name: "TIME_WAIT sockets toward " + t.destination(), expr: fmt.Sprintf(`tcpadvisor_outbound_sockets{%s,state="time_wait"}`, d)},
		{name: "ESTABLISHED sockets toward " + t.destination(), expr: fmt.Sprintf(`tcpadvisor_outbound_sockets{%s,state="established"}`, d)},
		{name: "ephemeral ports held toward " + t.destination(), expr: fmt.Sprintf(`tcpadvisor_outbound_ephemeral_sockets{%s}`, d)},
		{name: "port-pressure ratio toward " + t.destination(), expr: fmt.Sprintf(`tcpadvisor_outbound_port_pressure_ratio{%s}`, d)},
		{name: "connections closed by this host per second (all destinations)", expr: `rate(tcpadvisor_tcpext_tw_total[5m])`},
	}
}

func poolRecommendation(t target, f facts) string {
	service := wellKnownPorts[t["destination_port"]]
	if service == "" {
		service = "the service at " + t.destination()
	}
	return fmt.Sprintf(f.who()+" opens a new TCP connection to %s (%s) for almost every use and closes it first, "+
		"so each one leaves a TIME_WAIT socket holding an ephemeral port for 60 s. Create the client once per process "+
		"and reuse it: a pool keeps the connections open, removes a handshake from every request, and holds a fixed "+
		"number of ports. In the experiment tcpadvisor comes from, a module-level Redis client instead of one per "+
		"request gave 60%% more requests per second and ~13,000 fewer TIME_WAIT sockets.", t.destination(), service)
}

func poolFixes(t target, f facts) []Fix {
	return f.forProcess(allPoolFixes(t))
}

func allPoolFixes(t target) []Fix {
	addr := t.destination()
	switch t["destination_port"] {
	case "6379":
		return []Fix{
			{Title: "Go, go-redis: one client per process", Language: "go", Text: fmt.Sprintf(`// One *redis.Client per process: it is safe for concurrent use and keeps a
// pool of connections (PoolSize defaults to 10 per GOMAXPROCS).
var rdb = redis.NewClient(&redis.Options{Addr: %q})

func handle(w http.ResponseWriter, r *http.Request) {
	val, err := rdb.Get(r.Context(), "key").Result()
	// ...
}
// Not redis.NewClient(...) inside the handler, and not a Close() after each use.`, addr)},
			{Title: "Python, redis-py: one module-level client", Language: "python", Text: fmt.Sprintf(`import redis

# Created once, at import: the client owns a ConnectionPool that keeps
# connections open between requests.
r = redis.Redis(host=%q, port=%s)

@app.route("/test/<n>")
def test(n):
    r.set(n, 155030303)
    return r.get(n)

# Not redis.Redis() inside the view: each one makes its own ConnectionPool,
# so every request opens and closes a TCP connection.`, t["destination_address"], t["destination_port"])},
		}
	case "5432", "3306":
		driver := map[string]string{"5432": "pgx", "3306": "mysql"}[t["destination_port"]]
		return []Fix{
			{Title: "Go, database/sql: one *sql.DB, enough idle connections", Language: "go", Text: fmt.Sprintf(`// One *sql.DB per process, opened at start: it is a pool.
db, err := sql.Open(%q, dsn)
// database/sql keeps only 2 idle connections by default: under more
// concurrency, every extra connection is closed after use. Keep as many
// idle as you run queries at once.
db.SetMaxIdleConns(20)
db.SetMaxOpenConns(20)
db.SetConnMaxIdleTime(5 * time.Minute)`, driver)},
			{Title: "Python: one pool per process", Language: "python", Text: `# SQLAlchemy: create_engine() once, at import; it pools connections.
engine = create_engine(url, pool_size=20, pool_pre_ping=True)
# psycopg 3: psycopg_pool.ConnectionPool(conninfo, min_size=4, max_size=20), once.
# Not a connect() inside each request handler.`},
		}
	case "11211":
		return []Fix{
			{Title: "Go, gomemcache: one client, more idle connections", Language: "go", Text: fmt.Sprintf(`var mc = memcache.New(%q)

func init() {
	// The default keeps 2 idle connections: raise it to the concurrency.
	mc.MaxIdleConns = 20
}`, addr)},
			{Title: "Python, pymemcache: one pooled client", Language: "python", Text: fmt.Sprintf(`from pymemcache.client.base import PooledClient
mc = PooledClient((%q, %s), max_pool_size=20)  # once, at import`, t["destination_address"], t["destination_port"])},
		}
	}
	return []Fix{{Title: "Reuse the client", Language: "text", Text: fmt.Sprintf(`Create the client for %s once per process and share it; give its pool as many
idle connections as requests run at once. For HTTP: one Go http.Client (read
each body to EOF and close it), one Python requests.Session.`, addr)}}
}

func keepaliveEvidence(t target) []evidenceQuery {
	if _, ok := t["port"]; ok {
		p := t.selector("port")
		return []evidenceQuery{
			{name: "TIME_WAIT sockets on service port " + t["port"], expr: fmt.Sprintf(`tcpadvisor_inbound_sockets{%s,state="time_wait"}`, p)},
			{name: "ESTABLISHED sockets on service port " + t["port"], expr: fmt.Sprintf(`tcpadvisor_inbound_sockets{%s,state="established"}`, p)},
			{name: "distinct peer addresses on port " + t["port"], expr: fmt.Sprintf(`tcpadvisor_inbound_peer_addresses{%s}`, p)},
			{name: "sockets from peer", expr: fmt.Sprintf(`tcpadvisor_inbound_peer_sockets{%s}`, p), by: "peer_address"},
		}
	}
	return destinationEvidence(t)
}

func keepaliveRecommendation(t target, f facts) string {
	if port, ok := t["port"]; ok {
		return fmt.Sprintf("Few peers open a new connection to service port %s for almost every request, and this host "+
			"closes each one first, so the TIME_WAIT sockets pile up here. That is a proxy without upstream keepalive "+
			"in front of this service: turn keepalive on in the proxy (for nginx, all three directives). If TIME_WAIT "+
			"stays on this port once it is on, the service itself closes every connection (gunicorn's sync workers "+
			"do): run it with a worker that keeps connections alive. In the experiment tcpadvisor comes from, upstream "+
			"keepalive gave 25%% more requests per second.", port)
	}
	return fmt.Sprintf(f.who()+" opens a new HTTP connection to %s for almost every request and closes it first: "+
		"each leaves a TIME_WAIT socket holding an ephemeral port for 60 s. Keep connections alive to that upstream: "+
		"for nginx, all three directives below; for an application, one shared HTTP client.", t.destination())
}

func keepaliveFixes(t target, f facts) []Fix {
	if _, ok := t["port"]; ok {
		// The owner of a service port is the backend, not the proxy
		// whose configuration is the fix.
		return allKeepaliveFixes(t)
	}
	return f.forProcess(allKeepaliveFixes(t))
}

func allKeepaliveFixes(t target) []Fix {
	upstream := "127.0.0.1:5000"
	if _, ok := t["destination_address"]; ok {
		upstream = t.destination()
	}
	fixes := []Fix{{Title: "nginx: keep upstream connections alive", Language: "nginx", Text: fmt.Sprintf(`upstream backend {
    server %s;
    keepalive 32;                    # idle connections kept per worker process
}

server {
    location / {
        proxy_pass http://backend;
        proxy_http_version 1.1;          # keepalive needs HTTP/1.1 to the upstream
        proxy_set_header Connection "";  # do not pass "Connection: close" on
    }
}`, upstream)}}
	if _, ok := t["port"]; ok {
		return append(fixes, Fix{Title: "The backend must keep connections open", Language: "shell", Text: `# gunicorn: sync workers close every connection; threads keep them alive.
# Keep the backend's idle timeout above nginx's upstream keepalive_timeout (60s).
gunicorn --worker-class gthread --workers 2 --threads 4 --keep-alive 75 app:app`})
	}
	return append(fixes,
		Fix{Title: "Go: one http.Client, bodies drained", Language: "go", Text: `// One client (one Transport) per process. Read every body to EOF and close
// it, or the connection cannot go back to the pool.
var client = &http.Client{Transport: &http.Transport{
	MaxIdleConnsPerHost: 32, // the default, 2, closes the rest after use
	IdleConnTimeout:     90 * time.Second,
}}`},
		Fix{Title: "Python: one requests.Session", Language: "python", Text: `session = requests.Session()  # once, at import: it pools connections
resp = session.get(url)`})
}

func pressureEvidence(t target) []evidenceQuery {
	return append(destinationEvidence(t)[:4],
		evidenceQuery{name: "usable ephemeral ports", expr: `tcpadvisor_ephemeral_ports_range_size - tcpadvisor_ephemeral_ports_reserved`},
		evidenceQuery{name: "net.ipv4.tcp_tw_reuse", expr: `tcpadvisor_sysctl_net_ipv4_tcp_tw_reuse`},
		evidenceQuery{name: "TIME_WAIT reused per second (TWRecycled)", expr: `rate(tcpadvisor_tcpext_tw_recycled_total[5m])`},
	)
}

func pressureRecommendation(t target, f facts) string {
	s := fmt.Sprintf("The ephemeral ports toward %s are running out: when none is left, connect() to it fails "+
		"with EADDRNOTAVAIL (\"Cannot assign requested address\"). The fix is to open fewer connections: a pool or "+
		"keepalive toward it (see the pool and upstream-keepalive advice). Until then, relief:", t.destination())
	if f.twReuse != 1 && f.timestamps == 1 {
		s += " net.ipv4.tcp_tw_reuse=1 lets connect() reuse a TIME_WAIT port toward it once a second has passed (it needs TCP timestamps, which are on);"
	}
	return s + " a wider net.ipv4.ip_local_port_range; more source addresses, with IP_BIND_ADDRESS_NO_PORT where the client must bind() one. " +
		"Do not lower tcp_fin_timeout: it does not shorten TIME_WAIT."
}

func pressureFixes(_ target, _ facts) []Fix {
	return []Fix{{Title: "A client that must bind() a source address: share ports", Language: "go", Text: `// IP_BIND_ADDRESS_NO_PORT (Linux 4.2) defers the port choice to connect(),
// so binding a source address no longer reserves a port for every destination.
d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Control: func(_, _ string, c syscall.RawConn) error {
	var err error
	c.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1) })
	return err
}}`}}
}

// widerPortRangeLow is where a widened ephemeral range starts: it keeps the
// well-known and registered service ports below it, and ends of different
// parity (16384 even, 65535 odd), as ip-sysctl.rst advises.
const widerPortRangeLow = 16384

func pressureSysctls(_ target, f facts) []SysctlChange {
	var changes []SysctlChange
	if f.twReuse != 1 && f.timestamps == 1 {
		changes = append(changes, SysctlChange{Name: "net.ipv4.tcp_tw_reuse", Value: "1", Current: fmt.Sprint(f.twReuse),
			Reason: "lets connect() reuse a TIME_WAIT port toward a destination after 1 s (outgoing connections only, needs tcp_timestamps=1): relief for port pressure, not a fix for churn"})
	}
	if f.rangeMin > widerPortRangeLow || (f.rangeMax > 0 && f.rangeMax < 65535) {
		low := min(f.rangeMin, widerPortRangeLow)
		changes = append(changes, SysctlChange{Name: "net.ipv4.ip_local_port_range", Value: fmt.Sprintf("%d 65535", low),
			Current: fmt.Sprintf("%d %d", f.rangeMin, f.rangeMax),
			Reason:  fmt.Sprintf("more ephemeral ports toward every destination; a service listening on a port from %d up must be listed in net.ipv4.ip_local_reserved_ports", low)})
		if reserved := f.reservedWith(f.listeningIn(low, 65535)...); reserved != f.reservedPorts {
			changes = append(changes, SysctlChange{Name: "net.ipv4.ip_local_reserved_ports", Value: reserved, Current: f.reservedPorts,
				Reason: "keeps the listening ports tcpadvisor saw inside the wider range out of connect()'s reach"})
		}
	}
	return changes
}

// doubleLimit proposes twice a kernel limit that the advice shows too
// small; nothing when the limit is unknown (-1: not exported here).
func doubleLimit(name string, current int, reason string) []SysctlChange {
	if current <= 0 {
		return nil
	}
	return []SysctlChange{{Name: name, Value: fmt.Sprint(2 * current), Current: fmt.Sprint(current), Reason: reason}}
}

func twBucketEvidence(target) []evidenceQuery {
	return []evidenceQuery{
		{name: "TIME_WAIT sockets (sockstat tw)", expr: `tcpadvisor_sockstat_tcp_tw`},
		{name: "net.ipv4.tcp_max_tw_buckets", expr: `tcpadvisor_sysctl_net_ipv4_tcp_max_tw_buckets`},
		{name: "TIME_WAIT destroyed early per second (TCPTimeWaitOverflow)", expr: `rate(tcpadvisor_tcpext_tcp_time_wait_overflow_total[5m])`},
	}
}

func twBucketRecommendation(target, facts) string {
	return "The kernel holds as many TIME_WAIT sockets as net.ipv4.tcp_max_tw_buckets allows and destroys new ones at once, " +
		"without the protection TIME_WAIT gives against old duplicate segments. Open fewer connections (pool, keepalive); " +
		"raise tcp_max_tw_buckets if memory allows (each costs a few hundred bytes). Never lower it."
}

func twBucketSysctls(_ target, f facts) []SysctlChange {
	return doubleLimit("net.ipv4.tcp_max_tw_buckets", f.maxTwBuckets, "TIME_WAIT sockets are being destroyed at the limit; twice the room costs little memory")
}

func portInRangeEvidence(t target) []evidenceQuery {
	return []evidenceQuery{
		{name: "first port of the ephemeral range", expr: `tcpadvisor_sysctl_net_ipv4_ip_local_port_range_min`},
		{name: "last port of the ephemeral range", expr: `tcpadvisor_sysctl_net_ipv4_ip_local_port_range_max`},
		{name: "connections on port " + t["port"], expr: fmt.Sprintf(`sum(tcpadvisor_inbound_sockets{%s})`, t.selector("port"))},
	}
}

func portInRangeRecommendation(t target, _ facts) string {
	return fmt.Sprintf("Service port %s lies in the ephemeral range and is not reserved: while the service is down or "+
		"restarting, an outgoing connection can take the port and the service then fails to bind it. Reserve it with "+
		"net.ipv4.ip_local_reserved_ports (or move the service below the range).", t["port"])
}

func portInRangeSysctls(t target, f facts) []SysctlChange {
	port := 0
	fmt.Sscan(t["port"], &port)
	if port == 0 {
		return nil
	}
	return []SysctlChange{{Name: "net.ipv4.ip_local_reserved_ports", Value: f.reservedWith(port), Current: f.reservedPorts,
		Reason: fmt.Sprintf("keeps connect() from handing out service port %d", port)}}
}

func acceptQueueEvidence(target) []evidenceQuery {
	return []evidenceQuery{
		{name: "accept-queue overflows per second", expr: `rate(tcpadvisor_tcpext_listen_overflows_total[5m])`},
		{name: "accept-queue fill of port", expr: `tcpadvisor_listen_queue_length / tcpadvisor_listen_queue_limit > 0`, by: "port"},
		{name: "net.core.somaxconn", expr: `tcpadvisor_sysctl_net_core_somaxconn`},
	}
}

func acceptQueueRecommendation(target, facts) string {
	return "Connections complete the handshake but the application does not accept() them fast enough, and the kernel " +
		"drops them when the accept queue is full. Accept faster (more workers); raise the listen() backlog and " +
		"net.core.somaxconn together: the queue is the smaller of the two."
}

func acceptQueueSysctls(_ target, f facts) []SysctlChange {
	return doubleLimit("net.core.somaxconn", f.somaxconn, "accept queues overflow; the application's listen() backlog must be raised too, the queue is min(backlog, somaxconn)")
}

func synQueueEvidence(target) []evidenceQuery {
	return []evidenceQuery{
		{name: "SYNs dropped per second, SYN queue full", expr: `rate(tcpadvisor_tcpext_tcp_req_q_full_drop_total[5m])`},
		{name: "SYN cookies sent per second, SYN queue full", expr: `rate(tcpadvisor_tcpext_tcp_req_q_full_do_cookies_total[5m])`},
		{name: "net.ipv4.tcp_max_syn_backlog", expr: `tcpadvisor_sysctl_net_ipv4_tcp_max_syn_backlog`},
	}
}

func synQueueRecommendation(target, facts) string {
	return "The SYN queue of a listener fills: half-open connections are dropped or answered with SYN cookies. Raise " +
		"net.ipv4.tcp_max_syn_backlog, and the listen() backlog and net.core.somaxconn with it; if this is an attack, " +
		"keep syncookies on."
}

func synQueueSysctls(_ target, f facts) []SysctlChange {
	return doubleLimit("net.ipv4.tcp_max_syn_backlog", f.maxSynBacklog, "the SYN queue overflows")
}

func closeWaitEvidence(t target) []evidenceQuery {
	return []evidenceQuery{{name: "CLOSE_WAIT sockets on service port " + t["port"], expr: fmt.Sprintf(`tcpadvisor_inbound_sockets{%s,state="close_wait"}`, t.selector("port"))}}
}

func closeWaitRecommendation(t target, _ facts) string {
	return fmt.Sprintf("Peers closed their side of connections to port %s but the application never calls close() on "+
		"its sockets: they stay in CLOSE_WAIT, holding a file descriptor and memory each, until the process exits. "+
		"This is a bug in the application (a missing close or defer Close(), a leaked response body); no sysctl fixes it.", t["port"])
}

func orphansEvidence(target) []evidenceQuery {
	return []evidenceQuery{
		{name: "orphaned sockets", expr: `tcpadvisor_sockstat_tcp_orphan`},
		{name: "net.ipv4.tcp_max_orphans", expr: `tcpadvisor_sysctl_net_ipv4_tcp_max_orphans`},
	}
}

func orphansRecommendation(target, facts) string {
	return "Many sockets are closed by their applications but still hold unsent data or wait for the peer; past " +
		"net.ipv4.tcp_max_orphans the kernel resets them. Look for peers that stop reading; raise tcp_max_orphans if memory allows."
}

func orphansSysctls(_ target, f facts) []SysctlChange {
	return doubleLimit("net.ipv4.tcp_max_orphans", f.maxOrphans, "orphans near the limit are reset; each orphan can cost up to 64 KB of memory")
}

func conntrackEvidence(target) []evidenceQuery {
	return []evidenceQuery{
		{name: "conntrack entries", expr: `tcpadvisor_conntrack_entries`},
		{name: "net.netfilter.nf_conntrack_max", expr: `tcpadvisor_conntrack_entries_limit`},
	}
}

func conntrackRecommendation(target, facts) string {
	return "The conntrack table is filling; once full, new connections are dropped (\"nf_conntrack: table full\"). " +
		"conntrack keeps closed TCP connections for 120 s, so churn fills it: reuse connections, and raise " +
		"net.netfilter.nf_conntrack_max (with nf_conntrack_buckets) if memory allows."
}

func conntrackSysctls(_ target, f facts) []SysctlChange {
	return doubleLimit("net.netfilter.nf_conntrack_max", f.conntrackMax, "the conntrack table is more than three quarters full")
}

func twRecycleEvidence(target) []evidenceQuery {
	return []evidenceQuery{{name: "net.ipv4.tcp_tw_recycle", expr: `tcpadvisor_sysctl_net_ipv4_tcp_tw_recycle`}}
}

func twRecycleRecommendation(target, facts) string {
	return "net.ipv4.tcp_tw_recycle is set. It dropped connections from clients behind NAT and was removed in Linux 4.12: " +
		"set it to 0 and remove it from /etc/sysctl.conf and /etc/sysctl.d. For port pressure use a pool or keepalive, " +
		"then tcp_tw_reuse."
}

func twRecycleSysctls(_ target, _ facts) []SysctlChange {
	return []SysctlChange{{Name: "net.ipv4.tcp_tw_recycle", Value: "0", Current: "1",
		Reason: "it breaks clients behind NAT and no longer exists since Linux 4.12"}}
}
