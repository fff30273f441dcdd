package portal

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// The histogram is an SVG image of its own (GET /portal/events/histogram.svg
// with the page's date range), so that the events page answers at the speed
// of one index walk while the counting, which reads every event of the
// range once, happens in a request beside it. It is an <img>: it shows
// without JavaScript and needs no inline script or style.

// maxBars bounds the histogram's buckets.
const maxBars = 60

// histogramSteps are the bucket widths, finest first.
var histogramSteps = []time.Duration{
	time.Minute, 5 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour,
	24 * time.Hour, 7 * 24 * time.Hour, 30 * 24 * time.Hour, 365 * 24 * time.Hour,
}

// buckets splits [from, to) into at most maxBars buckets of a round width;
// the first starts at from rounded down to the width (UTC).
func buckets(from, to time.Time) (start time.Time, step time.Duration, n int) {
	span := to.Sub(from)
	step = histogramSteps[len(histogramSteps)-1]
	for _, s := range histogramSteps {
		if span <= time.Duration(maxBars-1)*s {
			step = s
			break
		}
	}
	for {
		start = from.Truncate(step)
		n = int((to.Sub(start) + step - 1) / step)
		if n <= maxBars {
			return start, step, max(n, 1)
		}
		step *= 2
	}
}

// histogramRange is the histogram's range for a filter: its dates, or the
// last 7 days when it has none.
func histogramRange(f filter, now time.Time) (from, to time.Time) {
	from, to = f.from, f.to
	if to.IsZero() {
		to = now.UTC().Truncate(time.Minute).Add(time.Minute)
	}
	if from.IsZero() || !from.Before(to) {
		from = to.Add(-7 * 24 * time.Hour)
	}
	return from, to
}

type histogramView struct {
	URL, Alt string
}

func histogramFor(f filter, now time.Time) histogramView {
	from, to := histogramRange(f, now)
	v := url.Values{}
	if f.From != "" {
		v.Set("from", f.From)
	}
	if f.To != "" {
		v.Set("to", f.To)
	}
	u := "/portal/events/histogram.svg"
	if len(v) > 0 {
		u += "?" + v.Encode()
	}
	_, step, n := buckets(from, to)
	return histogramView{URL: u, Alt: fmt.Sprintf("Bar chart of the number of events from %s to %s (UTC), %d bars of %s each; all actions.",
		from.Format("2006-01-02 15:04"), to.Format("2006-01-02 15:04"), n, stepName(step))}
}

func stepName(d time.Duration) string {
	switch {
	case d%(24*time.Hour) == 0 && d/(24*time.Hour) == 1:
		return "1 day"
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	default:
		return fmt.Sprintf("%d min", d/time.Minute)
	}
}

// histogram is GET /portal/events/histogram.svg?from=…&to=….
func (p *Portal) histogram(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r)
	f, problems := parseFilter(url.Values{"from": r.URL.Query()["from"], "to": r.URL.Query()["to"]})
	if len(problems) > 0 {
		http.Error(w, problems[0], http.StatusBadRequest)
		return
	}
	from, to := histogramRange(f, p.cfg.Now())
	start, step, n := buckets(from, to)
	counts, err := p.cfg.Store.EventHistogram(r.Context(), s.Org, start, step, n)
	if err != nil {
		p.log.Error("couldn't count events for the histogram", "organization_id", s.Org, "err", err)
		http.Error(w, "The event counts are unavailable.", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Header().Set("Cache-Control", "private, max-age=10")
	_, _ = w.Write(histogramSVG(start, step, counts))
}

// histogramSVG draws the bars. Everything written is a number or a date
// this function formats: nothing from the request reaches the document.
func histogramSVG(start time.Time, step time.Duration, counts []int64) []byte {
	const w, h, top, bottom, left = 960.0, 180.0, 16.0, 24.0, 56.0
	var peak, total int64
	for _, c := range counts {
		peak = max(peak, c)
		total += c
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %.0f %.0f" width="%.0f" height="%.0f" font-family="system-ui, sans-serif" font-size="12">`, w, h, w, h)
	fmt.Fprintf(&b, `<title>%s, %s to %s UTC</title>`, events(total), start.UTC().Format("2006-01-02 15:04"),
		start.Add(time.Duration(len(counts))*step).UTC().Format("2006-01-02 15:04"))
	plotH := h - top - bottom
	fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#cbd5e1"/>`, left, h-bottom, w, h-bottom)
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="end" fill="#64748b">%s</text>`, left-8, top+4, commas(peak))
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="end" fill="#64748b">0</text>`, left-8, h-bottom)
	barW := (w - left) / float64(len(counts))
	for i, c := range counts {
		bh := 0.0
		if peak > 0 {
			bh = plotH * float64(c) / float64(peak)
		}
		if c > 0 && bh < 1 {
			bh = 1
		}
		at := start.Add(time.Duration(i) * step).UTC()
		fmt.Fprintf(&b, `<rect x="%.2f" y="%.2f" width="%.2f" height="%.2f" fill="#2563eb"><title>%s: %s</title></rect>`,
			left+float64(i)*barW+1, h-bottom-bh, max(barW-2, 1), bh, at.Format("2006-01-02 15:04"), events(c))
	}
	end := start.Add(time.Duration(len(counts)) * step).UTC()
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" fill="#64748b">%s</text>`, left, h-6, start.UTC().Format("2006-01-02 15:04"))
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="end" fill="#64748b">%s UTC</text>`, w, h-6, end.Format("2006-01-02 15:04"))
	b.WriteString(`</svg>`)
	return b.Bytes()
}

// events is "1 event", "1,204 events".
func events(n int64) string {
	if n == 1 {
		return "1 event"
	}
	return commas(n) + " events"
}
