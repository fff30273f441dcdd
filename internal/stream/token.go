package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// OAuth 2.0 access tokens for destinations that need one: Microsoft Entra
// client credentials (Azure Monitor) and Google's service-account JWT
// bearer grant (Cloud Storage). Both token endpoints answer the same JSON
// (RFC 6749 §5.1), parsed by ParseTokenResponse; a token is cached until
// shortly before it expires.
//
// The requests go through the destination's guarded client (the SSRF
// policy, no redirects, timeouts), and a refusal is quoted like any other
// destination's answer: the status, and the endpoint's error code and a
// short excerpt of its description.

// Token is an access token and when it stops being valid.
type Token struct {
	AccessToken string
	Expiry      time.Time
}

// maxTokenResponse bounds a token endpoint's answer.
const maxTokenResponse = 64 << 10

// ParseTokenResponse reads a token endpoint's successful answer: a JSON
// object with access_token, token_type (Bearer) and expires_in (seconds, a
// number or, from older endpoints, a numeric string). now dates the expiry.
func ParseTokenResponse(body []byte, now time.Time) (Token, error) {
	var r struct {
		AccessToken string          `json:"access_token"`
		TokenType   string          `json:"token_type"`
		ExpiresIn   json.RawMessage `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return Token{}, fmt.Errorf("the token endpoint's answer is not a JSON object: %w", err)
	}
	if r.AccessToken == "" {
		return Token{}, errors.New("the token endpoint's answer has no access_token")
	}
	if len(r.AccessToken) > 16<<10 || strings.ContainsFunc(r.AccessToken, func(c rune) bool { return c <= ' ' || c >= 0x7f }) {
		return Token{}, errors.New("the token endpoint's access_token is not a printable ASCII string of at most 16 KiB")
	}
	if r.TokenType != "" && !strings.EqualFold(r.TokenType, "bearer") {
		return Token{}, fmt.Errorf("the token endpoint answered a %q token, not a bearer token", Excerpt(r.TokenType, 20))
	}
	secs := int64(3600) // RFC 6749: expires_in is recommended, not required
	if len(r.ExpiresIn) > 0 && string(r.ExpiresIn) != "null" {
		raw := string(r.ExpiresIn)
		if s, err := strconv.Unquote(raw); err == nil {
			raw = s
		}
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || n <= 0 {
			return Token{}, fmt.Errorf("the token endpoint's expires_in %q is not a positive number of seconds", Excerpt(string(r.ExpiresIn), 20))
		}
		secs = min(n, 24*3600)
	}
	return Token{AccessToken: r.AccessToken, Expiry: now.Add(time.Duration(secs) * time.Second)}, nil
}

// tokenSource fetches and caches one destination's access token. fetch
// builds the token request (a form POST to the token endpoint).
type tokenSource struct {
	env      *env
	endpoint string
	form     func(now time.Time) (url.Values, error)

	mu  sync.Mutex
	tok Token
}

// tokenMargin is how long before its expiry a token is replaced, so that
// a request never carries one that expires on the way.
const tokenMargin = 5 * time.Minute

// token returns a valid access token, fetching a new one when the cached
// one is missing or about to expire.
func (s *tokenSource) token(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.env.now()
	if s.tok.AccessToken != "" && now.Add(tokenMargin).Before(s.tok.Expiry) {
		return s.tok.AccessToken, nil
	}
	form, err := s.form(now)
	if err != nil {
		return "", permanent("couldn't make the token request: %v", err)
	}
	tok, err := s.fetch(ctx, form, now)
	if err != nil {
		return "", err
	}
	// A token shorter-lived than the margin is still used, once.
	s.tok = tok
	return tok.AccessToken, nil
}

// forget drops the cached token (the destination refused it).
func (s *tokenSource) forget() {
	s.mu.Lock()
	s.tok = Token{}
	s.mu.Unlock()
}

func (s *tokenSource) fetch(ctx context.Context, form url.Values, now time.Time) (Token, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return Token{}, permanent("couldn't make a token request to %s: %v", s.endpoint, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)
	resp, err := s.env.client.Do(req)
	if err != nil {
		if dialRefused(err) {
			return Token{}, &Failure{Permanent: true, Err: err}
		}
		return Token{}, &Failure{Err: fmt.Errorf("couldn't get an access token from %s: %w", req.URL.Host, err)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenResponse))
	if err != nil {
		return Token{}, &Failure{Err: fmt.Errorf("couldn't read the token from %s: %w", req.URL.Host, err)}
	}
	if resp.StatusCode != http.StatusOK {
		return Token{}, tokenFailure(resp, body, now)
	}
	tok, err := ParseTokenResponse(body, now)
	if err != nil {
		// An endpoint that answers 200 with something else is misconfigured
		// (a wrong authority or token_uri), not briefly down.
		return Token{}, permanent("%s: %v", req.URL.Host, err)
	}
	return tok, nil
}

// tokenFailure classifies a token endpoint's refusal. OAuth errors
// (RFC 6749 §5.2: invalid_client, unauthorized_client, invalid_grant,
// invalid_scope, invalid_request) are the configuration's fault and
// permanent; 429 and 5xx are retried.
func tokenFailure(resp *http.Response, body []byte, now time.Time) error {
	var oe struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	_ = json.Unmarshal(body, &oe)
	if oe.Error == "" {
		// Not an OAuth answer: quoted as any destination's would be.
		f := httpFailure(resp, body, now).(*Failure)
		f.Err = fmt.Errorf("couldn't get an access token: %w", f.Err)
		// Status is the destination's answer; the token endpoint's must not
		// be taken for it (a 412 from it is no stored object).
		f.Status = 0
		return f
	}
	code := resp.StatusCode
	msg := fmt.Sprintf("couldn't get an access token: %s answered %d %s: %s", resp.Request.URL.Host, code, http.StatusText(code), Excerpt(oe.Error, 40))
	if d := Excerpt(oe.Description, maxExcerpt); d != "" {
		msg += " (" + d + ")"
	}
	f := &Failure{Err: errors.New(msg)}
	switch {
	case code == http.StatusTooManyRequests || code >= 500 || oe.Error == "temporarily_unavailable" || oe.Error == "server_error":
		f.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), now)
	default:
		f.Permanent = true
	}
	return f
}

// postBearer POSTs body (a buffer of its own, as for post) with the source's token, and forgets the token
// when the destination refuses it (401), so the next attempt gets a new
// one.
func postBearer(ctx context.Context, e *env, ts *tokenSource, url string, header http.Header, body []byte) error {
	tok, err := ts.token(ctx)
	if err != nil {
		return err
	}
	h := header.Clone()
	h.Set("Authorization", "Bearer "+tok)
	err = post(ctx, e, url, h, body)
	var f *Failure
	if errors.As(err, &f) && f.Status == http.StatusUnauthorized {
		ts.forget()
	}
	return err
}
