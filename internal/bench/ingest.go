package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"time"

	"github.com/trailaudit/trail/internal/loadgen"
)

// Load is how a run sends its requests.
type Load struct {
	Concurrency int           // clients (closed loop) or most requests in flight (open loop)
	Rate        float64       // > 0: open loop at this many requests per second
	Duration    time.Duration // stop after this long …
	Requests    int64         // … or after this many requests
}

func (l Load) options(live *loadgen.Counters) loadgen.Options {
	return loadgen.Options{Concurrency: l.Concurrency, Rate: l.Rate, Duration: l.Duration, Requests: l.Requests, Live: live}
}

func (l Load) describe(r *Report) {
	r.Loop, r.Concurrency, r.Rate = "closed", l.Concurrency, l.Rate
	if l.Rate > 0 {
		r.Loop = "open"
	}
}

// IngestOptions configure an ingest run.
type IngestOptions struct {
	Load
	Batch int // 0: single events (POST /audit_logs/events); N: batches of N (POST /v1/events/batch)
	Orgs  int // organizations to create and spread the events over
	// OrgIDs, when set, are the organizations to spread the events over
	// instead of creating Orgs new ones (a server that has them, or the
	// no-storage ceiling, which has none).
	OrgIDs    []string
	EventSize int    // approximate JSON bytes of one event; 0: natural (~600)
	Record    string // file to write the acknowledged events to; "" for none
	Target    string // how the report names the server
	// Live is updated during the run, for a progress line.
	Live *loadgen.Counters
}

// NewRunID returns a fresh run id: 12 hex digits.
func NewRunID() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Ingest creates the organizations and sends events to c.
func Ingest(ctx context.Context, c *Client, opts IngestOptions) (Report, error) {
	rep := Report{Mode: "ingest", RunID: NewRunID(), Target: opts.Target, Batch: opts.Batch, Orgs: opts.Orgs}
	opts.describe(&rep)
	orgs := opts.OrgIDs
	var err error
	if len(orgs) == 0 {
		if orgs, err = c.CreateOrganizations(ctx, rep.RunID, opts.Orgs); err != nil {
			return rep, err
		}
	}
	rep.Orgs = len(orgs)
	gen := NewEvents(rep.RunID, orgs, opts.EventSize)
	rep.EventBytes = len(gen.Event(nil, 0))

	var rec *Recorder
	if opts.Record != "" {
		if rec, err = CreateRecord(opts.Record, rep.RunID, opts.Target); err != nil {
			return rep, err
		}
	}
	lo := opts.options(opts.Live)
	var build loadgen.Request
	per := max(opts.Batch, 1)
	if opts.Batch == 0 {
		build = func(i int64) (*http.Request, error) {
			return c.Request(http.MethodPost, "/audit_logs/events", nil, gen.Single(i))
		}
		if rec != nil {
			lo.Done = func(a loadgen.Answer) {
				if a.Status == http.StatusCreated || a.Status == http.StatusOK {
					rec.Add(gen.Org(a.I), gen.BenchID(a.I), "")
				}
			}
		}
	} else {
		build = func(i int64) (*http.Request, error) {
			return c.Request(http.MethodPost, "/v1/events/batch", nil, gen.Batch(i*int64(per), per))
		}
		if rec != nil {
			lo.Done = func(a loadgen.Answer) {
				if a.Status/100 != 2 {
					return
				}
				var out struct {
					Data []struct {
						ID             string `json:"id"`
						OrganizationID string `json:"organization_id"`
					} `json:"data"`
				}
				first := a.I * int64(per)
				if json.Unmarshal(a.Body, &out) != nil || len(out.Data) != per {
					// Acknowledged without the ids: record by bench_id.
					for k := range int64(per) {
						rec.Add(gen.Org(first+k), gen.BenchID(first+k), "")
					}
					return
				}
				for k, d := range out.Data {
					rec.Add(d.OrganizationID, gen.BenchID(first+int64(k)), d.ID)
				}
			}
		}
	}
	cpu, machine := c.startCPU(ctx), startMachine()
	res := loadgen.Run(ctx, c.HTTP, lo, build)
	rep.Machine = machine.stop()
	rep.fill(res, per)
	rep.ServerCPU = cpu.stop(ctx, rep.Requests-rep.Errors, rep.Events)
	if rec != nil {
		if err := rec.Close(); err != nil {
			return rep, err
		}
		rep.Record, rep.RecordedEvents = opts.Record, rec.Count()
	}
	return rep, nil
}
