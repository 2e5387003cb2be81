package fleet

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"strings"

	"github.com/tcpadvisor/tcpadvisor/advisor"
	"github.com/tcpadvisor/tcpadvisor/advisor/render"
	"github.com/tcpadvisor/tcpadvisor/internal/term"
)

// JSON writes the report as indented JSON.
func JSON(w io.Writer, r Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// group is the advice of one ID across the fleet, most pressing first.
type group struct {
	ID     advisor.ID
	Advice []Advice
}

// groups returns the advice grouped by ID, the groups in the order of
// their most pressing advice (the list is ranked).
func groups(list []Advice) []group {
	var out []group
	index := map[advisor.ID]int{}
	for _, a := range list {
		i, ok := index[a.ID]
		if !ok {
			i = len(out)
			index[a.ID] = i
			out = append(out, group{ID: a.ID})
		}
		out[i].Advice = append(out[i].Advice, a)
	}
	return out
}

// Line is the one line of a host in the text view: severity, host and
// owner, what, and the port pressure.
func Line(a Advice) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s] ", a.Severity)
	if a.Server != nil {
		// The joined sentence names both hosts and both processes.
		b.WriteString(a.Summary)
	} else {
		b.WriteString(hostOf(a.Instance))
		if a.Owner != nil {
			fmt.Fprintf(&b, " (%s)", a.Owner.Process)
		}
		fmt.Fprintf(&b, ": %s", render.Target(a.Target))
	}
	if a.Target["destination_address"] != "" {
		fmt.Fprintf(&b, ", pressure %.1f%%", 100*a.Pressure)
	}
	if a.State == "pending" {
		fmt.Fprintf(&b, ", pending since %s", a.Since.Format("15:04:05 UTC"))
	} else if !a.Since.IsZero() {
		fmt.Fprintf(&b, ", since %s", a.Since.Format("2006-01-02 15:04 UTC"))
	}
	return b.String()
}

// Text writes the report for a person: one block per advice, one line per
// host, then what to do and the fix of the most pressing host, then what
// it cost.
func Text(w io.Writer, r Report) error {
	var b strings.Builder
	hosts := map[string]bool{}
	for _, a := range r.Advice {
		hosts[a.Instance] = true
	}
	switch {
	case len(r.Advice) == 0 && len(r.Pending) == 0:
		fmt.Fprintf(&b, "tcpadvisor: no advice for any host of %s: nothing to change.\n", r.Prometheus)
	case len(r.Advice) == 0:
		fmt.Fprintf(&b, "tcpadvisor: no advice yet; %d condition(s) hold but not for long enough (below).\n", len(r.Pending))
	default:
		fmt.Fprintf(&b, "tcpadvisor: %d advice on %d host(s), from %s.\n", len(r.Advice), len(hosts), r.Prometheus)
	}
	for _, g := range groups(r.Advice) {
		fmt.Fprintf(&b, "\n%s: %d host(s)\n", g.ID, len(g.Advice))
		for _, a := range g.Advice {
			fmt.Fprintf(&b, "  %s\n", Line(a))
		}
		top := g.Advice[0]
		if top.Recommendation != "" {
			b.WriteString("  What to do:\n")
			for _, line := range wrap(top.Recommendation, 96) {
				fmt.Fprintf(&b, "    %s\n", line)
			}
		}
		for _, f := range top.Fixes {
			fmt.Fprintf(&b, "  Fix (%s): %s\n", hostOf(top.Instance), f.Title)
			for _, line := range strings.Split(strings.TrimRight(f.Text, "\n"), "\n") {
				fmt.Fprintf(&b, "    | %s\n", line)
			}
		}
		if top.RunbookURL != "" {
			fmt.Fprintf(&b, "  More: %s\n", top.RunbookURL)
		}
	}
	if len(r.Pending) > 0 {
		b.WriteString("\nPending (the condition holds, not yet for as long as the rule asks):\n")
		for _, a := range r.Pending {
			fmt.Fprintf(&b, "  %s: %s\n", a.ID, Line(a))
		}
	}
	if r.Truncated {
		b.WriteString("\nTruncated: a query read as many series as --limit allows; raise it or narrow --match.\n")
	}
	fmt.Fprintf(&b, "\nRead %d series in %d queries.\n", r.Cost.Series, r.Cost.Queries)
	// Label values and names come from the hosts: their control
	// characters are quoted, so that a crafted name cannot drive the
	// terminal.
	_, err := io.WriteString(w, term.PrintableText(b.String()))
	return err
}

// wrap breaks text into lines of at most width characters, at spaces.
func wrap(text string, width int) []string {
	var lines []string
	line := ""
	for _, word := range strings.Fields(text) {
		if line != "" && len(line)+1+len(word) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += word
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}

// pageData is what the page shows: the report, and how often the page
// reloads itself (0: never).
type pageData struct {
	Report
	Refresh int
}

var page = template.Must(template.New("fleet").Funcs(template.FuncMap{
	"line":   Line,
	"groups": groups,
	"host":   hostOf,
	"css":    func() template.CSS { return render.PageCSS },
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
{{if gt .Refresh 0}}<meta http-equiv="refresh" content="{{.Refresh}}">
{{end}}<title>tcpadvisor: fleet advice</title>
<style>{{css}}
li { margin: 0.2rem 0; }
li.critical { color: #b00; }</style>
</head><body>
<header><h1>tcpadvisor: fleet advice</h1>
<p>From {{.Prometheus}}{{with .Match}}, hosts matching <code>{{.}}</code>{{end}}, at {{.GeneratedAt.Format "2006-01-02 15:04:05 UTC"}}{{if gt .Refresh 0}}, reloaded every {{.Refresh}} s{{end}}.
<a href="?format=json">JSON</a> · <a href="{{if gt .Refresh 0}}?{{else}}?refresh=30{{end}}">{{if gt .Refresh 0}}stop reloading{{else}}reload every 30 s{{end}}</a> · <a href="/">home</a></p></header>
<main>
{{if not .Advice}}<p>No advice: nothing to change.</p>{{end}}
{{range groups .Advice}}<h2 id="{{.ID}}">{{.ID}}: {{len .Advice}} host(s)</h2>
<ul>{{range .Advice}}<li class="{{.Severity}}">{{line .}}</li>{{end}}</ul>
{{with index .Advice 0}}{{$top := .}}{{with .Recommendation}}<p>{{.}}</p>{{end}}
{{range .Fixes}}<p>Fix ({{host $top.Instance}}): {{.Title}}</p><pre>{{.Text}}</pre>{{end}}
{{with .RunbookURL}}<p><a href="{{.}}">More</a></p>{{end}}{{end}}
{{end}}
{{with .Pending}}<h2>Pending</h2><ul>{{range .}}<li>{{.ID}}: {{line .}}</li>{{end}}</ul>{{end}}
{{if .Truncated}}<p>Truncated: a query read as many series as --limit allows.</p>{{end}}
<p class="muted">Read {{.Cost.Series}} series in {{.Cost.Queries}} queries.</p>
</main>
</body></html>
`))

// HTML writes the report as a page that reloads itself every refresh
// seconds, or never when refresh is 0.
func HTML(w io.Writer, r Report, refresh int) error {
	return page.Execute(w, pageData{Report: r, Refresh: refresh})
}
