package stream

import (
	"bytes"
	"context"
	"crypto"
	"crypto/md5"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/mail"
	"net/url"
	"strings"
	"time"
)

// Google Cloud Storage: one NDJSON object per batch, named as the s3
// destination names them (S3Key), uploaded with the JSON API
// (POST <endpoint>/upload/storage/v1/b/<bucket>/o?uploadType=multipart)
// with an md5Hash that Cloud Storage checks, and ifGenerationMatch=0: a
// batch sent again after a crash finds its object already there (412),
// which counts as delivered, so a bucket with a retention policy never
// refuses the repeat.
//
// Authentication is a service account's JSON key: Trail signs a JWT
// (RS256) with the key and exchanges it at the key's token_uri for an
// access token (RFC 7523, Google's OAuth 2.0 for service accounts), cached
// until shortly before it expires. The exchange is a few lines of the
// standard library, so it shares the token cache, the answer parser and
// the guarded HTTP client with the other destinations. (HMAC keys of
// Cloud Storage's interoperability API work with the s3 destination.)

// GCSScope is the OAuth scope Trail asks for: objects.create needs
// read_write; it grants nothing on IAM or bucket settings.
const GCSScope = "https://www.googleapis.com/auth/devstorage.read_write"

const (
	gcsDefaultEndpoint = "https://storage.googleapis.com"
	gcsDefaultTokenURI = "https://oauth2.googleapis.com/token"
)

type gcsSettings struct {
	Bucket string `json:"bucket"`
	Prefix string `json:"prefix,omitempty"`
	// Endpoint replaces https://storage.googleapis.com (a proxy, or an
	// emulator).
	Endpoint string `json:"endpoint,omitempty"`
	// ClientEmail is the service account's address, read from the key and
	// shown so an administrator can tell which account is set.
	ClientEmail        string   `json:"client_email,omitempty"`
	ServiceAccountJSON jsonText `json:"service_account_json,omitempty"`
}

// jsonText is a JSON document given either as a string or inline (an API
// caller may paste the key file as an object); it is kept as text.
type jsonText string

func (t *jsonText) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '{' {
		*t = jsonText(b)
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	*t = jsonText(s)
	return nil
}

// serviceAccountKey is the part of a service account's JSON key file that
// Trail uses.
type serviceAccountKey struct {
	Type         string `json:"type"`
	ProjectID    string `json:"project_id"`
	PrivateKeyID string `json:"private_key_id"`
	PrivateKey   string `json:"private_key"`
	ClientEmail  string `json:"client_email"`
	TokenURI     string `json:"token_uri"`

	key *rsa.PrivateKey
}

// parseServiceAccount reads a JSON key file; problems are sentences for
// the administrator.
func parseServiceAccount(p Policy, raw string) (*serviceAccountKey, string) {
	var k serviceAccountKey
	if err := json.Unmarshal([]byte(raw), &k); err != nil {
		return nil, "must be a service account's JSON key file (IAM → Service accounts → Keys → Add key → JSON)"
	}
	if k.Type != "service_account" {
		return nil, fmt.Sprintf("must be a service account's key: its type is %q, not service_account", truncate(k.Type, 40))
	}
	if a, err := mail.ParseAddress(k.ClientEmail); err != nil || a.Address != k.ClientEmail || len(k.ClientEmail) > 320 {
		return nil, "must carry the service account's client_email"
	}
	block, _ := pem.Decode([]byte(k.PrivateKey))
	if block == nil {
		return nil, "must carry the service account's private_key (PEM)"
	}
	var key *rsa.PrivateKey
	if pk, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		key, _ = pk.(*rsa.PrivateKey)
	} else if pk, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		key = pk
	}
	if key == nil {
		return nil, "must carry an RSA private_key (PKCS #8 or PKCS #1, as Google issues them)"
	}
	if key.N.BitLen() < 2048 {
		return nil, "must carry an RSA key of at least 2048 bits"
	}
	if len(k.PrivateKeyID) > 100 || strings.ContainsFunc(k.PrivateKeyID, func(r rune) bool { return r <= ' ' || r > '~' }) {
		return nil, "has a private_key_id that is not a key id"
	}
	if k.TokenURI == "" {
		k.TokenURI = gcsDefaultTokenURI
	}
	u, err := url.Parse(k.TokenURI)
	switch {
	case err != nil || u.Host == "" || u.User != nil || (u.Scheme != "https" && u.Scheme != "http"):
		return nil, fmt.Sprintf("has a token_uri that is not an https:// URL: %q", truncate(k.TokenURI, 100))
	case u.Scheme == "http" && !p.insecureOK():
		return nil, "has a token_uri that is not https://: the key's signed grant is not sent in clear text"
	}
	if err := p.checkHost(u.Hostname()); err != nil {
		return nil, fmt.Sprintf("has a token_uri Trail may not reach: %v", err)
	}
	k.key = key
	return &k, ""
}

func (s *gcsSettings) check(p Policy, errs *errList) {
	if s.Bucket == "" {
		errs.required("bucket", "the bucket's name")
	} else if !bucketName.MatchString(s.Bucket) || strings.Contains(s.Bucket, "..") {
		errs.add("bucket", "invalid", "config.bucket %q is not a valid bucket name (3–63 lowercase letters, digits, dots, hyphens, underscores).", truncate(s.Bucket, 70))
	}
	if len(s.Prefix) > 200 || strings.HasPrefix(s.Prefix, "/") || !validObjectName(s.Prefix) {
		errs.add("prefix", "invalid", "config.prefix must be at most 200 characters of text, not starting with /.")
	}
	if s.Endpoint != "" {
		checkBaseURL(p, "endpoint", s.Endpoint, errs)
	}
	if s.ServiceAccountJSON == "" {
		errs.required("service_account_json", "the JSON key of a service account allowed to create objects in the bucket (roles/storage.objectCreator)")
		return
	}
	k, problem := parseServiceAccount(p, string(s.ServiceAccountJSON))
	if problem != "" {
		errs.add("service_account_json", "invalid", "config.service_account_json %s.", problem)
		return
	}
	s.ClientEmail = k.ClientEmail
}

// validObjectName reports whether s may be part of an object's name:
// UTF-8 without control characters.
func validObjectName(s string) bool {
	return !strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f || r == 0xfffd })
}

func (s *gcsSettings) redact() []string {
	var names []string
	if s.ServiceAccountJSON != "" {
		names = append(names, "service_account_json")
		s.ServiceAccountJSON = ""
	}
	return names
}

func (s *gcsSettings) open(e *env) (Destination, error) {
	k, problem := parseServiceAccount(e.policy, string(s.ServiceAccountJSON))
	if problem != "" {
		return nil, permanent("the service account key %s", problem)
	}
	base := gcsDefaultEndpoint
	if s.Endpoint != "" {
		base = strings.TrimSuffix(s.Endpoint, "/")
	}
	ts := &tokenSource{env: e, endpoint: k.TokenURI, form: func(now time.Time) (url.Values, error) {
		jwt, err := ServiceAccountAssertion(k.key, k.PrivateKeyID, k.ClientEmail, k.TokenURI, now)
		if err != nil {
			return nil, err
		}
		return url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {jwt}}, nil
	}}
	return &gcs{env: e, tokens: ts, bucket: s.Bucket, prefix: s.Prefix,
		url: base + "/upload/storage/v1/b/" + url.PathEscape(s.Bucket) + "/o?uploadType=multipart&ifGenerationMatch=0"}, nil
}

// ServiceAccountAssertion is the signed JWT a service account exchanges
// for an access token: RS256 over {"iss": email, "scope": GCSScope,
// "aud": tokenURI, "iat": now, "exp": now + 1 h}.
func ServiceAccountAssertion(key *rsa.PrivateKey, keyID, email, tokenURI string, now time.Time) (string, error) {
	header := map[string]string{"alg": "RS256", "typ": "JWT"}
	if keyID != "" {
		header["kid"] = keyID
	}
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(map[string]any{"iss": email, "scope": GCSScope, "aud": tokenURI,
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})
	enc := base64.RawURLEncoding
	signed := enc.EncodeToString(h) + "." + enc.EncodeToString(c)
	sum := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("couldn't sign the service account's assertion: %w", err)
	}
	return signed + "." + enc.EncodeToString(sig), nil
}

// gcs delivers to Cloud Storage.
type gcs struct {
	env    *env
	tokens *tokenSource
	url    string
	bucket string
	prefix string
}

func (d *gcs) Limits() Limits { return Limits{MaxEvents: 10_000, MaxBytes: 16 << 20} }

// GCSUpload is the multipart/related body of one upload (its boundary is
// derived from the data, which never holds it) and its Content-Type.
func GCSUpload(key string, ndjson []byte) (body []byte, contentType string) {
	sum := md5.Sum(ndjson)
	meta, _ := json.Marshal(map[string]string{"name": key, "contentType": "application/x-ndjson",
		"md5Hash": base64.StdEncoding.EncodeToString(sum[:])})
	// Records are JSON: a line of dashes and hex never appears in them,
	// but the boundary is checked anyway.
	boundary := "trail-" + hex.EncodeToString(sum[:])
	for bytes.Contains(ndjson, []byte(boundary)) {
		boundary += "x"
	}
	var b bytes.Buffer
	b.Grow(len(ndjson) + len(meta) + 200)
	b.WriteString("--" + boundary + "\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n")
	b.Write(meta)
	b.WriteString("\r\n--" + boundary + "\r\nContent-Type: application/x-ndjson\r\n\r\n")
	b.Write(ndjson)
	b.WriteString("\r\n--" + boundary + "--\r\n")
	return b.Bytes(), "multipart/related; boundary=" + boundary
}

func (d *gcs) Send(ctx context.Context, batch []Event) error {
	key := S3Key(d.prefix, batch)
	body, ct := GCSUpload(key, WebhookBody(nil, batch, true))
	h := http.Header{}
	h.Set("Content-Type", ct)
	err := postBearer(ctx, d.env, d.tokens, d.url, h, body)
	var f *Failure
	if errors.As(err, &f) {
		if f.Status == http.StatusPreconditionFailed {
			return nil // the object is there: this batch was delivered before
		}
		f.Err = fmt.Errorf("couldn't upload gs://%s/%s: %w", d.bucket, key, f.Err)
	}
	return err
}

func (d *gcs) Close() error { return nil }
