// Package client is the Go client of Trail's HTTP API.
//
// A [Client] makes typed calls to every endpoint: events (one at a time,
// in batches, searched page by page or through an iterator), exports,
// the verifiable log (the verifier key, checkpoints, proofs, bundles pulled
// and verified with the same verifier `trail verify` uses), log streams,
// retention, schemas, Admin Portal links, organizations and API keys. Every
// call takes a context first, and every failure Trail answers is an
// [*Error] carrying the HTTP status, Trail's error code, the field errors,
// the request id and whether retrying can help ([Error.Retryable]).
//
// A [Publisher] is for applications that record audit events on their
// request path: Publish hands an event over and returns at once, never
// waiting on the network; the publisher batches, retries (with an
// idempotency key per batch, so a retry never stores an event twice) and,
// with a spool directory, keeps events on local disk until Trail has
// stored them, across the application's crashes and Trail's outages.
//
// The API itself is described by the OpenAPI document Trail serves at
// GET /openapi.json.
package client

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
)

// Client calls one Trail deployment with one API key. It is safe for
// concurrent use.
type Client struct {
	baseURL   string // the base URL, the prefix of every request's URL
	auth      string // the Authorization header; "" without an API key
	hc        *http.Client
	userAgent string
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client the calls go through (default: a
// client with a 60 s timeout per request).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithUserAgent sets the User-Agent header sent with every request.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// New returns a Client for the Trail at baseURL (such as
// https://trail.example.com) using apiKey (sk_…). apiKey may be "" for the
// calls that need none (LogKey, Download, Health).
func New(baseURL, apiKey string, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("parsing Trail's base URL %q: %w", baseURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("trail's base URL %q must be an absolute http or https URL", baseURL)
	}
	c := &Client{baseURL: u.String(), hc: &http.Client{Timeout: 60 * time.Second}, userAgent: "trail-go-client"}
	if apiKey != "" {
		c.auth = "Bearer " + apiKey
	}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// CallOption sets a header of one call.
type CallOption func(h http.Header)

// IdempotencyKey makes a write call idempotent: Trail answers a retry with
// the same key and the same body from the first result (for 24 hours)
// instead of storing it again. At most 255 bytes.
func IdempotencyKey(key string) CallOption {
	return func(h http.Header) { h.Set("Idempotency-Key", key) }
}

// RequestID sends an X-Request-ID that Trail logs and echoes (letters,
// digits and -_.: only, at most 128 bytes; otherwise Trail makes its own).
func RequestID(id string) CallOption {
	return func(h http.Header) { h.Set("X-Request-ID", id) }
}

// Error is an error answer from Trail, or a failure to reach it.
type Error struct {
	// StatusCode is the HTTP status; 0 when no answer arrived (Err says why).
	StatusCode int
	// Code is Trail's error code, such as "entity_not_found" or
	// "rate_limit_exceeded" ("" for WorkOS's "Validation failed." answers).
	Code string
	// Message says what went wrong in plain words.
	Message string
	// Errors lists the fields at fault, when the request was invalid.
	Errors []FieldError
	// RequestID is the X-Request-ID Trail answered, for its operator.
	RequestID string
	// RetryAfter is the delay Trail asked for in Retry-After (0 if none).
	RetryAfter time.Duration
	// Method and Path locate the call.
	Method, Path string
	// Err is the network error when StatusCode is 0.
	Err error
}

// FieldError is one problem of a request, located by its field: a dotted
// path such as "event.targets[2].id" or "events[3].organization_id".
type FieldError struct {
	Code    string `json:"code"`
	Field   string `json:"field"`
	Message string `json:"message,omitempty"`
}

func (e *Error) Error() string {
	if e.StatusCode == 0 {
		return fmt.Sprintf("trail %s %s: %v", e.Method, e.Path, e.Err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "trail %s %s: %d", e.Method, e.Path, e.StatusCode)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	for i, fe := range e.Errors {
		if i == 5 {
			fmt.Fprintf(&b, " (and %d more)", len(e.Errors)-5)
			break
		}
		fmt.Fprintf(&b, "; %s: %s %s", fe.Field, fe.Code, fe.Message)
	}
	if e.RequestID != "" {
		b.WriteString(" (request id " + e.RequestID + ")")
	}
	return b.String()
}

// Unwrap returns the network error, if any.
func (e *Error) Unwrap() error { return e.Err }

// Retryable reports whether the same request may succeed later: Trail was
// unreachable or answered 429 (rate limited), 502, 503 or 504 (overloaded or
// unavailable). Other answers will not change by retrying.
func (e *Error) Retryable() bool {
	switch e.StatusCode {
	case 0:
		return e.Err != nil && !errors.Is(e.Err, context.Canceled) && !errors.Is(e.Err, context.DeadlineExceeded)
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// IsRetryable reports whether err is an *Error that is Retryable.
func IsRetryable(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Retryable()
}

// IsNotFound reports whether err is Trail's 404 answer.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.StatusCode == http.StatusNotFound
}

// request is one call to make.
type request struct {
	method string
	path   string // escaped path below the base URL
	query  url.Values
	body   []byte // JSON; nil for none
	opts   []CallOption
	noAuth bool
}

// NewRequest builds a request to Trail's API: path is below the base URL
// (escaped, such as "/v1/events/batch"), query may be nil, and body, when
// not nil, is sent as JSON. It carries the API key and the User-Agent. It
// is for callers that send requests themselves, such as a load generator
// that times them over its own HTTP client (the one given WithHTTPClient);
// the typed calls are the ones to use otherwise.
func (c *Client) NewRequest(ctx context.Context, method, path string, query url.Values, body []byte) (*http.Request, error) {
	u := c.baseURL + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, r)
	if err != nil {
		return nil, fmt.Errorf("building the request %s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header["Content-Type"] = []string{"application/json"}
	}
	if c.auth != "" {
		req.Header["Authorization"] = []string{c.auth}
	}
	req.Header["User-Agent"] = []string{c.userAgent}
	return req, nil
}

// send makes the call and returns the answer, which has a 2xx status; any
// other status is read and returned as an *Error. The caller closes the
// body.
func (c *Client) send(ctx context.Context, rq request) (*http.Response, error) {
	req, err := c.NewRequest(ctx, rq.method, rq.path, rq.query, rq.body)
	if err != nil {
		return nil, err
	}
	if rq.noAuth {
		req.Header.Del("Authorization")
	}
	for _, o := range rq.opts {
		o(req.Header)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("trail %s %s: %w", rq.method, rq.path, ctx.Err())
		}
		return nil, &Error{Method: rq.method, Path: rq.path, Err: err}
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, readError(resp, rq)
}

// readError turns a non-2xx answer into an *Error.
func readError(resp *http.Response, rq request) *Error {
	e := &Error{StatusCode: resp.StatusCode, Method: rq.method, Path: rq.path,
		RequestID: resp.Header.Get("X-Request-ID")}
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		if s, err := strconv.Atoi(ra); err == nil && s >= 0 {
			e.RetryAfter = time.Duration(s) * time.Second
		} else if t, err := http.ParseTime(ra); err == nil {
			e.RetryAfter = max(time.Until(t), 0)
		}
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var b struct {
		Message string       `json:"message"`
		Code    string       `json:"code"`
		Errors  []FieldError `json:"errors"`
	}
	if err == nil && json.Unmarshal(raw, &b) == nil && b.Message != "" {
		e.Message, e.Code, e.Errors = b.Message, b.Code, b.Errors
	} else {
		e.Message = strings.TrimSpace(http.StatusText(resp.StatusCode) + " " + truncate(string(raw), 200))
	}
	return e
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// do makes a JSON call: in is encoded as the body (nil: none) and the
// answer decoded into out (nil: discarded).
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any, opts ...CallOption) error {
	rq := request{method: method, path: path, query: query, opts: opts}
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encoding the body of %s %s: %w", method, path, err)
		}
		rq.body = b
	}
	resp, err := c.send(ctx, rq)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("reading the answer of %s %s: %w", method, path, err)
	}
	return nil
}

// seg escapes one path segment.
func seg(s string) string { return url.PathEscape(s) }

// ListOptions page through a list: Limit (1–100; Trail's default is 10),
// Order ("asc" or "desc"), and Before or After, a cursor from a previous
// page's ListMetadata.
type ListOptions struct {
	Limit  int
	Order  string
	Before string
	After  string
}

func (o ListOptions) values() url.Values {
	v := url.Values{}
	if o.Limit > 0 {
		v.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.Order != "" {
		v.Set("order", o.Order)
	}
	if o.Before != "" {
		v.Set("before", o.Before)
	}
	if o.After != "" {
		v.Set("after", o.After)
	}
	return v
}

// ListMetadata holds a list's cursors: "" when there is no page that way.
type ListMetadata struct {
	Before string `json:"before"`
	After  string `json:"after"`
}

// UnmarshalJSON accepts null cursors.
func (m *ListMetadata) UnmarshalJSON(b []byte) error {
	var w struct {
		Before *string `json:"before"`
		After  *string `json:"after"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*m = ListMetadata{}
	if w.Before != nil {
		m.Before = *w.Before
	}
	if w.After != nil {
		m.After = *w.After
	}
	return nil
}

// List is one page of a list.
type List[T any] struct {
	Data         []T          `json:"data"`
	ListMetadata ListMetadata `json:"list_metadata"`
}

// Health answers GET /healthz: nil when the process is alive.
func (c *Client) Health(ctx context.Context) error {
	resp, err := c.send(ctx, request{method: http.MethodGet, path: "/healthz", noAuth: true})
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

// Ready answers GET /readyz: nil when Trail can serve requests.
func (c *Client) Ready(ctx context.Context) error {
	resp, err := c.send(ctx, request{method: http.MethodGet, path: "/readyz", noAuth: true})
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}
