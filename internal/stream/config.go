package stream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/trailaudit/trail/internal/keyring"
)

// Destination types.
const (
	TypeDatadog = "datadog"
	TypeSplunk  = "splunk"
	TypeS3      = "s3"
	TypeWebhook = "webhook"
	TypeSyslog  = "syslog"
	// TypeAzureSentinel is a Log Analytics workspace (Microsoft Sentinel).
	TypeAzureSentinel = "azure_sentinel"
	// TypeGCS is a Google Cloud Storage bucket.
	TypeGCS = "gcs"
)

// Types lists the destination types, for error messages.
var Types = []string{TypeDatadog, TypeSplunk, TypeS3, TypeWebhook, TypeSyslog, TypeAzureSentinel, TypeGCS}

// SealPurpose is the keyring purpose under which destination secrets are
// sealed; the stream's id is the associated data.
const SealPurpose = "trail stream secrets v1"

// FieldError is one problem with a stream's configuration.
type FieldError struct {
	Field   string // e.g. "config.url"
	Code    string // "required", "invalid", "unknown_field"
	Message string // a sentence saying what to fix
	// Format and Args are Message before its values were filled in: a
	// stable key a user interface translates (the Admin Portal's message
	// catalogs) and the values of its verbs; fmt.Sprintf(Format, Args...)
	// is Message.
	Format string
	Args   []any
}

// fieldError is a FieldError whose Message is format filled with args.
func fieldError(field, code, format string, args ...any) FieldError {
	return FieldError{Field: field, Code: code, Message: fmt.Sprintf(format, args...), Format: format, Args: args}
}

// ConfigError is an invalid stream configuration: the caller's input, to
// be answered with a 4xx listing Errors.
type ConfigError struct{ Errors []FieldError }

func (e *ConfigError) Error() string {
	msgs := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		msgs[i] = fe.Message
	}
	return strings.Join(msgs, " ")
}

// settings is one destination type's configuration, secrets included. Its
// JSON form is what administrators send (and, sealed, what is stored).
type settings interface {
	// check validates the settings and fills in defaults.
	check(p Policy, errs *errList)
	// redact blanks the secrets in place and returns the names of those
	// that were set.
	redact() []string
	// open returns a destination for these settings.
	open(env *env) (Destination, error)
}

func newSettings(typ string) settings {
	switch typ {
	case TypeDatadog:
		return &datadogSettings{}
	case TypeSplunk:
		return &splunkSettings{}
	case TypeS3:
		return &s3Settings{}
	case TypeWebhook:
		return &webhookSettings{}
	case TypeSyslog:
		return &syslogSettings{}
	case TypeAzureSentinel:
		return &azureSettings{}
	case TypeGCS:
		return &gcsSettings{}
	}
	return nil
}

// Settings is a parsed, valid destination configuration with its secrets.
type Settings struct {
	Type string
	dest settings
}

// env is what destinations are opened with.
type env struct {
	policy Policy
	client *http.Client
	now    func() time.Time
}

// Codec parses, seals and opens stream configurations, and sends test
// events. It is safe for concurrent use.
type Codec struct {
	policy Policy
	sealer *keyring.Sealer
	now    func() time.Time

	once   sync.Once
	client *http.Client
}

// NewCodec returns a codec that seals secrets with sealer (a keyring's
// Sealer(SealPurpose)) and lets destinations reach what p allows.
func NewCodec(p Policy, sealer *keyring.Sealer) *Codec {
	return &Codec{policy: p, sealer: sealer, now: time.Now}
}

func (c *Codec) env() *env {
	c.once.Do(func() { c.client = c.policy.HTTPClient() })
	return &env{policy: c.policy, client: c.client, now: c.now}
}

// MaxConfigBytes bounds a configuration object.
const MaxConfigBytes = 64 << 10

// Parse decodes an administrator's configuration object for typ. With prev
// (an update of a stream of the same type) the object is applied on top of
// the stored settings: fields left out keep their values, so secrets need
// not be sent again. Bad input is a *ConfigError.
func (c *Codec) Parse(typ string, raw []byte, prev *Settings) (*Settings, error) {
	dest := newSettings(typ)
	if dest == nil {
		return nil, &ConfigError{[]FieldError{fieldError("type", "invalid",
			"type must be one of %s, not %q.", strings.Join(Types, ", "), truncate(typ, 40))}}
	}
	if prev != nil && prev.Type == typ {
		// Start from a copy of the stored settings.
		b, err := json.Marshal(prev.dest)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(b, dest); err != nil {
			return nil, err
		}
	}
	if len(raw) > MaxConfigBytes {
		return nil, &ConfigError{[]FieldError{fieldError("config", "invalid",
			"config must be at most %d bytes.", MaxConfigBytes)}}
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		raw = []byte("{}")
	}
	if err := decodeConfig(raw, dest); err != nil {
		return nil, err
	}
	var errs errList
	dest.check(c.policy, &errs)
	if len(errs) > 0 {
		return nil, &ConfigError{errs}
	}
	return &Settings{Type: typ, dest: dest}, nil
}

// decodeConfig decodes one JSON object strictly into dst.
func decodeConfig(raw []byte, dst settings) error {
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
		return &ConfigError{[]FieldError{fieldError("config", "invalid", "config must be a JSON object.")}}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	err := dec.Decode(dst)
	if err == nil {
		if dec.More() {
			return &ConfigError{[]FieldError{fieldError("config", "invalid", "config must be a single JSON object.")}}
		}
		return nil
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return &ConfigError{[]FieldError{fieldError("config."+te.Field, "invalid_type",
			"config.%s must be a JSON %s, not %s.", te.Field, jsonKind(te.Type.Kind().String()), te.Value)}}
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name, _ = strconv.Unquote(name)
		return &ConfigError{[]FieldError{fieldError("config."+name, "unknown_field",
			"config.%s is not a setting of this destination type; remove it.", truncate(name, 60))}}
	}
	return &ConfigError{[]FieldError{fieldError("config", "invalid",
		"config is not valid JSON: %s.", strings.TrimPrefix(err.Error(), "json: "))}}
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "map", "struct":
		return "object"
	case "slice":
		return "array"
	}
	return "number"
}

// Public is the settings without secrets, as JSON: what the API shows and
// the store keeps in the clear.
func (s *Settings) Public() []byte {
	b, _ := json.Marshal(s.dest)
	cp := newSettings(s.Type)
	_ = json.Unmarshal(b, cp)
	cp.redact()
	out, _ := json.Marshal(cp)
	return out
}

// SecretNames lists the secrets that are set (their values are never shown).
func (s *Settings) SecretNames() []string {
	b, _ := json.Marshal(s.dest)
	cp := newSettings(s.Type)
	_ = json.Unmarshal(b, cp)
	names := cp.redact()
	slices.Sort(names)
	return names
}

// Seal encrypts the whole settings for the stream id (the associated data,
// so a sealed value copied to another stream does not open).
func (c *Codec) Seal(s *Settings, streamID string) []byte {
	b, _ := json.Marshal(s.dest)
	return c.sealer.Seal(b, []byte(streamID))
}

// Unseal decrypts settings sealed by Seal.
func (c *Codec) Unseal(typ string, sealed []byte, streamID string) (*Settings, error) {
	dest := newSettings(typ)
	if dest == nil {
		return nil, fmt.Errorf("unknown destination type %q", typ)
	}
	plain, err := c.sealer.Open(sealed, []byte(streamID))
	if err != nil {
		return nil, fmt.Errorf("couldn't open the secrets of stream %s: %w", streamID, err)
	}
	if err := json.Unmarshal(plain, dest); err != nil {
		return nil, fmt.Errorf("stored settings of stream %s: %w", streamID, err)
	}
	return &Settings{Type: typ, dest: dest}, nil
}

// Open returns a destination for s.
func (c *Codec) Open(s *Settings) (Destination, error) { return s.dest.open(c.env()) }

// Test sends one synthetic event of org to the destination and returns its
// answer: nil when it accepted the event.
func (c *Codec) Test(ctx context.Context, s *Settings, org string) error {
	d, err := c.Open(s)
	if err != nil {
		return err
	}
	defer d.Close()
	now := c.now().UTC()
	ts := now.Format("2006-01-02T15:04:05.000Z")
	rec := fmt.Sprintf(`{"id":"evt_test_%d","organization_id":%q,"seq":-1,"received_at":%q,"action":"trail.log_stream.test","version":1,"occurred_at":%q,"actor":{"id":"trail","type":"system","name":"Trail"},"targets":[],"context":{"location":"0.0.0.0"},"metadata":{"test":true}}`,
		now.UnixMilli(), org, ts, ts)
	ctx, cancel := context.WithTimeout(ctx, sendTimeout)
	defer cancel()
	return d.Send(ctx, []Event{{OrganizationID: org, Seq: -1, Record: []byte(rec)}})
}

// errList collects field errors.
type errList []FieldError

func (e *errList) add(field, code, format string, args ...any) {
	*e = append(*e, fieldError("config."+field, code, format, args...))
}

// required says a setting is missing; what, a literal, describes it. The
// description is part of the message's format, so that the message has
// one key to translate per setting.
func (e *errList) required(field, what string) {
	e.add(field, "required", "config.%s is required: "+strings.ReplaceAll(what, "%", "%%")+".", field)
}

// checkURL validates an http(s) URL setting: https unless the policy allows
// insecure local destinations, and no address the policy refuses.
func checkURL(p Policy, field, raw string, errs *errList) *url.URL {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		errs.add(field, "invalid", "config.%s must be an absolute https:// URL, not %q.", field, truncate(raw, 100))
		return nil
	}
	if u.Scheme == "http" && !p.insecureOK() {
		errs.add(field, "invalid", "config.%s must use https://: audit events are not sent in clear text.", field)
		return nil
	}
	if u.User != nil {
		errs.add(field, "invalid", "config.%s must not carry credentials; use the destination's secret settings.", field)
		return nil
	}
	if err := p.checkHost(u.Hostname()); err != nil {
		errs.add(field, "forbidden_address", "config.%s: %v.", field, err)
		return nil
	}
	return u
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func redactString(s *string, name string, names *[]string) {
	if *s != "" {
		*names = append(*names, name)
		*s = ""
	}
}
