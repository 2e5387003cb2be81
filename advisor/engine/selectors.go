package engine

import (
	"fmt"
	"maps"
	"slices"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// WithMatchers returns expr with an equality matcher for every label of
// matchers added to each of its vector selectors, written back as
// Prometheus formats expressions. The values go through the parser's own
// matchers and printer, so no value (quotes, backslashes, braces, newlines)
// can change what the expression selects beyond its own label. A selector
// that already holds the same matcher keeps one.
func WithMatchers(expr string, matchers map[string]string) (string, error) {
	e, err := newParser().ParseExpr(expr)
	if err != nil {
		return "", fmt.Errorf("query %q: %w", expr, err)
	}
	var add []*labels.Matcher
	for _, name := range slices.Sorted(maps.Keys(matchers)) {
		if !model.UTF8Validation.IsValidLabelName(name) || name == model.MetricNameLabel {
			return "", fmt.Errorf("matcher %q: not a label name to match on", name)
		}
		m, err := labels.NewMatcher(labels.MatchEqual, name, matchers[name])
		if err != nil {
			return "", fmt.Errorf("matcher %s: %w", name, err)
		}
		add = append(add, m)
	}
	parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
		vs, ok := node.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		for _, m := range add {
			if !slices.ContainsFunc(vs.LabelMatchers, func(have *labels.Matcher) bool {
				return have.Name == m.Name && have.Type == m.Type && have.Value == m.Value
			}) {
				vs.LabelMatchers = append(vs.LabelMatchers, m)
			}
		}
		return nil
	})
	return e.String(), nil
}

// ScaleWindows returns expr with every range selector range and subquery
// range and step multiplied by scale, in (0, 1], as Options.TimeScale
// scales the rules: a query that quotes a rule's window (rate(x[5m]))
// then reads what the rule read.
func ScaleWindows(expr string, scale float64) (string, error) {
	if !(scale > 0 && scale <= 1) {
		return "", fmt.Errorf("time scale %v: want a number in (0, 1]", scale)
	}
	e, err := newParser().ParseExpr(expr)
	if err != nil {
		return "", fmt.Errorf("query %q: %w", expr, err)
	}
	if err := scaleExpr(e, scale); err != nil {
		return "", fmt.Errorf("query %q: %w", expr, err)
	}
	return e.String(), nil
}
