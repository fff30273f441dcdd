package main

import (
	"fmt"
	"html"
	"math"
	"os"
	"strings"
)

// The chart is drawn here, from the numbers of the run, as plain SVG: two
// panels (throughput, p99 latency) against the number of clients. Each
// backend has a colour; Trail is a solid line, the naive app over HTTP a
// dash-dotted one, the naive approach in process a dashed one, and the bare
// ceiling a dotted horizontal line on the throughput panel.

const (
	panelW, panelH = 470, 330
	marginL        = 70
	marginR        = 16
	marginT        = 40
	marginB        = 48
	legendH        = 100
)

var backendColor = map[string]string{"sqlite": "#1d4ed8", "postgres": "#c2410c"}

type series struct {
	label, color, dash string
	points             []float64 // by level; NaN where missing
}

func writeSVG(path string, med map[key]cell, levels []int) error {
	var thr, lat []series
	var ceilings []series
	for _, sys := range systems {
		color, drawn := backendColor[sys.backend]
		if !drawn {
			continue // the HTTP ceiling: in the table, beside Trail
		}
		if sys.ceiling {
			if c, ok := med[key{sys.name, 1}]; ok {
				ceilings = append(ceilings, series{label: sys.label, color: color, dash: "2,4", points: []float64{c.eventsPerS}})
			}
			continue
		}
		dash := ""
		switch {
		case strings.HasSuffix(sys.name, "naive"):
			dash = "7,5"
		case strings.HasPrefix(sys.name, "naive-http-"):
			dash = "10,3,2,3"
		}
		t := series{label: sys.label, color: color, dash: dash}
		l := t
		for _, c := range levels {
			m, ok := med[key{sys.name, c}]
			if !ok {
				t.points = append(t.points, math.NaN())
				l.points = append(l.points, math.NaN())
				continue
			}
			t.points = append(t.points, m.eventsPerS)
			l.points = append(l.points, m.p99ms)
		}
		thr = append(thr, t)
		lat = append(lat, l)
	}

	var b strings.Builder
	width, height := 2*panelW+20, panelH+legendH
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="system-ui, -apple-system, 'Segoe UI', sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="#ffffff"/>`+"\n")
	// Both axes are logarithmic: the bare ceilings are tens of times the
	// rest, and latencies span orders of magnitude.
	panel(&b, 0, "Throughput (events/s, log scale, higher is better)", levels, thr, ceilings,
		logScaleOf(append(append([]series{}, thr...), ceilings...)))
	panel(&b, panelW+20, "p99 latency (ms, log scale, lower is better)", levels, lat, nil, logScaleOf(lat))

	// Legend: one column per backend, in the order of systems, bare last.
	for col, backend := range []string{"sqlite", "postgres"} {
		x, y := marginL+col*(panelW+20), panelH+8
		for _, s := range append(append([]series{}, thr...), ceilings...) {
			if s.color != backendColor[backend] {
				continue
			}
			fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2.5" stroke-dasharray="%s"/>`+"\n", x, y, x+28, y, s.color, s.dash)
			fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#111827">%s</text>`+"\n", x+34, y+4, html.EscapeString(s.label))
			y += 22
		}
	}
	b.WriteString("</svg>\n")
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// scale maps a value to [0, 1] of the plot's height and lists tick values.
type scale struct {
	pos   func(v float64) float64
	ticks []float64
	label func(v float64) string
}

// logScaleOf is a log scale spanning every value of ss, by whole decades.
func logScaleOf(ss []series) scale {
	lo, hi := math.Inf(1), 0.0
	for _, s := range ss {
		for _, v := range s.points {
			if !math.IsNaN(v) && v > 0 {
				lo, hi = min(lo, v), max(hi, v)
			}
		}
	}
	if math.IsInf(lo, 1) {
		lo, hi = 1, 10
	}
	return logScale(math.Pow(10, math.Floor(math.Log10(lo))), math.Pow(10, math.Ceil(math.Log10(hi*1.01))))
}

func logScale(lo, hi float64) scale {
	if hi <= lo {
		hi = lo * 10
	}
	var ticks []float64
	for v := lo; v <= hi*1.0001; v *= 10 {
		ticks = append(ticks, v)
	}
	l0, l1 := math.Log10(lo), math.Log10(hi)
	return scale{pos: func(v float64) float64 { return (math.Log10(max(v, lo)) - l0) / (l1 - l0) }, ticks: ticks,
		label: func(v float64) string {
			if v < 1 {
				return fmt.Sprintf("%g", v)
			}
			return thousands(v)
		}}
}

func panel(b *strings.Builder, left int, title string, levels []int, lines, ceilings []series, sc scale) {
	plotW := float64(panelW - marginL - marginR)
	plotH := float64(panelH - marginT - marginB)
	x0, y0 := float64(left+marginL), float64(marginT)
	xAt := func(i int) float64 {
		if len(levels) == 1 {
			return x0 + plotW/2
		}
		return x0 + plotW*float64(i)/float64(len(levels)-1)
	}
	yAt := func(v float64) float64 { return y0 + plotH*(1-sc.pos(v)) }
	fmt.Fprintf(b, `<text x="%.0f" y="22" font-size="14" font-weight="600" fill="#111827">%s</text>`+"\n", x0, html.EscapeString(title))
	for _, t := range sc.ticks {
		y := yAt(t)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e5e7eb"/>`+"\n", x0, y, x0+plotW, y)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="end" fill="#4b5563">%s</text>`+"\n", x0-6, y+4, sc.label(t))
	}
	for i, c := range levels {
		x := xAt(i)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#9ca3af"/>`+"\n", x, y0+plotH, x, y0+plotH+4)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#4b5563">%d</text>`+"\n", x, y0+plotH+18, c)
	}
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#374151">clients (concurrent requests)</text>`+"\n", x0+plotW/2, y0+plotH+36)
	fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#9ca3af"/>`+"\n", x0, y0, plotW, plotH)
	for _, s := range ceilings {
		y := yAt(s.points[0])
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2" stroke-dasharray="%s"/>`+"\n", x0, y, x0+plotW, y, s.color, s.dash)
	}
	for _, s := range lines {
		var pts []string
		for i, v := range s.points {
			if math.IsNaN(v) {
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", xAt(i), yAt(v)))
		}
		if len(pts) == 0 {
			continue
		}
		fmt.Fprintf(b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2.5" stroke-dasharray="%s"/>`+"\n", strings.Join(pts, " "), s.color, s.dash)
		for _, pt := range pts {
			xy := strings.Split(pt, ",")
			fmt.Fprintf(b, `<circle cx="%s" cy="%s" r="3.5" fill="%s"/>`+"\n", xy[0], xy[1], s.color)
		}
	}
}
