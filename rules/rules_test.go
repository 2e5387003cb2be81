package rules

import (
	"bufio"
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tcpadvisor/tcpadvisor/advisor"
	"go.yaml.in/yaml/v3"
)

// runbookBase is where every runbook_url points, before the advice ID.
const runbookBase = "https://github.com/tcpadvisor/tcpadvisor/blob/main/docs/advice.md#"

// alertAdvices returns every alert with the advice IDs it may give, from
// the advisor's registry, where each advice declares the alerts that raise
// it (advisor/registry_test.go ties the registry to these rules both
// ways). Both are public API: users route, inhibit and silence on them, so
// a rename must fail here first.
func alertAdvices() map[string][]string {
	m := map[string][]string{}
	for _, id := range advisor.IDs() {
		for _, alert := range advisor.Alerts(id) {
			m[alert] = append(m[alert], string(id))
		}
	}
	return m
}

// rule is the part of a rule the tests check.
type rule struct {
	file, group   string
	alert, record string
	expr, forDur  string
	labels        map[string]string
	annotations   map[string]string
}

func (r rule) String() string {
	return r.file + ": group " + r.group + ": alert " + r.alert + " (advice " + r.labels["advice"] + ")"
}

// ruleFiles returns the names of the embedded rule files.
func ruleFiles(t *testing.T) []string {
	t.Helper()
	names, err := fs.Glob(Files, "*.yml")
	if err != nil || len(names) == 0 {
		t.Fatalf("no rule file embedded: %v", err)
	}
	return names
}

// loadRules parses the embedded rule file name. Unknown fields are errors,
// as they are to Prometheus.
func loadRules(t *testing.T, name string) []rule {
	t.Helper()
	src, err := Files.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Record      string            `yaml:"record"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var rules []rule
	for _, g := range doc.Groups {
		for _, r := range g.Rules {
			rules = append(rules, rule{
				file: name, group: g.Name, alert: r.Alert, record: r.Record, expr: r.Expr, forDur: r.For,
				labels: orEmpty(r.Labels), annotations: orEmpty(r.Annotations),
			})
		}
	}
	return rules
}

func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// alerts returns the alerting rules of every embedded file.
func alerts(t *testing.T) []rule {
	t.Helper()
	var all []rule
	for _, name := range ruleFiles(t) {
		for _, r := range loadRules(t, name) {
			if r.alert != "" {
				all = append(all, r)
			}
		}
	}
	if len(all) == 0 {
		t.Fatal("no alerting rule found")
	}
	return all
}

// promtool returns the path of promtool, or skips the test without it.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not found (Debian package prometheus); ./test.sh installs it")
	}
	return p
}

// TestPromtoolCheckRules checks every rule file with promtool, and that the
// reader of these tests sees as many rules as Prometheus does: a rule it
// missed would escape every other check.
func TestPromtoolCheckRules(t *testing.T) {
	bin := promtool(t)
	found := regexp.MustCompile(`SUCCESS: (\d+) rules found`)
	for _, name := range ruleFiles(t) {
		out, err := exec.Command(bin, "check", "rules", name).CombinedOutput()
		if err != nil {
			t.Errorf("promtool check rules %s: %v\n%s", name, err, out)
			continue
		}
		m := found.FindSubmatch(out)
		if m == nil {
			t.Errorf("promtool check rules %s: no rule count in\n%s", name, out)
			continue
		}
		want, _ := strconv.Atoi(string(m[1]))
		if got := len(loadRules(t, name)); got != want {
			t.Errorf("%s: the test reader found %d rules, promtool %d", name, got, want)
		}
	}
}

// TestPromtoolTestRules runs the unit tests of tests/ with promtool.
func TestPromtoolTestRules(t *testing.T) {
	bin := promtool(t)
	files, err := filepath.Glob(filepath.Join("tests", "*.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no unit test file in tests/: %v", err)
	}
	out, err := exec.Command(bin, append([]string{"test", "rules"}, files...)...).CombinedOutput()
	if err != nil {
		t.Errorf("promtool test rules: %v\n%s", err, out)
	}
}

// TestAlertsAreComplete checks what every alert must carry: a for: that keeps
// it from flapping, the labels severity and advice, a known alert name and
// advice ID, and the annotations summary, description and runbook_url, the
// last pointing at the advice's section.
func TestAlertsAreComplete(t *testing.T) {
	alertAdvices := alertAdvices()
	given := map[string]bool{}
	for _, r := range alerts(t) {
		advice := r.labels["advice"]
		given[r.alert+" "+advice] = true
		allowed, known := alertAdvices[r.alert]
		switch {
		case !known:
			t.Errorf("%v: unknown alert name; add it to its advice's file in advisor/ and to docs/advice.md", r)
		case !slices.Contains(allowed, advice):
			t.Errorf("%v: advice must be one of %q", r, allowed)
		}
		if s := r.labels["severity"]; s != "warning" && s != "critical" {
			t.Errorf("%v: severity %q, want warning or critical", r, s)
		}
		if d, err := time.ParseDuration(r.forDur); err != nil || d <= 0 {
			t.Errorf("%v: for %q, want a positive duration", r, r.forDur)
		}
		for _, a := range []string{"summary", "description", "runbook_url"} {
			if strings.TrimSpace(r.annotations[a]) == "" {
				t.Errorf("%v: no annotation %s", r, a)
			}
		}
		if got, want := r.annotations["runbook_url"], runbookBase+advice; got != want {
			t.Errorf("%v: runbook_url %q, want %q", r, got, want)
		}
	}
	for alert, advices := range alertAdvices {
		for _, advice := range advices {
			if !given[alert+" "+advice] {
				t.Errorf("no rule gives alert %s with advice %s", alert, advice)
			}
		}
	}
}

// TestRunbookAnchorsExist checks that every runbook_url lands on a heading of
// docs/advice.md, and that every advice ID has its section.
func TestRunbookAnchorsExist(t *testing.T) {
	anchors := markdownAnchors(t, filepath.Join("..", "docs", "advice.md"))
	for _, r := range alerts(t) {
		url := r.annotations["runbook_url"]
		_, anchor, ok := strings.Cut(url, "#")
		if !ok || !anchors[anchor] {
			t.Errorf("%v: runbook_url %q: no such heading in docs/advice.md", r, url)
		}
	}
	for _, advices := range alertAdvices() {
		for _, advice := range advices {
			if !anchors[advice] {
				t.Errorf("docs/advice.md has no section %q", "## "+advice)
			}
		}
	}
}

// TestEveryAdviceSectionIsAnAdvice is the other way: every section of
// docs/advice.md titled like an advice ID ("## pool"; not "## How the
// advisor decides") is an advice of the registry, where each advice's file
// in advisor/ declares it.
func TestEveryAdviceSectionIsAnAdvice(t *testing.T) {
	idLike := regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
	sections := 0
	for _, h := range markdownHeadings(t, filepath.Join("..", "docs", "advice.md")) {
		if h.level != 2 || !idLike.MatchString(h.text) {
			continue
		}
		sections++
		if advisor.Alerts(advisor.ID(h.text)) == nil {
			t.Errorf("docs/advice.md has a section %q that is no advice of the registry (advisor/)", "## "+h.text)
		}
	}
	if sections != len(advisor.IDs()) {
		t.Errorf("docs/advice.md has %d advice sections, the registry %d advices", sections, len(advisor.IDs()))
	}
}

// heading is a heading of a Markdown file.
type heading struct {
	level int
	text  string
}

// markdownHeadings returns the headings of a Markdown file, outside fenced
// code blocks.
func markdownHeadings(t *testing.T, path string) []heading {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	re := regexp.MustCompile(`^(#{1,6}) +(.*?) *#* *$`)
	var headings []heading
	fenced := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
			continue
		}
		if m := re.FindStringSubmatch(line); m != nil && !fenced {
			headings = append(headings, heading{level: len(m[1]), text: m[2]})
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return headings
}

// markdownAnchors returns the anchors GitHub gives the headings of a Markdown
// file: lower case, punctuation other than - and _ dropped, spaces as -.
func markdownAnchors(t *testing.T, path string) map[string]bool {
	t.Helper()
	drop := regexp.MustCompile(`[^\p{L}\p{N} _-]`)
	anchors := map[string]bool{}
	for _, h := range markdownHeadings(t, path) {
		text := drop.ReplaceAllString(strings.ToLower(h.text), "")
		anchors[strings.ReplaceAll(text, " ", "-")] = true
	}
	return anchors
}

// TestEveryAlertIsUnitTested checks that the promtool tests assert every alert
// and every advice it gives.
func TestEveryAlertIsUnitTested(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("tests", "*.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var tests strings.Builder
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		tests.Write(b)
	}
	for alert, advices := range alertAdvices() {
		if !regexp.MustCompile(`alertname: ` + alert + `\n`).MatchString(tests.String()) {
			t.Errorf("no promtool test of %s in tests/", alert)
		}
		for _, advice := range advices {
			if !regexp.MustCompile(`advice: ` + regexp.QuoteMeta(advice) + `[,}\n]`).MatchString(tests.String()) {
				t.Errorf("no promtool test expects advice %s", advice)
			}
		}
	}
}

// TestAnnotationsRespectKernelFacts pins the facts of ADVISOR-FACTS.md that an
// annotation could get wrong: tcp_fin_timeout does not shorten TIME_WAIT, so
// no alert suggests it; tcp_tw_recycle is never advised, only warned about;
// and tcp_tw_reuse is only ever suggested together with tcp_timestamps, which
// it needs.
func TestAnnotationsRespectKernelFacts(t *testing.T) {
	for _, r := range alerts(t) {
		var text strings.Builder
		for _, a := range r.annotations {
			text.WriteString(a + "\n")
		}
		s := text.String()
		if strings.Contains(s, "tcp_fin_timeout") {
			t.Errorf("%v: mentions tcp_fin_timeout, which does not shorten TIME_WAIT", r)
		}
		if strings.Contains(s, "tcp_tw_recycle") && r.labels["advice"] != "tw-recycle-set" {
			t.Errorf("%v: mentions tcp_tw_recycle outside the tw-recycle-set warning", r)
		}
		if strings.Contains(s, "tcp_tw_reuse=1") && !strings.Contains(s, "tcp_timestamps") {
			t.Errorf("%v: suggests tcp_tw_reuse=1 without checking tcp_timestamps", r)
		}
	}
}
