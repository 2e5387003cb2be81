// Package docs embeds the reference documents of docs/ so that the daemon
// serves them itself (/docs/advice.md): the alerts' runbook links work on
// a host with no way out.
package docs

import (
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

// Files holds the Markdown documents, at its root.
//
//go:embed *.md
var Files embed.FS

// SourceURL is where the repository's other files are read, for the
// documents' links that lead out of docs/.
const SourceURL = "https://github.com/tcpadvisor/tcpadvisor/blob/main/"

var index = template.Must(template.New("index").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tcpadvisor: documentation</title>
<style>{{.CSS}}</style>
</head>
<body>
<header><h1>tcpadvisor: documentation</h1><p><a href="/">home</a></p></header>
<main>
<ul>{{range .Names}}<li><a href="{{.}}">{{.}}</a></li>{{end}}</ul>
</main>
</body>
</html>
`))

var document = template.Must(template.New("document").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tcpadvisor: {{.Title}}</title>
<style>{{.CSS}}</style>
</head>
<body>
<header><h1>tcpadvisor: {{.Title}}</h1><p><a href="/">home</a> · <a href="/docs/">documentation</a> · <a href="?raw=1">Markdown</a></p></header>
<main>
{{.Body}}
</main>
</body>
</html>
`))

// Handler serves the documents under /docs/: each as an HTML page, or as
// Markdown with ?raw=1 or Accept: text/markdown, and at /docs/ their list.
// css is the style of the pages.
func Handler(css string) http.Handler {
	style := template.CSS(css)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/docs/")
		if name == "" {
			names, _ := fs.Glob(Files, "*.md")
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			index.Execute(w, struct {
				CSS   template.CSS
				Names []string
			}{style, names})
			return
		}
		source, err := fs.ReadFile(Files, name)
		if err != nil || path.Ext(name) != ".md" {
			http.Error(w, fmt.Sprintf("no document %s; see /docs/", r.URL.Path), http.StatusNotFound)
			return
		}
		if r.URL.Query().Has("raw") || strings.Contains(r.Header.Get("Accept"), "text/markdown") {
			w.Header().Set("Content-Type", "text/markdown; charset=utf-8")
			w.Write(source)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		document.Execute(w, struct {
			CSS   template.CSS
			Title string
			Body  template.HTML
		}{style, strings.TrimSuffix(name, ".md"), template.HTML(ToHTML(string(source)))})
	})
}
