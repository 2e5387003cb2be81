package pipeline

import (
	"os"

	"github.com/tcpadvisor/tcpadvisor/internal/cliflag"
)

// AddRuleFilesFlag adds the repeatable --rules.file flag to g; each file
// must be readable.
func AddRuleFilesFlag(g cliflag.Group) *[]string {
	return cliflag.Repeatable(g, "rules.file",
		"Prometheus rule file to evaluate instead of the bundled rules. Repeatable. The daemon loads the files again on SIGHUP.",
		"FILE", "a readable rule file",
		func(s string) (string, bool) {
			f, err := os.Open(s)
			if err == nil {
				f.Close()
			}
			return s, err == nil
		})
}
