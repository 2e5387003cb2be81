package docs

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestToHTML(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"# Advice", `<h1 id="advice"><a href="#advice">Advice</a></h1>` + "\n"},
		{"## `pool`: one per process", `<h2 id="pool-one-per-process"><a href="#pool-one-per-process"><code>pool</code>: one per process</a></h2>` + "\n"},
		{"# A\n# A", `<h1 id="a"><a href="#a">A</a></h1>` + "\n" + `<h1 id="a-1"><a href="#a-1">A</a></h1>` + "\n"},
		{"one\ntwo <b>\n\nthree", "<p>one two &lt;b&gt;</p>\n<p>three</p>\n"},
		{"```sh\nx < y\n```", `<pre><code class="language-sh">x &lt; y` + "\n</code></pre>\n"},
		{"- a\n  b\n- `c`", "<ul>\n<li>a b</li>\n<li><code>c</code></li>\n</ul>\n"},
		{"1. a\n2. b", "<ol>\n<li>a</li>\n<li>b</li>\n</ol>\n"},
		{"| a | b |\n|---|---:|\n| `x\\|y` | 2 |", "<table>\n<tr><th>a</th><th>b</th></tr>\n<tr><td><code>x|y</code></td><td>2</td></tr>\n</table>\n"},
		{"[`pool`](#pool), [faq](faq.md#x), [rules](../rules/tcpadvisor.rules.yml), [w](https://w.example)",
			`<p><a href="#pool"><code>pool</code></a>, <a href="faq.md#x">faq</a>, <a href="https://github.com/tcpadvisor/tcpadvisor/blob/main/rules/tcpadvisor.rules.yml">rules</a>, <a href="https://w.example">w</a></p>` + "\n"},
		{"**only if `x` is 1** and `**not bold**`", "<p><strong>only if <code>x</code> is 1</strong> and <code>**not bold**</code></p>\n"},
	} {
		if got := ToHTML(tt.in); got != tt.want {
			t.Errorf("ToHTML(%q)\n got %q\nwant %q", tt.in, got, tt.want)
		}
	}
}

// TestHandler serves the embedded documents as a browser and a program
// ask for them.
func TestHandler(t *testing.T) {
	server := httptest.NewServer(http.StripPrefix("", Handler("body{}")))
	defer server.Close()
	get := func(path, accept string) (int, string, string) {
		req, _ := http.NewRequest(http.MethodGet, server.URL+path, nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(body)
	}
	code, ctype, page := get("/docs/advice.md", "")
	if code != 200 || ctype != "text/html; charset=utf-8" {
		t.Fatalf("/docs/advice.md: %d %s", code, ctype)
	}
	for _, id := range []string{"pool", "upstream-keepalive", "port-pressure", "tw-recycle-set"} {
		if !strings.Contains(page, `id="`+id+`"`) {
			t.Errorf("/docs/advice.md has no heading with id %q", id)
		}
	}
	source, _ := Files.ReadFile("advice.md")
	for _, accept := range []string{"text/markdown", ""} {
		path := "/docs/advice.md"
		if accept == "" {
			path += "?raw=1"
		}
		if code, ctype, raw := get(path, accept); code != 200 || ctype != "text/markdown; charset=utf-8" || raw != string(source) {
			t.Errorf("%s (Accept %q): %d %s, %d bytes; want the Markdown", path, accept, code, ctype, len(raw))
		}
	}
	if code, _, index := get("/docs/", ""); code != 200 || !strings.Contains(index, `href="advice.md"`) {
		t.Errorf("/docs/: %d\n%s", code, index)
	}
	for _, path := range []string{"/docs/nothing.md", "/docs/docs.go", "/docs/../go.mod"} {
		if code, _, _ := get(path, ""); code != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", path, code)
		}
	}
}
