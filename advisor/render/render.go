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

	"github.com/tcpadvisor/tcpadvisor/advisor"
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

// Text writes the report for a person at a terminal.
func Text(w io.Writer, r advisor.Report) error {
	var b strings.Builder
	switch {
	case len(r.Advice) == 0 && r.WarmingUp:
		b.WriteString("tcpadvisor: no advice yet: warming up")
		if r.WarmUntil != nil {
			b.WriteString(" until " + r.WarmUntil.Format("2006-01-02 15:04:05 UTC"))
		}
		b.WriteString(", when the advisor will have watched as long as its slowest rule needs.\n")
	case len(r.Advice) == 0 && len(r.Pending) == 0:
		b.WriteString("tcpadvisor: no advice: nothing to change.\n")
	case len(r.Advice) == 0:
		fmt.Fprintf(&b, "tcpadvisor: no advice yet; %d condition(s) hold but not for long enough (below).\n", len(r.Pending))
	default:
		fmt.Fprintf(&b, "tcpadvisor: %d advice.\n", len(r.Advice))
	}
	for _, adv := range r.Advice {
		b.WriteString("\n")
		writeAdvice(&b, adv)
	}
	if len(r.Pending) > 0 {
		b.WriteString("\nPending (the condition holds, not yet for as long as the rule asks):\n")
		for _, adv := range r.Pending {
			fmt.Fprintf(&b, "  [%s] %s, %s, since %s: %s\n", adv.Severity, adv.ID, Target(adv.Target), adv.Since.Format("15:04:05 UTC"), adv.Summary)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeAdvice(b *strings.Builder, adv advisor.Advice) {
	fmt.Fprintf(b, "[%s] %s, %s (%s since %s)\n", adv.Severity, adv.ID, Target(adv.Target), adv.State, adv.Since.Format("2006-01-02 15:04:05 UTC"))
	if adv.Summary != "" {
		fmt.Fprintf(b, "  %s\n", adv.Summary)
	}
	if len(adv.Evidence) > 0 {
		b.WriteString("  Evidence:\n")
		width := 0
		for _, e := range adv.Evidence {
			width = max(width, len(e.Name))
		}
		for _, e := range adv.Evidence {
			fmt.Fprintf(b, "    %-*s  %s\n", width, e.Name, Value(e.Value))
		}
	}
	if adv.Recommendation != "" {
		b.WriteString("  What to do:\n")
		for _, line := range wrap(adv.Recommendation, 96) {
			fmt.Fprintf(b, "    %s\n", line)
		}
	}
	for _, f := range adv.Fixes {
		fmt.Fprintf(b, "  Fix: %s\n", f.Title)
		for _, line := range strings.Split(strings.TrimRight(f.Text, "\n"), "\n") {
			fmt.Fprintf(b, "    | %s\n", line)
		}
	}
	if adv.RunbookURL != "" {
		fmt.Fprintf(b, "  More: %s\n", adv.RunbookURL)
	}
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
