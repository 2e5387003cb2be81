package engine

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// ParseSelector checks a series selector of label matchers only, such as
// {job="tcpadvisor",instance=~"app-.*"}, and returns it as Prometheus
// writes it. A metric name is refused: the selector limits a set of
// targets, whatever their metrics.
func ParseSelector(s string) (string, error) {
	matchers, err := newParser().ParseMetricSelector(s)
	if err != nil {
		return "", err
	}
	if len(matchers) == 0 {
		return "", fmt.Errorf("selector %s matches every series; leave it out, or name labels such as {job=\"tcpadvisor\"}", s)
	}
	for _, m := range matchers {
		if m.Name == model.MetricNameLabel {
			return "", fmt.Errorf("selector %s names a metric; want label matchers only, such as {job=\"tcpadvisor\"}", s)
		}
	}
	return "{" + joinMatchers(matchers) + "}", nil
}

// WithSelector returns expr with the matchers of selector (checked by
// ParseSelector) added to every one of its series selectors.
func WithSelector(expr, selector string) (string, error) {
	p := newParser()
	matchers, err := p.ParseMetricSelector(selector)
	if err != nil {
		return "", err
	}
	e, err := p.ParseExpr(expr)
	if err != nil {
		return "", err
	}
	parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
		if vs, ok := node.(*parser.VectorSelector); ok {
			vs.LabelMatchers = append(vs.LabelMatchers, matchers...)
		}
		return nil
	})
	return e.String(), nil
}

// unwidenable are the functions whose result is not one sample per input
// series keeping its labels, so that a widened query cannot be split back
// per target.
var unwidenable = []string{"absent", "absent_over_time", "scalar", "vector", "label_replace", "label_join", "sort_by_label", "sort_by_label_desc", "info"}

// Widen rewrites expr, a query about one target whose series selectors all
// carry the same equality matchers on the labels of values (instance="a"),
// into one query about every target of values (instance=~"a|b|c"), so that
// the queries of many targets are asked once. want holds the equality
// matchers taken out: the widened result's samples with those labels are
// expr's. ok is false, and expr must be asked as it is, when the rewrite
// would change its result: an aggregation, a function that drops or makes
// labels, a vector match on() that leaves out a widened label, a selector
// without the matcher.
func Widen(expr string, values map[string][]string) (widened string, want map[string]string, ok bool, err error) {
	e, err := newParser().ParseExpr(expr)
	if err != nil {
		return "", nil, false, err
	}
	want = map[string]string{}
	widenable := true
	var selectors []*parser.VectorSelector
	var matchings []*parser.VectorMatching
	parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
		switch n := node.(type) {
		case *parser.AggregateExpr:
			widenable = false
		case *parser.Call:
			if slices.Contains(unwidenable, n.Func.Name) {
				widenable = false
			}
		case *parser.BinaryExpr:
			if m := n.VectorMatching; m != nil && (m.On || len(m.MatchingLabels) > 0) {
				matchings = append(matchings, m)
			}
		case *parser.VectorSelector:
			selectors = append(selectors, n)
		}
		return nil
	})
	if !widenable {
		return expr, nil, false, nil
	}
	// Every selector must name the same targets: equality matchers on the
	// same widened labels, with the same values.
	var names []string
	for i, vs := range selectors {
		var these []string
		for _, m := range vs.LabelMatchers {
			if _, widen := values[m.Name]; !widen || m.Type != labels.MatchEqual {
				continue
			}
			if prev, seen := want[m.Name]; seen && prev != m.Value {
				return expr, nil, false, nil
			}
			want[m.Name] = m.Value
			these = append(these, m.Name)
		}
		slices.Sort(these)
		if i > 0 && !slices.Equal(these, names) {
			return expr, nil, false, nil
		}
		names = these
	}
	if len(selectors) == 0 || len(want) == 0 {
		return expr, nil, false, nil
	}
	// The widened query must still match series of one target with each
	// other only.
	for _, m := range matchings {
		for _, name := range names {
			if m.On != slices.Contains(m.MatchingLabels, name) {
				return expr, nil, false, nil
			}
		}
	}
	for _, vs := range selectors {
		for i, m := range vs.LabelMatchers {
			vals, widen := values[m.Name]
			if !widen || m.Type != labels.MatchEqual {
				continue
			}
			quoted := make([]string, len(vals))
			for j, v := range vals {
				quoted[j] = regexp.QuoteMeta(v)
			}
			slices.Sort(quoted)
			wide, err := labels.NewMatcher(labels.MatchRegexp, m.Name, strings.Join(slices.Compact(quoted), "|"))
			if err != nil {
				return "", nil, false, err
			}
			vs.LabelMatchers[i] = wide
		}
	}
	return e.String(), want, true, nil
}

func joinMatchers(ms []*labels.Matcher) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = m.String()
	}
	return strings.Join(parts, ",")
}
