package engine

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

// MetricNames returns the metric names that the PromQL expression expr
// selects, sorted and each once: the name of every selector, written as
// name{...} or as {__name__="name"}. A selector that matches names by regular
// expression or by inequality has no one name, and is an error: what it
// selects cannot be checked against a list of metrics.
func MetricNames(expr string) ([]string, error) {
	e, err := newParser().ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var names []string
	parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
		vs, ok := node.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name != model.MetricNameLabel {
				continue
			}
			if m.Type != labels.MatchEqual {
				err = fmt.Errorf("selector %s: matches metric names with %s; name the metric", vs, m.Type)
				return err
			}
			name = m.Value
		}
		names = append(names, name)
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// ScaleRuleFile returns the rule file content with every for:,
// keep_firing_for:, range selector range and subquery range and step
// multiplied by scale, in (0, 1], as Options.TimeScale scales them in the
// engine: a Prometheus server loading the result fires the same alerts in
// scaled time. The file is validated as New validates it, and errors name
// it as name. Everything else (comments, anchors, annotations, the queries
// of annotation templates) is kept as written; expressions are written
// back as Prometheus formats them.
func ScaleRuleFile(name string, content []byte, scale float64) ([]byte, error) {
	if !(scale > 0 && scale <= 1) {
		return nil, fmt.Errorf("%s: time scale %v: want a number in (0, 1]", name, scale)
	}
	p := newParser()
	if _, err := parseRules(name, content, p, scale); err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(content, &doc); err != nil {
		return nil, fmt.Errorf("%s:%w", name, yamlError(err)) // parseRules read it: not reached
	}
	if len(doc.Content) == 0 {
		return content, nil // an empty file: no groups
	}
	// An anchored node is rewritten once, however many aliases use it.
	done := map[*yaml.Node]bool{}
	for _, groups := range mappingValues(doc.Content[0], "groups") {
		for _, g := range groups.Content {
			for _, rs := range mappingValues(g, "rules") {
				for _, r := range rs.Content {
					if err := scaleRuleNode(resolve(r), p, scale, done); err != nil {
						return nil, fmt.Errorf("%s:%d: %w", name, r.Line, err)
					}
				}
			}
		}
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out.Bytes(), nil
}

// scaleRuleNode scales the expression and durations of one rule's mapping.
func scaleRuleNode(r *yaml.Node, p parser.Parser, scale float64, done map[*yaml.Node]bool) error {
	for i := 0; i+1 < len(r.Content); i += 2 {
		key, value := r.Content[i].Value, resolve(r.Content[i+1])
		if done[value] {
			continue
		}
		switch key {
		case "expr":
			expr, err := p.ParseExpr(value.Value)
			if err != nil {
				return err
			}
			if err := scaleExpr(expr, scale); err != nil {
				return err
			}
			// An expression written as a block stays one, indented as
			// promtool would; a one-line expression stays on one line.
			if value.Style&yaml.LiteralStyle != 0 {
				value.Value = parser.Prettify(expr) + "\n"
			} else {
				value.Value = expr.String()
			}
		case "for", "keep_firing_for":
			d, err := model.ParseDuration(value.Value)
			if err != nil {
				return err
			}
			value.Value = model.Duration(scaleDuration(time.Duration(d), scale)).String()
		default:
			continue
		}
		done[value] = true
	}
	return nil
}

// mappingValues returns the values of key in the mapping n, aliases
// resolved.
func mappingValues(n *yaml.Node, key string) []*yaml.Node {
	n = resolve(n)
	var values []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			values = append(values, resolve(n.Content[i+1]))
		}
	}
	return values
}

// resolve returns the node an alias stands for, or n.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}
