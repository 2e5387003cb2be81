package dashboards

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"testing"
)

var update = flag.Bool("update", false, "regenerate tcpadvisor-netns.json from tcpadvisor.json")

// netnsDashboardFile is the dashboard for exporters run with
// --collector.netns. Grafana cannot hide a variable only when its query
// finds no value (a variable's hide is never, label or always), so the
// choice is made where it is known, at deployment, as kubernetes-mixin does
// for its cluster variable: tcpadvisor.json keeps the netns variable hidden
// at All, and this file, derived from it, shows it.
const netnsDashboardFile = "tcpadvisor-netns.json"

// netnsDashboard returns the dashboard of netnsDashboardFile made from the
// host dashboard's content: the same panels and queries, its own uid and
// title, and the netns variable shown.
func netnsDashboard(t *testing.T, host []byte) []byte {
	t.Helper()
	decoder := json.NewDecoder(bytes.NewReader(host))
	decoder.UseNumber() // keep every number as written
	var d map[string]any
	if err := decoder.Decode(&d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	d["uid"] = "tcpadvisor-netns"
	d["title"] = "tcpadvisor (network namespaces)"
	d["description"] = "tcpadvisor with --collector.netns: its series carry a netns label, which the Network namespace variable selects. " + d["description"].(string)
	found := false
	for _, v := range d["templating"].(map[string]any)["list"].([]any) {
		if v := v.(map[string]any); v["name"] == "netns" {
			v["hide"] = json.Number("0")
			found = true
		}
	}
	if !found {
		t.Fatalf("%s: no netns variable", dashboardFile)
	}
	var out bytes.Buffer
	encoder := json.NewEncoder(&out)
	encoder.SetEscapeHTML(false) // the queries' <, > and & stay readable
	encoder.SetIndent("", "  ")
	if err := encoder.Encode(d); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestNetnsDashboardIsTheHostDashboard checks that tcpadvisor-netns.json is
// tcpadvisor.json with the netns variable shown, so that every check of
// the host dashboard holds for it too; go test ./dashboards -update
// regenerates it after a change to tcpadvisor.json.
func TestNetnsDashboardIsTheHostDashboard(t *testing.T) {
	_, host := readDashboard(t)
	want := netnsDashboard(t, host)
	if *update {
		if err := os.WriteFile(netnsDashboardFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(netnsDashboardFile)
	if err != nil {
		t.Fatalf("%v: go test ./dashboards -update writes it", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is not %s with the netns variable shown: go test ./dashboards -update regenerates it", netnsDashboardFile, dashboardFile)
	}

	// Both default to All, .*, which matches the series without a netns
	// label too; only the netns dashboard shows the variable.
	for file, wantHide := range map[string]float64{dashboardFile: 2, netnsDashboardFile: 0} {
		_, content := readDashboardFile(t, file)
		var d struct {
			UID        string `json:"uid"`
			Templating struct {
				List []struct {
					Name    string  `json:"name"`
					Hide    float64 `json:"hide"`
					Current struct {
						Value []string `json:"value"`
					} `json:"current"`
				} `json:"list"`
			} `json:"templating"`
		}
		if err := json.Unmarshal(content, &d); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for _, v := range d.Templating.List {
			if v.Name == "netns" && (v.Hide != wantHide || len(v.Current.Value) != 1 || v.Current.Value[0] != "$__all") {
				t.Errorf("%s: netns variable hide %v, current %v; want hide %v and current All ($__all)", file, v.Hide, v.Current.Value, wantHide)
			}
		}
	}
}
