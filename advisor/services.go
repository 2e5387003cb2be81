package advisor

import (
	"fmt"
	"strings"
)

// What the advisor knows about servers and their clients, shared by the
// advice: which process speaks which protocol, the well-known ports, and
// the code of a client that keeps its connections.

// The protocols the churn advice tells apart.
const (
	protocolRedis      = "redis"
	protocolPostgreSQL = "postgresql"
	protocolMySQL      = "mysql"
	protocolMemcached  = "memcached"
	protocolHTTP       = "http"
)

// protocolNames are the protocols' names in the advice's text.
var protocolNames = map[string]string{
	protocolRedis:      "Redis",
	protocolPostgreSQL: "PostgreSQL",
	protocolMySQL:      "MySQL",
	protocolMemcached:  "memcached",
	protocolHTTP:       "HTTP",
}

// serverProcesses maps the process name of a listener to the protocol it
// serves. An HTTP server is fixed by keepalive in its client, the others by
// a pool. Proxies that as often front a database as a web server (haproxy,
// envoy) tell nothing: their port decides.
var serverProcesses = map[string]string{
	"redis-server":  protocolRedis,
	"valkey-server": protocolRedis,
	"keydb-server":  protocolRedis,
	"postgres":      protocolPostgreSQL,
	"postmaster":    protocolPostgreSQL,
	"mysqld":        protocolMySQL,
	"mariadbd":      protocolMySQL,
	"memcached":     protocolMemcached,
	"gunicorn":      protocolHTTP,
	"uwsgi":         protocolHTTP,
	"uvicorn":       protocolHTTP,
	"hypercorn":     protocolHTTP,
	"node":          protocolHTTP,
	"nginx":         protocolHTTP,
	"httpd":         protocolHTTP,
	"apache2":       protocolHTTP,
	"caddy":         protocolHTTP,
	"traefik":       protocolHTTP,
	"puma":          protocolHTTP,
	"unicorn":       protocolHTTP,
}

// runtimeProtocols is the protocol of a listener whose process name tells
// nothing, on a port that tells nothing, but whose runtime is known: a Go
// program that listens there is almost always a net/http (or gRPC, HTTP/2)
// server. A well-known port says more: a Go program on 6379 is a Redis.
var runtimeProtocols = map[string]string{"go": protocolHTTP}

// wellKnownPorts is the protocol of a port, when nothing better is known.
var wellKnownPorts = map[string]string{
	"6379": protocolRedis, "5432": protocolPostgreSQL, "3306": protocolMySQL, "11211": protocolMemcached,
	"80": protocolHTTP, "443": protocolHTTP, "3000": protocolHTTP, "5000": protocolHTTP, "8000": protocolHTTP,
	"8008": protocolHTTP, "8080": protocolHTTP, "8081": protocolHTTP, "8443": protocolHTTP, "8888": protocolHTTP,
}

// protocolOf returns the protocol of a listener's process, or "".
func protocolOf(owner *Owner) string {
	if owner == nil {
		return ""
	}
	return serverProcesses[owner.Process]
}

// languageOf returns the language of the fixes written for a client
// process: nginx, go or python; "" when the fixes know no such process.
func languageOf(o *Owner) string {
	if o == nil {
		return ""
	}
	switch p := o.Process; {
	case p == "nginx":
		return "nginx"
	case o.Runtime == "go":
		return "go"
	case o.Runtime == "python", strings.HasPrefix(p, "python"), p == "gunicorn", p == "uwsgi", p == "celery":
		return "python"
	}
	return ""
}

// forClient keeps the fixes written for the client's kind of process, when
// it is one they know, else all of them.
func forClient(client *Owner, fixes []Fix) []Fix {
	language := languageOf(client)
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

// poolFixesFor returns the code of a client that keeps its connections to
// a server of the protocol at host:port.
func poolFixesFor(protocol, host, port string) []Fix {
	addr := hostPort(host, port)
	switch protocol {
	case protocolRedis:
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
# so every request opens and closes a TCP connection.`, host, port)},
		}
	case protocolPostgreSQL, protocolMySQL:
		driver := map[string]string{protocolPostgreSQL: "pgx", protocolMySQL: "mysql"}[protocol]
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
	case protocolMemcached:
		return []Fix{
			{Title: "Go, gomemcache: one client, more idle connections", Language: "go", Text: fmt.Sprintf(`var mc = memcache.New(%q)

func init() {
	// The default keeps 2 idle connections: raise it to the concurrency.
	mc.MaxIdleConns = 20
}`, addr)},
			{Title: "Python, pymemcache: one pooled client", Language: "python", Text: fmt.Sprintf(`from pymemcache.client.base import PooledClient
mc = PooledClient((%q, %s), max_pool_size=20)  # once, at import`, host, port)},
		}
	}
	return []Fix{{Title: "Reuse the client", Language: "text", Text: fmt.Sprintf(`Create the client for %s once per process and share it; give its pool as many
idle connections as requests run at once.`, addr)}}
}

// keepaliveFixesFor returns the fixes of an HTTP client toward upstream
// (ADDRESS:PORT) that opens a connection per request: nginx's upstream
// keepalive, and one shared client in Go and Python.
func keepaliveFixesFor(upstream string) []Fix {
	return []Fix{
		{Title: "nginx: keep upstream connections alive", Language: "nginx", Text: fmt.Sprintf(`upstream backend {
    server %s;
    keepalive 32;                    # idle connections kept per worker process
}

server {
    location / {
        proxy_pass http://backend;
        proxy_http_version 1.1;          # keepalive needs HTTP/1.1 to the upstream
        proxy_set_header Connection "";  # do not pass "Connection: close" on
    }
}`, upstream)},
		{Title: "Go: one http.Client, bodies drained", Language: "go", Text: `// One client (one Transport) per process. Read every body to EOF and close
// it, or the connection cannot go back to the pool.
var client = &http.Client{Transport: &http.Transport{
	MaxIdleConnsPerHost: 32, // the default, 2, closes the rest after use
	IdleConnTimeout:     90 * time.Second,
}}`},
		{Title: "Python: one requests.Session", Language: "python", Text: `session = requests.Session()  # once, at import: it pools connections
resp = session.get(url)`},
	}
}

// backendKeepaliveFix is the fix of a backend that closes every
// connection itself, which no keepalive in its client can overcome.
var backendKeepaliveFix = Fix{Title: "The backend must keep connections open", Language: "shell", Text: `# gunicorn: sync workers close every connection; threads keep them alive.
# Keep the backend's idle timeout above nginx's upstream keepalive_timeout (60s).
gunicorn --worker-class gthread --workers 2 --threads 4 --keep-alive 75 app:app`}
