package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/trailaudit/trail/internal/loadgen"
)

// Client calls a Trail server's API for a benchmark: the setup requests
// (organizations, seeds, bundles) and the requests that are measured, which
// share one keep-alive transport sized for the run.
type Client struct {
	Base   string // server URL, no trailing slash
	APIKey string
	// MetricsBase is the server's operator listener (trail serve
	// --metrics-listen), where /metrics is; "" when unknown.
	MetricsBase string
	HTTP        *http.Client
	// UserAgent is sent with every request.
	UserAgent string
}

// NewClient returns a client for the server at base with room for
// concurrency connections.
func NewClient(base, apiKey string, concurrency int) *Client {
	return &Client{Base: strings.TrimRight(base, "/"), APIKey: apiKey, HTTP: loadgen.NewClient(max(concurrency, 4)), UserAgent: "trail-bench"}
}

// Request builds a request to path (with its query) below the server URL.
func (c *Client) Request(method, path string, body []byte) (*http.Request, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, c.Base+path, r)
	if err != nil {
		return nil, fmt.Errorf("couldn't build the request %s %s: %w", method, path, err)
	}
	if c.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.APIKey)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", c.UserAgent)
	return req, nil
}

// Do sends one request and returns the body of a 2xx answer; any other
// answer is an error that quotes the server's message.
func (c *Client) Do(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	resp, err := c.Open(ctx, method, path, body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("reading the answer to %s %s: %w", method, path, err)
	}
	return b, nil
}

// Open sends one request and returns the response of a 2xx answer, whose
// body the caller closes.
func (c *Client) Open(ctx context.Context, method, path string, body []byte) (*http.Response, error) {
	req, err := c.Request(method, path, body)
	if err != nil {
		return nil, err
	}
	resp, err := c.HTTP.Do(req.WithContext(ctx))
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("couldn't reach the Trail server at %s for %s %s: %w", c.Base, method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
		return nil, &StatusError{Method: method, Path: path, Status: resp.StatusCode, Body: strings.TrimSpace(string(msg))}
	}
	return resp, nil
}

// StatusError is an answer other than 2xx to a setup request.
type StatusError struct {
	Method, Path string
	Status       int
	Body         string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s %s: the server answered %d: %.300s", e.Method, e.Path, e.Status, e.Body)
}

// CreateOrganizations creates n organizations named after the run and
// returns their ids.
func (c *Client) CreateOrganizations(ctx context.Context, runID string, n int) ([]string, error) {
	ids := make([]string, 0, n)
	for k := range n {
		body, _ := json.Marshal(map[string]string{"name": fmt.Sprintf("Bench %s #%d", runID, k+1)})
		b, err := c.Do(ctx, http.MethodPost, "/organizations", body)
		if err != nil {
			return nil, fmt.Errorf("couldn't create benchmark organization %d of %d (the API key needs the admin scope): %w", k+1, n, err)
		}
		var org struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(b, &org); err != nil || org.ID == "" {
			return nil, fmt.Errorf("the answer to POST /organizations has no organization id: %.200s", b)
		}
		ids = append(ids, org.ID)
	}
	return ids, nil
}

// Organizations lists up to 100 organizations of the server (not Trail's
// own org_system).
func (c *Client) Organizations(ctx context.Context) ([]string, error) {
	b, err := c.Do(ctx, http.MethodGet, "/organizations?limit=100", nil)
	if err != nil {
		return nil, fmt.Errorf("couldn't list the organizations (give them with --org, or use an admin key): %w", err)
	}
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("the answer to GET /organizations is not a list: %w", err)
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
