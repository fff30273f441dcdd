package console

import (
	"bytes"
	"fmt"
	"html/template"
)

// The console's charts are SVG drawn on the server: as an image of their
// own (the event rate of an organization) or inline in the page (the
// ingest rate), with nothing but attributes — no script, no style — so the
// CSP without inline code holds.

type chartSize struct{ w, h float64 }

var (
	chartSmall = chartSize{w: 144, h: 32}
	chartWide  = chartSize{w: 720, h: 140}
)

// barsSVG draws one bar per value, scaled to the largest, each with its
// label as a tooltip, and title as the image's accessible name. Labels
// and title are escaped.
func barsSVG(size chartSize, title string, labels []string, values []float64) []byte {
	peak := 0.0
	for _, v := range values {
		peak = max(peak, v)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %.0f %.0f" width="%.0f" height="%.0f" role="img" aria-label="%s">`,
		size.w, size.h, size.w, size.h, template.HTMLEscapeString(title))
	fmt.Fprintf(&b, `<title>%s</title>`, template.HTMLEscapeString(title))
	fmt.Fprintf(&b, `<line x1="0" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#b6bec8"/>`, size.h-0.5, size.w, size.h-0.5)
	if len(values) > 0 {
		barW := size.w / float64(len(values))
		for i, v := range values {
			bh := 0.0
			if peak > 0 {
				bh = (size.h - 2) * v / peak
			}
			if v > 0 && bh < 1 {
				bh = 1
			}
			label := ""
			if i < len(labels) {
				label = labels[i]
			}
			fmt.Fprintf(&b, `<rect x="%.2f" y="%.2f" width="%.2f" height="%.2f" fill="#0b5cad"><title>%s</title></rect>`,
				float64(i)*barW+0.5, size.h-1-bh, max(barW-1, 0.5), bh, template.HTMLEscapeString(label))
		}
	}
	b.WriteString(`</svg>`)
	return b.Bytes()
}
