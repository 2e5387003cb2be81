package engine

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"regexp"
	"strconv"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

// ruleFile is one parsed and validated rule file.
type ruleFile struct {
	name   string // as errors and group keys name it: a path, or bundled:NAME
	groups []ruleGroup
}

type ruleGroup struct {
	name        string
	queryOffset *time.Duration
	limit       int
	labels      map[string]string
	rules       []rule
}

type rule struct {
	alert, record string
	expr          parser.Expr // TimeScale applied
	hold          time.Duration
	keepFiringFor time.Duration
	labels        map[string]string
	annotations   map[string]string
}

// CheckRuleFiles validates rule files as New does, with a TimeScale of 1,
// and returns the first problem as one line naming the file.
func CheckRuleFiles(paths []string) error {
	p := newParser()
	for _, path := range paths {
		if _, err := readRuleFile(path, p, 1); err != nil {
			return err
		}
	}
	return nil
}

// loadRules reads opts.RuleFiles, or every *.yml of opts.Bundled when there
// are none.
func loadRules(opts Options, p parser.Parser, scale float64) ([]ruleFile, error) {
	var files []ruleFile
	if len(opts.RuleFiles) > 0 {
		for _, path := range opts.RuleFiles {
			f, err := readRuleFile(path, p, scale)
			if err != nil {
				return nil, err
			}
			files = append(files, f)
		}
		return files, nil
	}
	if opts.Bundled == nil {
		return nil, errors.New("no rules: Options.RuleFiles is empty and Options.Bundled is nil")
	}
	names, err := fs.Glob(opts.Bundled, "*.yml") // sorted
	if err != nil {
		return nil, fmt.Errorf("bundled rules: %w", err)
	}
	if len(names) == 0 {
		return nil, errors.New("no rules: Options.RuleFiles is empty and Options.Bundled has no *.yml file")
	}
	for _, n := range names {
		name := "bundled:" + n
		content, err := fs.ReadFile(opts.Bundled, n)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		f, err := parseRules(name, content, p, scale)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	return files, nil
}

func readRuleFile(path string, p parser.Parser, scale float64) (ruleFile, error) {
	content, err := os.ReadFile(path)
	if err != nil {
		if pe, ok := errors.AsType[*fs.PathError](err); ok {
			err = pe.Err
		}
		return ruleFile{}, fmt.Errorf("%s: %w", path, err)
	}
	return parseRules(path, content, p, scale)
}

func newParser() parser.Parser { return parser.NewParser(parser.Options{}) }

// parseRules validates content in three passes, each giving errors in the
// words of the rule file: the YAML tree (syntax, unknown fields, durations,
// with their lines), then rulefmt (Prometheus' own validation, as promtool
// check rules does), then the expressions against what the engine supports.
func parseRules(name string, content []byte, p parser.Parser, scale float64) (ruleFile, error) {
	lines, err := checkTree(content)
	if err != nil {
		return ruleFile{}, fmt.Errorf("%s:%w", name, err)
	}
	discard := slog.New(slog.DiscardHandler) // its only log is about a second document, which checkTree refuses
	rgs, errs := rulefmt.Parse(content, false, model.UTF8Validation, p, discard)
	if len(errs) > 0 {
		msg := formatRulefmtError(errs[0], lines)
		// Only validation errors are distinct: rulefmt decodes the file
		// twice, and gives each decoding error twice.
		if _, ok := errors.AsType[*rulefmt.Error](errs[0]); ok && len(errs) > 1 {
			msg += fmt.Sprintf(" (and %d more)", len(errs)-1)
		}
		return ruleFile{}, fmt.Errorf("%s:%s", name, msg)
	}

	f := ruleFile{name: name}
	for gi, g := range rgs.Groups {
		group := ruleGroup{name: g.Name, limit: g.Limit, labels: g.Labels}
		if g.QueryOffset != nil {
			d := time.Duration(*g.QueryOffset)
			group.queryOffset = &d
		}
		for ri, r := range g.Rules {
			where := func() string {
				return fmt.Sprintf("%d: group %q, rule %d", lines.exprLine(gi, ri), g.Name, ri+1)
			}
			expr, err := p.ParseExpr(r.Expr) // rulefmt parsed it already: no error here
			if err != nil {
				return ruleFile{}, fmt.Errorf("%s:%s: could not parse expression: %w", name, where(), err)
			}
			if err := scaleExpr(expr, scale); err != nil {
				return ruleFile{}, fmt.Errorf("%s:%s: %w", name, where(), err)
			}
			group.rules = append(group.rules, rule{
				alert:         r.Alert,
				record:        r.Record,
				expr:          expr,
				hold:          scaleDuration(time.Duration(r.For), scale),
				keepFiringFor: scaleDuration(time.Duration(r.KeepFiringFor), scale),
				labels:        r.Labels,
				annotations:   r.Annotations,
			})
		}
		f.groups = append(f.groups, group)
	}
	return f, nil
}

// treeLines are the lines of the groups and rules of a file, for the errors
// rulefmt gives without one.
type treeLines struct {
	groups []groupLines
}

type groupLines struct {
	name  string
	rules []ruleLines
}

type ruleLines struct {
	line, expr int
}

// checkTree walks the YAML tree of a rule file, to report with their lines
// and in the words of the file what rulefmt would report without a line or
// in Go's words. Its error starts with the line (or " " when unknown), for
// the caller to put after the file name and a colon.
func checkTree(content []byte) (treeLines, error) {
	var lines treeLines
	dec := yaml.NewDecoder(bytes.NewReader(content))
	var doc yaml.Node
	if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
		return lines, nil // an empty file: no groups
	} else if err != nil {
		return lines, yamlError(err)
	}
	var second yaml.Node
	if err := dec.Decode(&second); err == nil {
		return lines, fmt.Errorf("%d: a second YAML document: a rule file holds one", second.Line)
	} else if !errors.Is(err, io.EOF) {
		return lines, yamlError(err)
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return lines, fmt.Errorf("%d: the file must be a mapping with a list of groups", root.Line)
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		key, value := root.Content[i], root.Content[i+1]
		if key.Value != "groups" {
			return lines, fmt.Errorf("%d: unknown field %q: a rule file has only groups", key.Line, key.Value)
		}
		if value.Kind != yaml.SequenceNode {
			return lines, fmt.Errorf("%d: groups must be a list", value.Line)
		}
		names := make(map[string]int)
		for _, g := range value.Content {
			gl, err := checkGroup(g)
			if err != nil {
				return lines, err
			}
			if first, ok := names[gl.name]; ok {
				return lines, fmt.Errorf("%d: group %q: already the name of the group at line %d", g.Line, gl.name, first)
			}
			names[gl.name] = g.Line
			lines.groups = append(lines.groups, gl)
		}
	}
	return lines, nil
}

func checkGroup(g *yaml.Node) (groupLines, error) {
	if g.Kind != yaml.MappingNode {
		return groupLines{}, fmt.Errorf("%d: a group must be a mapping with a name and rules", g.Line)
	}
	name := mappingValue(g, "name")
	if name == "" {
		return groupLines{}, fmt.Errorf("%d: a group without a name", g.Line)
	}
	gl := groupLines{name: name}
	for i := 0; i+1 < len(g.Content); i += 2 {
		key, value := g.Content[i], g.Content[i+1]
		var err error
		switch key.Value {
		case "name":
			err = checkKind(value, yaml.ScalarNode, "a string")
		case "interval":
			err = errors.New("not supported: every group is evaluated at every cycle of the engine")
		case "query_offset":
			err = checkDuration(value)
		case "limit":
			if value.Kind != yaml.ScalarNode || value.Tag != "!!int" {
				err = errors.New("must be a whole number")
			}
		case "labels":
			err = checkKind(value, yaml.MappingNode, "a mapping of names to values")
		case "rules":
			if err = checkKind(value, yaml.SequenceNode, "a list of rules"); err != nil {
				break
			}
			for ri, r := range value.Content {
				rl, err := checkRule(r)
				if err != nil {
					return gl, fmt.Errorf("%d: group %q, rule %d: %w", rl.line, name, ri+1, err)
				}
				gl.rules = append(gl.rules, rl)
			}
		default:
			return gl, fmt.Errorf("%d: group %q: unknown field %q", key.Line, name, key.Value)
		}
		if err != nil {
			return gl, fmt.Errorf("%d: group %q: %s: %w", key.Line, name, key.Value, err)
		}
	}
	return gl, nil
}

// checkRule returns the rule's lines, and the line of its error in rl.line.
func checkRule(r *yaml.Node) (rl ruleLines, err error) {
	rl = ruleLines{line: r.Line, expr: r.Line}
	if r.Kind != yaml.MappingNode {
		return rl, errors.New("a rule must be a mapping with alert or record, and expr")
	}
	for i := 0; i+1 < len(r.Content); i += 2 {
		key, value := r.Content[i], r.Content[i+1]
		var err error
		switch key.Value {
		case "alert", "record":
			err = checkKind(value, yaml.ScalarNode, "a string")
		case "expr":
			rl.expr = value.Line
			err = checkKind(value, yaml.ScalarNode, "a PromQL expression")
		case "for", "keep_firing_for":
			err = checkDuration(value)
		case "labels", "annotations":
			err = checkKind(value, yaml.MappingNode, "a mapping of names to values")
		default:
			return ruleLines{line: key.Line}, fmt.Errorf("unknown field %q", key.Value)
		}
		if err != nil {
			return ruleLines{line: key.Line}, fmt.Errorf("%s: %w", key.Value, err)
		}
	}
	return rl, nil
}

func checkKind(n *yaml.Node, kind yaml.Kind, what string) error {
	// An alias (*name) stands for the node its anchor (&name) marks, as
	// Prometheus' own YAML decoding reads it.
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind != kind {
		return fmt.Errorf("must be %s", what)
	}
	return nil
}

func checkDuration(n *yaml.Node) error {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind != yaml.ScalarNode {
		return errors.New("must be a duration such as 5m")
	}
	if _, err := model.ParseDuration(n.Value); err != nil {
		return fmt.Errorf("%q is not a duration such as 5m", n.Value)
	}
	return nil
}

func mappingValue(n *yaml.Node, key string) string {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1].Value
		}
	}
	return ""
}

var (
	yamlLineRE   = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
	typeErrorRE  = regexp.MustCompile(`^line (\d+): (.*)$`)
	lineColumnRE = regexp.MustCompile(`^(\d+):\d+: (?:\d+:\d+: )?(.*)$`)
	yamlPrefixRE = regexp.MustCompile(`^yaml: (.*)$`)
)

// yamlError turns a YAML syntax error into "LINE: problem".
func yamlError(err error) error {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		return fmt.Errorf("%s: %s", m[1], m[2])
	}
	if m := yamlPrefixRE.FindStringSubmatch(msg); m != nil {
		msg = m[1]
	}
	return fmt.Errorf(" %s", msg)
}

// formatRulefmtError turns an error of rulefmt.Parse into "LINE: group
// "g", rule N: problem", with the rule's line when rulefmt gives none.
func formatRulefmtError(err error, lines treeLines) string {
	if re, ok := errors.AsType[*rulefmt.Error](err); ok {
		msg := re.Err.Error()
		line := 0
		if m := lineColumnRE.FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1]) // 0 for a field that is not there
			msg = m[2]
		}
		if l, ok := lines.ruleLine(re.Group, re.Rule); ok && line == 0 {
			line = l
		}
		where := fmt.Sprintf("group %q, rule %d", re.Group, re.Rule)
		if line > 0 {
			return fmt.Sprintf("%d: %s: %s", line, where, msg)
		}
		return fmt.Sprintf(" %s: %s", where, msg)
	}
	if te, ok := errors.AsType[*yaml.TypeError](err); ok && len(te.Errors) > 0 {
		if m := typeErrorRE.FindStringSubmatch(te.Errors[0]); m != nil {
			return fmt.Sprintf("%s: %s", m[1], m[2])
		}
		return " " + te.Errors[0]
	}
	msg := err.Error()
	if m := lineColumnRE.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("%s: %s", m[1], m[2])
	}
	return " " + msg
}

// ruleLine finds the line of the ruleNth (1-based) rule of the group named
// group: rulefmt names groups, which it requires to be unique in a file.
func (t treeLines) ruleLine(group string, ruleNth int) (int, bool) {
	for _, g := range t.groups {
		if g.name == group && ruleNth >= 1 && ruleNth <= len(g.rules) {
			return g.rules[ruleNth-1].line, true
		}
	}
	return 0, false
}

// exprLine is the line of the expression of the ri-th rule of the gi-th group.
func (t treeLines) exprLine(gi, ri int) int {
	if gi < len(t.groups) && ri < len(t.groups[gi].rules) {
		return t.groups[gi].rules[ri].expr
	}
	return 0
}

// scaleDuration multiplies d by scale, to the millisecond that Prometheus
// keeps, and never down to zero.
func scaleDuration(d time.Duration, scale float64) time.Duration {
	if d <= 0 || scale == 1 {
		return d
	}
	s := time.Duration(math.Round(float64(d)*scale/float64(time.Millisecond))) * time.Millisecond
	return max(s, time.Millisecond)
}

// scaleExpr multiplies, in place, every range of a range selector and every
// range and step of a subquery of expr by scale. Durations written as
// expressions (foo[5m+1m]) are refused: their value is known only at query
// time, so neither the scaling nor the retention could account for them.
func scaleExpr(expr parser.Expr, scale float64) error {
	var err error
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		switch n := node.(type) {
		case *parser.MatrixSelector:
			if n.RangeExpr != nil {
				err = fmt.Errorf("range [%s]: write a plain duration such as 5m, not an expression", n.RangeExpr)
				return err
			}
			n.Range = scaleDuration(n.Range, scale)
		case *parser.SubqueryExpr:
			switch {
			case n.RangeExpr != nil:
				err = fmt.Errorf("subquery range [%s:]: write a plain duration such as 5m, not an expression", n.RangeExpr)
				return err
			case n.StepExpr != nil:
				err = fmt.Errorf("subquery step [:%s]: write a plain duration such as 1m, not an expression", n.StepExpr)
				return err
			case n.OriginalOffsetExpr != nil:
				err = fmt.Errorf("offset %s: write a plain duration such as 5m, not an expression", n.OriginalOffsetExpr)
				return err
			}
			n.Range = scaleDuration(n.Range, scale)
			n.Step = scaleDuration(n.Step, scale)
		case *parser.VectorSelector:
			if n.OriginalOffsetExpr != nil {
				err = fmt.Errorf("offset %s: write a plain duration such as 5m, not an expression", n.OriginalOffsetExpr)
				return err
			}
		}
		return nil
	})
	return err
}

// window is how far back from the evaluation time expr reads samples,
// lookback delta excluded: the longest chain of subquery ranges, range
// selector range and positive offsets leading to one selector.
func window(expr parser.Expr) time.Duration {
	var longest time.Duration
	parser.Inspect(expr, func(node parser.Node, path []parser.Node) error {
		vs, ok := node.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		w := max(vs.OriginalOffset, 0)
		for _, p := range path {
			switch n := p.(type) {
			case *parser.MatrixSelector:
				w += n.Range
			case *parser.SubqueryExpr:
				w += n.Range + max(n.OriginalOffset, 0)
			}
		}
		longest = max(longest, w)
		return nil
	})
	return longest
}
