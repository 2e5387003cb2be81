package engine

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestMetricNames(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`tcpadvisor_sockets`, []string{"tcpadvisor_sockets"}},
		{`sum by (state) (rate(b_total[5m])) / on () group_left a{x="1"} + b_total`, []string{"a", "b_total"}},
		{`{__name__="c", state="listen"} > 0`, []string{"c"}},
		{`max_over_time(d[10m:1m]) or vector(0)`, []string{"d"}},
		{`ALERTS{advice!=""}`, []string{"ALERTS"}},
		{`1 + 2`, nil},
	} {
		got, err := MetricNames(tc.expr)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("MetricNames(%q) = %q, %v; want %q", tc.expr, got, err, tc.want)
		}
	}
	for _, bad := range []string{`rate(x[5m]`, `{__name__=~"tcpadvisor_.*"}`, `{__name__!="x", job="a"}`} {
		if got, err := MetricNames(bad); err == nil {
			t.Errorf("MetricNames(%q) = %q, no error", bad, got)
		}
	}
}

// TestScaleRuleFileMatchesTimeScale scales the project's rules and checks
// that what the file says after scaling is what the engine evaluates with
// TimeScale: the same expressions, for:, labels and annotations.
func TestScaleRuleFileMatchesTimeScale(t *testing.T) {
	const path, scale = "../../rules/tcpadvisor.rules.yml", 0.01
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	scaled, err := ScaleRuleFile(path, content, scale)
	if err != nil {
		t.Fatal(err)
	}
	p := newParser()
	want, err := parseRules(path, content, p, scale)
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseRules("scaled", scaled, p, 1)
	if err != nil {
		t.Fatalf("the scaled file does not load: %v\n%s", err, scaled)
	}
	if len(got.groups) != len(want.groups) {
		t.Fatalf("%d groups after scaling, want %d", len(got.groups), len(want.groups))
	}
	rules := 0
	for gi, g := range want.groups {
		if len(got.groups[gi].rules) != len(g.rules) {
			t.Fatalf("group %s: %d rules after scaling, want %d", g.name, len(got.groups[gi].rules), len(g.rules))
		}
		for ri, w := range g.rules {
			r := got.groups[gi].rules[ri]
			rules++
			if r.expr.String() != w.expr.String() || r.hold != w.hold || r.keepFiringFor != w.keepFiringFor ||
				!reflect.DeepEqual(r.labels, w.labels) || !reflect.DeepEqual(r.annotations, w.annotations) {
				t.Errorf("group %s, rule %d (%s):\ngot  %s for %v %v %v\nwant %s for %v %v %v", g.name, ri+1, w.alert,
					r.expr, r.hold, r.labels, len(r.annotations), w.expr, w.hold, w.labels, len(w.annotations))
			}
		}
	}
	if rules == 0 {
		t.Fatal("no rule compared")
	}
	if !strings.Contains(string(scaled), "for: 3s\n") {
		t.Errorf("no for: 5m became for: 3s:\n%s", scaled)
	}
}

// TestScaleRuleFileScalesAnchorsOnce: a duration or expression shared
// through an alias is scaled once, not once per rule that uses it.
func TestScaleRuleFileScalesAnchorsOnce(t *testing.T) {
	const content = `groups:
  - name: g
    rules:
      - alert: A
        expr: &e rate(x[10m]) > 1
        for: &f 10m
      - alert: B
        expr: *e
        for: *f
`
	scaled, err := ScaleRuleFile("anchors.yml", []byte(content), 0.1)
	if err != nil {
		t.Fatal(err)
	}
	f, err := parseRules("scaled", scaled, newParser(), 1)
	if err != nil {
		t.Fatalf("%v\n%s", err, scaled)
	}
	for _, r := range f.groups[0].rules {
		if r.hold != time.Minute || r.expr.String() != "rate(x[1m]) > 1" {
			t.Errorf("rule %s: expr %s for %v; want rate(x[1m]) > 1 for 1m", r.alert, r.expr, r.hold)
		}
	}
}

func TestScaleRuleFileErrors(t *testing.T) {
	good := []byte("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: x > 1\n")
	for _, tc := range []struct {
		content []byte
		scale   float64
		want    string
	}{
		{good, 0, "f.yml: time scale 0: want a number in (0, 1]"},
		{good, 2, "f.yml: time scale 2: want a number in (0, 1]"},
		{[]byte("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: rate(x[5m]\n"), 0.5,
			`f.yml:5: group "g", rule 1: could not parse expression`},
	} {
		_, err := ScaleRuleFile("f.yml", tc.content, tc.scale)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("scale %v: error %v, want it to start with %q", tc.scale, err, tc.want)
		}
	}
}
