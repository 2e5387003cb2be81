package workload

import (
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// The chart's geometry, in SVG user units: a line chart of TIME_WAIT over
// time on top, with the arms' names in its legend, and a bar per arm of
// TPS below it, each named.
const (
	chartWidth = 980.0
	plotTop    = 60.0
	plotBottom = 330.0
	plotLeft   = 80.0
	plotRight  = 950.0
	legendTop  = 372.0
	legendRow  = 18.0
	barsLeft   = 300.0
	barsRight  = 860.0
	barRow     = 26.0
	// dash is the length of the dashes that let lines that coincide (the
	// arms with no TIME_WAIT, all at zero) show every colour in turn.
	dash = 6.0
)

// armColor is the colour of an arm in both charts.
func armColor(arm int) string {
	switch arm {
	case 1:
		return "#d62728"
	case 2:
		return "#2ca02c"
	case 3:
		return "#ff7f0e"
	}
	return "#1f77b4"
}

// Chart writes an SVG of the report: TIME_WAIT over time per arm, and TPS
// per arm.
func Chart(w io.Writer, r Report) error {
	n := len(r.Arms)
	legendRows := (n + 1) / 2
	barsTitle := legendTop + legendRow*float64(legendRows) + 30
	barsTop := barsTitle + 14
	height := barsTop + barRow*float64(n) + 16

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%[1]g" height="%[2]g" viewBox="0 0 %[1]g %[2]g" font-family="sans-serif" font-size="12">`+"\n",
		chartWidth, height)
	fmt.Fprintf(&b, `<rect width="%g" height="%g" fill="white"/>`+"\n", chartWidth, height)
	app, load, bound, _ := r.describe()
	text(&b, chartWidth/2, 24, "middle", 15, fmt.Sprintf("tcpadvisor workload: %s, %s, %s", app, load, bound))

	var maxT, maxTW, maxTPS float64
	for _, a := range r.Arms {
		for _, p := range a.TimeWait {
			maxT, maxTW = max(maxT, p.T), max(maxTW, p.Value)
		}
		maxTPS = max(maxTPS, a.TPS)
	}
	// The time axis ends with the last sample; its ticks stop before.
	endT := maxT
	if endT <= 0 {
		endT = 1
	}
	_, stepT := scale(endT)
	topTW, stepTW := scale(maxTW)
	x := func(t float64) float64 { return plotLeft + (plotRight-plotLeft)*math.Max(t, 0)/endT }

	// TIME_WAIT over time.
	text(&b, (plotLeft+plotRight)/2, plotTop-12, "middle", 13, "TIME_WAIT sockets over time (s from the start of the load)")
	axes(&b, plotLeft, plotRight, topTW, stepTW)
	for t := 0.0; t <= endT+stepT/1e6; t += stepT {
		text(&b, x(t), plotBottom+16, "middle", 11, strconv.FormatFloat(t, 'f', -1, 64))
	}
	if r.Duration > 0 && r.Duration < endT {
		// Where the load stops; sampling goes on after it.
		fmt.Fprintf(&b, `<path d="M%.1f %g V%g" stroke="#888" stroke-dasharray="4 3"/>`+"\n", x(r.Duration), plotTop, plotBottom)
		text(&b, x(r.Duration), plotTop-3, "middle", 11, "load ends")
	}
	points := make([]string, n)
	for i, a := range r.Arms {
		var p []string
		for _, s := range a.TimeWait {
			p = append(p, fmt.Sprintf("%.1f,%.1f", x(s.T), plotBottom-(plotBottom-plotTop)*s.Value/topTW))
		}
		points[i] = strings.Join(p, " ")
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", armColor(a.Arm), points[i])
	}
	// Drawn over every line, each arm's dashes take their turn: where lines
	// coincide, each colour shows; elsewhere a line keeps its own colour.
	for i, a := range r.Arms {
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" stroke-dasharray="%g %g" stroke-dashoffset="%g" points="%s"/>`+"\n",
			armColor(a.Arm), dash, dash*float64(n-1), float64(-i)*dash, points[i])
	}
	for i, a := range r.Arms {
		y := legendTop + legendRow*float64(i/2)
		lx := plotLeft + 430*float64(i%2)
		fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="18" height="4" fill="%s"/>`+"\n", lx, y-4, armColor(a.Arm))
		text(&b, lx+24, y, "start", 12, a.Name)
	}

	// TPS per arm, a bar each, named.
	text(&b, chartWidth/2, barsTitle, "middle", 13, "successful requests per second")
	for i, a := range r.Arms {
		y := barsTop + barRow*float64(i)
		w := 0.0
		if maxTPS > 0 {
			w = (barsRight - barsLeft) * a.TPS / maxTPS
		}
		text(&b, barsLeft-8, y+barRow/2+4, "end", 12, a.Name)
		fmt.Fprintf(&b, `<rect x="%g" y="%.1f" width="%.1f" height="%g" fill="%s"/>`+"\n", barsLeft, y+3, w, barRow-6, armColor(a.Arm))
		text(&b, barsLeft+w+6, y+barRow/2+4, "start", 12, thousands(a.TPS))
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// axes draws the axes of a plot from left to right, with a tick every step
// up to top on the y axis.
func axes(b *strings.Builder, left, right, top, step float64) {
	fmt.Fprintf(b, `<path d="M%g %g V%g H%g" fill="none" stroke="#444"/>`+"\n", left, plotTop, plotBottom, right)
	for i := range ticks(top, step) {
		v := float64(i) * step
		y := plotBottom - (plotBottom-plotTop)*v/top
		if v > 0 {
			fmt.Fprintf(b, `<path d="M%g %.1f H%g" stroke="#ddd"/>`+"\n", left+1, y, right)
		}
		text(b, left-6, y+4, "end", 11, thousands(v))
	}
}

// text writes a text element with s escaped.
func text(b *strings.Builder, x, y float64, anchor string, size int, s string) {
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="%s" font-size="%d">`, x, y, anchor, size)
	_ = xml.EscapeText(b, []byte(s))
	b.WriteString("</text>\n")
}

// ticks is the number of ticks from 0 to top, every step.
func ticks(top, step float64) int { return int(math.Round(top/step)) + 1 }

// scale returns the top of an axis showing values up to v, and the step
// of its ticks: 1, 2 or 5 times a power of ten, at most five of them.
func scale(v float64) (top, step float64) {
	if v <= 0 {
		return 1, 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v/5)))
	step = 10 * p
	for _, m := range []float64{1, 2, 5} {
		if v <= 5*m*p {
			step = m * p
			break
		}
	}
	return step * math.Ceil(v/step), step
}
