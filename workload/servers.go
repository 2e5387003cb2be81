package workload

import (
	"context"
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// flaskApp is the seed's Flask app, written to the arm's directory for
// gunicorn.
//
//go:embed flaskapp.py
var flaskApp []byte

// redisConfig is redis-server's configuration: loopback only, nothing
// written to disk but its log.
func redisConfig(dir string, port int) string {
	return fmt.Sprintf(`bind 127.0.0.1
port %d
daemonize no
save ""
appendonly no
dir %s
logfile %s
`, port, dir, filepath.Join(dir, "redis.log"))
}

// startRedis starts redis-server on port and waits until it listens.
func startRedis(ctx context.Context, dir string, port int) (*process, error) {
	conf := filepath.Join(dir, "redis.conf")
	if err := os.WriteFile(conf, []byte(redisConfig(dir, port)), 0o600); err != nil {
		return nil, err
	}
	p, err := startProcess("redis-server", filepath.Join(dir, "redis.out"), nil, conf)
	if err != nil {
		return nil, err
	}
	p.log = filepath.Join(dir, "redis.log")
	if err := p.waitListening(ctx, addrString(port)); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// nginxConfig is nginx's configuration: a reverse proxy on listenPort to
// the app on appPort, with every path in dir. keepalive adds the three
// directives upstream keepalive needs.
func nginxConfig(dir string, listenPort, appPort int, keepalive bool) string {
	var upstream, proxy string
	if keepalive {
		upstream = "\n\t\tkeepalive 32;"
		proxy = "\n\t\t\tproxy_http_version 1.1;\n\t\t\tproxy_set_header Connection \"\";"
	}
	return fmt.Sprintf(`daemon off;
worker_processes 2;
pid %[1]s/nginx.pid;
error_log %[1]s/nginx-error.log warn;
worker_rlimit_nofile 8192;
events {
	worker_connections 4096;
}
http {
	access_log off;
	client_body_temp_path %[1]s/client_body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	# The load's own connections stay open for the whole arm (the default
	# closes them after 1000 requests): only nginx's upstream side may churn.
	keepalive_requests 1000000;
	upstream app {
		server 127.0.0.1:%[3]d;%[4]s
	}
	server {
		# reuseport: the kernel spreads the load's connections over the
		# workers. They last the whole arm, and one worker that accepted them
		# all would proxy every request alone.
		listen 127.0.0.1:%[2]d reuseport;
		location / {
			proxy_pass http://app;%[5]s
		}
	}
}
`, dir, listenPort, appPort, upstream, proxy)
}

// startNginx starts nginx in front of the app and waits until it listens.
func startNginx(ctx context.Context, dir string, port, appPort int, keepalive bool) (*process, error) {
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(nginxConfig(dir, port, appPort, keepalive)), 0o600); err != nil {
		return nil, err
	}
	// -e: the error log before the configuration is read, which otherwise
	// is /var/log/nginx/error.log.
	p, err := startProcess("nginx", filepath.Join(dir, "nginx.out"), nil,
		"-p", dir, "-c", conf, "-e", filepath.Join(dir, "nginx-error.log"))
	if err != nil {
		return nil, err
	}
	p.log = filepath.Join(dir, "nginx-error.log")
	if err := p.waitListening(ctx, addrString(port)); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// gunicornWorkers is the number of gunicorn's worker processes, and
// gunicornThreads the threads of each.
//
// One worker: with several, nginx's kept-alive connections stay with the
// worker that accepted them, each worker bound by its GIL, so that arm 4
// would measure how its connections happened to be spread over the workers
// (from 6.8 and 11.3 s of CPU to an even split, from run to run) as much as
// what keepalive saves. Every connection to one worker costs the same
// wherever it came from; its 8 threads keep it busy while the others wait
// on Redis, and the machine's other CPUs are left to nginx, Redis and the
// load.
const (
	gunicornWorkers = 1
	gunicornThreads = 8
)

// gunicornConfig makes each gunicorn worker say when it is ready to accept:
// the master listens before its workers have loaded the app, and a load
// that started then would measure Python's start-up.
const gunicornConfig = `import os


def post_worker_init(worker):
    open(os.path.join(os.path.dirname(__file__), "worker-%d.ready" % worker.pid), "w").close()
`

// gunicornArgs runs the Flask app of flaskapp.py: the per-request client or
// the shared one. gthread is a real WSGI server whose workers keep client
// connections open, which upstream keepalive needs (the sync worker closes
// every connection, so keepalive in nginx would change nothing). Its
// keep-alive of 75 s outlasts nginx's 60 s, so that nginx, not gunicorn,
// closes an idle upstream connection.
func gunicornArgs(dir string, port int, pool bool) []string {
	app := "flaskapp:per_request"
	if pool {
		app = "flaskapp:pooled"
	}
	return []string{
		"--config", filepath.Join(dir, "gunicorn.conf.py"),
		"--worker-class", "gthread", "--workers", strconv.Itoa(gunicornWorkers), "--threads", strconv.Itoa(gunicornThreads),
		"--keep-alive", "75",
		"--bind", addrString(port),
		"--chdir", dir,
		"--worker-tmp-dir", dir,
		"--error-logfile", filepath.Join(dir, "gunicorn.log"),
		"--log-level", "warning",
		app,
	}
}

// startFlask starts the Flask app under gunicorn and waits until it
// listens.
func startFlask(ctx context.Context, dir string, port, redisPort int, pool bool) (*process, error) {
	if err := os.WriteFile(filepath.Join(dir, "flaskapp.py"), flaskApp, 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "gunicorn.conf.py"), []byte(gunicornConfig), 0o600); err != nil {
		return nil, err
	}
	env := []string{"REDIS_HOST=127.0.0.1", "REDIS_PORT=" + strconv.Itoa(redisPort), "PYTHONDONTWRITEBYTECODE=1"}
	p, err := startProcess("gunicorn", filepath.Join(dir, "gunicorn.out"), env, gunicornArgs(dir, port, pool)...)
	if err != nil {
		return nil, err
	}
	p.log = filepath.Join(dir, "gunicorn.log")
	if err := waitWorkers(ctx, p, dir); err != nil {
		p.stop()
		return nil, fmt.Errorf("gunicorn: %w", err)
	}
	return p, nil
}

// waitWorkers waits, for at most 15 s, until every gunicorn worker has said
// it is ready.
func waitWorkers(ctx context.Context, p *process, dir string) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		ready, err := filepath.Glob(filepath.Join(dir, "worker-*.ready"))
		if err != nil {
			return err
		}
		if len(ready) >= gunicornWorkers {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d workers ready after 15 s: %s", len(ready), gunicornWorkers, lastLine(p.log))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.done:
			return p.exited()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// siegeConfig is siege's resource file. Its connections are kept alive, as
// the built-in load's are, so that siege is not what churns; JSON output
// gives a summary to parse; no per-request lines, no log, no fetching of
// page resources; and it never aborts on failed connections, which are what
// the narrow port range is about.
func siegeConfig(concurrency int) string {
	return strings.Join([]string{
		"connection = keep-alive",
		"protocol = HTTP/1.1",
		"json_output = true",
		"verbose = false",
		"quiet = true",
		"show-logfile = false",
		"logging = false",
		"parser = false",
		"failures = 1000000000",
		"limit = " + strconv.Itoa(max(255, concurrency)),
		"",
	}, "\n")
}
