package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/trailaudit/trail/client"
	"github.com/trailaudit/trail/internal/loadgen"
)

// Client calls a Trail server's API for a benchmark: the setup requests
// (organizations, seeds, bundles) through the typed calls of API, and the
// requests that are measured, built by API.NewRequest and sent by the load
// generator over HTTP, the keep-alive transport sized for the run that API
// uses too.
type Client struct {
	API  *client.Client
	HTTP *http.Client
	// MetricsBase is the server's operator listener (trail serve
	// --metrics-listen), where /metrics is; "" when unknown.
	MetricsBase string
}

// NewClient returns a client for the server at base with room for
// concurrency connections, sending userAgent.
func NewClient(base, apiKey string, concurrency int, userAgent string) (*Client, error) {
	hc := loadgen.NewClient(max(concurrency, 4))
	api, err := client.New(base, apiKey, client.WithHTTPClient(hc), client.WithUserAgent(userAgent))
	if err != nil {
		return nil, err
	}
	return &Client{API: api, HTTP: hc}, nil
}

// Request builds a measured request to path below the server URL.
func (c *Client) Request(method, path string, query url.Values, body []byte) (*http.Request, error) {
	return c.API.NewRequest(context.Background(), method, path, query, body)
}

// CreateOrganizations creates n organizations named after the run and
// returns their ids.
func (c *Client) CreateOrganizations(ctx context.Context, runID string, n int) ([]string, error) {
	ids := make([]string, 0, n)
	for k := range n {
		org, err := c.API.CreateOrganization(ctx, fmt.Sprintf("Bench %s #%d", runID, k+1), "")
		if err != nil {
			return nil, fmt.Errorf("couldn't create benchmark organization %d of %d (the API key needs the admin scope): %w", k+1, n, err)
		}
		ids = append(ids, org.ID)
	}
	return ids, nil
}

// Organizations lists up to 100 organizations of the server (not Trail's
// own org_system).
func (c *Client) Organizations(ctx context.Context) ([]string, error) {
	list, err := c.API.ListOrganizations(ctx, client.ListOptions{Limit: 100})
	if err != nil {
		return nil, fmt.Errorf("couldn't list the organizations (give them with --org, or use an admin key): %w", err)
	}
	var ids []string
	for _, o := range list.Data {
		if o.ID != "" && o.ID != "org_system" {
			ids = append(ids, o.ID)
		}
	}
	return ids, nil
}

// Metric returns the value of an unlabelled metric on the server's
// /metrics (on its operator listener), and false when the server does not
// export it or its operator listener is unknown.
func (c *Client) Metric(ctx context.Context, name string) (float64, bool, error) {
	if c.MetricsBase == "" {
		return 0, false, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(c.MetricsBase, "/")+"/metrics", nil)
	if err != nil {
		return 0, false, fmt.Errorf("couldn't build the metrics request: %w", err)
	}
	res, err := c.HTTP.Do(req)
	if err != nil {
		return 0, false, fmt.Errorf("couldn't read the server's metrics: %w", err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return 0, false, fmt.Errorf("couldn't read the server's metrics: %w", err)
	}
	if res.StatusCode != http.StatusOK {
		return 0, false, fmt.Errorf("GET %s/metrics: %s", c.MetricsBase, res.Status)
	}
	v, ok := metricValue(b, name)
	return v, ok, nil
}

// metricValue finds "name value" in Prometheus text exposition.
func metricValue(text []byte, name string) (float64, bool) {
	for line := range bytes.Lines(text) {
		rest, ok := bytes.CutPrefix(line, []byte(name))
		if !ok || len(rest) == 0 || (rest[0] != ' ' && rest[0] != '\t') {
			continue
		}
		f := strings.Fields(string(rest))
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err == nil {
			return v, true
		}
	}
	return 0, false
}

// cpuSpan measures the server's CPU time between startCPU and stop.
type cpuSpan struct {
	c     *Client
	start float64
	at    time.Time
	ok    bool
}

// startCPU reads the server's process_cpu_seconds_total (on its operator
// listener) at the start of a run.
func (c *Client) startCPU(ctx context.Context) *cpuSpan {
	v, ok, err := c.Metric(ctx, "process_cpu_seconds_total")
	return &cpuSpan{c: c, start: v, at: time.Now(), ok: ok && err == nil}
}

// stop reads it again and returns the CPU used, per acknowledged request and
// event; nil when the server's CPU time is unknown.
func (s *cpuSpan) stop(ctx context.Context, requests, events int64) *CPU {
	if !s.ok || requests <= 0 {
		return nil
	}
	v, ok, err := s.c.Metric(ctx, "process_cpu_seconds_total")
	if !ok || err != nil || v < s.start {
		return nil
	}
	return cpuOf(v-s.start, time.Since(s.at), requests, events)
}

func cpuOf(seconds float64, elapsed time.Duration, requests, events int64) *CPU {
	out := &CPU{Seconds: seconds, Source: "process_cpu_seconds_total", MicrosPerRequest: seconds * 1e6 / float64(requests)}
	if elapsed > 0 {
		out.Cores = seconds / elapsed.Seconds()
	}
	if events > 0 {
		out.MicrosPerEvent = seconds * 1e6 / float64(events)
	}
	return out
}

// RSSSampler polls a server's process_resident_memory_bytes and keeps the
// largest value seen: the peak as far as sampling can tell.
type RSSSampler struct {
	done chan struct{}
	stop func()
	peak int64 // written by the sampling goroutine until stop returns
	n    int
}

// Stop ends the sampling and returns the peak seen (0 when the server
// exports no process_resident_memory_bytes) and how many samples it took.
func (s *RSSSampler) Stop() (peak int64, samples int) {
	s.stop()
	return s.peak, s.n
}

// SampleRSS starts sampling c's /metrics every interval until Stop.
func SampleRSS(ctx context.Context, c *Client, interval time.Duration) *RSSSampler {
	s := &RSSSampler{done: make(chan struct{})}
	ctx, cancel := context.WithCancel(ctx)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			if v, ok, err := c.Metric(ctx, "process_resident_memory_bytes"); err == nil && ok {
				s.peak = max(s.peak, int64(v))
				s.n++
			}
			select {
			case <-t.C:
			case <-s.done:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	s.stop = func() {
		close(s.done)
		<-stopped
		cancel()
	}
	return s
}
