package console

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/trailaudit/trail/internal/retention"
	"github.com/trailaudit/trail/internal/store"
)

// What the organizations list shows of each organization beside its name:
// its retention (with a form to change it), the health of its log streams,
// and a chart of its events over the last 24 hours.

// orgOps is one organization's row of operations data.
type orgOps struct {
	RetentionDays int
	RetentionOwn  bool // its own period, not the deployment's default
	Streams       int
	Failing       int   // streams in error or invalid
	Paused        int   // inactive streams
	LagEvents     int64 // the most events any of its streams is behind
	Rate          string
}

// retentionChoices are the periods an organization's retention may be set
// to (retention.ValidDays).
func retentionChoices() []int {
	var out []int
	for d := 30; d <= 3650; d++ {
		if retention.ValidDays(d) {
			out = append(out, d)
		}
	}
	return out
}

// orgOperations fills d.Ops for the organizations on the page: one query
// for every retention setting and one for every stream position, whatever
// the page's length.
func (c *Console) orgOperations(r *http.Request, d *orgsData) error {
	ops := c.cfg.Operations
	d.Ops = map[string]*orgOps{}
	for _, o := range d.Orgs {
		d.Ops[o.ID] = &orgOps{RetentionDays: c.defaultDays()}
		if ops.Events != nil {
			d.Ops[o.ID].Rate = "/console/organizations/" + url.PathEscape(o.ID) + "/rate.svg"
		}
	}
	if ops.Retention != nil {
		d.RetentionChoices = retentionChoices()
		set, err := ops.Retention.RetentionSettings(r.Context())
		if err != nil {
			return err
		}
		for id, days := range set {
			if o := d.Ops[id]; o != nil {
				o.RetentionDays, o.RetentionOwn = days, true
			}
		}
	}
	if ops.Streams != nil {
		d.StreamsShown = true
		pos, err := ops.Streams.Store().StreamPositions(r.Context())
		if err != nil {
			return err
		}
		for _, p := range pos {
			o := d.Ops[p.OrganizationID]
			if o == nil {
				continue
			}
			o.Streams++
			switch p.State {
			case store.StreamError, store.StreamInvalid:
				o.Failing++
			case store.StreamInactive:
				o.Paused++
			}
			o.LagEvents = max(o.LagEvents, p.LogSize-p.Cursor)
		}
	}
	return nil
}

// rateHours is how far back the event-rate chart goes, an hour a bar.
const rateHours = 24

// rateChart is GET /console/organizations/{id}/rate.svg: an image of the
// organization's events per hour over the last 24 hours (by occurred_at,
// through the time index, as the Admin Portal's histogram counts them). It
// is an image of its own so that the list answers without waiting for the
// counting.
func (c *Console) rateChart(w http.ResponseWriter, r *http.Request) {
	ev := c.cfg.Operations.Events
	if ev == nil {
		http.NotFound(w, r)
		return
	}
	org, err := c.organization(r, r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		http.Error(w, "id: there is no organization with this id", http.StatusNotFound)
		return
	}
	if err != nil {
		c.log.Error("couldn't read an organization for its event rate", "err", err)
		http.Error(w, "The organization is unavailable right now.", http.StatusServiceUnavailable)
		return
	}
	end := c.cfg.Now().UTC().Truncate(time.Hour).Add(time.Hour)
	start := end.Add(-rateHours * time.Hour)
	counts, err := ev.EventHistogram(r.Context(), org.ID, start, time.Hour, rateHours)
	if err != nil {
		c.log.Error("couldn't count events for the event rate", "organization_id", org.ID, "err", err)
		http.Error(w, "The event counts are unavailable right now.", http.StatusServiceUnavailable)
		return
	}
	values := make([]float64, len(counts))
	labels := make([]string, len(counts))
	var total int64
	for i, n := range counts {
		values[i], total = float64(n), total+n
		labels[i] = start.Add(time.Duration(i)*time.Hour).Format("2006-01-02 15:04") + " UTC: " + plural(n, "event")
	}
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Header().Set("Cache-Control", "private, max-age=60")
	_, _ = w.Write(barsSVG(chartSmall, plural(total, "event")+" in the last 24 hours, by hour", labels, values))
}

// setRetention is POST /console/organizations/{id}/retention (days): the
// organization's own retention period, as PUT
// /organizations/{id}/audit_logs_retention sets it.
func (c *Console) setRetention(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r)
	ops := c.cfg.Operations
	if ops.Retention == nil {
		c.messageIn(w, r, http.StatusNotFound, "Page not found", "This deployment does not keep retention settings.", s)
		return
	}
	org, err := c.organization(r, r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		c.messageIn(w, r, http.StatusNotFound, "No such organization", "There is no organization with this id.", s)
		return
	}
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	raw := strings.TrimSpace(r.PostFormValue("days"))
	days, err := strconv.Atoi(raw)
	if err != nil || !retention.ValidDays(days) {
		c.messageIn(w, r, http.StatusBadRequest, "This form is not valid",
			"days: the retention must be 30, 60 … 330 days (by 30) or 365, 730 … 3650 days (by 365).", s)
		return
	}
	previous, own, err := ops.Retention.Retention(r.Context(), org.ID)
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	if !own {
		previous = c.defaultDays()
	}
	if err := ops.Retention.SetRetention(r.Context(), org.ID, days, c.cfg.Now().UTC()); err != nil {
		c.fail(w, r, s, err)
		return
	}
	c.audit(r, s, "trail.retention.updated", "organization", org.ID, org.Name, []string{org.ID, store.SystemOrganizationID},
		map[string]string{"retention_period_in_days": strconv.Itoa(days), "previous_retention_period_in_days": strconv.Itoa(previous)})
	if ops.RetentionChanged != nil {
		ops.RetentionChanged()
	}
	http.Redirect(w, r, safeURL("/console/organizations", url.Values{"q": {org.ID}, "done": {"retention"}}), http.StatusSeeOther)
}

// defaultDays is the retention of organizations without their own.
func (c *Console) defaultDays() int {
	if d := c.cfg.Operations.DefaultDays; d > 0 {
		return d
	}
	return retention.DefaultDays
}

// plural is "1 event", "1,204 events".
func plural(n int64, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return commas(n) + " " + what + "s"
}

// commas writes n with thousands separators.
func commas(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, ch := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
