// Package term says how to write for a terminal: its width, whether
// colour is wanted, and how to show text from untrusted sources (process,
// cgroup and namespace names, label values) without letting its control
// characters drive the terminal.
package term

import (
	"os"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// DefaultWidth is the width of output that goes to a pipe or a file, and
// of a terminal that does not say its width.
const DefaultWidth = 80

// Style is how output for a person is laid out.
type Style struct {
	// Width is the number of columns to fit.
	Width int
	// Color marks severities with ANSI colours.
	Color bool
}

// Plain is the style of output to a pipe or a file: 80 columns, no colour.
var Plain = Style{Width: DefaultWidth}

// StyleOf returns the style for writing to f: the terminal's width and
// colour when f is a terminal, unless NO_COLOR is set (https://no-color.org),
// and Plain otherwise.
func StyleOf(f *os.File) Style {
	if !IsTerminal(f) {
		return Plain
	}
	s := Style{Width: DefaultWidth, Color: os.Getenv("NO_COLOR") == ""}
	if ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ); err == nil && ws.Col > 0 {
		s.Width = int(ws.Col)
	}
	return s
}

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// Printable returns s with every control character (C0, DEL, C1, and the
// Unicode format characters that reorder text) and every invalid UTF-8
// byte written as a Go escape, such as \x1b or \n, so that a name that
// holds a terminal escape shows as text instead of driving the terminal.
func Printable(s string) string {
	if !needsQuoting(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteString(`\x` + strconv.FormatUint(uint64(s[i]), 16))
		case quoted(r):
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// PrintableText is Printable for a text of several lines, such as a
// report: its line breaks and tabs are kept, every other control character
// is quoted.
func PrintableText(s string) string {
	if !needsQuoting(s) {
		return s
	}
	lines := strings.Split(s, "\n")
	for i, line := range lines {
		cells := strings.Split(line, "\t")
		for j, cell := range cells {
			cells[j] = Printable(cell)
		}
		lines[i] = strings.Join(cells, "\t")
	}
	return strings.Join(lines, "\n")
}

func needsQuoting(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || quoted(r) {
			return true
		}
	}
	return false
}

// quoted reports whether r is shown escaped: control characters, and the
// format characters (bidirectional overrides, zero-width joiners) that can
// make text read otherwise than it is.
func quoted(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r)
}

// Wrap breaks text into lines of at most width columns, at spaces; a word
// longer than width gets a line of its own. Width counts runes, which is
// right for the text this project writes.
func Wrap(text string, width int) []string {
	var lines []string
	line, lineWidth := "", 0
	for _, word := range strings.Fields(text) {
		w := utf8.RuneCountInString(word)
		if line != "" && lineWidth+1+w > width {
			lines = append(lines, line)
			line, lineWidth = "", 0
		}
		if line != "" {
			line += " "
			lineWidth++
		}
		line += word
		lineWidth += w
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}
