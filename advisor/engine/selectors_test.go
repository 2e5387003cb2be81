package engine

import (
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// TestWithMatchers adds the target's labels to every selector, and no
// value, however hostile, escapes its matcher.
func TestWithMatchers(t *testing.T) {
	hostile := []string{
		`q"x{y="1"}.service`,
		`a\"} or vector(1) or {x="`,
		"line\nbreak}\r\t",
		`back\slash\\`,
		"\x1b[31mred\u00e9\U0001F600",
		``,
	}
	for _, v := range hostile {
		got, err := WithMatchers(`rate(tcpadvisor_tcpext_tw_total[5m]) / on() tcpadvisor_x{state="time_wait"} > 0`, map[string]string{"netns": v, "instance": "web-1:10067"})
		if err != nil {
			t.Fatalf("%q: %v", v, err)
		}
		e, err := parser.NewParser(parser.Options{}).ParseExpr(got)
		if err != nil {
			t.Fatalf("%q: the result %s does not parse: %v", v, got, err)
		}
		selectors := 0
		parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
			vs, ok := node.(*parser.VectorSelector)
			if !ok {
				return nil
			}
			selectors++
			found := map[string]string{}
			for _, m := range vs.LabelMatchers {
				if m.Type != labels.MatchEqual && m.Name != "__name__" {
					t.Errorf("%q: selector %s has a %s matcher", v, vs, m.Type)
				}
				found[m.Name] = m.Value
			}
			if found["netns"] != v || found["instance"] != "web-1:10067" {
				t.Errorf("%q: selector %s: matchers %q", v, vs, found)
			}
			if vs.Name == "tcpadvisor_x" && found["state"] != "time_wait" {
				t.Errorf("%q: the selector's own matcher was lost: %s", v, vs)
			}
			return nil
		})
		if selectors != 2 {
			t.Errorf("%q: %d selectors in %s, want 2", v, selectors, got)
		}
	}
}

func TestWithMatchersErrors(t *testing.T) {
	if _, err := WithMatchers(`rate(x[5m]`, nil); err == nil || !strings.Contains(err.Error(), "rate(x[5m]") {
		t.Errorf("a bad expression: err %v, want one naming it", err)
	}
	if _, err := WithMatchers(`x`, map[string]string{"": "v"}); err == nil {
		t.Error("an empty label name was accepted")
	}
}

func TestScaleWindows(t *testing.T) {
	tests := map[string]string{
		`rate(x[5m])`:                        `rate(x[30s])`,
		`max_over_time(rate(x[1m])[10m:1m])`: `max_over_time(rate(x[6s])[1m:6s])`,
		`x`:                                  `x`,
	}
	for in, want := range tests {
		got, err := ScaleWindows(in, 0.1)
		if err != nil || got != want {
			t.Errorf("ScaleWindows(%s, 0.1) = %s, %v; want %s", in, got, err, want)
		}
	}
	if _, err := ScaleWindows(`x`, 0); err == nil {
		t.Error("time scale 0 accepted")
	}
}
