package workload

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tcpadvisor/tcpadvisor/internal/term"
)

// column is one column of the table, in the text and Markdown forms.
type column struct {
	name string
	// text: aligned left; numbers are aligned right.
	text bool
	// rank orders the columns by how much a reader needs them: on a
	// terminal too narrow for all, the table keeps the lowest ranks and
	// each arm's other values follow the table.
	rank int
}

func columns() []column {
	return []column{
		{"arm", false, 0}, {"what", true, 1}, {"requests", false, 9}, {"TPS", false, 2}, {"p50 ms", false, 8}, {"p99 ms", false, 4},
		{"errors", false, 5}, {"connect errors", false, 10}, {"peak TIME_WAIT", false, 3}, {"client side", false, 11},
		{"toward busiest destination", true, 12}, {"on service ports", true, 13}, {"port pressure", false, 6}, {"advice fired", true, 7},
		{"opens/s", false, 14}, {"connect() failures", true, 15}, {"mean lifetime ms", false, 16},
	}
}

func columnNames() []string {
	var names []string
	for _, c := range columns() {
		names = append(names, c.name)
	}
	return names
}

// row returns the table cells of one arm.
func (a ArmResult) row() []string {
	advice := make([]string, len(a.Advice))
	for i, f := range a.Advice {
		advice[i] = f.String()
	}
	opens, failures, lifetime := a.tracerCells()
	busiest, service := "–", "–"
	if a.Busiest.Value > 0 {
		busiest = thousands(a.Busiest.Value) + " " + a.Busiest.Name
	}
	if a.PeakServiceTimeWait > 0 {
		service = thousands(a.PeakServiceTimeWait)
		if a.BusiestServicePort.Value > 0 {
			service += " (:" + a.BusiestServicePort.Name + " " + thousands(a.BusiestServicePort.Value) + ")"
		}
	}
	return []string{
		strconv.Itoa(a.Arm), a.Name, thousands(float64(a.Requests)), thousands(a.TPS),
		optional(a.LatencyP50), optional(a.LatencyP99), thousands(float64(a.Errors)), optionalCount(a.ConnectErrors),
		thousands(a.PeakTimeWait), thousands(a.PeakClientTimeWait), busiest, service,
		strconv.FormatFloat(a.PeakPortPressure, 'f', 2, 64), orNone(strings.Join(advice, ", ")),
		opens, failures, lifetime,
	}
}

// tracerCells returns the cells of the tracer's figures: opens per
// second, connect() failures by errno, mean lifetime; dashes when the
// tracer was not up.
func (a ArmResult) tracerCells() (opens, failures, lifetime string) {
	t := a.Tracer
	if t == nil {
		return "–", "–", "–"
	}
	var parts []string
	for _, errno := range slices.Sorted(maps.Keys(t.ConnectFailures)) {
		if n := t.ConnectFailures[errno]; n > 0 {
			parts = append(parts, thousands(n)+" "+errno)
		}
	}
	lifetime = "–"
	if t.MeanLifetime != nil {
		lifetime = strconv.FormatFloat(*t.MeanLifetime*1000, 'f', 2, 64)
	}
	return thousands(t.OpensPerSecond), orNone(strings.Join(parts, ", ")), lifetime
}

// Text writes the report for a pipe or a file, 80 columns wide.
func Text(w io.Writer, r Report) error {
	return StyledText(w, r, term.Plain)
}

// StyledText writes the report for a terminal of the style's width: the
// heading wrapped, a one-line conclusion per fix, and a table of the
// columns that fit, each arm's other values after it. Names from the host
// (destinations, advice targets) have their control characters quoted.
func StyledText(w io.Writer, r Report, style term.Style) error {
	var b strings.Builder
	width := max(style.Width, 40)
	writeHanging(&b, r.heading(), width, "")
	if conclusions := r.conclusions(); len(conclusions) > 0 {
		b.WriteString("\n")
		for _, c := range conclusions {
			writeHanging(&b, c, width, "  ")
		}
	}
	cols := columns()
	rows := make([][]string, len(r.Arms))
	for i, a := range r.Arms {
		rows[i] = a.row()
		for j := range rows[i] {
			rows[i][j] = term.Printable(rows[i][j])
		}
	}
	shown := fitColumns(cols, rows, width)
	b.WriteString("\n")
	table := [][]string{nil}
	for _, c := range shown {
		table[0] = append(table[0], cols[c].name)
	}
	for _, row := range rows {
		var cells []string
		for _, c := range shown {
			cells = append(cells, row[c])
		}
		table = append(table, cells)
	}
	writeAligned(&b, table, func(i int) bool { return cols[shown[i]].text })
	if len(shown) < len(cols) {
		b.WriteString("\n")
		for i, a := range r.Arms {
			var rest []string
			for c := range cols {
				if !slices.Contains(shown, c) {
					rest = append(rest, cols[c].name+" "+rows[i][c])
				}
			}
			writeHanging(&b, fmt.Sprintf("arm %d: %s.", a.Arm, strings.Join(rest, ", ")), width, "    ")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeHanging writes text wrapped to width, its lines after the first
// indented by hang.
func writeHanging(b *strings.Builder, text string, width int, hang string) {
	for i, line := range term.Wrap(text, width-len(hang)) {
		if i > 0 {
			b.WriteString(hang)
		}
		b.WriteString(line + "\n")
	}
}

// columnGap is the space between two columns of the text table.
const columnGap = 2

// fitColumns returns the indexes, in table order, of the columns that fit
// in width, taken by rank.
func fitColumns(cols []column, rows [][]string, width int) []int {
	widths := make([]int, len(cols))
	for c, col := range cols {
		widths[c] = utf8.RuneCountInString(col.name)
		for _, row := range rows {
			widths[c] = max(widths[c], utf8.RuneCountInString(row[c]))
		}
	}
	byRank := make([]int, len(cols))
	for c := range cols {
		byRank[c] = c
	}
	slices.SortFunc(byRank, func(a, b int) int { return cols[a].rank - cols[b].rank })
	var shown []int
	total := 0
	for _, c := range byRank {
		need := widths[c]
		if len(shown) > 0 {
			need += columnGap
		}
		// The first two columns are always shown: an arm needs its name.
		if len(shown) >= 2 && total+need > width {
			continue
		}
		shown = append(shown, c)
		total += need
	}
	slices.Sort(shown)
	return shown
}

// writeAligned writes rows as columns padded to their widest cell, text
// aligned left and numbers right, with no trailing spaces.
func writeAligned(b *strings.Builder, rows [][]string, isText func(int) bool) {
	var widths []int
	for _, row := range rows {
		for i, cell := range row {
			if i == len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(cell))
		}
	}
	for _, row := range rows {
		var line strings.Builder
		for i, cell := range row {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(cell))
			if i > 0 {
				line.WriteString(strings.Repeat(" ", columnGap))
			}
			if isText(i) {
				line.WriteString(cell + pad)
			} else {
				line.WriteString(pad + cell)
			}
		}
		b.WriteString(strings.TrimRight(line.String(), " ") + "\n")
	}
}

// fixes are the pairs of arms that measure a fix: the arm without it and
// the arm with it.
var fixes = []struct {
	name          string
	without, with int
}{
	{"pool", 1, 2},
	{"upstream keepalive", 3, 4},
}

// conclusions returns one line per fix whose two arms ran: what the fix
// changed, such as "pool (arm 1 → 2): ×3.9 TPS, −14,115 TIME_WAIT".
func (r Report) conclusions() []string {
	byArm := map[int]ArmResult{}
	for _, a := range r.Arms {
		byArm[a.Arm] = a
	}
	var lines []string
	for _, f := range fixes {
		without, ok1 := byArm[f.without]
		with, ok2 := byArm[f.with]
		if !ok1 || !ok2 {
			continue
		}
		tps := "TPS from 0"
		if without.TPS > 0 {
			tps = "×" + strconv.FormatFloat(with.TPS/without.TPS, 'f', 1, 64) + " TPS"
		}
		lines = append(lines, fmt.Sprintf("%s (arm %d → %d): %s, %s TIME_WAIT", f.name, f.without, f.with, tps, signed(with.PeakTimeWait-without.PeakTimeWait)))
	}
	return lines
}

// signed formats a change in a count with its sign: "−14,115", "+222",
// "±0".
func signed(v float64) string {
	switch s := thousands(v); {
	case s == "0" || s == "-0":
		return "±0"
	case strings.HasPrefix(s, "-"):
		return "−" + s[1:]
	default:
		return "+" + s
	}
}

// Markdown writes the report as a Markdown table.
func Markdown(w io.Writer, r Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n", r.heading())
	if conclusions := r.conclusions(); len(conclusions) > 0 {
		for _, c := range conclusions {
			fmt.Fprintf(&b, "- %s\n", c)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "| %s |\n", strings.Join(columnNames(), " | "))
	var align []string
	for _, c := range columns() {
		if c.text {
			align = append(align, "---")
		} else {
			align = append(align, "---:")
		}
	}
	fmt.Fprintf(&b, "|%s|\n", strings.Join(align, "|"))
	for _, a := range r.Arms {
		cells := a.row()
		for i, c := range cells {
			cells[i] = strings.ReplaceAll(term.Printable(c), "|", `\|`)
		}
		fmt.Fprintf(&b, "| %s |\n", strings.Join(cells, " | "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// JSON writes the report as indented JSON.
func JSON(w io.Writer, r Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// heading says what ran, where and how.
func (r Report) heading() string {
	app, load, bound, where := r.describe()
	return fmt.Sprintf("tcpadvisor workload: %s, %s, %s, %s; rules' windows × %.4g.", app, load, bound, where, r.TimeScale)
}

// describe names the app, the load, its bound and where the arms ran.
func (r Report) describe() (app, load, bound, where string) {
	app = "the Go app (go-redis)"
	if r.App == AppFlask {
		app = fmt.Sprintf("the Flask app (redis-py, gunicorn gthread %d×%d)", gunicornWorkers, gunicornThreads)
	}
	load = fmt.Sprintf("the built-in load, concurrency %d", r.Concurrency)
	if r.Load == LoadSiege {
		load = fmt.Sprintf("siege -c %d -b", r.Concurrency)
	}
	bound = fmt.Sprintf("%gs per arm", r.Duration)
	if r.Requests > 0 {
		bound = fmt.Sprintf("%d requests or %gs per arm", r.Requests, r.Duration)
	}
	if r.Rounds > 1 {
		bound += fmt.Sprintf(" in %d interleaved turns of %gs", r.Rounds, r.Duration/float64(r.Rounds))
	}
	where = "each arm in network namespaces of its own"
	if r.Isolation != "namespace" {
		where = "on the host's loopback"
	}
	if len(r.Arms) > 0 {
		where += fmt.Sprintf(" (ip_local_port_range %s, tcp_tw_reuse %s)", r.Arms[0].PortRange, r.Arms[0].TwReuse)
	}
	return app, load, bound, where
}

// thousands formats a count rounded to a whole number with thousands
// separators: 13155 as "13,155".
func thousands(v float64) string {
	s := strconv.FormatFloat(v, 'f', 0, 64)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

func optional(v *float64) string {
	if v == nil {
		return "–"
	}
	return strconv.FormatFloat(*v, 'f', 1, 64)
}

func optionalCount(v *int64) string {
	if v == nil {
		return "–"
	}
	return thousands(float64(*v))
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
