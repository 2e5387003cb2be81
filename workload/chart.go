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
// time on the left, a bar chart of TPS on the right.
const (
	chartWidth  = 980.0
	chartHeight = 420.0
	plotTop     = 60.0
	plotBottom  = 330.0
	linesLeft   = 80.0
	linesRight  = 600.0
	barsLeft    = 700.0
	barsRight   = 950.0
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
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%[1]g" height="%[2]g" viewBox="0 0 %[1]g %[2]g" font-family="sans-serif" font-size="12">`+"\n",
		chartWidth, chartHeight)
	fmt.Fprintf(&b, `<rect width="%g" height="%g" fill="white"/>`+"\n", chartWidth, chartHeight)
	app, load, bound, _ := r.describe()
	text(&b, chartWidth/2, 24, "middle", 15, fmt.Sprintf("tcpadvisor workload: %s, %s, %s", app, load, bound))

	var maxT, maxTW, maxTPS float64
	for _, a := range r.Arms {
		for _, p := range a.TimeWait {
			maxT, maxTW = max(maxT, p.T), max(maxTW, p.Value)
		}
		maxTPS = max(maxTPS, a.TPS)
	}
	topT, stepT := scale(maxT)
	topTW, stepTW := scale(maxTW)
	topTPS, stepTPS := scale(maxTPS)

	// TIME_WAIT over time.
	text(&b, (linesLeft+linesRight)/2, plotTop-12, "middle", 13, "TIME_WAIT sockets over time (s from the start of the load)")
	axes(&b, linesLeft, linesRight, topTW, stepTW)
	for i := range ticks(topT, stepT) {
		t := float64(i) * stepT
		x := linesLeft + (linesRight-linesLeft)*t/topT
		text(&b, x, plotBottom+16, "middle", 11, strconv.FormatFloat(t, 'f', -1, 64))
	}
	if r.Duration <= topT {
		// Where the load stops; sampling goes on after it.
		x := linesLeft + (linesRight-linesLeft)*r.Duration/topT
		fmt.Fprintf(&b, `<path d="M%.1f %g V%g" stroke="#888" stroke-dasharray="4 3"/>`+"\n", x, plotTop, plotBottom)
		text(&b, x-4, plotTop+12, "end", 11, "load ends")
	}
	for _, a := range r.Arms {
		var points []string
		for _, p := range a.TimeWait {
			x := linesLeft + (linesRight-linesLeft)*math.Max(p.T, 0)/topT
			y := plotBottom - (plotBottom-plotTop)*p.Value/topTW
			points = append(points, fmt.Sprintf("%.1f,%.1f", x, y))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", armColor(a.Arm), strings.Join(points, " "))
	}
	for i, a := range r.Arms {
		y := plotBottom + 40 + 16*float64(i/2)
		x := linesLeft + 270*float64(i%2)
		fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="14" height="4" fill="%s"/>`+"\n", x, y-4, armColor(a.Arm))
		text(&b, x+20, y, "start", 11, fmt.Sprintf("arm %d: %s", a.Arm, a.Name))
	}

	// TPS per arm.
	text(&b, (barsLeft+barsRight)/2, plotTop-12, "middle", 13, "successful requests per second")
	axes(&b, barsLeft, barsRight, topTPS, stepTPS)
	if n := len(r.Arms); n > 0 {
		slot := (barsRight - barsLeft) / float64(n)
		for i, a := range r.Arms {
			h := (plotBottom - plotTop) * a.TPS / topTPS
			x := barsLeft + slot*float64(i) + slot*0.2
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n", x, plotBottom-h, slot*0.6, h, armColor(a.Arm))
			text(&b, x+slot*0.3, plotBottom-h-4, "middle", 11, thousands(a.TPS))
			text(&b, x+slot*0.3, plotBottom+16, "middle", 11, fmt.Sprintf("arm %d", a.Arm))
		}
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
