package fleet

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	neturl "net/url"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/config"
	"github.com/tcpadvisor/tcpadvisor/internal/netnstest"
)

// instances is the size of the synthetic fleet.
const instances = 50

// startSyntheticFleet starts a fixture exporter serving the exporter's
// golden metrics, and a Prometheus (with the rules, scaled) that scrapes it
// as fifty instances, host-00 to host-49; it returns the Prometheus URL
// once every instance has firing advice.
func startSyntheticFleet(t testing.TB) string {
	t.Helper()
	golden, err := os.ReadFile("../exporter/testdata/metrics.golden")
	if err != nil {
		t.Fatal(err)
	}
	fixture := netnstest.FreeAddress(t)
	server := &http.Server{Addr: fixture, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		w.Write(golden)
	})}
	go server.ListenAndServe()
	t.Cleanup(func() { server.Close() })
	var targets []scrapeTarget
	for i := range instances {
		targets = append(targets, scrapeTarget{Address: fixture, Instance: fmt.Sprintf("host-%02d", i)})
	}
	addr := netnstest.FreeAddress(t)
	startPrometheus(t, "", addr, targets, true, prometheusAccess{})
	url := "http://" + addr
	c := newTestClient(t, url, "")
	deadline := time.Now().Add(60 * time.Second)
	for {
		samples, err := c.query(context.Background(), `count(count by (instance) (ALERTS{alertstate="firing",advice!=""}))`)
		if err == nil && len(samples) == 1 && samples[0].Value == instances {
			return url
		}
		if time.Now().After(deadline) {
			t.Fatalf("not every instance has firing advice after 60 s: %v %v", samples, err)
		}
		time.Sleep(time.Second)
	}
}

func newTestClient(t testing.TB, url, match string) *Client {
	t.Helper()
	c, err := NewClient(Options{URL: url, HTTP: config.DefaultHTTPClientConfig, Match: match})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// TestIntegrationFleetCost: the advice of fifty instances takes as many
// queries as the advice of one: none is asked per host; and readers of the
// fleet page at once cost the server one report.
func TestIntegrationFleetCost(t *testing.T) {
	url := startSyntheticFleet(t)
	t.Run("readers at once share a report", func(t *testing.T) { testReadersShareAReport(t, url) })
	one := newTestClient(t, url, `{instance="host-07"}`)
	oneReport, err := Build(context.Background(), one, time.Now(), discard)
	if err != nil {
		t.Fatal(err)
	}
	all := newTestClient(t, url, "")
	allReport, err := Build(context.Background(), all, time.Now(), discard)
	if err != nil {
		t.Fatal(err)
	}
	hosts := func(r Report) int {
		seen := map[string]bool{}
		for _, a := range r.Advice {
			seen[a.Instance] = true
		}
		return len(seen)
	}
	t.Logf("one instance: %d advice, %+v; %d instances: %d advice, %+v", len(oneReport.Advice), oneReport.Cost, instances, len(allReport.Advice), allReport.Cost)
	if hosts(oneReport) != 1 || hosts(allReport) != instances {
		t.Fatalf("advice for %d and %d hosts, want 1 and %d", hosts(oneReport), hosts(allReport), instances)
	}
	if len(allReport.Advice) != instances*len(oneReport.Advice) {
		t.Errorf("%d advice for %d instances, want %d times the %d of one", len(allReport.Advice), instances, instances, len(oneReport.Advice))
	}
	if allReport.Cost.Queries != oneReport.Cost.Queries {
		t.Errorf("%d queries for %d instances, %d for one: want the same", allReport.Cost.Queries, instances, oneReport.Cost.Queries)
	}
	if allReport.Cost.Series > instances*oneReport.Cost.Series {
		t.Errorf("%d series read for %d instances, more than %d times the %d of one", allReport.Cost.Series, instances, instances, oneReport.Cost.Series)
	}
}

// testReadersShareAReport serves the fleet page from the Prometheus at url
// behind a proxy that counts the requests and delays each by 100 ms (the
// fault injected, so that readers arrive while a report is built): ten
// readers at once ask the server what one reader alone asks, and all get
// the same report.
func testReadersShareAReport(t *testing.T, url string) {
	target, err := neturl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	var requests atomic.Int64
	proxy := httputil.NewSingleHostReverseProxy(target)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		time.Sleep(100 * time.Millisecond)
		proxy.ServeHTTP(w, r)
	}))
	defer slow.Close()
	page := httptest.NewServer(Handler(newTestClient(t, slow.URL, ""), 30*time.Second, discard))
	defer page.Close()
	read := func() (string, error) {
		resp, err := http.Get(page.URL + "/advice?format=json")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("%s: %s", resp.Status, body)
		}
		return string(body), err
	}
	if _, err := read(); err != nil {
		t.Fatal(err)
	}
	alone := requests.Swap(0)

	const readers = 10
	bodies := make([]string, readers)
	errs := make([]error, readers)
	var wg sync.WaitGroup
	for i := range readers {
		wg.Go(func() { bodies[i], errs[i] = read() })
	}
	wg.Wait()
	for i := range readers {
		if errs[i] != nil {
			t.Fatalf("reader %d: %v", i, errs[i])
		}
		if bodies[i] != bodies[0] {
			t.Errorf("reader %d got another report than reader 0", i)
		}
	}
	if together := requests.Load(); together != alone {
		t.Errorf("%d readers at once made %d requests to the server, one reader alone %d: want the same", readers, together, alone)
	}
}

// BenchmarkFleetAdvice50 builds the advice of fifty instances from a real
// Prometheus, and reports the queries and series it reads.
func BenchmarkFleetAdvice50(b *testing.B) {
	url := startSyntheticFleet(b)
	var cost Cost
	var advice int
	for b.Loop() {
		c := newTestClient(b, url, "")
		report, err := Build(context.Background(), c, time.Now(), discard)
		if err != nil {
			b.Fatal(err)
		}
		cost, advice = report.Cost, len(report.Advice)
	}
	b.ReportMetric(float64(cost.Queries), "queries/op")
	b.ReportMetric(float64(cost.Series), "series/op")
	b.ReportMetric(float64(advice), "advice/op")
}
