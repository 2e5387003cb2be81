package rules

import (
	"bytes"
	"io"
	"io/fs"
	"strings"
	"testing"
)

// TestWithRunbooksAt checks that the daemon's rules point every runbook at
// its own /docs/advice.md, and are otherwise the bundled bytes, read
// through fs.ReadFile as through Open.
func TestWithRunbooksAt(t *testing.T) {
	rebased := WithRunbooksAt("http://tcpadvisor.example:10067")
	names, err := fs.Glob(rebased, "*.yml")
	if err != nil || len(names) == 0 {
		t.Fatalf("no rule files: %v", err)
	}
	for _, name := range names {
		original, err := fs.ReadFile(Files, name)
		if err != nil {
			t.Fatal(err)
		}
		read, err := fs.ReadFile(rebased, name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := rebased.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		opened, err := io.ReadAll(f)
		info, _ := f.Stat()
		f.Close()
		if err != nil || !bytes.Equal(opened, read) || info.Size() != int64(len(read)) {
			t.Errorf("%s: Open reads %d bytes (%v, size %d), ReadFile %d", name, len(opened), err, info.Size(), len(read))
		}
		links := strings.Count(string(original), "runbook_url: "+RunbookBase)
		if links == 0 || strings.Count(string(read), "runbook_url: http://tcpadvisor.example:10067/docs/advice.md#") != links || strings.Contains(string(read), RunbookBase) {
			t.Errorf("%s: %d runbook links to GitHub; after the rewrite:\n%s", name, links, read)
		}
		if got := strings.ReplaceAll(string(read), "http://tcpadvisor.example:10067/docs/advice.md#", RunbookBase); got != string(original) {
			t.Errorf("%s: the rewrite changed more than the runbook links", name)
		}
	}
}
