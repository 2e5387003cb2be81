// Package render shows an advisor.Report: as text for a terminal or a cron
// mail, as JSON for programs, as an HTML page for a browser. It only shows;
// what the advice says is decided in package advisor.
package render

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tcpadvisor/tcpadvisor/advisor"
	"github.com/tcpadvisor/tcpadvisor/internal/term"
)

// JSON writes the report as indented JSON. Its schema is a public API.
func JSON(w io.Writer, r advisor.Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// Target says where an advice applies, in words: "10.0.0.1 -> 10.0.0.5:6379",
// "port 5000", or "this host".
func Target(t map[string]string) string {
	if dst, ok := t["destination_address"]; ok {
		if strings.Contains(dst, ":") {
			dst = "[" + dst + "]"
		}
		return fmt.Sprintf("%s -> %s:%s", t["source_address"], dst, t["destination_port"])
	}
	if port, ok := t["port"]; ok {
		return "port " + port
	}
	if len(t) == 0 {
		return "this host"
	}
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + t[k]
	}
	return strings.Join(parts, " ")
}

// Value formats an evidence value: whole numbers whole, ratios with three
// significant digits.
func Value(v float64) string {
	if v == float64(int64(v)) {
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// Text writes the report for a pipe, a file or a cron mail: plain, 80
// columns wide.
func Text(w io.Writer, r advisor.Report) error {
	return StyledText(w, r, term.Plain)
}

// StyledText writes the report for a person at a terminal of the style's
// width: prose wrapped to fit, fixes kept as they are, and the severity
// coloured when the style asks for colour. Every string that comes from
// the host (process, cgroup and namespace names, label values) has its
// control characters quoted, so that a crafted name cannot drive the
// terminal.
func StyledText(w io.Writer, r advisor.Report, style term.Style) error {
	t := textWriter{style: style}
	if t.style.Width < minWidth {
		t.style.Width = minWidth
	}
	switch {
	case len(r.Advice) == 0 && r.WarmingUp:
		until := ""
		if r.WarmUntil != nil {
			until = " until " + r.WarmUntil.Format("2006-01-02 15:04:05 UTC")
		}
		t.wrapped("", "", "tcpadvisor: no advice yet: warming up"+until+", when the advisor will have watched as long as its slowest rule needs.")
	case len(r.Advice) == 0 && len(r.Pending) == 0:
		t.line("", "tcpadvisor: no advice: nothing to change.")
	case len(r.Advice) == 0:
		t.wrapped("", "", fmt.Sprintf("tcpadvisor: no advice yet; %d condition(s) hold but not for long enough (below).", len(r.Pending)))
	default:
		t.line("", fmt.Sprintf("tcpadvisor: %d advice.", len(r.Advice)))
	}
	for _, adv := range r.Advice {
		t.b.WriteString("\n")
		t.advice(adv)
	}
	if len(r.Pending) > 0 {
		t.b.WriteString("\n")
		t.wrapped("", "", "Pending (the condition holds, not yet for as long as the rule asks):")
		for _, adv := range r.Pending {
			t.severityLine("  ", "    ", adv.Severity, fmt.Sprintf("%s, %s, since %s: %s", adv.ID, Target(adv.Target), adv.Since.Format("15:04:05 UTC"), adv.Summary))
		}
	}
	_, err := io.WriteString(w, t.b.String())
	return err
}

// alerts names the alerts an advice answers.
func alerts(adv advisor.Advice) string {
	if len(adv.Alerts) > 1 {
		return "alerts " + strings.Join(adv.Alerts, ", ")
	}
	return "alert " + adv.Alert
}

// Server says what serves a flow: "redis-server (Redis) at 10.0.0.5:6379,
// known by its listener".
func Server(s advisor.Service) string {
	host := s.Address
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	var b strings.Builder
	if s.Name != "" {
		b.WriteString(s.Name + " ")
	}
	if s.Protocol != "" && !strings.EqualFold(s.Protocol, s.Name) {
		b.WriteString("(" + s.Protocol + ") ")
	}
	b.WriteString("at " + host + ":" + s.Port)
	if s.KnownBy != "" {
		b.WriteString(", known by its " + s.KnownBy)
	}
	return b.String()
}

// minWidth is the narrowest layout: below it, indented prose would be a
// word a line.
const minWidth = 40

// severityColor is the ANSI colour of each severity's tag.
var severityColor = map[string]string{
	"critical": "\x1b[1;31m", // bold red
	"warning":  "\x1b[1;33m", // bold yellow
	"info":     "\x1b[1;36m", // bold cyan
}

// textWriter lays out the text report.
type textWriter struct {
	b     strings.Builder
	style term.Style
}

// line writes one line as it is, but for its control characters.
func (t *textWriter) line(indent, s string) {
	t.b.WriteString(indent + term.Printable(s) + "\n")
}

// wrapped writes prose wrapped to the width: the first line after indent,
// the others after hang.
func (t *textWriter) wrapped(indent, hang, s string) {
	for i, line := range term.Wrap(term.Printable(s), t.style.Width-len(hang)) {
		if i == 0 {
			t.b.WriteString(indent + line + "\n")
		} else {
			t.b.WriteString(hang + line + "\n")
		}
	}
}

// severityLine writes prose that starts with the severity's tag, coloured
// when the style asks for it.
func (t *textWriter) severityLine(indent, hang, severity, s string) {
	tag := "[" + term.Printable(severity) + "]"
	lines := term.Wrap(tag+" "+term.Printable(s), t.style.Width-len(hang))
	for i, line := range lines {
		if i == 0 {
			if color, ok := severityColor[severity]; ok && t.style.Color {
				line = color + tag + "\x1b[0m" + strings.TrimPrefix(line, tag)
			}
			t.b.WriteString(indent + line + "\n")
		} else {
			t.b.WriteString(hang + line + "\n")
		}
	}
}

func (t *textWriter) advice(adv advisor.Advice) {
	t.severityLine("", "  ", adv.Severity, fmt.Sprintf("%s: %s", adv.ID, Target(adv.Target)))
	t.wrapped("  ", "  ", fmt.Sprintf("%s since %s, %s", adv.State, adv.Since.Format("2006-01-02 15:04:05 UTC"), alerts(adv)))
	if adv.Summary != "" {
		t.wrapped("  ", "  ", adv.Summary)
	}
	if adv.Owner != nil {
		t.wrapped("  ", "    ", fmt.Sprintf("Owner: %s, %s sockets", adv.Owner, Value(adv.Owner.Sockets)))
	}
	if adv.Client != nil {
		t.wrapped("  ", "    ", fmt.Sprintf("Client: %s, %s sockets", adv.Client, Value(adv.Client.Sockets)))
	}
	if adv.Server != nil {
		t.wrapped("  ", "    ", "Server: "+Server(*adv.Server))
	}
	if len(adv.Evidence) > 0 {
		t.b.WriteString("  Evidence:\n")
		names := make([]string, len(adv.Evidence))
		width := 0
		for i, e := range adv.Evidence {
			names[i] = term.Printable(e.Name)
			width = max(width, utf8.RuneCountInString(names[i]))
		}
		for i, e := range adv.Evidence {
			fmt.Fprintf(&t.b, "    %s%s  %s\n", names[i], strings.Repeat(" ", width-utf8.RuneCountInString(names[i])), Value(e.Value))
		}
	}
	if adv.Recommendation != "" {
		t.b.WriteString("  What to do:\n")
		t.wrapped("    ", "    ", adv.Recommendation)
	}
	for _, f := range adv.Fixes {
		t.wrapped("  Fix: ", "    ", f.Title)
		// A fix is kept as it is, to be copied: never wrapped, its tabs
		// made spaces so that its indentation survives the "| " prefix.
		for _, line := range strings.Split(strings.TrimRight(f.Text, "\n"), "\n") {
			t.line("    | ", strings.ReplaceAll(line, "\t", "    "))
		}
	}
	if adv.RunbookURL != "" {
		t.line("  More: ", adv.RunbookURL)
	}
}
