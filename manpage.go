package main

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/version"
)

// kingpinManHeader is the start of kingpin's man page template: its .TH
// line takes the whole multi-line version text, which ends the .TH request
// at the first line break and prints the rest as text, and its NAME
// section lacks the "name \- summary" that whatis and lintian read.
const kingpinManHeader = `.TH {{.App.Name}} 1 {{.App.Version}} "{{.App.Author}}"
.SH "NAME"
{{.App.Name}}
`

// kingpinManParagraph is the paragraph macro kingpin puts after each
// command's .SS heading, where it does nothing but draw a warning.
const kingpinManParagraph = "\\fR\n.PP\n{{.Help}}"

var setManPageOnce sync.Once

// setManPage makes --help-man write a valid man page: a one-line .TH with
// the version and the date, and a NAME line. kingpin reads its man page
// template from a package variable, so it is set once. Should kingpin's
// template change, it is left as it is, and TestManPage fails.
func setManPage(name, summary string) {
	setManPageOnce.Do(func() {
		tmpl := kingpin.ManPageTemplate
		if !strings.Contains(tmpl, kingpinManHeader) || !strings.Contains(tmpl, kingpinManParagraph) {
			return
		}
		tmpl = strings.Replace(tmpl, kingpinManHeader, manHeader(name, summary), 1)
		kingpin.ManPageTemplate = strings.Replace(tmpl, kingpinManParagraph, "\\fR\n{{.Help}}", 1)
	})
}

// manHeader returns the .TH line and the NAME section of the man page. Its
// date is the build date (the commit's, for a reproducible page), or
// today's for a build that knows none.
func manHeader(name, summary string) string {
	date, err := time.Parse("20060102-15:04:05", version.BuildDate)
	if err != nil {
		date = time.Now()
	}
	return fmt.Sprintf(".TH %s 1 %q %q %q\n.SH \"NAME\"\n%s \\- %s\n",
		strings.ToUpper(name), date.Format("2006-01-02"), name+" "+version.Version, "User Commands",
		name, strings.NewReplacer(`\`, `\e`, "-", `\-`).Replace(strings.TrimSuffix(summary, ".")))
}
