package engine

import (
	"maps"
	"slices"
	"strings"
	"testing"
)

func TestParseSelector(t *testing.T) {
	cases := []struct {
		in, want, err string
	}{
		{`{job="tcpadvisor"}`, `{job="tcpadvisor"}`, ""},
		{`{job="tcpadvisor", instance=~"app-.*"}`, `{job="tcpadvisor",instance=~"app-.*"}`, ""},
		{`up{job="x"}`, "", "names a metric"},
		{`{job=`, "", "parse error"},
		{`{}`, "", "matches every series"},
	}
	for _, c := range cases {
		got, err := ParseSelector(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseSelector(%s): %q, %v; want an error with %q", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseSelector(%s) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestWithSelector(t *testing.T) {
	got, err := WithSelector(`topk(5, a{x="1"} / b)`, `{env="prod"}`)
	if want := `topk(5, a{env="prod",x="1"} / b{env="prod"})`; err != nil || got != want {
		t.Errorf("WithSelector = %q, %v; want %q", got, err, want)
	}
}

func TestWiden(t *testing.T) {
	values := map[string][]string{"instance": {"b:1", "a:1", "h.1"}, "job": {"j"}, "netns": {""}}
	cases := []struct {
		name, expr, want string
		wantLabels       map[string]string
	}{
		{"selector", `m{instance="a:1",job="j",state="x"}`, `m{instance=~"a:1|b:1|h\\.1",job=~"j",state="x"}`, map[string]string{"instance": "a:1", "job": "j"}},
		{"rate", `rate(m{instance="a:1"}[5m])`, `rate(m{instance=~"a:1|b:1|h\\.1"}[5m])`, map[string]string{"instance": "a:1"}},
		{"ratio", `m{instance="a:1"} / n{instance="a:1"} > 0`, `m{instance=~"a:1|b:1|h\\.1"} / n{instance=~"a:1|b:1|h\\.1"} > 0`, map[string]string{"instance": "a:1"}},
		{"absent label", `m{instance="a:1",netns=""}`, `m{instance=~"a:1|b:1|h\\.1",netns=~""}`, map[string]string{"instance": "a:1", "netns": ""}},
		{"aggregation", `sum(m{instance="a:1"})`, `sum by (instance) (m{instance=~"a:1|b:1|h\\.1"})`, map[string]string{"instance": "a:1"}},
		{"aggregation by", `sum by (port) (m{instance="a:1"})`, `sum by (port, instance) (m{instance=~"a:1|b:1|h\\.1"})`, map[string]string{"instance": "a:1"}},
		{"aggregation without", `sum without (state) (m{instance="a:1"})`, `sum without (state) (m{instance=~"a:1|b:1|h\\.1"})`, map[string]string{"instance": "a:1"}},
		{"aggregation without instance", `sum without (instance) (m{instance="a:1"})`, "", nil},
		{"topk", `sort_desc(topk(3, m{instance="a:1"}))`, `sort_desc(topk by (instance) (3, m{instance=~"a:1|b:1|h\\.1"}))`, map[string]string{"instance": "a:1"}},
		{"scalar", `scalar(m{instance="a:1"})`, "", nil},
		{"on without instance", `m{instance="a:1"} / on(port) n{instance="a:1"}`, "", nil},
		{"on with instance", `m{instance="a:1"} / on(instance, port) n{instance="a:1"}`, `m{instance=~"a:1|b:1|h\\.1"} / on (instance, port) n{instance=~"a:1|b:1|h\\.1"}`, map[string]string{"instance": "a:1"}},
		{"ignoring instance", `m{instance="a:1"} / ignoring(instance) n{instance="a:1"}`, "", nil},
		{"two targets", `m{instance="a:1"} / n{instance="b:1"}`, "", nil},
		{"one selector unscoped", `m{instance="a:1"} / n`, "", nil},
		{"unscoped", `m`, "", nil},
		{"regex kept", `m{instance=~"a.*"}`, "", nil},
	}
	for _, c := range cases {
		w, ok, err := Widen(c.expr, values)
		got, want := w.Expr, w.Want
		if err != nil {
			t.Errorf("%s: Widen(%s): %v", c.name, c.expr, err)
			continue
		}
		if c.want == "" {
			if ok || got != c.expr {
				t.Errorf("%s: Widen(%s) = %q, ok; want it kept as it is", c.name, c.expr, got)
			}
			continue
		}
		if !ok || got != c.want || !maps.Equal(want, c.wantLabels) {
			t.Errorf("%s: Widen(%s) = %q, %v, %v; want %q, %v", c.name, c.expr, got, want, ok, c.want, c.wantLabels)
		}
	}
	if w, _, _ := Widen(`sum(m{instance="a:1"})`, values); !slices.Equal(w.Added, []string{"instance"}) {
		t.Errorf("Widen(sum(...)).Added = %v, want [instance]", w.Added)
	}
	if _, _, err := Widen(`m{`, values); err == nil {
		t.Error("Widen of a bad expression: no error")
	}
}
