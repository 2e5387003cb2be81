package workload

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/tcpadvisor/tcpadvisor/internal/term"
)

func TestNginxConfig(t *testing.T) {
	keepalive := []string{"keepalive 32;", "proxy_http_version 1.1;", `proxy_set_header Connection "";`}
	for _, withKeepalive := range []bool{false, true} {
		t.Run(fmt.Sprintf("keepalive=%v", withKeepalive), func(t *testing.T) {
			dir := t.TempDir()
			conf := nginxConfig(dir, 8080, 5000, withKeepalive)
			for _, want := range []string{
				"daemon off;", "worker_processes 2;", "pid " + dir + "/nginx.pid;", "error_log " + dir + "/nginx-error.log",
				"proxy_temp_path " + dir + "/proxy;", "server 127.0.0.1:5000;", "listen 127.0.0.1:8080 reuseport;", "proxy_pass http://app;",
			} {
				if !strings.Contains(conf, want) {
					t.Errorf("config lacks %q:\n%s", want, conf)
				}
			}
			for _, d := range keepalive {
				if strings.Contains(conf, d) != withKeepalive {
					t.Errorf("%q in the config: %v, want %v:\n%s", d, !withKeepalive, withKeepalive, conf)
				}
			}
			// nginx itself checks the syntax, where it is installed.
			nginx, err := exec.LookPath("nginx")
			if err != nil {
				t.Log("nginx not installed (Debian package nginx): syntax not checked")
				return
			}
			path := filepath.Join(dir, "nginx.conf")
			if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(nginx, "-t", "-q", "-p", dir, "-c", path, "-e", filepath.Join(dir, "nginx-error.log")).CombinedOutput(); err != nil {
				t.Errorf("nginx -t: %v: %s", err, out)
			}
		})
	}
}

func TestRedisConfig(t *testing.T) {
	conf := redisConfig("/tmp/x", 6379)
	for _, want := range []string{"bind 127.0.0.1\n", "port 6379\n", "daemonize no\n", `save ""` + "\n", "appendonly no\n", "logfile /tmp/x/redis.log\n"} {
		if !strings.Contains(conf, want) {
			t.Errorf("redis config lacks %q:\n%s", want, conf)
		}
	}
}

func TestGunicornArgs(t *testing.T) {
	args := strings.Join(gunicornArgs("/tmp/x", 5000, false), " ")
	for _, want := range []string{"--worker-class gthread --workers 1 --threads 8", "--bind 127.0.0.1:5000", "--config /tmp/x/gunicorn.conf.py", "flaskapp:per_request"} {
		if !strings.Contains(args, want) {
			t.Errorf("gunicorn args %q lack %q", args, want)
		}
	}
	if args := strings.Join(gunicornArgs("/tmp/x", 5000, true), " "); !strings.HasSuffix(args, " flaskapp:pooled") {
		t.Errorf("pooled gunicorn args %q do not run flaskapp:pooled", args)
	}
}

func TestParseSiege(t *testing.T) {
	// siege 4.0.7 (Debian 12) with json_output = true, and its messages on
	// stderr around it.
	jsonOut := `New configuration template added to /tmp/x/.siege
Run siege -C to view the current settings in that file

{	"transactions":			       10003,
	"availability":			       50.00,
	"elapsed_time":			        1.28,
	"data_transferred":		        0.57,
	"response_time":		        0.00,
	"transaction_rate":		     7814.84,
	"throughput":			        0.45,
	"concurrency":			        3.25,
	"successful_transactions":	       10003,
	"failed_transactions":		       10003,
	"longest_transaction":		        0.01,
	"shortest_transaction":		        0.00
}
`
	// Without json_output, siege prints these lines.
	textOut := `** SIEGE 4.0.4
** Preparing 20 concurrent users for battle.
The server is now under siege...
Lifting the server siege...
Transactions:		       33440 hits
Availability:		      100.00 %
Elapsed time:		       19.99 secs
Data transferred:	        0.29 MB
Response time:		        0.01 secs
Transaction rate:	     1672.84 trans/sec
Throughput:		        0.01 MB/sec
Concurrency:		       19.93
Successful transactions:       33440
Failed transactions:	           0
Longest transaction:	        0.09
Shortest transaction:	        0.00
`
	tests := []struct {
		name string
		out  string
		want siegeSummary
	}{
		{"json", jsonOut, siegeSummary{Transactions: 10003, Availability: 50, ElapsedTime: 1.28, TransactionRate: 7814.84, Failed: 10003}},
		{"text", textOut, siegeSummary{Transactions: 33440, Availability: 100, ElapsedTime: 19.99, TransactionRate: 1672.84, Failed: 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseSiege(tt.out)
			if err != nil || got != tt.want {
				t.Errorf("parseSiege = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
	for _, bad := range []string{"", "siege: error: unable to connect\n", `{"transactions": "many"}`} {
		if s, err := parseSiege(bad); err == nil {
			t.Errorf("parseSiege(%q) = %+v, want an error", bad, s)
		}
	}
}

func TestHistogram(t *testing.T) {
	var h Histogram
	if q := h.Quantile(0.5); q != 0 {
		t.Errorf("empty histogram: p50 %v, want 0", q)
	}
	// 1 ms to 1000 ms, evenly: p50 is 500 ms, p99 990 ms.
	for ms := 1; ms <= 1000; ms++ {
		h.Record(time.Duration(ms) * time.Millisecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.99, 990 * time.Millisecond}, {1, time.Second}, {0.001, time.Millisecond}} {
		got := h.Quantile(c.q)
		if math.Abs(float64(got-c.want)) > 0.025*float64(c.want) {
			t.Errorf("p%g = %v, want %v within 2.5 %%", c.q*100, got, c.want)
		}
	}
	// Merging doubles the counts and keeps the quantiles.
	var m Histogram
	m.Merge(&h)
	m.Merge(&h)
	if m.Count() != 2000 || m.Quantile(0.5) != h.Quantile(0.5) {
		t.Errorf("merged: count %d, p50 %v; want 2000, %v", m.Count(), m.Quantile(0.5), h.Quantile(0.5))
	}
	// Below the first bucket and past the last.
	var edges Histogram
	edges.Record(time.Microsecond)
	edges.Record(time.Hour)
	if lo, hi := edges.Quantile(0.5), edges.Quantile(1); lo >= histogramFirst || hi < 80*time.Second {
		t.Errorf("edges: p50 %v, p100 %v; want below %v and the last bucket", lo, hi, histogramFirst)
	}
	// Bounded memory: the size does not depend on what was recorded.
	if size := unsafe.Sizeof(h); size > 4096 {
		t.Errorf("Histogram is %d bytes", size)
	}
}

func TestParseArms(t *testing.T) {
	for in, want := range map[string]string{"1,2,3,4": "[1 2 3 4]", "3,1": "[1 3]", "2,2": "[2]", "4": "[4]"} {
		if got, ok := ParseArms(in); !ok || fmt.Sprint(got) != want {
			t.Errorf("ParseArms(%q) = %v, %v; want %s", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "0", "5", "1,", "1,,2", "one", "1 2", "01", "+1"} {
		if got, ok := ParseArms(in); ok {
			t.Errorf("ParseArms(%q) = %v, want refused", in, got)
		}
	}
}

func TestParsePortRange(t *testing.T) {
	if r, ok := ParsePortRange("40000-40199"); !ok || r != (PortRange{40000, 40199}) || r.String() != "40000-40199" {
		t.Errorf("ParsePortRange(40000-40199) = %v, %v", r, ok)
	}
	// 100-200 parses: the kernel, not the parser, refuses a low end below
	// ip_unprivileged_port_start.
	if _, ok := ParsePortRange("100-200"); !ok {
		t.Error("ParsePortRange(100-200) refused")
	}
	for _, in := range []string{"", "40000", "40199-40000", "0-100", "1-65536", "a-b", "40000-", "-40000", "40000 40199", "040000-40199"} {
		if r, ok := ParsePortRange(in); ok {
			t.Errorf("ParsePortRange(%q) = %v, want refused", in, r)
		}
	}
}

// sampleReport is a report of four arms, with a name that needs escaping.
func sampleReport() Report {
	r := Report{Isolation: "namespace", App: AppGo, Load: LoadBuiltin, Duration: 20, Concurrency: 20, TimeScale: 0.0056}
	p50, p99, zero := 4.8, 14.7, int64(0)
	for n := 1; n <= 4; n++ {
		arm, _ := ArmByNumber(n)
		a := ArmResult{Arm: n, Name: arm.Name, PortRange: "32768-60999", TwReuse: "2", Requests: int64(30000 * n), Seconds: 20,
			TPS: 1500 * float64(n), LatencyP50: &p50, LatencyP99: &p99, ConnectErrors: &zero}
		a.Advice = []FiredAdvice{}
		for i := range 30 {
			a.TimeWait = append(a.TimeWait, Point{T: float64(i), Value: float64(i * 400 * (n % 2))})
		}
		a.PeakTimeWait = a.TimeWait[len(a.TimeWait)-1].Value
		r.Arms = append(r.Arms, a)
	}
	r.Arms[0].Name = `<app> & "Redis"`
	r.Arms[0].Advice = []FiredAdvice{{ID: "pool", Target: map[string]string{"destination_address": "127.0.0.1", "destination_port": "6379", "source_address": "127.0.0.1"}}}
	r.Arms[2].Advice = []FiredAdvice{{ID: "upstream-keepalive", Target: map[string]string{"port": "5000"}}}
	lifetime := 0.00042
	r.Arms[0].Tracer = &TracerFigures{Opened: 61234, OpensPerSecond: 3061.7, MeanLifetime: &lifetime,
		ConnectFailures: map[string]float64{"EADDRNOTAVAIL": 2538, "ECONNREFUSED": 3, "ETIMEDOUT": 0}}
	return r
}

func TestChartIsWellFormedSVG(t *testing.T) {
	var b bytes.Buffer
	if err := Chart(&b, sampleReport()); err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(&b)
	elements := map[string]int{}
	var root xml.StartElement
	depth := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v", err)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				root = el
			}
			depth++
			elements[el.Name.Local]++
		case xml.EndElement:
			depth--
		}
	}
	if root.Name.Local != "svg" || root.Name.Space != "http://www.w3.org/2000/svg" {
		t.Errorf("root element %v, want svg in the SVG namespace", root.Name)
	}
	// A line per arm, and its dashes over every line.
	if elements["polyline"] != 2*4 {
		t.Errorf("%d polylines, want two per arm", elements["polyline"])
	}
	// The background, a bar per arm and a legend mark per arm. The first
	// arm's name, in the legend, would have broken the XML unescaped.
	if elements["rect"] != 1+4+4 {
		t.Errorf("%d rects, want 9", elements["rect"])
	}
}

// TestChartShowsEveryArm checks what a reader needs: the time axis ends
// with the last sample, the lines that coincide at zero (arms 2 and 4)
// each show in dashes of their own, and the arms are named in the legend
// and on their bars, not numbered.
func TestChartShowsEveryArm(t *testing.T) {
	var b bytes.Buffer
	r := sampleReport()
	if err := Chart(&b, r); err != nil {
		t.Fatal(err)
	}
	svg := b.String()
	lastX := 0.0
	for _, m := range regexp.MustCompile(`points="[^"]*?([0-9.]+),[0-9.]+"`).FindAllStringSubmatch(svg, -1) {
		x, _ := strconv.ParseFloat(m[1], 64)
		lastX = max(lastX, x)
	}
	if lastX != plotRight {
		t.Errorf("the lines end at x=%g, want the end of the axis, %g", lastX, plotRight)
	}
	for _, arm := range r.Arms {
		var name strings.Builder
		xml.EscapeText(&name, []byte(arm.Name))
		if c := strings.Count(svg, ">"+name.String()+"</text>"); c != 2 {
			t.Errorf("arm %d's name %q is written %d times, want in the legend and by its bar", arm.Arm, arm.Name, c)
		}
	}
	for i, color := range []string{"#d62728", "#2ca02c", "#ff7f0e", "#1f77b4"} {
		want := fmt.Sprintf(`stroke="%s" stroke-width="2" stroke-dasharray="6 18" stroke-dashoffset="%d"`, color, -6*i)
		if !strings.Contains(svg, want) {
			t.Errorf("no dashes of arm %d: %s", i+1, want)
		}
	}
	if strings.Contains(svg, ">arm 1<") {
		t.Error("an arm is labelled by its number")
	}
}

func TestTableAndMarkdown(t *testing.T) {
	var text, md bytes.Buffer
	if err := Text(&text, sampleReport()); err != nil {
		t.Fatal(err)
	}
	if err := Markdown(&md, sampleReport()); err != nil {
		t.Fatal(err)
	}
	// The arms' values that follow the table wrap: compare with the
	// text's lines joined.
	joined := strings.Join(strings.Fields(text.String()), " ")
	for _, want := range []string{"pool 127.0.0.1:6379", "upstream-keepalive :5000", "30,000", "1,500", "tcp_tw_reuse 2",
		"3,062", "2,538 EADDRNOTAVAIL, 3 ECONNREFUSED", "0.42"} {
		if !strings.Contains(joined, want) || !strings.Contains(md.String(), want) {
			t.Errorf("the table or the Markdown lacks %q:\n%s\n%s", want, text.String(), md.String())
		}
	}
	conclusions := []string{"pool (arm 1 → 2): ×2.0 TPS, −11,600 TIME_WAIT", "upstream keepalive (arm 3 → 4): ×1.3 TPS, −11,600 TIME_WAIT"}
	for _, want := range conclusions {
		if !strings.Contains(text.String(), want) || !strings.Contains(md.String(), "- "+want+"\n") {
			t.Errorf("the table or the Markdown lacks the conclusion %q:\n%s\n%s", want, text.String(), md.String())
		}
	}
	lines := strings.Split(strings.TrimSpace(md.String()), "\n")
	// Heading, blank line, two conclusions, blank line, header, alignment,
	// four arms.
	if len(lines) != 11 || strings.Count(lines[5], "|") != strings.Count(lines[6], "|") || strings.Count(lines[7], "|") != strings.Count(lines[5], "|") {
		t.Errorf("Markdown table is not a table:\n%s", md.String())
	}
}

// TestTextFitsTheTerminal checks the table at 80, 120 and 300 columns: no
// line is wider, the columns left out follow the table, and a wide
// terminal gets every column in the table.
func TestTextFitsTheTerminal(t *testing.T) {
	r := sampleReport()
	r.Arms[0].Busiest = Peak{Name: "10.0.0.5\x1b[2J:6379", Value: 11600}
	for _, width := range []int{80, 120, 300} {
		var b bytes.Buffer
		if err := StyledText(&b, r, term.Style{Width: width}); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		for line := range strings.Lines(out) {
			if n := utf8.RuneCountInString(strings.TrimSuffix(line, "\n")); n > width {
				t.Errorf("%d columns: a line of %d:\n%s", width, n, line)
			}
		}
		header := strings.Split(out, "\n\n")[2]
		all := width == 300
		if got := strings.Contains(header, "on service ports"); got != all {
			t.Errorf("%d columns: every column in the table %v, want %v:\n%s", width, got, all, out)
		}
		if got := strings.Contains(out, "arm 1: "); got == all {
			t.Errorf("%d columns: the arms' other values follow the table %v, want %v:\n%s", width, got, !all, out)
		}
		if !strings.Contains(out, `10.0.0.5\x1b[2J:6379`) || strings.Contains(out, "\x1b") {
			t.Errorf("%d columns: the destination's escape is not quoted:\n%q", width, out)
		}
	}
	var md bytes.Buffer
	if err := Markdown(&md, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), `10.0.0.5\x1b[2J:6379`) || strings.Contains(md.String(), "\x1b") {
		t.Errorf("Markdown: the destination's escape is not quoted:\n%q", md.String())
	}
}

func TestThousands(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 13155.4: "13,155", 1234567: "1,234,567", -2500: "-2,500"} {
		if got := thousands(v); got != want {
			t.Errorf("thousands(%v) = %q, want %q", v, got, want)
		}
	}
}

// TestBuiltinLoad drives a local server: each worker keeps one connection
// over the turns of the load, the request bound holds over them, and an error page that says the app could not
// get a local port counts as a connect error.
func TestBuiltinLoad(t *testing.T) {
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	var n int
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		odd := n%2 == 1
		mu.Unlock()
		if odd {
			http.Error(w, "dial tcp 127.0.0.1:6379: connect: cannot assign requested address", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "155030303")
	}))
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			mu.Lock()
			conns[c] = true
			mu.Unlock()
		}
	}
	srv.Start()
	defer srv.Close()

	var counters loadCounters
	load := newBuiltinLoad(srv.URL, 4, 1000, &counters)
	// Two turns on the same connections: the bound is the load's, not a
	// turn's.
	res := load.run(context.Background(), 20*time.Millisecond)
	res.add(load.run(context.Background(), 10*time.Second))
	res.add(load.run(context.Background(), 10*time.Second))
	load.close()
	if res.requests != 1000 || res.successes != 500 || res.errors != 500 || *res.connectErrors != 500 {
		t.Errorf("requests %d, successes %d, errors %d, connect errors %d; want 1000, 500, 500, 500",
			res.requests, res.successes, res.errors, *res.connectErrors)
	}
	if counters.requests.Load() != 1000 || counters.errors.Load() != 500 {
		t.Errorf("counters: %d requests, %d errors", counters.requests.Load(), counters.errors.Load())
	}
	if res.latency.Count() != 1000 || res.latency.Quantile(0.5) <= 0 {
		t.Errorf("latency: %d recorded, p50 %v", res.latency.Count(), res.latency.Quantile(0.5))
	}
	mu.Lock()
	if len(conns) != 4 {
		t.Errorf("%d connections for 4 workers, want one each", len(conns))
	}
	mu.Unlock()

	// Bounded in time too: no request bound, a 300 ms duration.
	start := time.Now()
	load = newBuiltinLoad(srv.URL, 2, 0, &counters)
	res = load.run(context.Background(), 300*time.Millisecond)
	load.close()
	if elapsed := time.Since(start); elapsed > 2*time.Second || res.requests == 0 {
		t.Errorf("a 300 ms load took %v for %d requests", elapsed, res.requests)
	}
}

// fakeArm records what Run has an arm do.
type fakeArm struct {
	n    int
	log  *[]string
	mu   *sync.Mutex
	fail string // the step that fails
}

func (f *fakeArm) record(step string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	*f.log = append(*f.log, fmt.Sprintf("%s %d", step, f.n))
	if step == f.fail {
		return fmt.Errorf("%s failed", step)
	}
	return nil
}

func (f *fakeArm) Load(_ context.Context, d time.Duration) error {
	return f.record(fmt.Sprintf("load %v", d))
}

func (f *fakeArm) Finish(context.Context) (ArmResult, error) {
	return ArmResult{Arm: f.n}, f.record("finish")
}

func (f *fakeArm) Close() { _ = f.record("close") }

// TestRunRounds checks the order of the arms' turns: one after the other
// in one round, interleaved in more, and every started arm closed when one
// fails to start or in a turn.
func TestRunRounds(t *testing.T) {
	tests := []struct {
		name   string
		rounds int
		fail   string // of arm 2
		want   []string
		err    string
	}{
		{"one round", 1, "", []string{
			"start 1", "load 6s 1", "finish 1", "close 1", "start 2", "load 6s 2", "finish 2", "close 2",
		}, ""},
		{"three rounds", 3, "", []string{
			// Started together, in any order.
			// In turns, every other round in reverse.
			"start *", "start *", "load 2s 1", "load 2s 2", "load 2s 2", "load 2s 1", "load 2s 1", "load 2s 2",
			// Finished together, in any order; closed after.
			"finish *", "finish *", "close 1", "close 2",
		}, ""},
		{"a turn fails", 3, "load 2s", []string{
			"start *", "start *", "load 2s 1", "load 2s 2", "close 1", "close 2",
		}, "arm 2 (app → Redis, pool): load 2s failed"},
		{"a start fails", 3, "start", []string{
			"start *", "start *", "close 1",
		}, "arm 2 (app → Redis, pool): start failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log []string
			var mu sync.Mutex
			start := func(_ context.Context, arm Arm) (ArmRun, error) {
				f := &fakeArm{n: arm.N, log: &log, mu: &mu}
				if arm.N == 2 {
					f.fail = tt.fail
				}
				if err := f.record("start"); err != nil {
					return nil, err
				}
				return f, nil
			}
			cfg := Config{Arms: []int{1, 2}, Duration: 6 * time.Second, Rounds: tt.rounds}
			r, err := Run(context.Background(), cfg, "test", start)
			if fmt.Sprint(err) != fmt.Sprint(errorOrNil(tt.err)) {
				t.Errorf("error %v, want %q", err, tt.err)
			}
			for i, step := range log {
				if i < len(tt.want) && strings.HasSuffix(tt.want[i], "*") && strings.HasPrefix(step, strings.TrimSuffix(tt.want[i], "*")) {
					log[i] = tt.want[i]
				}
			}
			if !slices.Equal(log, tt.want) {
				t.Errorf("steps %q\nwant  %q", log, tt.want)
			}
			if err == nil && (r.Rounds != tt.rounds || len(r.Arms) != 2 || r.Arms[0].Arm != 1 || r.Arms[1].Arm != 2) {
				t.Errorf("report of %d rounds, arms %+v", r.Rounds, r.Arms)
			}
		})
	}
}

func errorOrNil(s string) error {
	if s == "" {
		return nil
	}
	return errors.New(s)
}

// FuzzParsePortRange checks that any --port-range value parses or fails
// cleanly, and that what parses is a range of real ports, written back as
// given.
func FuzzParsePortRange(f *testing.F) {
	for _, seed := range []string{"40000-40199", "40199-40000", "40000", "0-1", "1-65536", "-1-5", "01-2"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, ok := ParsePortRange(s)
		if ok && (r.Low < 1 || r.Low > r.High || r.High > 65535 || r.String() != s) {
			t.Fatalf("ParsePortRange(%q) = %+v, accepted", s, r)
		}
	})
}

// FuzzParseArms checks that any --arms value parses or fails cleanly, into
// known arms, sorted, without repeats.
func FuzzParseArms(f *testing.F) {
	for _, seed := range []string{"1,2", "4,1,1", "5", "", "1,,2", "+1", "01"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		arms, ok := ParseArms(s)
		if !ok {
			return
		}
		for i, n := range arms {
			if _, known := ArmByNumber(n); !known || i > 0 && arms[i-1] >= n {
				t.Fatalf("ParseArms(%q) = %v", s, arms)
			}
		}
	})
}
