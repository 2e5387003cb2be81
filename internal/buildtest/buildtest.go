// Package buildtest builds the tcpadvisor binary once for a package of tests
// that run it as a user would.
package buildtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Main builds tcpadvisor into a temporary directory, sets *binary to its
// path, runs the tests and removes the directory. Call it from TestMain.
func Main(m *testing.M, binary *string) {
	dir, err := os.MkdirTemp("", "tcpadvisor-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	*binary = filepath.Join(dir, "tcpadvisor")
	if out, err := exec.Command("go", "build", "-o", *binary, "github.com/tcpadvisor/tcpadvisor").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
