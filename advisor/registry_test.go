package advisor_test

import (
	"io/fs"
	"os"
	"testing"

	"github.com/tcpadvisor/tcpadvisor/advisor"
	"github.com/tcpadvisor/tcpadvisor/rules"
	"go.yaml.in/yaml/v3"
)

// An advice lives in four places that must agree: its file in advisor/
// (the registry), the advice label of the rules that raise it in rules/,
// the PrometheusRule generated from them in deploy/kubernetes, and its
// section in docs/advice.md. Each test below compares the registry with one
// of the others, both ways: an advice added to one place only fails here.
// The docs are checked from the rules' tests (rules/rules_test.go:
// TestRunbookAnchorsExist and TestEveryAdviceSectionIsAnAdvice), with the
// Markdown reader they already have.

// pairs returns "alert advice" for every alerting rule of a rules document.
func pairs(t *testing.T, name string, groups []ruleGroup) map[string]bool {
	t.Helper()
	got := map[string]bool{}
	for _, g := range groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			if r.Labels["advice"] == "" {
				t.Errorf("%s: alert %s has no advice label", name, r.Alert)
			}
			got[r.Alert+" "+r.Labels["advice"]] = true
		}
	}
	return got
}

type ruleGroup struct {
	Rules []struct {
		Alert  string            `yaml:"alert"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"rules"`
}

// registryPairs returns "alert advice" for every alert the registry says
// raises each advice.
func registryPairs() map[string]bool {
	want := map[string]bool{}
	for _, id := range advisor.IDs() {
		for _, alert := range advisor.Alerts(id) {
			want[alert+" "+string(id)] = true
		}
	}
	return want
}

func compare(t *testing.T, where string, got, want map[string]bool) {
	t.Helper()
	for p := range want {
		if !got[p] {
			t.Errorf("the registry has alert and advice %q; %s has no such rule", p, where)
		}
	}
	for p := range got {
		if !want[p] {
			t.Errorf("%s has alert and advice %q; the registry (an advice's file in advisor/) does not", where, p)
		}
	}
}

func TestRegistryMatchesRules(t *testing.T) {
	names, err := fs.Glob(rules.Files, "*.yml")
	if err != nil || len(names) == 0 {
		t.Fatalf("no rule file: %v", err)
	}
	got := map[string]bool{}
	for _, name := range names {
		b, err := rules.Files.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Groups []ruleGroup `yaml:"groups"`
		}
		if err := yaml.Unmarshal(b, &doc); err != nil {
			t.Fatalf("rules/%s: %v", name, err)
		}
		for p := range pairs(t, "rules/"+name, doc.Groups) {
			got[p] = true
		}
	}
	compare(t, "rules/", got, registryPairs())
}

func TestRegistryMatchesPrometheusRule(t *testing.T) {
	b, err := os.ReadFile("../deploy/kubernetes/prometheusrule.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Spec struct {
			Groups []ruleGroup `yaml:"groups"`
		} `yaml:"spec"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	compare(t, "deploy/kubernetes/prometheusrule.yaml (go test ./deploy -run TestPrometheusRuleIsGenerated -update regenerates it)",
		pairs(t, "prometheusrule.yaml", doc.Spec.Groups), registryPairs())
}
