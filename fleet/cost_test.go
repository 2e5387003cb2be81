package fleet

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/prometheus/common/config"
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
	fixture := freeAddress(t)
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
	addr := freeAddress(t)
	startPrometheus(t, "", addr, targets, true, "")
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
// queries as the advice of one: none is asked per host.
func TestIntegrationFleetCost(t *testing.T) {
	url := startSyntheticFleet(t)
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
