package docs

import (
	"fmt"
	"html"
	"regexp"
	"strconv"
	"strings"
)

// ToHTML renders the Markdown this project writes: ATX headings, with the
// ids GitHub gives them; paragraphs; lists; tables; fenced code; and inline
// code, bold and links. Links into docs/ stay relative; links out of it
// lead to the repository on GitHub. Everything else is shown as text,
// escaped.
func ToHTML(markdown string) string {
	var b strings.Builder
	lines := strings.Split(strings.ReplaceAll(markdown, "\r\n", "\n"), "\n")
	ids := map[string]int{}
	for i := 0; i < len(lines); {
		line := lines[i]
		switch {
		case strings.TrimSpace(line) == "":
			i++
		case strings.HasPrefix(line, "```"):
			lang := strings.TrimSpace(strings.TrimPrefix(line, "```"))
			i++
			var code []string
			for i < len(lines) && !strings.HasPrefix(lines[i], "```") {
				code = append(code, lines[i])
				i++
			}
			i++ // the closing fence
			class := ""
			if lang != "" {
				class = ` class="language-` + html.EscapeString(lang) + `"`
			}
			fmt.Fprintf(&b, "<pre><code%s>%s\n</code></pre>\n", class, html.EscapeString(strings.Join(code, "\n")))
		case heading.MatchString(line):
			m := heading.FindStringSubmatch(line)
			id := Anchor(m[2])
			if n := ids[id]; n > 0 {
				ids[id]++
				id += "-" + strconv.Itoa(n)
			} else {
				ids[id] = 1
			}
			fmt.Fprintf(&b, "<h%[1]d id=%[2]q><a href=\"#%[2]s\">%[3]s</a></h%[1]d>\n", len(m[1]), id, inline(m[2]))
			i++
		case strings.HasPrefix(line, "|") && i+1 < len(lines) && tableRule.MatchString(lines[i+1]):
			b.WriteString("<table>\n<tr>")
			for _, cell := range cells(line) {
				fmt.Fprintf(&b, "<th>%s</th>", inline(cell))
			}
			b.WriteString("</tr>\n")
			for i += 2; i < len(lines) && strings.HasPrefix(lines[i], "|"); i++ {
				b.WriteString("<tr>")
				for _, cell := range cells(lines[i]) {
					fmt.Fprintf(&b, "<td>%s</td>", inline(cell))
				}
				b.WriteString("</tr>\n")
			}
			b.WriteString("</table>\n")
		case listItem.MatchString(line):
			tag := "ul"
			if m := listItem.FindStringSubmatch(line); m[1] != "-" && m[1] != "*" {
				tag = "ol"
			}
			fmt.Fprintf(&b, "<%s>\n", tag)
			for i < len(lines) && listItem.MatchString(lines[i]) {
				item := []string{listItem.ReplaceAllString(lines[i], "")}
				// Continuation lines are indented.
				for i++; i < len(lines) && strings.HasPrefix(lines[i], "  ") && !listItem.MatchString(lines[i]); i++ {
					item = append(item, strings.TrimSpace(lines[i]))
				}
				fmt.Fprintf(&b, "<li>%s</li>\n", inline(strings.Join(item, " ")))
			}
			fmt.Fprintf(&b, "</%s>\n", tag)
		default:
			var para []string
			for i < len(lines) && strings.TrimSpace(lines[i]) != "" && !startsBlock(lines, i) {
				para = append(para, strings.TrimSpace(lines[i]))
				i++
			}
			if len(para) == 0 { // a line no block takes
				para = append(para, strings.TrimSpace(lines[i]))
				i++
			}
			fmt.Fprintf(&b, "<p>%s</p>\n", inline(strings.Join(para, " ")))
		}
	}
	return b.String()
}

var (
	heading   = regexp.MustCompile(`^(#{1,6}) +(.*?) *#* *$`)
	tableRule = regexp.MustCompile(`^\|?( *:?-+:? *\|)+ *:?-*:? *$`)
	listItem  = regexp.MustCompile(`^ *([-*]|\d+\.) +`)
	// link is [text](target), its text possibly holding code spans.
	link        = regexp.MustCompile("\\[((?:[^\\]`]|`[^`]*`)*)\\]\\(([^)\\s]+)\\)")
	codeSpan    = regexp.MustCompile("`([^`]+)`")
	bold        = regexp.MustCompile(`\*\*(.+?)\*\*`)
	placeholder = regexp.MustCompile("\x00[0-9]+\x00")
	notInAnchor = regexp.MustCompile(`[^\p{L}\p{N} _-]`)
)

// startsBlock reports whether line i starts a block other than a
// paragraph, which ends the paragraph before it.
func startsBlock(lines []string, i int) bool {
	line := lines[i]
	return strings.HasPrefix(line, "```") || heading.MatchString(line) || listItem.MatchString(line) ||
		(strings.HasPrefix(line, "|") && i+1 < len(lines) && tableRule.MatchString(lines[i+1]))
}

// Anchor returns the id GitHub gives a heading: its text in lower case,
// with punctuation other than - and _ dropped and spaces made dashes.
func Anchor(text string) string {
	return strings.ReplaceAll(notInAnchor.ReplaceAllString(strings.ToLower(text), ""), " ", "-")
}

// cells returns the cells of a table row, with \| kept as |.
func cells(row string) []string {
	row = strings.TrimSpace(row)
	row = strings.TrimSuffix(strings.TrimPrefix(row, "|"), "|")
	row = strings.ReplaceAll(row, `\|`, "\x00")
	parts := strings.Split(row, "|")
	for i, p := range parts {
		parts[i] = strings.TrimSpace(strings.ReplaceAll(p, "\x00", "|"))
	}
	return parts
}

// inline renders links, code spans and bold text, escaping the rest.
func inline(s string) string {
	var b strings.Builder
	last := 0
	for _, m := range link.FindAllStringSubmatchIndex(s, -1) {
		b.WriteString(spans(s[last:m[0]]))
		fmt.Fprintf(&b, `<a href="%s">%s</a>`, html.EscapeString(target(s[m[4]:m[5]])), spans(s[m[2]:m[3]]))
		last = m[1]
	}
	b.WriteString(spans(s[last:]))
	return b.String()
}

// spans renders code spans and bold text, escaping the rest. Code spans
// are set aside first, so that bold text may hold them and they hold no
// bold.
func spans(s string) string {
	var code []string
	s = codeSpan.ReplaceAllStringFunc(s, func(m string) string {
		code = append(code, "<code>"+html.EscapeString(m[1:len(m)-1])+"</code>")
		return "\x00" + strconv.Itoa(len(code)-1) + "\x00"
	})
	s = bold.ReplaceAllString(html.EscapeString(s), "<strong>$1</strong>")
	return placeholder.ReplaceAllStringFunc(s, func(m string) string {
		n, _ := strconv.Atoi(m[1 : len(m)-1])
		return code[n]
	})
}

// target returns where a link leads from /docs/: links with a scheme or an
// anchor as they are, Markdown documents of docs/ relative, and the
// repository's other files on GitHub.
func target(t string) string {
	switch {
	case strings.Contains(t, "://") || strings.HasPrefix(t, "#") || strings.HasPrefix(t, "mailto:"):
		return t
	case !strings.HasPrefix(t, "../") && !strings.Contains(t, "/") && strings.Contains(t, ".md"):
		return t
	}
	return SourceURL + strings.TrimPrefix(t, "../")
}
