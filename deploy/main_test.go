package deploy

import (
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/tcpadvisor/tcpadvisor/internal/buildtest"
	"github.com/tcpadvisor/tcpadvisor/internal/proctest"
)

// binary is the tcpadvisor built once for these tests.
var binary string

func TestMain(m *testing.M) { buildtest.Main(m, &binary) }

// serverFlags are the flags of `tcpadvisor serve`, as its help lists them,
// without the leading dashes.
func serverFlags(t *testing.T) map[string]bool {
	t.Helper()
	out, err := exec.Command(binary, "serve", "--help").Output()
	if err != nil {
		t.Fatalf("tcpadvisor serve --help: %v", err)
	}
	flags := map[string]bool{}
	for _, f := range strings.Fields(string(out)) {
		name, ok := strings.CutPrefix(f, "--")
		if !ok {
			continue
		}
		name, _, _ = strings.Cut(name, "=")
		if negatable, ok := strings.CutPrefix(name, "[no-]"); ok {
			flags["no-"+negatable] = true
			name = negatable
		}
		flags[name] = true
	}
	if !flags["web.listen-address"] || !flags["no-collector.sockets"] {
		t.Fatalf("could not read the flags from tcpadvisor serve --help:\n%s", out)
	}
	return flags
}

// checkFlags checks that every argument of args that starts with -- is a
// flag of tcpadvisor serve.
func checkFlags(t *testing.T, where string, args []string) {
	t.Helper()
	flags := serverFlags(t)
	for _, a := range args {
		name, ok := strings.CutPrefix(a, "--")
		if !ok {
			continue
		}
		name, _, _ = strings.Cut(name, "=")
		if !flags[name] {
			t.Errorf("%s: %s is not a flag of tcpadvisor serve", where, a)
		}
	}
}

// get returns the body of a 200 answer to GET url.
func get(t *testing.T, url string) string {
	t.Helper()
	status, body := proctest.Get(t, http.DefaultClient, url)
	if status != http.StatusOK {
		t.Fatalf("GET %s: %d %s\n%s", url, status, http.StatusText(status), body)
	}
	return body
}
