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

// Widened is a query about one target rewritten about many.
type Widened struct {
	// Expr is the query about every target.
	Expr string
	// Want holds the equality matchers taken out of the query: the
	// samples of Expr's answer with these labels are the answer of the
	// query about the one target.
	Want map[string]string
	// Added are the labels that the query's aggregations now keep and
	// that its answer about one target did not have: take them off the
	// samples.
	Added []string
}

// Widen rewrites expr, a query about one target whose series selectors all
// carry the same equality matchers on labels of values (instance="a"), into
// one query about every target of values (instance=~"a|b|c"), so that the
// queries of many targets are asked once: aggregations keep the widened
// labels (sum(x) becomes sum by (instance) (x), topk(3, x) topk by
// (instance) (3, x)). ok is false, and expr must be asked as it is, when
// the rewrite would change its answer: a function that drops or makes
// labels, an aggregation or vector match that leaves out a widened label,
// a selector without the matchers.
func Widen(expr string, values map[string][]string) (w Widened, ok bool, err error) {
	e, err := newParser().ParseExpr(expr)
	if err != nil {
		return Widened{}, false, err
	}
	kept := Widened{Expr: expr}
	widenable := true
	var selectors []*parser.VectorSelector
	var matchings []*parser.VectorMatching
	var aggregations []*parser.AggregateExpr
	parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
		switch n := node.(type) {
		case *parser.AggregateExpr:
			aggregations = append(aggregations, n)
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
	if !widenable || len(selectors) == 0 {
		return kept, false, nil
	}
	// Every selector must name the same targets: equality matchers on the
	// same widened labels, with the same values.
	want := map[string]string{}
	var names []string
	for i, vs := range selectors {
		var these []string
		for _, m := range vs.LabelMatchers {
			if _, widen := values[m.Name]; !widen || m.Type != labels.MatchEqual {
				continue
			}
			if prev, seen := want[m.Name]; seen && prev != m.Value {
				return kept, false, nil
			}
			want[m.Name] = m.Value
			these = append(these, m.Name)
		}
		slices.Sort(these)
		if i > 0 && !slices.Equal(these, names) {
			return kept, false, nil
		}
		names = these
	}
	if len(names) == 0 {
		return kept, false, nil
	}
	// The widened query must still match series of one target with each
	// other only, and aggregate them per target.
	for _, m := range matchings {
		for _, name := range names {
			if m.On != slices.Contains(m.MatchingLabels, name) {
				return kept, false, nil
			}
		}
	}
	var added []string
	for _, a := range aggregations {
		for _, name := range names {
			switch {
			case a.Without && slices.Contains(a.Grouping, name):
				return kept, false, nil
			case !a.Without && !slices.Contains(a.Grouping, name):
				a.Grouping = append(a.Grouping, name)
				if !slices.Contains(added, name) {
					added = append(added, name)
				}
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
				return Widened{}, false, err
			}
			vs.LabelMatchers[i] = wide
		}
	}
	slices.Sort(added)
	return Widened{Expr: e.String(), Want: want, Added: added}, true, nil
}

func joinMatchers(ms []*labels.Matcher) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = m.String()
	}
	return strings.Join(parts, ",")
}
