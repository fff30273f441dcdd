package portal

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"slices"
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
	URL, PhoneURL, DarkURL, DarkPhoneURL, Alt string
}

// histogramFor is the histogram of the events a filter selects: its URL
// carries every filter, so the bars count what the table lists.
func histogramFor(f filter, now time.Time, l *locale) histogramView {
	from, to := histogramRange(f, now)
	v := f.values()
	u := func(extra ...string) string {
		q := url.Values{}
		for k, vals := range v {
			q[k] = vals
		}
		for i := 0; i+1 < len(extra); i += 2 {
			q.Set(extra[i], extra[i+1])
		}
		if len(q) == 0 {
			return "/portal/events/histogram.svg"
		}
		return "/portal/events/histogram.svg?" + q.Encode()
	}
	_, step, n := buckets(from, to)
	which := l.T("all events")
	if f.active() {
		which = l.T("the events matching the filters")
	}
	return histogramView{URL: u(), PhoneURL: u("size", "phone"), DarkURL: u("theme", "dark"), DarkPhoneURL: u("size", "phone", "theme", "dark"),
		Alt: l.T("Bar chart of the number of events from %s to %s (UTC), %d bars of %s each; %s.",
			from.Format("2006-01-02 15:04"), to.Format("2006-01-02 15:04"), n, stepName(step), which)}
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

// histogram is GET /portal/events/histogram.svg?<the page's filter>
// [&size=phone][&theme=dark]. With dates alone it counts with one index
// walk per bucket (store.PortalQueries.EventHistogram); with any other
// filter, with the search's own conditions in one aggregate
// (store.PortalQueries.SearchHistogram): exact, whatever the filter.
func (p *Portal) histogram(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r)
	q := r.URL.Query()
	look := histogramLook{phone: q.Get("size") == "phone", dark: q.Get("theme") == "dark", accent: p.accentOf(r.Context(), s)}
	q.Del("size")
	q.Del("theme")
	q.Del("after")
	q.Del("before")
	f, problems := parseFilterIn(p.locales.pick(r), q)
	if len(problems) > 0 {
		http.Error(w, problems[0], http.StatusBadRequest)
		return
	}
	from, to := histogramRange(f, p.cfg.Now())
	start, step, n := buckets(from, to)
	var counts []int64
	var err error
	onlyDates := len(f.Actions) == 0 && f.ActorID == "" && f.ActorName == "" && f.TargetType == "" && f.TargetID == "" && f.Text == "" && f.Trail == ""
	if onlyDates {
		counts, err = p.cfg.Store.EventHistogram(r.Context(), s.Org, start, step, n)
	} else {
		counts, err = p.countMatching(r, s.Org, f, start, step, n)
	}
	if err != nil {
		p.log.Error("couldn't count events for the histogram", "organization_id", s.Org, "err", err)
		http.Error(w, "The event counts are unavailable.", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Header().Set("Cache-Control", "private, max-age=10")
	_, _ = w.Write(histogramSVG(start, step, counts, look))
}

// countMatching counts the events of f in the buckets: those the events
// page lists, Trail's own events shown or hidden as it shows them.
func (p *Portal) countMatching(r *http.Request, org string, f filter, start time.Time, step time.Duration, n int) ([]int64, error) {
	known, err := p.cfg.Store.OrganizationActions(r.Context(), org, maxActionOptions)
	if err != nil {
		return nil, err
	}
	if !f.resolve(known) {
		return make([]int64, n), nil
	}
	acts := f.actions()
	onlyActions := f.ActorID == "" && f.ActorName == "" && f.TargetType == "" && f.TargetID == "" && f.Text == ""
	if onlyActions && len(acts) > 0 && len(known) < maxActionOptions && 2*len(acts) > len(known) {
		// Most of the organization's actions (Trail's own events
		// hidden, say): all events less those of the other actions,
		// counted first, so that an event arriving meanwhile can only
		// add to the total. known is every action of the organization
		// (fewer than asked for), as the events page offers them.
		var rest []string
		for _, a := range known {
			if !slices.Contains(acts, a) {
				rest = append(rest, a)
			}
		}
		var less []int64
		if len(rest) > 0 {
			// Whole buckets, as EventHistogram counts them.
			g := f
			g.resolved, g.from, g.to = &rest, time.Time{}, time.Time{}
			if less, err = p.cfg.Store.SearchHistogram(r.Context(), g.query(org), start, step, n); err != nil {
				return nil, err
			}
		}
		all, err := p.cfg.Store.EventHistogram(r.Context(), org, start, step, n)
		if err != nil {
			return nil, err
		}
		for i := range less {
			all[i] = max(all[i]-less[i], 0)
		}
		return all, nil
	}
	return p.cfg.Store.SearchHistogram(r.Context(), f.query(org), start, step, n)
}

// histogramLook is how a histogram is drawn: for a phone (narrower, so
// that its labels are not shrunk) and for the dark theme.
type histogramLook struct {
	phone, dark bool
	accent      string // rrggbb of the bars; "" for the default
}

// histogramSVG draws the bars. Everything written is a number or a date
// this function formats: nothing from the request reaches the document.
func histogramSVG(start time.Time, step time.Duration, counts []int64, look histogramLook) []byte {
	w, h, top, bottom, left := 960.0, 80.0, 12.0, 20.0, 56.0
	if look.phone {
		w, h, left = 360.0, 96.0, 44.0
	}
	bar, axis, label := "#2563eb", "#cbd5e1", "#475569"
	if look.dark {
		bar, axis, label = "#60a5fa", "#334155", "#cbd5e1"
	}
	if look.accent != "" {
		c, _ := parseHex(look.accent)
		if look.dark {
			bar = "#" + readable(c, darkBackgrounds, white).hex()
		} else {
			bar = "#" + readable(c, lightBackgrounds, black).hex()
		}
	}
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
	fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="%s"/>`, left, h-bottom, w, h-bottom, axis)
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="end" fill="%s">%s</text>`, left-6, top+4, label, commas(peak))
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="end" fill="%s">0</text>`, left-6, h-bottom, label)
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
		fmt.Fprintf(&b, `<rect x="%.2f" y="%.2f" width="%.2f" height="%.2f" fill="%s"><title>%s: %s</title></rect>`,
			left+float64(i)*barW+1, h-bottom-bh, max(barW-2, 1), bh, bar, at.Format("2006-01-02 15:04"), events(c))
	}
	end := start.Add(time.Duration(len(counts)) * step).UTC()
	layout := "2006-01-02 15:04"
	if look.phone {
		layout = "01-02 15:04"
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" fill="%s">%s</text>`, left, h-5, label, start.UTC().Format(layout))
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="end" fill="%s">%s UTC</text>`, w, h-5, label, end.Format(layout))
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
