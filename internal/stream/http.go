package stream

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
)

// userAgent is sent with every HTTP delivery.
const userAgent = "Trail-Log-Streams/1"

// post sends one HTTP request and classifies the answer: nil for 2xx, a
// *Failure otherwise.
//
// The transport may go on reading body after post returned (a receiver
// that answers before reading it all, e.g. 413), so callers give each
// request a buffer of its own and never reuse it.
func post(ctx context.Context, e *env, url string, header http.Header, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return permanent("couldn't make a request to %s: %v", url, err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	req.Header.Set("User-Agent", userAgent)
	resp, err := e.client.Do(req)
	if err != nil {
		if dialRefused(err) {
			return &Failure{Permanent: true, Err: err}
		}
		return &Failure{Err: fmt.Errorf("couldn't deliver to %s: %w", req.URL.Host, err)}
	}
	defer resp.Body.Close()
	head, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	// Drain a little more so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	return httpFailure(resp, head, e.now())
}
