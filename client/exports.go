package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// ExportRequest selects the events of an export (WorkOS's
// POST /audit_logs/exports, plus Trail's Format).
type ExportRequest struct {
	OrganizationID string `json:"organization_id"`
	// RangeStart and RangeEnd (both required) select the events whose
	// occurred_at is in [RangeStart, RangeEnd).
	RangeStart time.Time `json:"range_start"`
	RangeEnd   time.Time `json:"range_end"`
	Actions    []string  `json:"actions,omitempty"`
	ActorNames []string  `json:"actor_names,omitempty"`
	ActorIDs   []string  `json:"actor_ids,omitempty"`
	Targets    []string  `json:"targets,omitempty"`
	// Format is "csv" (WorkOS's, the default) or "ndjson" (a bundle
	// VerifyBundle checks).
	Format string `json:"format,omitempty"`
}

// Export states.
const (
	ExportPending = "pending"
	ExportReady   = "ready"
	ExportError   = "error"
	ExportExpired = "expired"
)

// Export is an export and its state; URL, once it is ready, is a signed
// download link valid for minutes (each GetExport signs a new one).
type Export struct {
	ID        string    `json:"id"`
	State     string    `json:"state"`
	URL       string    `json:"url,omitempty"`
	Format    string    `json:"format"`
	Error     string    `json:"error,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	Progress  struct {
		EventsRead     int64 `json:"events_read"`
		EventsTotal    int64 `json:"events_total"`
		EventsExported int64 `json:"events_exported"`
		Bytes          int64 `json:"bytes,omitempty"`
	} `json:"progress"`
}

// CreateExport starts an export (POST /audit_logs/exports).
func (c *Client) CreateExport(ctx context.Context, r ExportRequest, opts ...CallOption) (*Export, error) {
	var out Export
	if err := c.do(ctx, http.MethodPost, "/audit_logs/exports", nil, r, &out, opts...); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetExport answers GET /audit_logs/exports/{id}.
func (c *Client) GetExport(ctx context.Context, id string) (*Export, error) {
	var out Export
	if err := c.do(ctx, http.MethodGet, "/audit_logs/exports/"+seg(id), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// WaitExport polls an export every interval (default 1 s) until it is no
// longer pending, and returns it; an export that failed is returned with an
// error quoting why.
func (c *Client) WaitExport(ctx context.Context, id string, interval time.Duration) (*Export, error) {
	if interval <= 0 {
		interval = time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		e, err := c.GetExport(ctx, id)
		if err != nil {
			return nil, err
		}
		switch e.State {
		case ExportPending:
		case ExportReady:
			return e, nil
		default:
			return e, fmt.Errorf("export %s is %s: %s", id, e.State, e.Error)
		}
		select {
		case <-ctx.Done():
			return e, fmt.Errorf("waiting for export %s: %w", id, ctx.Err())
		case <-t.C:
		}
	}
}

// Download is an export's file as it arrives: Size is its length in
// bytes, or -1 when Trail did not say. The caller reads and closes Body.
type Download struct {
	Body io.ReadCloser
	Size int64
}

// OpenExport starts the download of a ready export's file, fetching a
// fresh signed link first.
func (c *Client) OpenExport(ctx context.Context, id string) (*Download, error) {
	e, err := c.GetExport(ctx, id)
	if err != nil {
		return nil, err
	}
	if e.State != ExportReady || e.URL == "" {
		return nil, fmt.Errorf("export %s is %s, not ready", id, e.State)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("building the download of export %s: %w", id, err)
	}
	req.Header.Set("User-Agent", c.userAgent)
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("downloading export %s: %w", id, ctx.Err())
		}
		return nil, &Error{Method: http.MethodGet, Path: req.URL.Path, Err: err}
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, readError(resp, request{method: http.MethodGet, path: req.URL.Path})
	}
	return &Download{Body: resp.Body, Size: resp.ContentLength}, nil
}

// DownloadExport writes a ready export's file to w, fetching a fresh signed
// link first. It returns the bytes written, and an error if the file ended
// short of the length Trail announced.
func (c *Client) DownloadExport(ctx context.Context, id string, w io.Writer) (int64, error) {
	d, err := c.OpenExport(ctx, id)
	if err != nil {
		return 0, err
	}
	defer d.Body.Close()
	n, err := io.Copy(w, d.Body)
	if err != nil {
		return n, fmt.Errorf("downloading export %s: %w", id, err)
	}
	if d.Size >= 0 && n != d.Size {
		return n, fmt.Errorf("downloading export %s: the file ended after %d of %d bytes", id, n, d.Size)
	}
	return n, nil
}
