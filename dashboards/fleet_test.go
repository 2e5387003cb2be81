package dashboards

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/tcpadvisor/tcpadvisor/advisor/engine"
)

// The fleet dashboard, fleet.json, shows every host at once. Its checks
// share the single-host dashboard's readers (dashboard, queries,
// goldenMetrics, sampledEngine) and add the fleet's own.

const fleetDashboardFile = "fleet.json"

// fleetRequiredMetrics are what the fleet dashboard must show: port
// pressure per destination across hosts, the owners that churn, the
// server ends, the firing advice, and the connection tracer's openers and
// connect() failures.
var fleetRequiredMetrics = []string{
	"ALERTS",
	"tcpadvisor_outbound_port_pressure_ratio",
	"tcpadvisor_outbound_sockets",
	"tcpadvisor_outbound_owner_sockets",
	"tcpadvisor_inbound_sockets",
	"tcpadvisor_inbound_owner_sockets",
	"tcpadvisor_tcpext_tw_total",
	"tcpadvisor_outbound_connections_opened_total",
	"tcpadvisor_outbound_connect_failures_total",
}

func readFleetDashboard(t *testing.T) dashboard {
	t.Helper()
	d, content := readDashboardFile(t, fleetDashboardFile)
	var raw map[string]any
	if err := json.Unmarshal(content, &raw); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"__inputs", "__requires", "id"} {
		if _, ok := raw[key]; ok {
			t.Errorf("%s: top-level %q: the dashboard must import as it is, without a data source or database id of one Grafana", fleetDashboardFile, key)
		}
	}
	// Every uid but the dashboard's own is the data source variable or
	// Grafana's built-in annotations.
	text := string(content)
	if others := strings.Count(text, `"uid": "`) - strings.Count(text, `"uid": "${datasource}"`) - strings.Count(text, `"uid": "-- Grafana --"`); others != 1 {
		t.Errorf("%s: %d uids besides the data source variable's and Grafana's, want the dashboard's only", fleetDashboardFile, others)
	}
	return d
}

// fleetVariables are the fleet dashboard's variables and Grafana's, with a
// value that selects the golden exposition's job.
var fleetVariables = strings.NewReplacer("$job", "tcpadvisor", "$__rate_interval", "1m", "$__interval", "15s")

func TestFleetDashboardStructure(t *testing.T) {
	d := readFleetDashboard(t)
	single, _ := readDashboard(t)
	if d.SchemaVersion != schemaVersion || d.UID == "" || d.UID == single.UID || d.Title == "" {
		t.Errorf("schemaVersion %d, uid %q, title %q: want %d, a uid of its own beside %q, a title", d.SchemaVersion, d.UID, d.Title, schemaVersion, single.UID)
	}
	vars := d.variables()
	if v, ok := vars["datasource"]; !ok || v.Type != "datasource" || string(v.Query) != `"prometheus"` {
		t.Errorf("variable datasource %+v, want type datasource with query prometheus", v)
	}
	if v, ok := vars["job"]; !ok || v.Type != "query" || v.Datasource == nil || v.Datasource.UID != datasourceRef || !v.Multi || !v.IncludeAll || v.AllValue != ".+" {
		t.Errorf("variable job %+v, want a multi-value query variable with All .+ on %s", v, datasourceRef)
	}
	ids := map[int]bool{}
	var layout grid
	for _, p := range d.allPanels() {
		name := fmt.Sprintf("panel %d %q", p.ID, p.Title)
		if p.ID <= 0 || ids[p.ID] || p.Title == "" || !slices.Contains(panelTypes, p.Type) {
			t.Errorf("%s: want a unique positive id, a title and a type of %q", name, panelTypes)
		}
		ids[p.ID] = true
		if !layout.place(t, name, p) {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != datasourceRef || len(p.Targets) == 0 {
			t.Errorf("%s: datasource %+v and %d queries, want %s and a query", name, p.Datasource, len(p.Targets), datasourceRef)
		}
		for _, q := range p.Targets {
			if !strings.Contains(q.Expr, `job=~"$job"`) {
				t.Errorf("%s: %q does not follow $job", name, q.Expr)
			}
			if p.Type == "table" && !strings.Contains(q.Expr, "topk") && !strings.HasPrefix(q.Expr, "ALERTS") {
				t.Errorf("%s: %q is unbounded across the fleet: use topk", name, q.Expr)
			}
		}
	}
}

// TestFleetDashboardMetricsAreExported parses every query with the PromQL
// parser and checks that each metric it reads is exported by tcpadvisor (its
// golden exposition) or is ALERTS, and that it shows what it must.
func TestFleetDashboardMetricsAreExported(t *testing.T) {
	d := readFleetDashboard(t)
	exported := goldenMetrics(t)
	used := map[string]bool{}
	for _, q := range queries(t, d) {
		names, err := engine.MetricNames(fleetVariables.Replace(q.expr))
		if err != nil || len(names) == 0 {
			t.Errorf("%s: %q: %v, %d metrics", q.where, q.expr, err, len(names))
			continue
		}
		for _, n := range names {
			used[n] = true
			if !exported[n] && n != "ALERTS" {
				t.Errorf("%s: %s is not a metric of tcpadvisor (%s)", q.where, n, goldenFile)
			}
		}
	}
	for _, m := range fleetRequiredMetrics {
		if !used[m] {
			t.Errorf("no panel of %s shows %s", fleetDashboardFile, m)
		}
	}
}

// TestFleetDashboardQueriesHaveData runs every query over the golden
// exposition sampled by the advisor's engine: each finds something with
// $job selecting it, and nothing with a job that does not exist.
func TestFleetDashboardQueriesHaveData(t *testing.T) {
	d := readFleetDashboard(t)
	e := sampledEngine(t, goldenFamilies(t))
	for _, q := range queries(t, d) {
		if strings.HasPrefix(q.where, "variable") {
			continue
		}
		expr := fleetVariables.Replace(q.expr)
		samples, err := e.Query(context.Background(), expr)
		if err != nil || len(samples) == 0 {
			t.Errorf("%s: %q: %v, finds nothing in the golden exposition", q.where, expr, err)
		}
		other := strings.ReplaceAll(q.expr, "$job", "no-such-job")
		other = fleetVariables.Replace(other)
		if samples, err := e.Query(context.Background(), other); err != nil || len(samples) != 0 {
			t.Errorf("%s: %q: %v, %d samples; want nothing of another job", q.where, other, err, len(samples))
		}
	}
}
