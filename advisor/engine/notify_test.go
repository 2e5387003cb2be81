package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tcpadvisor/tcpadvisor/internal/netnstest"
)

// fireAndResolve runs cycles one second apart from start until the test
// alert fires, five more, then until it resolves; each must take less than
// limit.
func fireAndResolve(t *testing.T, e *Engine, src *source, start time.Time, limit time.Duration) {
	t.Helper()
	src.gauge("tcpadvisor_outbound_port_pressure_ratio", 0.9, redis...)
	for i := range 70 {
		if i == 65 {
			src.gauge("tcpadvisor_outbound_port_pressure_ratio", 0.1, redis...)
		}
		begin := time.Now()
		cycle(t, e, start.Add(time.Duration(i)*time.Second))
		if d := time.Since(begin); d > limit {
			t.Fatalf("cycle %d took %v, want less than %v", i, d, limit)
		}
	}
}

func TestDeadAlertmanagerBlocksNothing(t *testing.T) {
	src, reg := newSource(t)
	e := newEngine(t, Options{
		RuleFiles:     []string{"testdata/alerts.yml"},
		Interval:      time.Second,
		Alertmanagers: []string{"http://" + netnstest.FreeAddress(t)},
	}, reg)
	fireAndResolve(t, e, src, t0, 200*time.Millisecond)
	begin := time.Now()
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(begin); d > time.Second {
		t.Errorf("Close took %v with a refusing Alertmanager, want less than a second", d)
	}
}

// TestHangingAlertmanagerBlocksNothing has an Alertmanager that accepts
// connections and never answers: cycles go on, and stopping gives up on
// the queued alerts after drainGrace.
func TestHangingAlertmanagerBlocksNothing(t *testing.T) {
	hang := make(chan struct{})
	var mu sync.Mutex
	requests := 0
	am := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests++
		mu.Unlock()
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer am.Close()
	defer close(hang)

	src, reg := newSource(t)
	e := newEngine(t, Options{
		RuleFiles:     []string{"testdata/alerts.yml"},
		Interval:      time.Second,
		Alertmanagers: []string{am.URL},
	}, reg)
	fireAndResolve(t, e, src, t0, 200*time.Millisecond)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	begin := time.Now()
	if err := e.Run(ctx, nil); err != nil { // one cycle, then the stop
		t.Fatal(err)
	}
	if d := time.Since(begin); d > drainGrace+time.Second {
		t.Errorf("Run took %v to stop with a hanging Alertmanager, want at most %v", d, drainGrace+time.Second)
	}
	mu.Lock()
	defer mu.Unlock()
	if requests == 0 {
		t.Error("the Alertmanager got no request")
	}
}

// TestIntegrationAlertmanager sends alerts to Debian's
// prometheus-alertmanager and reads them back from its API v2 and from the
// webhook it notifies.
func TestIntegrationAlertmanager(t *testing.T) {
	bin, err := exec.LookPath("prometheus-alertmanager")
	if err != nil {
		t.Skip("prometheus-alertmanager is not installed (apt-get install prometheus-alertmanager; test.sh installs it)")
	}

	notifications := make(chan webhookMessage, 100)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m webhookMessage
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			t.Errorf("webhook: %v", err)
		}
		notifications <- m
	}))
	defer hook.Close()

	amURL := startAlertmanager(t, bin, hook.URL+"/hook")
	src, reg := newSource(t)
	e := newEngine(t, Options{
		RuleFiles:     []string{"testdata/alerts.yml"},
		Interval:      time.Second,
		Alertmanagers: []string{amURL},
		ExternalURL:   "http://host-a:10067/",
	}, reg)

	// Cycles a second apart, two minutes back: the alert fires a minute
	// ago with an end four resend delays after that, in the future.
	start := time.Now().Add(-2 * time.Minute).Truncate(time.Second)
	src.gauge("tcpadvisor_outbound_port_pressure_ratio", 0.9, redis...)
	src.gauge("tcpadvisor_outbound_sockets", 12000, append(redis, "state", "time_wait")...)
	i := 0
	for ; i <= 60; i++ {
		cycle(t, e, start.Add(time.Duration(i)*time.Second))
	}
	if a := e.Alerts(); len(a) != 1 || a[0].State != "firing" {
		t.Fatalf("alerts %+v, want one firing", a)
	}

	wantLabels := map[string]string{
		"alertname": "TcpadvisorPortPressureHigh", "severity": "warning", "instance": "host-a:10067", "job": "tcpadvisor",
		"source_address": "10.0.0.1", "destination_address": "10.0.0.5", "destination_port": "6379",
	}
	wantAnnotations := map[string]string{
		"summary":     "10.0.0.5:6379 holds 90% of the ephemeral ports",
		"description": "12000 sockets in TIME_WAIT toward it.",
		"runbook_url": "https://example.invalid/runbook#port-pressure",
	}
	wantGenerator := "http://host-a:10067/graph?g0.expr=" + url.QueryEscape("tcpadvisor_outbound_port_pressure_ratio > 0.5") + "&g0.tab=1"

	var listed []apiAlert
	deadline := time.Now().Add(30 * time.Second)
	for len(listed) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("after 30s, Alertmanager's /api/v2/alerts does not list the alert")
		}
		time.Sleep(100 * time.Millisecond)
		listed = getAlerts(t, amURL)
	}
	if len(listed) != 1 {
		t.Fatalf("Alertmanager lists %d alerts, want 1: %+v", len(listed), listed)
	}
	a := listed[0]
	if !reflect.DeepEqual(a.Labels, wantLabels) || !reflect.DeepEqual(a.Annotations, wantAnnotations) || a.GeneratorURL != wantGenerator || a.Status.State != "active" {
		t.Errorf("Alertmanager lists\n%+v\nwant labels %v, annotations %v, generatorURL %s, state active", a, wantLabels, wantAnnotations, wantGenerator)
	}
	if want := start.Add(60 * time.Second); !a.StartsAt.Equal(want) {
		t.Errorf("startsAt %v, want the firing time %v", a.StartsAt, want)
	}

	src.gauge("tcpadvisor_outbound_port_pressure_ratio", 0.1, redis...)
	cycle(t, e, start.Add(time.Duration(i)*time.Second))
	assertAlerts(t, e)

	timeout := time.After(30 * time.Second)
	for {
		select {
		case m := <-notifications:
			if m.Status != "resolved" {
				continue // the firing notification comes first
			}
			if len(m.Alerts) != 1 || m.Alerts[0].Status != "resolved" || !reflect.DeepEqual(m.Alerts[0].Labels, wantLabels) {
				t.Fatalf("resolved notification %+v, want the alert with labels %v", m, wantLabels)
			}
			if want := start.Add(time.Duration(i) * time.Second); !m.Alerts[0].EndsAt.Equal(want) {
				t.Errorf("endsAt %v, want the resolving cycle's time %v", m.Alerts[0].EndsAt, want)
			}
			return
		case <-timeout:
			t.Fatal("after 30s, the webhook got no resolved notification")
		}
	}
}

type apiAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	GeneratorURL string            `json:"generatorURL"`
	StartsAt     time.Time         `json:"startsAt"`
	Status       struct {
		State string `json:"state"`
	} `json:"status"`
}

type webhookMessage struct {
	Status string `json:"status"`
	Alerts []struct {
		Status string            `json:"status"`
		Labels map[string]string `json:"labels"`
		EndsAt time.Time         `json:"endsAt"`
	} `json:"alerts"`
}

func getAlerts(t *testing.T, amURL string) []apiAlert {
	t.Helper()
	resp, err := http.Get(amURL + "/api/v2/alerts")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v2/alerts: %s", resp.Status)
	}
	var alerts []apiAlert
	if err := json.NewDecoder(resp.Body).Decode(&alerts); err != nil {
		t.Fatal(err)
	}
	return alerts
}

// startAlertmanager starts bin on a free local port with a route to
// webhook, and stops it (by its PID) when the test ends.
func startAlertmanager(t *testing.T, bin, webhook string) string {
	t.Helper()
	dir := t.TempDir()
	config := fmt.Sprintf(`route:
  receiver: webhook
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: webhook
    webhook_configs:
      - url: %s
        send_resolved: true
`, webhook)
	configFile := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(configFile, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := netnstest.FreeAddress(t)
	var output syncBuffer
	cmd := exec.Command(bin,
		"--config.file="+configFile,
		"--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--cluster.listen-address=", // no gossip: a single instance
	)
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("alertmanager output:\n%s", output.String())
		}
	})

	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		select {
		case <-exited:
			t.Fatalf("alertmanager exited: %v\n%s", waitErr, output.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("alertmanager not ready on %s after 30s:\n%s", addr, output.String())
		}
	}
}

// syncBuffer collects a process's output while the test may read it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestAlertmanagerURLs(t *testing.T) {
	cfg, target, err := alertmanagerConfig("https://advisor:s3cret@am.example:9093/prefix/")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Scheme != "https" || cfg.PathPrefix != "/prefix" || string(cfg.APIVersion) != "v2" || string(target["__address__"]) != "am.example:9093" {
		t.Errorf("config %+v, target %v", cfg, target)
	}
	if ba := cfg.HTTPClientConfig.BasicAuth; ba == nil || ba.Username != "advisor" || string(ba.Password) != "s3cret" {
		t.Errorf("basic auth %+v, want advisor / s3cret", ba)
	}
	for _, bad := range []string{"am.example:9093", "ftp://am.example", "http://", "http://am.example:9093/?x=1", "http://am.example#f"} {
		if _, _, err := alertmanagerConfig(bad); err == nil {
			t.Errorf("alertmanagerConfig(%q): no error", bad)
		}
	}
}
