package render

import (
	"fmt"
	"html/template"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/tcpadvisor/tcpadvisor/advisor"
	"github.com/tcpadvisor/tcpadvisor/internal/term"
)

// PageCSS is the style of the daemon's pages: exporter-toolkit's landing
// page (its header, font and spacing), and the advice's own classes.
const PageCSS = `body { font-family: -apple-system,BlinkMacSystemFont,Segoe UI,Roboto,Helvetica Neue,Arial,Noto Sans,Liberation Sans,sans-serif,Apple Color Emoji,Segoe UI Emoji,Segoe UI Symbol,Noto Color Emoji; margin: 0; }
header { background-color: #e6522c; color: #fff; font-size: 1rem; padding: 1rem; }
header a { color: #fff; }
header p { margin: 0.3rem 0 0; }
main { padding: 1rem; max-width: 60rem; }
.advice { border: 1px solid #ccc; border-left: 6px solid #f0ad4e; border-radius: 4px; padding: 0.5rem 1rem; margin: 1rem 0; }
.advice.critical { border-left-color: #d9534f; }
.advice h2 { font-size: 1.1rem; margin: 0.3rem 0; }
.advice h2 a { color: inherit; text-decoration: none; }
.severity { text-transform: uppercase; font-size: 0.8rem; font-weight: bold; }
table { border-collapse: collapse; }
td, th { padding: 0.1rem 0.8rem 0.1rem 0; vertical-align: top; text-align: left; }
td.value { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f6f6f6; padding: 0.5rem; overflow-x: auto; }
code { background: #f6f6f6; }
.muted { color: #666; font-size: 0.9rem; }
`

// MaxRefresh is the longest ?refresh of an advice page, in seconds: an hour.
const MaxRefresh = 3600

// ParseRefresh reads the ?refresh=N of an advice page, the daemon's or the
// fleet's: 0 when s is empty, else N seconds from 1 to MaxRefresh; any
// other value is an error to answer 400 with.
func ParseRefresh(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxRefresh {
		return 0, fmt.Errorf("refresh=%q: want a number of seconds from 1 to %d", s, MaxRefresh)
	}
	return n, nil
}

// Page says where the advice page's links lead.
type Page struct {
	// MetricsPath is the daemon's --web.telemetry-path.
	MetricsPath string
	// Refresh, when above 0, reloads the page every Refresh seconds.
	Refresh int
}

var page = template.Must(template.New("advice").Funcs(template.FuncMap{
	"target":    func(t map[string]string) string { return term.Printable(Target(t)) },
	"anchor":    Anchor,
	"value":     Value,
	"printable": term.Printable,
	"alerts":    alerts,
	"server":    func(s advisor.Service) string { return term.Printable(Server(s)) },
	"lines":     printableLines,
	"css":       func() template.CSS { return PageCSS },
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
{{if gt .Page.Refresh 0}}<meta http-equiv="refresh" content="{{.Page.Refresh}}">
{{end}}<title>tcpadvisor: advice</title>
<style>{{css}}</style>
</head>
<body>
<header><h1>tcpadvisor: advice</h1>
<p>Generated {{.GeneratedAt.Format "2006-01-02 15:04:05 UTC"}}{{if gt .Page.Refresh 0}}, reloaded every {{.Page.Refresh}} s{{end}}.
<a href="?format=json">JSON</a> · <a href="{{if gt .Page.Refresh 0}}?{{else}}?refresh=30{{end}}">{{if gt .Page.Refresh 0}}stop reloading{{else}}reload every 30 s{{end}}</a> · <a href="/">home</a> · <a href="{{.Page.MetricsPath}}">metrics</a> · <a href="/docs/advice.md">what each advice means</a></p></header>
<main>
{{if and (not .Advice) .WarmingUp}}<p>No advice yet: the advisor is warming up{{with .WarmUntil}} until {{.Format "2006-01-02 15:04:05 UTC"}}{{end}}, when it will have watched as long as its slowest rule needs.</p>{{else if not .Advice}}<p>No advice: nothing to change.</p>{{end}}
{{range .Advice}}
<section class="advice {{.Severity}}" id="{{anchor .ID .Target}}">
<span class="severity">{{.Severity}}</span>
<h2><a href="#{{anchor .ID .Target}}">{{.ID}}: {{target .Target}}</a></h2>
<p>{{printable .Summary}}</p>
<p class="muted">{{.State}} since {{.Since.Format "2006-01-02 15:04:05 UTC"}} · {{alerts .}}</p>
{{with .Owner}}<p>Owner: {{printable .String}}, {{value .Sockets}} sockets</p>{{end}}
{{with .Client}}<p>Client: {{printable .String}}, {{value .Sockets}} sockets</p>{{end}}
{{with .Server}}<p>Server: {{server .}}</p>{{end}}
{{if .Evidence}}<h3>Evidence</h3>
<table>{{range .Evidence}}<tr><td>{{printable .Name}}</td><td class="value" title="{{printable .Query}}">{{value .Value}}</td></tr>{{end}}</table>{{end}}
<h3>What to do</h3>
<p>{{printable .Recommendation}}</p>
{{range .Fixes}}<h4>{{printable .Title}}</h4><pre><code class="language-{{.Language}}">{{lines .Text}}</code></pre>{{end}}
{{if .RunbookURL}}<p><a href="{{.RunbookURL}}">Runbook: why, and how to silence it</a></p>{{end}}
</section>
{{end}}
{{if .Pending}}<h2>Pending</h2>
<p class="muted">The condition holds, not yet for as long as the rule asks.</p>
<ul>{{range .Pending}}<li id="{{anchor .ID .Target}}"><b>{{.ID}}</b>, {{target .Target}}, since {{.Since.Format "15:04:05 UTC"}}: {{printable .Summary}}</li>{{end}}</ul>{{end}}
</main>
</body>
</html>
`))

// HTML writes the report as a page whose metrics link is /metrics.
func HTML(w io.Writer, r advisor.Report) error {
	return HTMLPage(w, r, Page{MetricsPath: "/metrics"})
}

// HTMLPage writes the report as a page. html/template escapes every value
// for HTML; control characters are quoted too, to show as text.
func HTMLPage(w io.Writer, r advisor.Report, p Page) error {
	return page.Execute(w, struct {
		advisor.Report
		Page Page
	}{r, p})
}

// notAnchor is what an anchor cannot hold: anything but letters, digits,
// dots and dashes.
var notAnchor = regexp.MustCompile(`[^a-z0-9.]+`)

// Anchor returns the id of an advice's section: its ID and its target's
// words, lower case, with a dash for each run of other characters, such as
// port-pressure-10.0.0.1-10.0.0.5-6379.
func Anchor(id advisor.ID, target map[string]string) string {
	return strings.Trim(notAnchor.ReplaceAllString(strings.ToLower(string(id)+" "+Target(target)), "-"), "-")
}

// printableLines quotes the control characters of a code block but for its
// line breaks and tabs.
func printableLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, line := range lines {
		cells := strings.Split(line, "\t")
		for j, cell := range cells {
			cells[j] = term.Printable(cell)
		}
		lines[i] = strings.Join(cells, "\t")
	}
	return strings.Join(lines, "\n")
}
