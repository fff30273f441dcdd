package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/trailaudit/trail/client"
)

// recordMagic starts the header line of a record file.
const recordMagic = "trail-bench-record"

// A record file lists the events a run saw acknowledged, one a line after
// a JSON header line:
//
//	{"format":"trail-bench-record","version":1,"run_id":"…","target":"…"}
//	org_…<TAB>bench_id<TAB>evt_… (or - when the API answered no id)

// RecordHeader is the first line of a record file.
type RecordHeader struct {
	Format  string `json:"format"`
	Version int    `json:"version"`
	RunID   string `json:"run_id"`
	Target  string `json:"target"`
}

// Recorder writes a record file. Its methods are safe for concurrent use.
type Recorder struct {
	path string
	mu   sync.Mutex
	f    *os.File
	w    *bufio.Writer
	n    int64
	err  error
}

// CreateRecord creates (or truncates) the record file at path.
func CreateRecord(path, runID, target string) (*Recorder, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("couldn't create the record file: %w", err)
	}
	r := &Recorder{path: path, f: f, w: bufio.NewWriterSize(f, 256<<10)}
	h, _ := json.Marshal(RecordHeader{Format: recordMagic, Version: 1, RunID: runID, Target: target})
	r.w.Write(h)
	r.w.WriteByte('\n')
	return r, nil
}

// Add records one acknowledged event; id is "" when the API answered none.
func (r *Recorder) Add(org, benchID, id string) {
	if id == "" {
		id = "-"
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return
	}
	_, r.err = fmt.Fprintf(r.w, "%s\t%s\t%s\n", org, benchID, id)
	r.n++
}

// Count is the number of events recorded.
func (r *Recorder) Count() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// Close flushes and syncs the file.
func (r *Recorder) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.err
	if err == nil {
		err = r.w.Flush()
	}
	if err == nil {
		err = r.f.Sync()
	}
	if cerr := r.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("couldn't write the record file %s: %w", r.path, err)
	}
	return nil
}

// RecordedEvent is one line of a record file.
type RecordedEvent struct {
	Org, BenchID, ID string // ID is "" when unknown
	Line             int
}

// ReadRecord reads a record file.
func ReadRecord(path string) (RecordHeader, []RecordedEvent, error) {
	var h RecordHeader
	f, err := os.Open(path)
	if err != nil {
		return h, nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	if !sc.Scan() {
		return h, nil, fmt.Errorf("%s is empty: not a record file of trail bench --record", path)
	}
	if err := json.Unmarshal(sc.Bytes(), &h); err != nil || h.Format != recordMagic {
		return h, nil, fmt.Errorf("%s does not start with a trail bench record header: not a file written by trail bench --record", path)
	}
	if h.Version != 1 {
		return h, nil, fmt.Errorf("%s is a record file of version %d; this trail reads version 1", path, h.Version)
	}
	var evs []RecordedEvent
	for n := 2; sc.Scan(); n++ {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 3 || f[0] == "" || (f[1] == "" && (f[2] == "" || f[2] == "-")) {
			return h, nil, fmt.Errorf("%s:%d: want ORGANIZATION<TAB>BENCH_ID<TAB>EVENT_ID, got %q", path, n, line)
		}
		ev := RecordedEvent{Org: f[0], BenchID: f[1], ID: f[2], Line: n}
		if ev.ID == "-" {
			ev.ID = ""
		}
		evs = append(evs, ev)
	}
	if err := sc.Err(); err != nil {
		return h, nil, fmt.Errorf("couldn't read %s: %w", path, err)
	}
	return h, evs, nil
}

// CheckResult says whether every acknowledged event of a record is stored
// exactly once.
type CheckResult struct {
	RunID          string           `json:"run_id"`
	Organizations  int              `json:"organizations"`
	Acknowledged   int64            `json:"acknowledged"`
	Found          int64            `json:"found"`
	Missing        int64            `json:"missing"`
	Duplicated     int64            `json:"duplicated"`
	Unacknowledged int64            `json:"unacknowledged"` // stored events of the run not in the record
	Scanned        int64            `json:"scanned"`        // records read from the logs
	Examples       []string         `json:"examples,omitempty"`
	PerOrg         map[string]int64 `json:"-"`
}

// OK reports whether nothing is missing or duplicated.
func (c CheckResult) OK() bool { return c.Missing == 0 && c.Duplicated == 0 }

// maxExamples bounds the problems a check names one by one.
const maxExamples = 10

// Check reads each organization's whole log (GET …/log/records, which holds
// every acknowledged event at once: no index lag) and matches it against
// the record: by event id when the record has one, else by bench_id.
// progress, when set, is called with the number of records read so far.
func Check(ctx context.Context, c *Client, path string, progress func(scanned int64)) (CheckResult, error) {
	h, evs, err := ReadRecord(path)
	if err != nil {
		return CheckResult{}, err
	}
	res := CheckResult{RunID: h.RunID, Acknowledged: int64(len(evs))}
	byOrg := map[string][]RecordedEvent{}
	for _, e := range evs {
		byOrg[e.Org] = append(byOrg[e.Org], e)
	}
	res.Organizations = len(byOrg)
	for org, want := range byOrg {
		ids, benchIDs, err := scanLog(ctx, c, org, h.RunID, &res.Scanned, progress)
		if client.IsNotFound(err) {
			ids, benchIDs = map[string]int{}, map[string]int{} // every event of it is missing
		} else if err != nil {
			return res, err
		}
		acked := map[string]bool{}
		for _, e := range want {
			acked[e.BenchID] = true
			n := benchIDs[e.BenchID]
			if e.ID != "" {
				n = ids[e.ID]
			}
			switch {
			case n == 0:
				res.Missing++
				res.example("missing: %s %s (line %d)", org, e.name(), e.Line)
			case n > 1 || (e.BenchID != "" && benchIDs[e.BenchID] > 1):
				res.Found++
				res.Duplicated++
				res.example("stored %d times: %s %s (line %d)", max(n, benchIDs[e.BenchID]), org, e.name(), e.Line)
			default:
				res.Found++
			}
		}
		for b := range benchIDs {
			if !acked[b] {
				res.Unacknowledged++
			}
		}
	}
	return res, nil
}

func (e RecordedEvent) name() string {
	if e.ID != "" {
		return e.ID
	}
	return "bench_id " + e.BenchID
}

func (c *CheckResult) example(format string, a ...any) {
	if len(c.Examples) < maxExamples {
		c.Examples = append(c.Examples, fmt.Sprintf(format, a...))
	}
}

// scanLog reads an organization's log and counts its event ids and the
// bench_ids of the run.
func scanLog(ctx context.Context, c *Client, org, runID string, scanned *int64, progress func(int64)) (ids, benchIDs map[string]int, err error) {
	ids, benchIDs = map[string]int{}, map[string]int{}
	err = c.API.LogRecords(ctx, org, 0, 0, func(line []byte) error {
		if len(bytes.TrimSpace(line)) == 0 {
			return nil
		}
		var rec struct {
			ID       string `json:"id"`
			Metadata struct {
				BenchID string `json:"bench_id"`
			} `json:"metadata"`
		}
		if jerr := json.Unmarshal(line, &rec); jerr != nil {
			return fmt.Errorf("reading the log of %s: record %d is not JSON: %w", org, *scanned, jerr)
		}
		ids[rec.ID]++
		if b := rec.Metadata.BenchID; b != "" {
			if r, ok := RunOf(b); ok && r == runID {
				benchIDs[b]++
			}
		}
		*scanned++
		if progress != nil && *scanned%4096 == 0 {
			progress(*scanned)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return ids, benchIDs, nil
}
