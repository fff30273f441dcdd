package portal

import (
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/trailaudit/trail/internal/stream"
)

// The create and edit forms of a log stream: one field per setting of the
// destination type, as the stream API's config object names them. The form
// is turned into that object and validated by the stream package (the same
// rules and SSRF policy as the API); its field errors are shown beside the
// fields. Secrets are write-only: a form never shows one, and on an edit an
// empty secret field keeps the stored value.

// Kinds of form fields.
const (
	kindText     = "text"
	kindURL      = "url"
	kindSecret   = "secret"
	kindSelect   = "select"
	kindCheckbox = "checkbox"
	kindTextarea = "textarea"
	kindNumber   = "number"
	kindHeaders  = "headers" // "Name: value" lines; values are secret
	// kindSecretText is a secret of several lines (a key file): a textarea
	// that is never filled in.
	kindSecretText = "secrettext"
)

type fieldSpec struct {
	Key         string // the config object's key
	Label       string
	Kind        string
	Options     []string
	Required    bool
	Help        string
	Placeholder string
}

type destSpec struct {
	Type, Label, Help string
	Fields            []fieldSpec
}

var destinations = []destSpec{
	{Type: stream.TypeWebhook, Label: "Webhook (HTTPS)", Help: "Batches POSTed to your HTTPS endpoint, signed with an HMAC-SHA256 Trail-Signature header.",
		Fields: []fieldSpec{
			{Key: "url", Label: "URL", Kind: kindURL, Required: true, Placeholder: "https://siem.example.com/trail", Help: "Trail POSTs each batch of events here."},
			{Key: "format", Label: "Format", Kind: kindSelect, Options: []string{"json", "ndjson"}, Help: "json: a JSON array of events; ndjson: one event a line."},
			{Key: "secret", Label: "Signing secret", Kind: kindSecret, Required: true, Help: "At least 16 characters: the key of the Trail-Signature HMAC your receiver checks."},
			{Key: "headers", Label: "Extra headers", Kind: kindHeaders, Help: "One a line, as Name: value (at most 20). Values are kept secret."},
		}},
	{Type: stream.TypeDatadog, Label: "Datadog", Help: "Datadog's HTTP logs intake (v2).",
		Fields: []fieldSpec{
			{Key: "api_key", Label: "API key", Kind: kindSecret, Required: true, Help: "A Datadog API key."},
			{Key: "site", Label: "Site", Kind: kindSelect, Options: []string{"us1", "us3", "us5", "eu1", "ap1", "ap2", "us1-fed"}, Help: "Your Datadog site."},
			{Key: "endpoint", Label: "Intake URL", Kind: kindURL, Placeholder: "https://…", Help: "Optional: replaces the site's intake (a proxy)."},
			{Key: "service", Label: "Service", Kind: kindText, Placeholder: "audit-logs"},
			{Key: "source", Label: "Source", Kind: kindText, Placeholder: "trail"},
			{Key: "tags", Label: "Tags", Kind: kindText, Placeholder: "env:prod,team:security"},
			{Key: "hostname", Label: "Hostname", Kind: kindText},
		}},
	{Type: stream.TypeSplunk, Label: "Splunk HTTP Event Collector", Help: "Splunk's HTTP Event Collector.",
		Fields: []fieldSpec{
			{Key: "url", Label: "Collector URL", Kind: kindURL, Required: true, Placeholder: "https://splunk.example.com:8088", Help: "The collector's base URL; Trail adds /services/collector/event."},
			{Key: "token", Label: "HEC token", Kind: kindSecret, Required: true},
			{Key: "index", Label: "Index", Kind: kindText},
			{Key: "source", Label: "Source", Kind: kindText, Placeholder: "trail"},
			{Key: "sourcetype", Label: "Source type", Kind: kindText, Placeholder: "_json"},
			{Key: "host", Label: "Host", Kind: kindText},
		}},
	{Type: stream.TypeS3, Label: "S3-compatible storage", Help: "Objects in an AWS S3, Google Cloud Storage (interoperability) or MinIO bucket, under YYYY-MM-DD/.",
		Fields: []fieldSpec{
			{Key: "bucket", Label: "Bucket", Kind: kindText, Required: true},
			{Key: "region", Label: "Region", Kind: kindText, Placeholder: "us-east-1"},
			{Key: "endpoint", Label: "Endpoint", Kind: kindURL, Placeholder: "https://…", Help: "Optional: an S3-compatible service; default AWS."},
			{Key: "path_style", Label: "Path-style addressing (MinIO and most self-hosted stores)", Kind: kindCheckbox},
			{Key: "prefix", Label: "Key prefix", Kind: kindText},
			{Key: "access_key_id", Label: "Access key id", Kind: kindSecret},
			{Key: "secret_access_key", Label: "Secret access key", Kind: kindSecret},
			{Key: "session_token", Label: "Session token", Kind: kindSecret},
		}},
	{Type: stream.TypeAzureSentinel, Label: "Microsoft Sentinel (Azure Monitor)", Help: "A Log Analytics workspace, through the Logs Ingestion API (a data collection rule and a Microsoft Entra app registration) or the older HTTP Data Collector API (the workspace's shared key).",
		Fields: []fieldSpec{
			{Key: "api", Label: "API", Kind: kindSelect, Options: []string{stream.AzureLogsIngestion, stream.AzureDataCollector}, Help: "logs_ingestion: fill in the rule and app registration; data_collector: the workspace id and key."},
			{Key: "cloud", Label: "Azure cloud", Kind: kindSelect, Options: []string{"public", "usgov", "china"}},
			{Key: "endpoint", Label: "Logs ingestion endpoint", Kind: kindURL, Placeholder: "https://my-dce-a1b2.eastus-1.ingest.monitor.azure.com", Help: "logs_ingestion: the data collection endpoint's (or rule's) logs ingestion URL. data_collector: optional, replaces https://<workspace id>.ods.opinsights.azure.com."},
			{Key: "dcr_immutable_id", Label: "Data collection rule immutable id", Kind: kindText, Placeholder: "dcr-…"},
			{Key: "stream_name", Label: "Stream name", Kind: kindText, Placeholder: "Custom-TrailAudit_CL", Help: "The rule's input stream."},
			{Key: "tenant_id", Label: "Directory (tenant) id", Kind: kindText},
			{Key: "client_id", Label: "Application (client) id", Kind: kindText},
			{Key: "client_secret", Label: "Client secret", Kind: kindSecret, Help: "A secret of the app registration, which needs the Monitoring Metrics Publisher role on the rule."},
			{Key: "authority", Label: "Microsoft Entra authority", Kind: kindURL, Help: "Optional: replaces the cloud's login endpoint (a proxy)."},
			{Key: "workspace_id", Label: "Workspace id (data_collector)", Kind: kindText},
			{Key: "shared_key", Label: "Workspace key (data_collector)", Kind: kindSecret, Help: "The workspace's primary or secondary key."},
			{Key: "log_type", Label: "Log type (data_collector)", Kind: kindText, Placeholder: "TrailAudit", Help: "Events land in the table <log type>_CL."},
		}},
	{Type: stream.TypeGCS, Label: "Google Cloud Storage", Help: "Objects in a Cloud Storage bucket under YYYY-MM-DD/, written by a service account.",
		Fields: []fieldSpec{
			{Key: "bucket", Label: "Bucket", Kind: kindText, Required: true},
			{Key: "prefix", Label: "Object name prefix", Kind: kindText},
			{Key: "service_account_json", Label: "Service account key (JSON)", Kind: kindSecretText, Required: true, Help: "The key file of a service account with the Storage Object Creator role on the bucket."},
			{Key: "endpoint", Label: "Endpoint", Kind: kindURL, Placeholder: "https://storage.googleapis.com", Help: "Optional: replaces Cloud Storage's endpoint (a proxy)."},
		}},
	{Type: stream.TypeSyslog, Label: "Syslog (RFC 5424)", Help: "RFC 5424 messages over TLS (or TCP toward private addresses, when the operator allows it).",
		Fields: []fieldSpec{
			{Key: "address", Label: "Address", Kind: kindText, Required: true, Placeholder: "syslog.example.com:6514", Help: "host:port"},
			{Key: "transport", Label: "Transport", Kind: kindSelect, Options: []string{"tls", "tcp"}},
			{Key: "server_name", Label: "TLS server name", Kind: kindText, Help: "Optional: the name the certificate must carry, when it is not the address's host."},
			{Key: "ca_pem", Label: "CA certificates (PEM)", Kind: kindTextarea, Help: "Optional: trust these instead of the system's."},
			{Key: "hostname", Label: "HOSTNAME field", Kind: kindText, Placeholder: "trail"},
			{Key: "app_name", Label: "APP-NAME field", Kind: kindText, Placeholder: "trail"},
			{Key: "facility", Label: "Facility", Kind: kindNumber, Placeholder: "13", Help: "0–23; default 13 (log audit)."},
		}},
}

// secret reports whether the field holds a secret, never shown.
func (f fieldSpec) secret() bool { return f.Kind == kindSecret || f.Kind == kindSecretText }

func destination(typ string) (destSpec, bool) {
	for _, d := range destinations {
		if d.Type == typ {
			return d, true
		}
	}
	return destSpec{}, false
}

// formField is one field as a form shows it.
type formField struct {
	fieldSpec
	ID        string
	Value     string // never a secret
	Checked   bool
	SecretSet bool   // edit: a value is stored
	SetNames  string // headers: the names of the stored headers
	Error     string
}

// streamForm is the create or edit form of a stream.
type streamForm struct {
	Dest       destSpec
	Edit       bool
	StreamID   string
	Action     string
	Name       string
	NameError  string
	Start      string
	StartError string
	Fields     []formField
	Errors     []string // errors that belong to no field
}

// newForm returns dest's form with values from config (the stored public
// settings) and the names of the secrets set.
func newForm(dest destSpec, config map[string]any, secrets []string) *streamForm {
	f := &streamForm{Dest: dest, Start: "now"}
	for _, spec := range dest.Fields {
		ff := formField{fieldSpec: spec, ID: "c-" + spec.Key}
		switch v := config[spec.Key].(type) {
		case string:
			if !spec.secret() {
				ff.Value = v
			}
		case bool:
			ff.Checked = v
		case float64:
			ff.Value = strconv.FormatFloat(v, 'f', -1, 64)
		}
		switch spec.Kind {
		case kindSecret, kindSecretText:
			ff.SecretSet = slices.Contains(secrets, spec.Key)
		case kindHeaders:
			var names []string
			for _, s := range secrets {
				if n, ok := strings.CutPrefix(s, "headers."); ok {
					names = append(names, n)
				}
			}
			ff.SecretSet, ff.SetNames = len(names) > 0, strings.Join(names, ", ")
		}
		f.Fields = append(f.Fields, ff)
	}
	return f
}

// The messages of the form's own checks, translated with the page's
// language (the stream package's messages, shared with the API, are
// translated by their format: fieldMessage).
const (
	msgOneName        = "Give one name."
	msgTooLong        = "%s is too long or holds control characters."
	msgWholeNumber    = "%s must be a whole number."
	msgNotHeader      = "Line %d is not a header: write it as Name: value."
	msgTooManyHeaders = "At most %d headers."
)

// goMessages are the messages Go code translates, beside the templates'
// (TestCatalogsComplete checks every shipped language has them): the
// destinations' labels and help, the form's messages and the page titles
// that carry a value, the streams' states and the notices after a change.
// (Literals handed to T, tr, msg and label are found in the source by the
// test itself.)
func goMessages() []string {
	out := []string{msgOneName, msgTooLong, msgWholeNumber, msgNotHeader, msgTooManyHeaders,
		"Log stream %s", "New %s stream", "Edit %s", "Delete %s"}
	for _, st := range streamStates {
		v := stateOf(st)
		out = append(out, v.Label, v.Help)
	}
	for _, n := range notices {
		out = append(out, n)
	}
	for _, d := range destinations {
		out = append(out, d.Label, d.Help)
		for _, f := range d.Fields {
			out = append(out, f.Label)
			if f.Help != "" {
				out = append(out, f.Help)
			}
		}
	}
	return out
}

// Bounds of a stream form.
const (
	maxFormValue = 16 << 10 // bytes of one field (a CA bundle fits)
	maxHeaders   = 20
)

// parseStreamForm reads a posted form into the stream's name and its
// config object. On an edit, empty secrets are left out (kept), and every
// other field is sent (so that a cleared field is cleared). Problems the
// form itself can tell (a header line without a colon, a facility that is
// not a number) are set on the form's fields and reported with ok false.
func parseStreamForm(l *locale, f *streamForm, v url.Values) (name string, config []byte, ok bool) {
	ok = true
	one := func(key string, multiline bool) (string, bool) {
		s := v.Get(key)
		if len(v[key]) > 1 || len(s) > maxFormValue || checkMultiline(s) != nil || !multiline && strings.ContainsAny(s, "\r\n") {
			return "", false
		}
		return s, true
	}
	// The name's rule is stream.CheckName, applied where the stream is
	// created or updated, as for the API.
	name = strings.TrimSpace(v.Get("name"))
	if len(v["name"]) > 1 {
		f.NameError, ok = l.T(msgOneName), false
	} else if fe := stream.CheckName(name); fe != nil {
		f.NameError, ok = fieldMessage(l, *fe), false
	}
	f.Name = name
	if s := v.Get("start"); !f.Edit && s != "" {
		f.Start = s
	}
	obj := map[string]any{}
	for i := range f.Fields {
		ff := &f.Fields[i]
		raw, good := one(ff.Key, ff.Kind == kindTextarea || ff.Kind == kindHeaders || ff.Kind == kindSecretText)
		if !good {
			ff.Error, ok = l.T(msgTooLong, l.tr(ff.Label)), false
			continue
		}
		switch ff.Kind {
		case kindSecret, kindSecretText:
			if raw != "" {
				obj[ff.Key] = raw
			}
		case kindCheckbox:
			ff.Checked = raw != ""
			if ff.Checked || f.Edit {
				obj[ff.Key] = ff.Checked
			}
		case kindNumber:
			ff.Value = strings.TrimSpace(raw)
			if ff.Value == "" {
				if f.Edit {
					obj[ff.Key] = nil
				}
				break
			}
			n, err := strconv.Atoi(ff.Value)
			if err != nil {
				ff.Error, ok = l.T(msgWholeNumber, l.tr(ff.Label)), false
				break
			}
			obj[ff.Key] = n
		case kindHeaders:
			if strings.TrimSpace(raw) == "" {
				break
			}
			h, problem := parseHeaders(l, raw)
			if problem != "" {
				ff.Error, ok = problem, false
				break
			}
			obj[ff.Key] = h
		case kindTextarea:
			ff.Value = raw
			if raw != "" || f.Edit {
				obj[ff.Key] = raw
			}
		default:
			ff.Value = strings.TrimSpace(raw)
			if ff.Value != "" || f.Edit {
				obj[ff.Key] = ff.Value
			}
		}
	}
	config, _ = json.Marshal(obj) // strings, numbers, booleans and maps of strings always encode
	return name, config, ok
}

// checkMultiline checks a value that may span lines (a PEM bundle, header
// lines): valid UTF-8 without control characters other than line breaks
// and tabs.
func checkMultiline(s string) error {
	if !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\r' && r != '\t' }) {
		return errors.New("is not plain text")
	}
	return nil
}

// parseHeaders reads "Name: value" lines; problem says what is wrong
// with them, for the form.
func parseHeaders(l *locale, raw string) (h map[string]string, problem string) {
	h = map[string]string{}
	for i, line := range strings.Split(strings.ReplaceAll(raw, "\r\n", "\n"), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, val, found := strings.Cut(line, ":")
		k, val = strings.TrimSpace(k), strings.TrimSpace(val)
		if !found || k == "" {
			return nil, l.T(msgNotHeader, i+1)
		}
		if len(h) == maxHeaders {
			return nil, l.T(msgTooManyHeaders, maxHeaders)
		}
		h[k] = val
	}
	return h, ""
}

// setErrors puts the stream package's field errors beside their fields,
// in l's language.
func (f *streamForm) setErrors(l *locale, errs []stream.FieldError) {
	for _, fe := range errs {
		key := strings.TrimPrefix(fe.Field, "config.")
		text := fieldMessage(l, fe)
		switch {
		case fe.Field == "name":
			f.NameError = text
			continue
		case fe.Field == "start":
			f.StartError = text
			continue
		}
		placed := false
		for i := range f.Fields {
			if f.Fields[i].Key == key && strings.HasPrefix(fe.Field, "config.") {
				if f.Fields[i].Error != "" {
					f.Fields[i].Error += " "
				}
				// "config.url must be …" reads "URL must be …" beside the field.
				f.Fields[i].Error += strings.ReplaceAll(text, fe.Field, l.tr(f.Fields[i].Label))
				placed = true
			}
		}
		if !placed {
			f.Errors = append(f.Errors, text)
		}
	}
}

// fieldMessage is a stream settings check's message in l's language: its
// format is the catalog's key (the English message before its values were
// filled in); a message without one (the stream manager's own) is its key.
func fieldMessage(l *locale, fe stream.FieldError) string {
	if fe.Format == "" {
		return l.tr(fe.Message)
	}
	args := make([]any, len(fe.Args))
	for i, a := range fe.Args {
		if r, ok := a.(*stream.RefusedError); ok {
			a = l.T("destination address refused") + ": " + refusal(l, r)
		}
		args[i] = a
	}
	return l.T(fe.Format, args...)
}

// refusal is why the stream policy refuses an address, in l's language.
func refusal(l *locale, r *stream.RefusedError) string {
	args := make([]any, len(r.Args))
	for i, a := range r.Args {
		if inner, ok := a.(*stream.RefusedError); ok {
			a = refusal(l, inner)
		}
		args[i] = a
	}
	return l.T(r.Format, args...)
}

// HasErrors reports whether any field has an error (the template shows a
// summary linking to the fields).
func (f *streamForm) HasErrors() bool {
	if f.NameError != "" || f.StartError != "" || len(f.Errors) > 0 {
		return true
	}
	for _, ff := range f.Fields {
		if ff.Error != "" {
			return true
		}
	}
	return false
}
