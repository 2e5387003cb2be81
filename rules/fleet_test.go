package rules

import (
	"io/fs"
	"os/exec"
	"path/filepath"
	"testing"
)

// The fleet's recording rules are optional and about many hosts: they are
// promtool-checked and -tested, and never bundled in the daemon.

func TestFleetRulesAreNotBundled(t *testing.T) {
	names, err := fs.Glob(Files, "*")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if name == "fleet" || filepath.Base(name) == "fleet.rules.yml" {
			t.Errorf("the daemon bundles %s: the fleet's rules are for a Prometheus of many hosts", name)
		}
	}
}

func TestPromtoolFleetRules(t *testing.T) {
	bin := promtool(t)
	if out, err := exec.Command(bin, "check", "rules", filepath.Join("fleet", "fleet.rules.yml")).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules fleet/fleet.rules.yml: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "test", "rules", filepath.Join("fleet", "tests", "fleet.yml")).CombinedOutput(); err != nil {
		t.Errorf("promtool test rules fleet/tests/fleet.yml: %v\n%s", err, out)
	}
}
