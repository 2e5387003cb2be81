package docs

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// markdownLink is an inline link or image, [text](target); its target has
// no spaces.
var markdownLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// TestLinksResolve checks every relative link of README.md and docs/*.md:
// its file exists, and its anchor, if any, is a heading of the Markdown
// file it points into.
func TestLinksResolve(t *testing.T) {
	docs, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	sources := []string{"README.md"}
	for _, d := range docs {
		sources = append(sources, "docs/"+d)
	}
	anchors := map[string]map[string]bool{}
	for _, source := range sources {
		for _, l := range links(t, source) {
			if strings.Contains(l.target, "://") || strings.HasPrefix(l.target, "mailto:") {
				continue
			}
			file, anchor, _ := strings.Cut(l.target, "#")
			path := source
			if file != "" {
				path = filepath.ToSlash(filepath.Clean(filepath.Join(filepath.Dir(source), file)))
			}
			if _, err := os.Stat(filepath.Join("..", path)); err != nil {
				t.Errorf("%s:%d: %s: no file %s", source, l.line, l.target, path)
				continue
			}
			if anchor == "" || !strings.HasSuffix(path, ".md") {
				continue
			}
			if anchors[path] == nil {
				anchors[path] = headings(t, path)
			}
			if !anchors[path][anchor] {
				t.Errorf("%s:%d: %s: no heading #%s in %s", source, l.line, l.target, anchor, path)
			}
		}
	}
}

type mdLink struct {
	line   int
	target string
}

// links returns the links of a Markdown file of the repository, outside
// code blocks and code spans.
func links(t *testing.T, path string) []mdLink {
	t.Helper()
	var found []mdLink
	fenced := false
	forLines(t, path, func(n int, line string) {
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
			return
		}
		if fenced {
			return
		}
		for _, m := range markdownLink.FindAllStringSubmatch(codeSpan.ReplaceAllString(line, ""), -1) {
			found = append(found, mdLink{n, m[1]})
		}
	})
	return found
}

// headings returns the anchors of the headings of a Markdown file of the
// repository, as GitHub and ToHTML make them.
func headings(t *testing.T, path string) map[string]bool {
	t.Helper()
	anchors := map[string]bool{}
	fenced := false
	forLines(t, path, func(_ int, line string) {
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
			return
		}
		if m := heading.FindStringSubmatch(line); m != nil && !fenced {
			anchors[Anchor(m[2])] = true
		}
	})
	return anchors
}

// forLines calls fn with each line of a file of the repository.
func forLines(t *testing.T, path string, fn func(n int, line string)) {
	t.Helper()
	f, err := os.Open(filepath.Join("..", path))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		fn(n, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
}

// TestREADMEFirstScreen checks what a new user reads first: within 60
// lines, the commands that run and test tcpadvisor and an advice as advise
// prints it; nowhere a sudo (not every machine has it: "as root" says what
// is needed) or an unquoted URL with a query, which zsh would glob.
func TestREADMEFirstScreen(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	first := strings.Join(strings.SplitN(string(readme), "\n", 61)[:60], "\n")
	for _, want := range []string{"go run . serve", "go run . advise", "./test.sh", "as root", "apt-get", "[warning] pool: ", "  What to do:", "  Fix: "} {
		if !strings.Contains(first, want) {
			t.Errorf("the README's first 60 lines lack %q", want)
		}
	}
	unquoted := regexp.MustCompile(`(curl|advise|GET)[^'"\n]*\s[a-z0-9.:/]*\?[a-z]+=`)
	docs, _ := filepath.Glob("*.md")
	for _, d := range append([]string{"../README.md"}, docs...) {
		if d == "advice.md" {
			continue // the advisor's reference, checked with the rules
		}
		forLines(t, strings.TrimPrefix(filepath.Join("docs", d), "docs/../"), func(n int, line string) {
			if regexp.MustCompile(`\bsudo`).MatchString(line) {
				t.Errorf("%s:%d: sudo: say \"as root\" instead:\n%s", d, n, line)
			}
			if unquoted.MatchString(line) {
				t.Errorf("%s:%d: quote the URL:\n%s", d, n, line)
			}
		})
	}
}
