package dashboards

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/procfs"
	"github.com/tcpadvisor/tcpadvisor/advisor"
	"github.com/tcpadvisor/tcpadvisor/advisor/engine"
	"github.com/tcpadvisor/tcpadvisor/exporter"
	"github.com/tcpadvisor/tcpadvisor/exporter/census"
	"github.com/tcpadvisor/tcpadvisor/exporter/netns"
	"github.com/tcpadvisor/tcpadvisor/exporter/owners"
	"github.com/tcpadvisor/tcpadvisor/exporter/sockdiag"
	"github.com/tcpadvisor/tcpadvisor/exporter/sockdiag/sockdiagtest"
	"github.com/tcpadvisor/tcpadvisor/exporter/tracer"
	"github.com/tcpadvisor/tcpadvisor/rules"
)

const (
	dashboardFile = "tcpadvisor.json"
	goldenFile    = "../exporter/testdata/metrics.golden"
	// connectionsGoldenFile is the exposition of the connection tracer's
	// collector, which the real kernel feeds and metrics.golden lacks.
	connectionsGoldenFile = "../exporter/testdata/connections.golden"
	// fixtureDir is the fixture host the golden exposition is made of.
	fixtureDir = "../exporter/testdata"
	// schemaVersion is the Grafana dashboard schema the checks below know:
	// Grafana 10.4 and 11 write it.
	schemaVersion = 39
	// datasourceRef is how every panel and query names its data source: the
	// dashboard's variable, never a uid of one Grafana.
	datasourceRef = "${datasource}"
)

// panelTypes are the panel plugins built into Grafana at schemaVersion 39
// that a dashboard of tcpadvisor may use.
var panelTypes = []string{"timeseries", "stat", "gauge", "bargauge", "table", "text", "row", "heatmap", "state-timeline"}

// requiredMetrics are what the dashboard must show: socket states, TIME_WAIT
// and port pressure per destination, inbound sockets per service port,
// listen-queue fill, sysctls, the firing advice, and the connection
// tracer's churn and connect() failures with whether it runs.
var requiredMetrics = []string{
	"tcpadvisor_sockets",
	"tcpadvisor_outbound_sockets",
	"tcpadvisor_outbound_port_pressure_ratio",
	"tcpadvisor_inbound_sockets",
	"tcpadvisor_listen_queue_length",
	"tcpadvisor_listen_queue_limit",
	"tcpadvisor_sysctl_net_ipv4_tcp_tw_reuse",
	"tcpadvisor_sysctl_net_ipv4_ip_local_port_range_min",
	"tcpadvisor_outbound_owner_sockets",
	"tcpadvisor_inbound_owner_sockets",
	"tcpadvisor_owner_attribution_up",
	"tcpadvisor_owner_attribution_missing",
	"tcpadvisor_netns_collector_success",
	"tcpadvisor_advice_active",
	"tcpadvisor_outbound_connections_opened_total",
	"tcpadvisor_outbound_connect_failures_total",
	"tcpadvisor_tracer_up",
}

// dashboard is the part of the dashboard model the tests read; the rest is
// checked on the raw JSON.
type dashboard struct {
	ID            any    `json:"id"`
	UID           string `json:"uid"`
	Title         string `json:"title"`
	SchemaVersion int    `json:"schemaVersion"`
	Time          struct {
		From string `json:"from"`
		To   string `json:"to"`
	} `json:"time"`
	Templating struct {
		List []variable `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Definition string          `json:"definition"`
	Datasource *datasource     `json:"datasource"`
	Multi      bool            `json:"multi"`
	IncludeAll bool            `json:"includeAll"`
	AllValue   string          `json:"allValue"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	GridPos    *struct {
		X, Y, W, H int
	} `json:"gridPos"`
	Targets []struct {
		RefID      string      `json:"refId"`
		Expr       string      `json:"expr"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // of a collapsed row
}

func readDashboard(t *testing.T) (dashboard, []byte) {
	t.Helper()
	return readDashboardFile(t, dashboardFile)
}

// readDashboardFile returns the dashboard in file, parsed and as it is.
func readDashboardFile(t *testing.T, file string) (dashboard, []byte) {
	t.Helper()
	content, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(content, &d); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return d, content
}

// variables returns the template variables by name.
func (d dashboard) variables() map[string]variable {
	vars := map[string]variable{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v
	}
	return vars
}

// allPanels returns the panels, those of collapsed rows included.
func (d dashboard) allPanels() []panel {
	var all []panel
	for _, p := range d.Panels {
		all = append(all, p)
		all = append(all, p.Panels...)
	}
	return all
}

// grid is the layout of a dashboard's panels on Grafana's 24 columns.
type grid struct{ boxes []box }

type box struct{ x, y, w, h int }

// place checks the gridPos of panel p, called name: a width and a height,
// inside the 24 columns, over no panel placed before. It reports false,
// after an error, where the gridPos is missing or out of the grid.
func (g *grid) place(t *testing.T, name string, p panel) bool {
	t.Helper()
	pos := p.GridPos
	if pos == nil || pos.W <= 0 || pos.H <= 0 || pos.X < 0 || pos.Y < 0 || pos.X+pos.W > 24 {
		t.Errorf("%s: gridPos %+v, want w and h above 0 inside the 24 columns", name, pos)
		return false
	}
	for _, b := range g.boxes {
		if pos.X < b.x+b.w && b.x < pos.X+pos.W && pos.Y < b.y+b.h && b.y < pos.Y+pos.H {
			t.Errorf("%s: gridPos %+v overlaps another panel's %+v", name, *pos, b)
		}
	}
	g.boxes = append(g.boxes, box{pos.X, pos.Y, pos.W, pos.H})
	return true
}

// TestDashboardStructure checks what Grafana needs to import the dashboard
// as it is, at the schema version it declares.
func TestDashboardStructure(t *testing.T) {
	d, content := readDashboard(t)
	var raw map[string]any
	if err := json.Unmarshal(content, &raw); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"title", "uid", "schemaVersion", "panels", "templating", "time", "version", "editable"} {
		if _, ok := raw[key]; !ok {
			t.Errorf("no top-level %q", key)
		}
	}
	// An id is the database key of one Grafana; __inputs and __requires
	// belong to an export that hard-codes its data source.
	for _, key := range []string{"__inputs", "__requires"} {
		if _, ok := raw[key]; ok {
			t.Errorf("top-level %q: the dashboard must import without prompting for a data source", key)
		}
	}
	if d.ID != nil {
		t.Errorf("id %v, want none: Grafana gives one on import", d.ID)
	}
	if d.SchemaVersion != schemaVersion {
		t.Errorf("schemaVersion %d; these checks know %d", d.SchemaVersion, schemaVersion)
	}
	if d.Title == "" || d.UID == "" || len(d.UID) > 40 || !regexp.MustCompile(`^[a-zA-Z0-9_-]+$`).MatchString(d.UID) {
		t.Errorf("title %q, uid %q: want a title and a uid of at most 40 letters, digits, - and _", d.Title, d.UID)
	}
	if d.Time.From == "" || d.Time.To == "" {
		t.Errorf("time %+v, want from and to", d.Time)
	}

	vars := d.variables()
	if v, ok := vars["datasource"]; !ok || v.Type != "datasource" || string(v.Query) != `"prometheus"` {
		t.Errorf("templating: variable datasource %+v, want type datasource with query prometheus", v)
	}
	for _, name := range []string{"job", "instance"} {
		if v, ok := vars[name]; !ok || v.Type != "query" || v.Datasource == nil || v.Datasource.UID != datasourceRef || !v.Multi || !v.IncludeAll {
			t.Errorf("templating: variable %s %+v, want a multi-value query variable with All on %s", name, v, datasourceRef)
		}
	}
	// All must be .*, which matches the series without the label too: an
	// exporter without --collector.netns has no netns label.
	if v, ok := vars["netns"]; !ok || v.Type != "query" || v.Datasource == nil || v.Datasource.UID != datasourceRef || !v.Multi || !v.IncludeAll ||
		v.AllValue != ".*" || v.Definition != `label_values(tcpadvisor_sockets{job=~"$job",instance=~"$instance"}, netns)` {
		t.Errorf("templating: variable netns %+v, want a multi-value query variable of the netns of tcpadvisor_sockets on $instance, with All .* on %s", v, datasourceRef)
	}

	var layout grid
	ids := map[int]bool{}
	for _, p := range d.allPanels() {
		name := fmt.Sprintf("panel %d %q", p.ID, p.Title)
		if p.ID <= 0 || ids[p.ID] {
			t.Errorf("%s: id must be positive and unique", name)
		}
		ids[p.ID] = true
		if p.Title == "" {
			t.Errorf("%s: no title", name)
		}
		if !slices.Contains(panelTypes, p.Type) {
			t.Errorf("%s: type %q is not one of %q", name, p.Type, panelTypes)
		}
		if !layout.place(t, name, p) {
			continue
		}
		if p.Type == "row" || p.Type == "text" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != datasourceRef || p.Datasource.Type != "prometheus" {
			t.Errorf("%s: datasource %+v, want prometheus %s", name, p.Datasource, datasourceRef)
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: no query", name)
		}
		refIDs := map[string]bool{}
		for _, q := range p.Targets {
			if q.RefID == "" || refIDs[q.RefID] {
				t.Errorf("%s: refId %q, want one unique in the panel", name, q.RefID)
			}
			refIDs[q.RefID] = true
			if q.Expr == "" {
				t.Errorf("%s, query %s: no expr", name, q.RefID)
			}
			if q.Datasource != nil && q.Datasource.UID != datasourceRef {
				t.Errorf("%s, query %s: datasource %+v, want %s", name, q.RefID, q.Datasource, datasourceRef)
			}
		}
	}
}

// TestDashboardHardCodesNoDatasource: apart from Grafana's own built-in
// annotations, every data source named anywhere in the JSON is the variable.
func TestDashboardHardCodesNoDatasource(t *testing.T) {
	_, content := readDashboard(t)
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if ds, ok := v["datasource"].(map[string]any); ok {
				if uid := ds["uid"]; uid != datasourceRef && !(ds["type"] == "grafana" && uid == "-- Grafana --") {
					t.Errorf("%s.datasource: uid %v, want %s", path, uid, datasourceRef)
				}
			} else if s, ok := v["datasource"].(string); ok {
				t.Errorf("%s.datasource: %q, want {type, uid: %s}", path, s, datasourceRef)
			}
			for k, e := range v {
				walk(path+"."+k, e)
			}
		case []any:
			for i, e := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), e)
			}
		}
	}
	var raw any
	if err := json.Unmarshal(content, &raw); err != nil {
		t.Fatal(err)
	}
	walk("dashboard", raw)
}

// query is one PromQL query of the dashboard, and where it is.
type query struct {
	where, expr string
}

// queries returns every PromQL query of the dashboard: the panels' and the
// instance variable's metric.
func queries(t *testing.T, d dashboard) []query {
	t.Helper()
	var qs []query
	for _, p := range d.allPanels() {
		for _, q := range p.Targets {
			qs = append(qs, query{fmt.Sprintf("panel %q, query %s", p.Title, q.RefID), q.Expr})
		}
	}
	labelValues := regexp.MustCompile(`^label_values\((.+),\s*\w+\)$`)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := labelValues.FindStringSubmatch(v.Definition)
		if m == nil {
			t.Errorf("variable %s: definition %q, want label_values(SELECTOR, LABEL)", v.Name, v.Definition)
			continue
		}
		if !bytes.Contains(v.Query, []byte(strings.ReplaceAll(v.Definition, `"`, `\"`))) {
			t.Errorf("variable %s: query %s differs from its definition %q", v.Name, v.Query, v.Definition)
		}
		qs = append(qs, query{"variable " + v.Name, m[1]})
	}
	if len(qs) == 0 {
		t.Fatal("no query in the dashboard")
	}
	return qs
}

// grafanaVariables are Grafana's own variables in queries, and a value that
// makes each a valid PromQL duration or regular expression.
var grafanaVariables = strings.NewReplacer(
	"$__rate_interval", "1m",
	"$__interval", "15s",
	"$__range", "1h",
	"$job", ".+",
	"$instance", ".+",
	"$netns", ".*",
)

// goldenMetrics returns the metric names of the exporter's golden
// expositions, the series names of summaries (_sum, _count) included.
func goldenMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	for _, file := range []string{goldenFile, connectionsGoldenFile} {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		found := false
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if fields := strings.Fields(sc.Text()); len(fields) == 4 && fields[0] == "#" && fields[1] == "TYPE" {
				addSeriesNames(names, fields[2], fields[3])
				found = true
			}
		}
		if err := sc.Err(); err != nil || !found {
			t.Fatalf("no metric in %s: %v", file, err)
		}
	}
	return names
}

// addSeriesNames adds to names the names a query reads of the family name
// of type typ (as the exposition's TYPE line spells it).
func addSeriesNames(names map[string]bool, name, typ string) {
	names[name] = true
	if typ == "summary" || typ == "histogram" {
		names[name+"_sum"], names[name+"_count"] = true, true
	}
}

// TestDashboardMetricsAreExported parses every query with the PromQL parser
// and checks that each metric it reads is exported by tcpadvisor, and that
// the dashboard shows what it must. What tcpadvisor exports is the golden
// exposition, which has every family of the default flags, the exposition
// of the fixture host with --collector.netns and the owners' status
// (netnsFamilies), which the exporter's own collectors make, and the
// daemon's advice on that host (withAdvice), which the advisor makes:
// none is a list kept by hand.
func TestDashboardMetricsAreExported(t *testing.T) {
	d, _ := readDashboard(t)
	exported := goldenMetrics(t)
	for _, f := range withAdvice(t, netnsFamilies(t)) {
		addSeriesNames(exported, f.GetName(), strings.ToLower(f.GetType().String()))
	}
	used := map[string]bool{}
	for _, q := range queries(t, d) {
		names, err := engine.MetricNames(grafanaVariables.Replace(q.expr))
		if err != nil {
			t.Errorf("%s: %q: %v", q.where, q.expr, err)
			continue
		}
		if len(names) == 0 {
			t.Errorf("%s: %q reads no metric", q.where, q.expr)
		}
		for _, n := range names {
			used[n] = true
			if !exported[n] {
				t.Errorf("%s: %s is not a metric of tcpadvisor (%s)", q.where, n, goldenFile)
			}
		}
	}
	for _, m := range requiredMetrics {
		if !used[m] {
			t.Errorf("no panel shows %s", m)
		}
	}
}

// goldenFamilies returns the golden expositions, parsed: the exporter's
// and its connection tracer's.
func goldenFamilies(t *testing.T) []*dto.MetricFamily {
	t.Helper()
	var fs []*dto.MetricFamily
	for _, file := range []string{goldenFile, connectionsGoldenFile} {
		golden, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		families, err := parser.TextToMetricFamilies(bytes.NewReader(golden))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for _, f := range families {
			fs = append(fs, f)
		}
	}
	return fs
}

// fixtureOwners names every socket that has a cgroup after one owner.
type fixtureOwners struct{}

func (fixtureOwners) Refresh(context.Context) {}

func (fixtureOwners) Runtime(process string) string {
	if process == "gunicorn" {
		return "python"
	}
	return ""
}

func (fixtureOwners) Lookup(cgroupID uint64, _ uint32) census.Owner {
	if cgroupID == 0 {
		return census.UnknownOwner
	}
	return census.Owner{Unit: "app.service", Process: "gunicorn"}
}

// fixtureTracer drains, once, what the connection tracer would count in
// two network namespaces, inodes 1 (host) and 2 (app-ns): in each, a
// per-request client of Redis that runs out of ports, closing first, and
// connections accepted on port 8000.
type fixtureTracer struct{ drained bool }

func (f *fixtureTracer) Drain() (*tracer.Drained, error) {
	if f.drained {
		return &tracer.Drained{}, nil
	}
	f.drained = true
	var d tracer.Drained
	for _, inode := range []uint32{1, 2} {
		d.Outbound = append(d.Outbound, tracer.Outbound{
			Netns: inode, Cgroup: 100, Process: "gunicorn",
			Source: netip.MustParseAddr("10.0.0.1"), Destination: netip.MustParseAddr("10.0.0.5"), Port: 6379,
			Counts: tracer.OutboundCounts{
				Opened: 1000, Closed: [tracer.NumClosers]uint64{tracer.ClosedLocal: 990},
				Failed:        [tracer.NumFailures]uint64{tracer.FailureEADDRNOTAVAIL: 120},
				LifetimeNanos: 990 * 400_000, Lifetimes: 990,
			},
		})
		d.Inbound = append(d.Inbound, tracer.Inbound{Netns: inode, Port: 8000, Counts: tracer.InboundCounts{Accepted: 500}})
	}
	return &d, nil
}

func (*fixtureTracer) Sockets(func(uint32, uint64, string)) error { return nil }
func (*fixtureTracer) Hook() string                               { return tracer.HookBTF }
func (*fixtureTracer) Close() error                               { return nil }

// netnsFamilies returns what tcpadvisor exports on the fixture host of the
// golden exposition with --collector.netns, made by the exporter's own
// collectors: two network namespaces, host and app-ns (whose ephemeral
// range is narrower), each read by the sockets, sysctl, netstat and
// sockstat collectors and seen by the connection tracer (fixtureTracer),
// every series labelled netns; and the owners' status of an exporter
// without CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH.
func netnsFamilies(t *testing.T) []*dto.MetricFamily {
	t.Helper()
	sockets, err := sockdiagtest.ReadFixture(fixtureDir + "/sockets.txt")
	if err != nil {
		t.Fatal(err)
	}
	fs, err := procfs.NewFS(fixtureDir + "/proc")
	if err != nil {
		t.Fatal(err)
	}
	ranges := map[string]census.EphemeralRange{"host": {Low: 32768, High: 60999}, "app-ns": {Low: 40000, High: 49999}}
	build := func(ns netns.Namespace) (map[string]exporter.Collector, error) {
		labels := prometheus.Labels{exporter.NetnsLabel: ns.Name}
		conn := &sockdiagtest.Conn{Sockets: sockets}
		return map[string]exporter.Collector{
			"sockets": exporter.NewSocketsCollector(exporter.SocketsSources{
				Dial:      func() (sockdiag.Conn, error) { return conn, nil },
				Ephemeral: func() (census.EphemeralRange, error) { return ranges[ns.Name], nil },
				Owners:    fixtureOwners{},
			}, census.Limits{TopDestinations: 3, MaxServicePorts: 4, TopOwners: 3}, labels),
			"sysctl":   exporter.NewSysctlCollector(fs, fixtureDir+"/proc", labels),
			"netstat":  exporter.NewNetstatCollector(fs.Self, labels),
			"sockstat": exporter.NewSockstatCollector(fs, labels),
		}, nil
	}
	e := exporter.New(map[string]exporter.Collector{
		"netns": exporter.NewNamespacesCollector(
			func() (netns.Discovery, error) {
				return netns.Discovery{Namespaces: []netns.Namespace{{Name: "host", Inode: 1}, {Name: "app-ns", Inode: 2}}}, nil
			},
			func(_ context.Context, _ netns.Namespace, fn func() error) error { return fn() },
			build, fixtureOwners{}, slog.New(slog.DiscardHandler)),
		"connections": exporter.NewConnectionsCollector(exporter.ConnectionsSources{
			Load:      func() (exporter.ConnectionTracer, error) { return &fixtureTracer{}, nil },
			NetnsName: func(inode uint32) string { return map[uint32]string{1: "host", 2: "app-ns"}[inode] },
			Owners:    fixtureOwners{},
		}, census.Limits{TopDestinations: 3, MaxServicePorts: 4, TopOwners: 3}, 64, slog.New(slog.DiscardHandler)),
		"owners": exporter.NewOwnersCollector(func() owners.Status {
			return owners.Status{CgroupUp: true, ProcessesUnreadable: 12, Missing: []string{"CAP_DAC_READ_SEARCH", "CAP_SYS_PTRACE"}}
		}),
	}, 2*time.Second, slog.New(slog.DiscardHandler))
	registry := prometheus.NewRegistry()
	registry.MustRegister(e)
	families, err := registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "tcpadvisor_scrape_collector_success" {
			for _, m := range f.GetMetric() {
				if m.GetGauge().GetValue() != 1 {
					t.Fatalf("the netns fixture's collector failed: %v", m)
				}
			}
		}
	}
	return families
}

// sampledEngine returns the advisor's engine after sampling families every
// 15 s for five minutes with the project's rules (which write ALERTS as
// Prometheus does), their windows scaled so that the fixture's advice
// fires.
func sampledEngine(t *testing.T, families []*dto.MetricFamily) *engine.Engine {
	t.Helper()
	gatherer := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) { return families, nil })
	e, err := engine.New(engine.Options{
		Bundled:   rules.Files,
		Interval:  15 * time.Second,
		TimeScale: 0.01,
		Labels:    map[string]string{"instance": "fixture:10067", "job": "tcpadvisor"},
	}, gatherer)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	start := time.Now().Add(-5 * time.Minute)
	for i := range 21 {
		if err := e.Cycle(context.Background(), start.Add(time.Duration(i)*15*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// adviceMetric is the daemon's advice, which its advisor exports beside the
// exporter's metrics.
const adviceMetric = "tcpadvisor_advice_active"

// withAdvice returns families with the daemon's advice on them: the
// advisor's tcpadvisor_advice_active, as the daemon serves it, of the
// project's rules sampled over families.
func withAdvice(t *testing.T, families []*dto.MetricFamily) []*dto.MetricFamily {
	t.Helper()
	registry := prometheus.NewRegistry()
	registry.MustRegister(advisor.NewCollector(advisor.New(sampledEngine(t, families), nil)))
	advice, err := registry.Gather()
	if err != nil || len(advice) != 1 || advice[0].GetName() != adviceMetric {
		t.Fatalf("the advisor exports %v (%v), want %s", advice, err, adviceMetric)
	}
	return append(slices.Clone(families), advice...)
}

// TestDashboardQueriesHaveData runs every query over the netns fixture, and
// every query of the families of the golden exposition (no netns label)
// over it too, sampled by the advisor's engine: every panel has data with
// --collector.netns, and without it but for what only the flag or the
// owners' status give. A query that asks for a label the metric does not
// have finds nothing, and fails here.
func TestDashboardQueriesHaveData(t *testing.T) {
	d, _ := readDashboard(t)
	golden := goldenMetrics(t)
	for name, families := range map[string][]*dto.MetricFamily{
		"the fixture host":                        withAdvice(t, goldenFamilies(t)),
		"the fixture host with --collector.netns": withAdvice(t, netnsFamilies(t)),
	} {
		e := sampledEngine(t, families)
		for _, q := range queries(t, d) {
			expr := grafanaVariables.Replace(q.expr)
			names, err := engine.MetricNames(expr)
			if err != nil {
				t.Fatal(err)
			}
			if name == "the fixture host" && slices.ContainsFunc(names, func(n string) bool { return !golden[n] && n != adviceMetric }) {
				continue
			}
			samples, err := e.Query(context.Background(), expr)
			if err != nil {
				t.Errorf("%s: %q: %v", q.where, expr, err)
			} else if len(samples) == 0 {
				t.Errorf("%s: %q finds nothing on %s", q.where, expr, name)
			}
		}
	}
}

// TestDashboardFollowsNetns checks that every query of a per-namespace
// family follows $netns: with a namespace selected, what a query finds
// on the netns fixture is of that namespace only, and with a namespace
// that does not exist, it finds nothing. Queries of host-wide families
// (the collectors' and owners' status) find data whatever is selected.
// Which families are per namespace is what the exporter labels netns.
func TestDashboardFollowsNetns(t *testing.T) {
	families := withAdvice(t, netnsFamilies(t))
	perNamespace := map[string]bool{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == exporter.NetnsLabel {
					addSeriesNames(perNamespace, f.GetName(), strings.ToLower(f.GetType().String()))
				}
			}
		}
	}
	if !perNamespace["tcpadvisor_sockets"] || perNamespace["tcpadvisor_scrape_collector_success"] {
		t.Fatalf("the netns fixture labels %v with netns, want tcpadvisor_sockets and not the exporter's own", perNamespace)
	}
	e := sampledEngine(t, families)
	d, _ := readDashboard(t)
	for _, q := range queries(t, d) {
		// The variables list the instances and namespaces to select.
		if strings.HasPrefix(q.where, "variable") {
			continue
		}
		names, err := engine.MetricNames(grafanaVariables.Replace(q.expr))
		if err != nil {
			t.Fatal(err)
		}
		reads := slices.ContainsFunc(names, func(n string) bool { return perNamespace[n] })
		for _, selected := range []string{"app-ns", "no-such-netns"} {
			expr := strings.NewReplacer("$netns", selected).Replace(q.expr)
			samples, err := e.Query(context.Background(), grafanaVariables.Replace(expr))
			if err != nil {
				t.Fatalf("%s: %q: %v", q.where, expr, err)
			}
			switch {
			case !reads && len(samples) == 0:
				t.Errorf("%s: %q reads no per-namespace family, yet finds nothing with netns %s selected", q.where, expr, selected)
			case reads && selected == "app-ns" && len(samples) == 0:
				t.Errorf("%s: %q finds nothing in namespace app-ns", q.where, expr)
			case reads && selected == "no-such-netns" && len(samples) > 0:
				t.Errorf("%s: %q ignores $netns: finds %d series in a namespace that does not exist", q.where, expr, len(samples))
			}
			for _, s := range samples {
				if ns, ok := s.Labels[exporter.NetnsLabel]; reads && ok && ns != selected {
					t.Errorf("%s: %q finds %v, of another namespace than %s", q.where, expr, s.Labels, selected)
				}
			}
		}
	}
}

// TestDashboardAdviceAndSettings checks the panels a user reads first: the
// advice table reads the daemon's advice and links each advice to its
// section of docs/advice.md, the kernel settings are one table, and every
// panel query follows $job as it follows $instance.
func TestDashboardAdviceAndSettings(t *testing.T) {
	_, content := readDashboard(t)
	var raw struct {
		Panels []struct {
			ID      int    `json:"id"`
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
			FieldConfig struct {
				Overrides []struct {
					Matcher struct {
						Options string `json:"options"`
					} `json:"matcher"`
					Properties []struct {
						ID    string          `json:"id"`
						Value json.RawMessage `json:"value"`
					} `json:"properties"`
				} `json:"overrides"`
			} `json:"fieldConfig"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(content, &raw); err != nil {
		t.Fatal(err)
	}
	var advice, settings bool
	for _, p := range raw.Panels {
		for _, target := range p.Targets {
			if strings.Contains(target.Expr, `instance=~"$instance"`) && !strings.Contains(target.Expr, `job=~"$job",instance=~"$instance"`) {
				t.Errorf("panel %d %q: %q does not follow $job", p.ID, p.Title, target.Expr)
			}
		}
		switch p.Title {
		case "Firing advice":
			advice = true
			if p.Type != "table" || len(p.Targets) != 1 || !strings.HasPrefix(p.Targets[0].Expr, "tcpadvisor_advice_active{") {
				t.Errorf("panel %q: a %s of %+v, want a table of tcpadvisor_advice_active", p.Title, p.Type, p.Targets)
			}
			var links []string
			for _, o := range p.FieldConfig.Overrides {
				for _, prop := range o.Properties {
					var values []struct {
						URL string `json:"url"`
					}
					if o.Matcher.Options == "advice" && prop.ID == "links" && json.Unmarshal(prop.Value, &values) == nil {
						for _, v := range values {
							links = append(links, v.URL)
						}
					}
				}
			}
			if len(links) == 0 || slices.ContainsFunc(links, func(u string) bool { return !strings.HasSuffix(u, "/docs/advice.md#${__value.raw}") }) {
				t.Errorf("panel %q: the advice column links %q, want docs/advice.md#<advice>", p.Title, links)
			}
		case "Kernel settings":
			settings = true
			if p.Type != "table" {
				t.Errorf("panel %q is a %s, want one table", p.Title, p.Type)
			}
		}
	}
	if !advice || !settings {
		t.Errorf("firing advice panel %v, kernel settings panel %v; want both", advice, settings)
	}
}
