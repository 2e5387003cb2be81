package main

import (
	"fmt"
	"os"
	"path/filepath"
)

// checkOutputFile fails when the file --flag names could not be written, so
// that a command finds out before its work rather than after: the file
// must be a regular file that opens for writing, or be creatable in an
// existing directory.
func checkOutputFile(flag, path string) error {
	info, err := os.Stat(path)
	switch {
	case err == nil && !info.Mode().IsRegular():
		return fmt.Errorf("--%s=%s: not a regular file; name a file to write", flag, path)
	case err == nil:
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return fmt.Errorf("--%s=%s: cannot be written (%w); choose a writable file", flag, path, err)
		}
		return f.Close()
	case os.IsNotExist(err):
		if err := checkWritableDir(filepath.Dir(path)); err != nil {
			return fmt.Errorf("--%s=%s: cannot be created (%w); choose a file in a writable directory", flag, path, err)
		}
		return nil
	default:
		return fmt.Errorf("--%s=%s: %w; choose a writable file", flag, path, err)
	}
}

// checkOutputDir makes the directory --flag names, where the command will
// write its files, and fails when a file cannot be created in it.
func checkOutputDir(flag, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("--%s=%s: cannot be made (%w); choose a writable directory", flag, dir, err)
	}
	if err := checkWritableDir(dir); err != nil {
		return fmt.Errorf("--%s=%s: files cannot be created in it (%w); choose a writable directory", flag, dir, err)
	}
	return nil
}

// checkWritableDir creates and removes a file in dir: only trying tells a
// read-only or special filesystem (/proc) from a writable one, for root too.
func checkWritableDir(dir string) error {
	f, err := os.CreateTemp(dir, ".tcpadvisor-check-*")
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(f.Name())
}
