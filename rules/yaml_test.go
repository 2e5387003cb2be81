package rules

import (
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// This file reads the subset of YAML the rule files are written in, with the
// standard library only: the module does not depend on a YAML parser, and the
// tests must not add one. Anything outside the subset (flow collections,
// multi-line quoted scalars, tags, several documents) is an error, never
// silently skipped, and the tests compare the rule count with promtool's, so
// the reader cannot miss a rule that Prometheus sees.
//
// The subset: block mappings with plain keys, block sequences, plain and
// single-line quoted scalars, literal and folded block scalars, comments, and
// anchors and aliases on values.

// yamlNode is a parsed value: a map[string]yamlNode, a []yamlNode or a string.
type yamlNode any

// yamlLine is one line of the input, its indentation apart.
type yamlLine struct {
	num    int // 1-based, for errors
	indent int
	text   string // without the indentation; "" for a blank line
}

type yamlReader struct {
	lines   []yamlLine
	pos     int
	anchors map[string]yamlNode
}

// mapKey matches the start of a mapping entry: a plain key, then a colon at
// the end of the line or before a space.
var mapKey = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_.-]*):(?: +(.*))?$`)

// blockHeader matches the indicators of a block scalar the reader supports:
// literal or folded, with an optional chomping indicator.
var blockHeader = regexp.MustCompile(`^[|>][-+]?$`)

// parseYAML parses one YAML document of the subset above.
func parseYAML(src string) (yamlNode, error) {
	r := &yamlReader{anchors: map[string]yamlNode{}}
	for i, raw := range strings.Split(src, "\n") {
		text := strings.TrimLeft(raw, " ")
		if strings.HasPrefix(text, "\t") {
			return nil, fmt.Errorf("line %d: tab in indentation", i+1)
		}
		r.lines = append(r.lines, yamlLine{num: i + 1, indent: len(raw) - len(text), text: strings.TrimRight(text, " ")})
	}
	line, ok := r.next()
	if !ok {
		return nil, fmt.Errorf("empty document")
	}
	n, err := r.node(line.indent)
	if err != nil {
		return nil, err
	}
	if line, ok := r.next(); ok {
		return nil, fmt.Errorf("line %d: unexpected %q", line.num, line.text)
	}
	return n, nil
}

// next skips blank and comment lines and returns the next significant line
// without consuming it.
func (r *yamlReader) next() (yamlLine, bool) {
	for ; r.pos < len(r.lines); r.pos++ {
		l := r.lines[r.pos]
		if l.text != "" && !strings.HasPrefix(l.text, "#") {
			return l, true
		}
	}
	return yamlLine{}, false
}

// node parses the sequence or mapping whose lines start at column indent.
func (r *yamlReader) node(indent int) (yamlNode, error) {
	line, _ := r.next()
	if isItem(line.text) {
		return r.sequence(indent)
	}
	return r.mapping(indent)
}

// isItem reports whether a line starts a sequence item.
func isItem(text string) bool {
	return text == "-" || strings.HasPrefix(text, "- ")
}

func (r *yamlReader) sequence(indent int) (yamlNode, error) {
	var seq []yamlNode
	for {
		line, ok := r.next()
		if !ok || line.indent < indent || (line.indent == indent && !isItem(line.text)) {
			return seq, nil
		}
		if line.indent > indent {
			return nil, fmt.Errorf("line %d: unexpected indentation", line.num)
		}
		item := strings.TrimLeft(strings.TrimPrefix(line.text, "-"), " ")
		if item == "" {
			return nil, fmt.Errorf("line %d: empty sequence item", line.num)
		}
		if !mapKey.MatchString(item) {
			v, err := r.scalar(line, item)
			if err != nil {
				return nil, err
			}
			r.pos++
			seq = append(seq, v)
			continue
		}
		// "- key: value" opens a mapping whose keys line up with "key".
		col := line.indent + len(line.text) - len(item)
		r.lines[r.pos] = yamlLine{num: line.num, indent: col, text: item}
		m, err := r.mapping(col)
		if err != nil {
			return nil, err
		}
		seq = append(seq, m)
	}
}

func (r *yamlReader) mapping(indent int) (yamlNode, error) {
	m := map[string]yamlNode{}
	for {
		line, ok := r.next()
		if !ok || line.indent < indent {
			return m, nil
		}
		if line.indent > indent {
			return nil, fmt.Errorf("line %d: unexpected indentation", line.num)
		}
		sub := mapKey.FindStringSubmatch(line.text)
		if sub == nil {
			return nil, fmt.Errorf("line %d: expected key: value, got %q", line.num, line.text)
		}
		key, rest := sub[1], sub[2]
		if _, dup := m[key]; dup {
			return nil, fmt.Errorf("line %d: duplicate key %q", line.num, key)
		}
		r.pos++
		anchor := ""
		if strings.HasPrefix(rest, "&") {
			anchor, rest, _ = strings.Cut(rest[1:], " ")
			rest = strings.TrimLeft(rest, " ")
		}
		var v yamlNode
		var err error
		switch {
		case rest == "" || strings.HasPrefix(rest, "#"):
			v, err = r.nested(line)
		case rest[0] == '|' || rest[0] == '>':
			v, err = r.blockScalar(line, rest)
		default:
			v, err = r.scalar(line, rest)
		}
		if err != nil {
			return nil, err
		}
		if anchor != "" {
			r.anchors[anchor] = v
		}
		m[key] = v
	}
}

// nested parses the value of a key whose line ends after the colon.
func (r *yamlReader) nested(key yamlLine) (yamlNode, error) {
	line, ok := r.next()
	switch {
	case ok && line.indent > key.indent:
		return r.node(line.indent)
	case ok && line.indent == key.indent && isItem(line.text):
		return r.sequence(line.indent)
	}
	return "", nil
}

// blockScalar reads a literal (|) or folded (>) scalar. Folded lines are
// joined with newlines too: the tests look for words, not for layout.
func (r *yamlReader) blockScalar(key yamlLine, header string) (yamlNode, error) {
	if !blockHeader.MatchString(header) {
		return nil, fmt.Errorf("line %d: unsupported block scalar header %q", key.num, header)
	}
	var body []string
	indent := -1
	for ; r.pos < len(r.lines); r.pos++ {
		l := r.lines[r.pos]
		if l.text == "" {
			body = append(body, "")
			continue
		}
		if l.indent <= key.indent {
			break
		}
		if indent < 0 {
			indent = l.indent
		}
		if l.indent < indent {
			return nil, fmt.Errorf("line %d: block scalar less indented than its first line", l.num)
		}
		body = append(body, strings.Repeat(" ", l.indent-indent)+l.text)
	}
	return strings.TrimRight(strings.Join(body, "\n"), "\n"), nil
}

// scalar reads a one-line scalar: an alias, a quoted string or a plain one.
func (r *yamlReader) scalar(line yamlLine, s string) (yamlNode, error) {
	switch s[0] {
	case '*':
		v, ok := r.anchors[s[1:]]
		if !ok {
			return nil, fmt.Errorf("line %d: unknown alias %q", line.num, s)
		}
		return v, nil
	case '{', '[', '!', '&', '@', '`':
		return nil, fmt.Errorf("line %d: unsupported YAML %q", line.num, s)
	case '"':
		v, err := strconv.Unquote(s)
		if err != nil {
			return nil, fmt.Errorf("line %d: %q: %v", line.num, s, err)
		}
		return v, nil
	case '\'':
		if len(s) < 2 || s[len(s)-1] != '\'' {
			return nil, fmt.Errorf("line %d: unterminated or multi-line quoted scalar %q", line.num, s)
		}
		return strings.ReplaceAll(s[1:len(s)-1], "''", "'"), nil
	}
	if i := strings.Index(s, " #"); i >= 0 {
		s = strings.TrimRight(s[:i], " ")
	}
	return s, nil
}

// TestParseYAML pins the reader on the constructs the rule files use, and on
// an error for each construct outside its subset.
func TestParseYAML(t *testing.T) {
	src := `# a comment
groups:
  - name: g # trailing comment
    rules:
      - alert: A
        expr: |
          x
            > 1
        labels:
          severity: 'it''s'
        annotations: &ann
          summary: "q\"uote"
          description: >-
            folded
            text
      - alert: B
        annotations: *ann
list:
- a
- b
`
	got, err := parseYAML(src)
	if err != nil {
		t.Fatal(err)
	}
	ann := map[string]yamlNode{"summary": `q"uote`, "description": "folded\ntext"}
	want := map[string]yamlNode{
		"groups": []yamlNode{map[string]yamlNode{
			"name": "g",
			"rules": []yamlNode{
				map[string]yamlNode{
					"alert":       "A",
					"expr":        "x\n  > 1",
					"labels":      map[string]yamlNode{"severity": "it's"},
					"annotations": ann,
				},
				map[string]yamlNode{"alert": "B", "annotations": ann},
			},
		}},
		"list": []yamlNode{"a", "b"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseYAML:\n got %#v\nwant %#v", got, want)
	}

	for _, bad := range []string{
		"a: {b: c}\n",
		"a: [b]\n",
		"a: 'open\n",
		"a: b\na: c\n",
		"a: *nowhere\n",
		"a: b\n  c: d\n",
		"a:\n\tb: c\n",
		"a: !!str b\n",
		"a: |2\n  b\n",
		"",
	} {
		if n, err := parseYAML(bad); err == nil {
			t.Errorf("parseYAML(%q) = %#v, want an error", bad, n)
		}
	}
}
