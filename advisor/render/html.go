package render

import (
	"html/template"
	"io"

	"github.com/tcpadvisor/tcpadvisor/advisor"
)

var page = template.Must(template.New("advice").Funcs(template.FuncMap{
	"target": Target,
	"value":  Value,
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tcpadvisor: advice</title>
<style>
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 60rem; padding: 1rem; color: #222; }
header { border-bottom: 2px solid #e6522c; margin-bottom: 1rem; }
.advice { border: 1px solid #ccc; border-left: 6px solid #f0ad4e; border-radius: 4px; padding: 0.5rem 1rem; margin: 1rem 0; }
.advice.critical { border-left-color: #d9534f; }
.advice h2 { font-size: 1.1rem; margin: 0.3rem 0; }
.severity { text-transform: uppercase; font-size: 0.8rem; font-weight: bold; }
table { border-collapse: collapse; }
td { padding: 0.1rem 0.8rem 0.1rem 0; vertical-align: top; }
td.value { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f6f6f6; padding: 0.5rem; overflow-x: auto; }
.muted { color: #666; font-size: 0.9rem; }
</style>
</head>
<body>
<header><h1>tcpadvisor: advice</h1>
<p class="muted">Generated {{.GeneratedAt.Format "2006-01-02 15:04:05 UTC"}}. <a href="?format=json">JSON</a> · <a href="/">home</a> · <a href="/metrics">metrics</a></p></header>
{{if and (not .Advice) .WarmingUp}}<p>No advice yet: the advisor is warming up{{with .WarmUntil}} until {{.Format "2006-01-02 15:04:05 UTC"}}{{end}}, when it will have watched as long as its slowest rule needs.</p>{{else if not .Advice}}<p>No advice: nothing to change.</p>{{end}}
{{range .Advice}}
<section class="advice {{.Severity}}" id="{{.ID}}-{{target .Target}}">
<span class="severity">{{.Severity}}</span>
<h2>{{.ID}}: {{target .Target}}</h2>
<p>{{.Summary}}</p>
<p class="muted">{{.State}} since {{.Since.Format "2006-01-02 15:04:05 UTC"}} · alert {{.Alert}}</p>
{{if .Evidence}}<h3>Evidence</h3>
<table>{{range .Evidence}}<tr><td>{{.Name}}</td><td class="value" title="{{.Query}}">{{value .Value}}</td></tr>{{end}}</table>{{end}}
<h3>What to do</h3>
<p>{{.Recommendation}}</p>
{{range .Fixes}}<h4>{{.Title}}</h4><pre><code class="language-{{.Language}}">{{.Text}}</code></pre>{{end}}
{{if .RunbookURL}}<p><a href="{{.RunbookURL}}">Runbook: why, and how to silence it</a></p>{{end}}
</section>
{{end}}
{{if .Pending}}<h2>Pending</h2>
<p class="muted">The condition holds, not yet for as long as the rule asks.</p>
<ul>{{range .Pending}}<li><b>{{.ID}}</b>, {{target .Target}}, since {{.Since.Format "15:04:05 UTC"}}: {{.Summary}}</li>{{end}}</ul>{{end}}
</body>
</html>
`))

// HTML writes the report as a page.
func HTML(w io.Writer, r advisor.Report) error {
	return page.Execute(w, r)
}
