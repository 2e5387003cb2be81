package workload

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// column is one column of the table, in the text and Markdown forms.
type column struct {
	name string
	// text: aligned left in Markdown; numbers are aligned right.
	text bool
}

func columns() []column {
	return []column{
		{"arm", false}, {"what", true}, {"requests", false}, {"TPS", false}, {"p50 ms", false}, {"p99 ms", false},
		{"errors", false}, {"connect errors", false}, {"peak TIME_WAIT", false}, {"client side", false},
		{"toward busiest destination", true}, {"on service ports", true}, {"port pressure", false},
		{"opens/s", false}, {"connect() failures", true}, {"mean lifetime ms", false}, {"advice fired", true},
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
		strconv.FormatFloat(a.PeakPortPressure, 'f', 2, 64),
		opens, failures, lifetime, orNone(strings.Join(advice, ", ")),
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

// Text writes the report as a table for a terminal.
func Text(w io.Writer, r Report) error {
	if _, err := fmt.Fprintf(w, "%s\n\n", r.heading()); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(columnNames(), "\t"))
	for _, a := range r.Arms {
		fmt.Fprintln(tw, strings.Join(a.row(), "\t"))
	}
	return tw.Flush()
}

// Markdown writes the report as a Markdown table.
func Markdown(w io.Writer, r Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n", r.heading())
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
			cells[i] = strings.ReplaceAll(c, "|", `\|`)
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
