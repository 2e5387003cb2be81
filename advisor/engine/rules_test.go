package engine

import (
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
)

func TestCheckRuleFilesAcceptsTestdata(t *testing.T) {
	if err := CheckRuleFiles([]string{"testdata/alerts.yml", "testdata/timescale.yml", "../../rules/tcpadvisor.rules.yml"}); err != nil {
		t.Fatal(err)
	}
}

// TestBadRuleFiles pins the one-line error of each bad input: the file, the
// line, the group and rule, the problem.
func TestBadRuleFiles(t *testing.T) {
	const rule = "groups:\n  - name: ports\n    rules:\n      - alert: PortPressure\n"
	for _, tc := range []struct {
		name, content, want string
	}{
		{"yaml-syntax", rule + "        expr: x > 1\n       for: 1m\n",
			"yaml-syntax.yml:3: did not find expected '-' indicator"},
		{"yaml-tab", "groups:\n\t- name: ports\n",
			"yaml-tab.yml:2: found character that cannot start any token"},
		{"unknown-rule-field", rule + "        expr: x > 1\n        fro: 5m\n",
			`unknown-rule-field.yml:6: group "ports", rule 1: unknown field "fro"`},
		{"unknown-group-field", "groups:\n  - name: ports\n    rulez: []\n",
			`unknown-group-field.yml:3: group "ports": unknown field "rulez"`},
		{"unknown-top-field", "group:\n  - name: ports\n",
			`unknown-top-field.yml:1: unknown field "group": a rule file has only groups`},
		{"bad-expression", rule + "        expr: x > 1\n      - alert: Churn\n        expr: rate(x[5m]) >\n",
			`bad-expression.yml:7: group "ports", rule 2: could not parse expression: 1:14: parse error: unexpected end of input`},
		{"bad-duration", rule + "        expr: x > 1\n        for: 10x\n",
			`bad-duration.yml:6: group "ports", rule 1: for: "10x" is not a duration such as 5m`},
		{"bad-keep-firing-for", rule + "        expr: x > 1\n        keep_firing_for: [1m]\n",
			`bad-keep-firing-for.yml:6: group "ports", rule 1: keep_firing_for: must be a duration such as 5m`},
		{"duration-expression", rule + "        expr: rate(x[5m+1m]) > 1\n",
			`duration-expression.yml:5: group "ports", rule 1: range [5m + 1m]: write a plain duration such as 5m, not an expression`},
		{"group-interval", "groups:\n  - name: ports\n    interval: 1m\n    rules: []\n",
			`group-interval.yml:3: group "ports": interval: not supported: every group is evaluated at every cycle of the engine`},
		{"alert-and-record", rule + "        record: x:sum\n        expr: x > 1\n",
			`alert-and-record.yml:5: group "ports", rule 1: only one of 'record' and 'alert' must be set`},
		{"no-expr", rule,
			`no-expr.yml:4: group "ports", rule 1: field 'expr' must be set in rule`},
		{"bad-label-name", rule + "        expr: x > 1\n        labels:\n          __name__: x\n",
			`bad-label-name.yml:4: group "ports", rule 1: invalid label name: __name__`},
		{"bad-template", rule + "        expr: x > 1\n        annotations:\n          summary: '{{ $value'\n",
			`bad-template.yml:4: group "ports", rule 1: annotation "summary": template: __alert_PortPressure:1: unclosed action`},
		{"repeated-group", "groups:\n  - name: ports\n    rules: []\n  - name: ports\n    rules: []\n",
			`repeated-group.yml:4: group "ports": already the name of the group at line 2`},
		{"no-group-name", "groups:\n  - rules: []\n",
			"no-group-name.yml:2: a group without a name"},
		{"rules-not-a-list", "groups:\n  - name: ports\n    rules: 3\n",
			`rules-not-a-list.yml:3: group "ports": rules: must be a list of rules`},
		{"bad-limit", "groups:\n  - name: ports\n    limit: many\n    rules: []\n",
			`bad-limit.yml:3: group "ports": limit: must be a whole number`},
		{"two-documents", "groups: []\n---\ngroups: []\n",
			"two-documents.yml:2: a second YAML document: a rule file holds one"},
		{"not-a-mapping", "hello\n",
			"not-a-mapping.yml:1: the file must be a mapping with a list of groups"},
		{"two-problems", rule + "        expr: x >\n      - alert: B\n        expr: y >\n",
			`two-problems.yml:5: group "ports", rule 1: could not parse expression: 1:4: parse error: unexpected end of input (and 1 more)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, tc.name+".yml")
			if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			err := CheckRuleFiles([]string{path})
			if want := filepath.Join(dir, tc.want); err == nil || err.Error() != want {
				t.Errorf("CheckRuleFiles: %v\nwant %s", err, want)
			}
		})
	}
}

func TestMissingRuleFile(t *testing.T) {
	err := CheckRuleFiles([]string{"testdata/alerts.yml", "testdata/missing.yml"})
	if want := "testdata/missing.yml: no such file or directory"; err == nil || err.Error() != want {
		t.Errorf("CheckRuleFiles: %v, want %s", err, want)
	}
}

func TestBadBundledRulesAreNamedSo(t *testing.T) {
	_, reg := newSource(t)
	bundled := fstest.MapFS{"tcpadvisor.rules.yml": {Data: []byte("groups:\n  - name: ports\n    rules:\n      - alert: A\n        expr: sum(\n")}}
	_, err := New(Options{Bundled: bundled}, reg)
	want := `bundled:tcpadvisor.rules.yml:5: group "ports", rule 1: could not parse expression: 1:5: parse error: unclosed left parenthesis`
	if err == nil || err.Error() != want {
		t.Errorf("New: %v\nwant %s", err, want)
	}
}
