package rules

import (
	"bytes"
	"io/fs"
)

// RunbookBase is where the rules' runbook_url annotations point, before the
// advice ID: the advice reference on GitHub, for a Prometheus that loads
// the rules itself.
const RunbookBase = "https://github.com/tcpadvisor/tcpadvisor/blob/main/docs/advice.md#"

// WithRunbooksAt returns the rule files of Files with every runbook_url
// pointing at base + "/docs/advice.md#" instead of GitHub: the daemon
// serves that reference itself, so that an alert's link works on a host
// with no way out. base is the daemon's external URL.
func WithRunbooksAt(base string) fs.FS {
	return runbookFS{
		FS:   Files,
		from: []byte(RunbookBase),
		to:   []byte(base + "/docs/advice.md#"),
	}
}

// runbookFS is a flat file system of rule files whose runbook links are
// rewritten as they are read.
type runbookFS struct {
	fs.FS
	from, to []byte
}

func (r runbookFS) ReadFile(name string) ([]byte, error) {
	b, err := fs.ReadFile(r.FS, name)
	if err != nil {
		return nil, err
	}
	return bytes.ReplaceAll(b, r.from, r.to), nil
}

func (r runbookFS) ReadDir(name string) ([]fs.DirEntry, error) {
	return fs.ReadDir(r.FS, name)
}

func (r runbookFS) Open(name string) (fs.File, error) {
	f, err := r.FS.Open(name)
	if err != nil {
		return nil, err
	}
	info, err := f.Stat()
	if err != nil || info.IsDir() {
		return f, err
	}
	f.Close()
	b, err := r.ReadFile(name)
	if err != nil {
		return nil, err
	}
	return &ruleFile{Reader: bytes.NewReader(b), info: sizedInfo{info, int64(len(b))}}, nil
}

// ruleFile is a rule file read, rewritten, from memory.
type ruleFile struct {
	*bytes.Reader
	info fs.FileInfo
}

func (f *ruleFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *ruleFile) Close() error               { return nil }

// sizedInfo is a file's information with the size of its rewritten
// content.
type sizedInfo struct {
	fs.FileInfo
	size int64
}

func (i sizedInfo) Size() int64 { return i.size }
