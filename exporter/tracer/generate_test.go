package tracer

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// generated are the files generate.sh writes, checked in.
var generated = []string{"tracer_bpfel.o", "tracer_bpfel.go", "tracer_bpfel.clang"}

// TestGeneratedUpToDate rebuilds the object and its bindings from
// bpf/tracer.bpf.c and fails if they differ from the checked-in ones.
func TestGeneratedUpToDate(t *testing.T) {
	for _, tool := range []string{"clang", "llvm-strip", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s to rebuild the eBPF object (apt-get install -y clang llvm libbpf-dev)", tool)
		}
	}
	if _, err := os.Stat("/usr/include/bpf/bpf_helpers.h"); err != nil {
		t.Skip("needs the libbpf headers to rebuild the eBPF object (apt-get install -y libbpf-dev)")
	}
	out, err := exec.Command("clang", "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	version := strings.SplitN(string(out), "\n", 2)[0]
	checkedIn, err := os.ReadFile("tracer_bpfel.clang")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(checkedIn)) != version {
		t.Skipf("the checked-in object was built with %q, this clang is %q: their output differs, so only the same clang can tell whether the object is stale", strings.TrimSpace(string(checkedIn)), version)
	}
	// Read here, the sources are part of what go test caches this result
	// on: clang reading them would not be.
	for _, source := range []string{"bpf/tracer.bpf.c", "bpf/vmlinux.h", "generate.sh"} {
		if _, err := os.ReadFile(source); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	cmd := exec.Command("./generate.sh")
	cmd.Env = append(os.Environ(), "OUTPUT_DIR="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("generate.sh: %v\n%s", err, out)
	}
	for _, name := range generated {
		want, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is out of date with bpf/tracer.bpf.c: run exporter/tracer/generate.sh and commit the result", name)
		}
	}
}
