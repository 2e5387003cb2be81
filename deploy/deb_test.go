package deploy

import (
	"bytes"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/tcpadvisor/tcpadvisor/internal/proctest"
)

// debFiles are the files of the package and their modes.
var debFiles = map[string]fs.FileMode{
	"/usr/bin/tcpadvisor":                                      0o755,
	"/lib/systemd/system/tcpadvisor.service":                   0o644,
	"/lib/systemd/system/tcpadvisor.socket":                    0o644,
	"/etc/default/tcpadvisor":                                  0o644,
	"/usr/share/doc/tcpadvisor/README.md":                      0o644,
	"/usr/share/doc/tcpadvisor/LICENSE":                        0o644,
	"/usr/share/doc/tcpadvisor/copyright":                      0o644,
	"/usr/share/doc/tcpadvisor/changelog.gz":                   0o644,
	"/usr/share/doc/tcpadvisor/CHANGELOG.md.gz":                0o644,
	"/usr/share/man/man1/tcpadvisor.1.gz":                      0o644,
	"/usr/share/lintian/overrides/tcpadvisor":                  0o644,
	"/usr/share/doc/tcpadvisor/examples/prometheus.yml":        0o644,
	"/usr/share/doc/tcpadvisor/examples/alertmanager.yml":      0o644,
	"/usr/share/doc/tcpadvisor/examples/tcpadvisor.rules.yml":  0o644,
	"/usr/share/doc/tcpadvisor/examples/tcpadvisor.json":       0o644,
	"/usr/share/doc/tcpadvisor/examples/tcpadvisor-netns.json": 0o644,
	"/usr/share/doc/tcpadvisor/examples/tcpadvisor-netns.conf": 0o644,
}

// withDocs returns debFiles and debSources with the documents of docs/,
// which the package installs under /usr/share/doc/tcpadvisor/docs/ as they
// are, so that the README's links work.
func withDocs(t *testing.T) (files map[string]fs.FileMode, sources map[string]string) {
	t.Helper()
	docs, err := filepath.Glob("../docs/*.md")
	if err != nil || len(docs) == 0 {
		t.Fatalf("no docs/*.md: %v", err)
	}
	files, sources = maps.Clone(debFiles), maps.Clone(debSources)
	for _, d := range docs {
		path := "/usr/share/doc/tcpadvisor/docs/" + filepath.Base(d)
		files[path], sources[path] = 0o644, d
	}
	return files, sources
}

// debSources are the repository's files that the package installs as they
// are.
var debSources = map[string]string{
	"/lib/systemd/system/tcpadvisor.service":                   serviceFile,
	"/lib/systemd/system/tcpadvisor.socket":                    socketFile,
	"/etc/default/tcpadvisor":                                  defaultsFile,
	"/usr/share/doc/tcpadvisor/examples/tcpadvisor.rules.yml":  "../rules/tcpadvisor.rules.yml",
	"/usr/share/doc/tcpadvisor/examples/tcpadvisor.json":       "../dashboards/tcpadvisor.json",
	"/usr/share/doc/tcpadvisor/examples/tcpadvisor-netns.json": "../dashboards/tcpadvisor-netns.json",
	"/usr/share/doc/tcpadvisor/examples/tcpadvisor-netns.conf": netnsDropInFile,
	"/usr/share/doc/tcpadvisor/README.md":                      "../README.md",
	"/usr/share/doc/tcpadvisor/LICENSE":                        "../LICENSE",
}

// systemdState are where deb-systemd-helper keeps what it enabled and
// masked: the package must leave nothing there after a purge.
var systemdState = []string{"/etc/systemd/system", "/var/lib/systemd/deb-systemd-helper-enabled", "/var/lib/systemd/deb-systemd-helper-masked"}

// debStatus returns dpkg's status and version of the tcpadvisor package,
// empty when dpkg does not know it.
func debStatus(t *testing.T) (status, version string) {
	t.Helper()
	out, err := exec.Command("dpkg-query", "-W", "-f", "${db:Status-Abbrev}|${Version}", "tcpadvisor").Output()
	if err != nil {
		return "", ""
	}
	status, version, _ = strings.Cut(string(out), "|")
	return strings.TrimSpace(status), version
}

// named returns the paths under roots whose name contains tcpadvisor.
func named(t *testing.T, roots ...string) []string {
	t.Helper()
	var found []string
	for _, root := range roots {
		filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil // a root that does not exist, or cannot be read
			}
			if strings.Contains(d.Name(), "tcpadvisor") {
				found = append(found, path)
			}
			return nil
		})
	}
	return found
}

func dpkg(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("dpkg", args...).CombinedOutput(); err != nil {
		t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestIntegrationDebianPackage builds the package with deploy/deb/build.sh,
// checks it with lintian (no error, no warning), installs it with dpkg -i,
// checks its files, runs tcpadvisor version (the revision built is
// stamped) and systemd-analyze verify on the installed units, installs it again (an
// upgrade), removes it (the conffile stays) and purges it: nothing is left.
//
// It changes this machine's dpkg database. It replaces a tcpadvisor package
// of the version it builds, as a run that failed half-way leaves it, and
// skips when another version is installed, which would be someone's.
func TestIntegrationDebianPackage(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to install a package")
	}
	proctest.LookPath(t, "dpkg-deb", "dpkg")
	proctest.LookPath(t, "go", "golang")
	upstream, err := os.ReadFile("../VERSION")
	if err != nil {
		t.Fatal(err)
	}
	version := strings.ReplaceAll(strings.TrimSpace(string(upstream)), "-", "~")
	// A pre-release built from a clone carries the commit's date and
	// revision.
	revision := gitOutput(t, "rev-parse", "HEAD")
	if strings.Contains(string(upstream), "-") {
		version += "+git" + gitOutput(t, "show", "-s", "--format=%cd", "--date=format-local:%Y%m%d", "HEAD") + "." + revision[:7]
	}
	if status, installed := debStatus(t); status != "" && !strings.HasPrefix(status, "un") && !strings.HasPrefix(status, "pn") {
		if installed != version {
			t.Skipf("tcpadvisor %s is installed (%s); this test would replace it with %s", installed, status, version)
		}
		t.Logf("purging tcpadvisor %s (%s), left by an earlier run", installed, status)
		dpkg(t, "--purge", "tcpadvisor")
	}
	before := named(t, append([]string{"/etc", "/usr", "/lib", "/var/lib"}, systemdState...)...)
	debFiles, debSources := withDocs(t)

	out, err := exec.Command("bash", "deb/build.sh", t.TempDir()).Output()
	if err != nil {
		t.Fatalf("deb/build.sh: %v\n%s", err, exitStderr(err))
	}
	deb := strings.TrimSpace(string(out))
	if want := "tcpadvisor_" + version + "_"; !strings.HasPrefix(filepath.Base(deb), want) {
		t.Fatalf("build.sh made %s, want %s<arch>.deb", deb, want)
	}
	t.Cleanup(func() {
		if status, _ := debStatus(t); status != "" && !strings.HasPrefix(status, "pn") {
			exec.Command("dpkg", "--purge", "tcpadvisor").Run()
		}
	})

	if lintian, err := exec.LookPath("lintian"); err != nil {
		t.Error("no lintian (Debian package lintian) to check the package with")
	} else {
		// Informational tags are advice; errors and warnings fail.
		out, err := exec.Command(lintian, "--fail-on", "error,warning", deb).CombinedOutput()
		if err != nil {
			t.Errorf("lintian %s: %v\n%s", deb, err, out)
		}
	}
	if maintainer, err := exec.Command("dpkg-deb", "--field", deb, "Maintainer").Output(); err != nil || !regexp.MustCompile(`^[^<>]+ <[^<>@\s]+@[^<>@\s]+>$`).Match(bytes.TrimSpace(maintainer)) {
		t.Errorf("Maintainer: %q (%v), want Name <email>", maintainer, err)
	}

	contents, err := exec.Command("dpkg-deb", "--contents", deb).Output()
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for line := range strings.Lines(string(contents)) {
		fields := strings.Fields(line)
		if len(fields) == 6 && !strings.HasPrefix(fields[0], "d") {
			if fields[1] != "root/root" {
				t.Errorf("%s is owned by %s, want root/root", fields[5], fields[1])
			}
			files = append(files, strings.TrimPrefix(fields[5], "."))
		}
	}
	wantFiles := slices.Sorted(func(yield func(string) bool) {
		for f := range debFiles {
			if !yield(f) {
				return
			}
		}
	})
	if slices.Sort(files); !slices.Equal(files, wantFiles) {
		t.Errorf("the package has\n%s\nwant\n%s", strings.Join(files, "\n"), strings.Join(wantFiles, "\n"))
	}
	conffiles, err := exec.Command("dpkg-deb", "--info", deb, "conffiles").Output()
	if err != nil || strings.TrimSpace(string(conffiles)) != "/etc/default/tcpadvisor" {
		t.Errorf("conffiles %q (%v), want /etc/default/tcpadvisor", conffiles, err)
	}

	dpkg(t, "-i", deb)
	if status, installed := debStatus(t); status != "ii" || installed != version {
		t.Fatalf("after dpkg -i: status %q, version %q; want ii %s", status, installed, version)
	}
	for path, mode := range debFiles {
		fi, err := os.Stat(path)
		if err != nil || fi.Mode() != mode {
			t.Errorf("%s: %v, mode %v; want a file of mode %v", path, err, fi.Mode(), mode)
		}
	}
	for path, source := range debSources {
		got, err1 := os.ReadFile(path)
		want, err2 := os.ReadFile(source)
		if err1 != nil || err2 != nil || string(got) != string(want) {
			t.Errorf("%s differs from %s (%v, %v)", path, source, err1, err2)
		}
	}
	out, err = exec.Command("/usr/bin/tcpadvisor", "version").Output()
	if want := "tcpadvisor, version " + strings.TrimSpace(string(upstream)) + " "; err != nil || !strings.HasPrefix(string(out), want) || !strings.Contains(string(out), "revision: "+revision+")") {
		t.Errorf("tcpadvisor version: %q, %v; want it to start with %q and name revision %s", out, err, want, revision)
	}
	if out, err := exec.Command("man", "--warnings", "-E", "UTF-8", "-l", "/usr/share/man/man1/tcpadvisor.1.gz").CombinedOutput(); err != nil || !strings.Contains(string(out), "--web.listen-address") {
		t.Errorf("man tcpadvisor.1.gz: %v\n%s", err, out)
	}
	if analyze, err := exec.LookPath("systemd-analyze"); err == nil {
		if out, err := exec.Command(analyze, "verify", "/lib/systemd/system/tcpadvisor.service", "/lib/systemd/system/tcpadvisor.socket").CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("systemd-analyze verify on the installed units: %v\n%s", err, out)
		}
	}
	// deb-systemd-helper enables the units, as systemctl enable would,
	// even where systemd is not running.
	if _, err := exec.LookPath("deb-systemd-helper"); err == nil {
		for _, link := range []string{"/etc/systemd/system/multi-user.target.wants/tcpadvisor.service", "/etc/systemd/system/sockets.target.wants/tcpadvisor.socket"} {
			if target, err := os.Readlink(link); err != nil || !strings.HasSuffix(target, filepath.Base(link)) {
				t.Errorf("%s: %q, %v; want the unit enabled", link, target, err)
			}
		}
	}

	dpkg(t, "-i", deb) // an upgrade, to the same version
	if status, _ := debStatus(t); status != "ii" {
		t.Fatalf("after a second dpkg -i: status %q, want ii", status)
	}

	dpkg(t, "--remove", "tcpadvisor")
	if _, err := os.Stat("/usr/bin/tcpadvisor"); err == nil {
		t.Error("dpkg --remove left /usr/bin/tcpadvisor")
	}
	if _, err := os.Stat("/etc/default/tcpadvisor"); err != nil {
		t.Errorf("dpkg --remove took the conffile /etc/default/tcpadvisor: %v", err)
	}

	dpkg(t, "--purge", "tcpadvisor")
	if status, _ := debStatus(t); status != "" && !strings.HasPrefix(status, "pn") {
		t.Errorf("after dpkg --purge: status %q, want the package gone", status)
	}
	after := named(t, append([]string{"/etc", "/usr", "/lib", "/var/lib"}, systemdState...)...)
	if !slices.Equal(after, before) {
		t.Errorf("dpkg --purge left behind what was not there before:\nbefore %q\nafter  %q", before, after)
	}
}

// gitOutput runs git in the repository and returns its output, trimmed.
func gitOutput(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Env = append(os.Environ(), "TZ=UTC")
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("git %s: %v: the package's version needs the repository's git history", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out))
}

// exitStderr returns what a failed command wrote on stderr.
func exitStderr(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}
