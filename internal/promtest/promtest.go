// Package promtest prepares what the tests that run Debian's Prometheus
// give it.
package promtest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/tcpadvisor/tcpadvisor/advisor/engine"
	"github.com/tcpadvisor/tcpadvisor/rules"
)

// ScaledRules writes the project's rules, with their windows scaled by
// timeScale (engine.ScaleRuleFile), into dir, and returns the file's path,
// for a Prometheus that must fire the advice within a test's minutes.
func ScaledRules(t testing.TB, dir string, timeScale float64) string {
	t.Helper()
	content, err := rules.Files.ReadFile("tcpadvisor.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	scaled, err := engine.ScaleRuleFile("rules/tcpadvisor.rules.yml", content, timeScale)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "tcpadvisor.rules.yml")
	if err := os.WriteFile(path, scaled, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
