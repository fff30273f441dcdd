package stream

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Azure Sentinel: events land in a Log Analytics workspace, which
// Microsoft Sentinel queries. Two Azure Monitor APIs:
//
//   - logs_ingestion (the default), the Logs Ingestion API: POST a JSON
//     array to <endpoint>/dataCollectionRules/<DCR immutable id>/streams/
//     <stream name>?api-version=2023-01-01 with a Microsoft Entra bearer
//     token (client credentials of an app registration allowed to publish
//     to the data collection rule). Each entry is the record with a
//     TimeGenerated column (its received_at) in front, so the rule's
//     stream declares the record's top-level fields as columns.
//   - data_collector, the older HTTP Data Collector API: POST the JSON
//     array of records to https://<workspace id>.ods.opinsights.azure.com/
//     api/logs?api-version=2016-04-01, signed with the workspace's shared
//     key (Authorization: SharedKey), into the custom table <log_type>_CL.
//     Microsoft has retired it in favour of the Logs Ingestion API; it is
//     kept for workspaces still set up that way.

// Azure Monitor APIs.
const (
	AzureLogsIngestion = "logs_ingestion"
	AzureDataCollector = "data_collector"
)

// azureClouds are the Azure clouds: their Entra authority, the Azure
// Monitor token scope, and the Data Collector API's domain.
var azureClouds = map[string]struct{ authority, scope, ods string }{
	"public": {"https://login.microsoftonline.com", "https://monitor.azure.com//.default", "ods.opinsights.azure.com"},
	"usgov":  {"https://login.microsoftonline.us", "https://monitor.azure.us//.default", "ods.opinsights.azure.us"},
	"china":  {"https://login.chinacloudapi.cn", "https://monitor.azure.cn//.default", "ods.opinsights.azure.cn"},
}

// LogsIngestionAPIVersion is the Logs Ingestion API version Trail speaks.
const LogsIngestionAPIVersion = "2023-01-01"

type azureSettings struct {
	API   string `json:"api,omitempty"`   // logs_ingestion (default) or data_collector
	Cloud string `json:"cloud,omitempty"` // public (default), usgov, china
	// Endpoint is the logs ingestion endpoint (a data collection
	// endpoint's, or the rule's own); for data_collector it replaces
	// https://<workspace id>.<ods domain> (a proxy).
	Endpoint       string `json:"endpoint,omitempty"`
	DCRImmutableID string `json:"dcr_immutable_id,omitempty"`
	StreamName     string `json:"stream_name,omitempty"`
	TenantID       string `json:"tenant_id,omitempty"`
	ClientID       string `json:"client_id,omitempty"`
	// Authority replaces the cloud's Microsoft Entra authority (a proxy).
	Authority    string `json:"authority,omitempty"`
	ClientSecret string `json:"client_secret,omitempty"`

	WorkspaceID string `json:"workspace_id,omitempty"`
	LogType     string `json:"log_type,omitempty"` // default TrailAudit
	SharedKey   string `json:"shared_key,omitempty"`
}

var (
	guidPattern    = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	tenantPattern  = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$`)
	dcrPattern     = regexp.MustCompile(`^dcr-[0-9a-f]{32}$`)
	streamNamePat  = regexp.MustCompile(`^(Custom|Microsoft)-[A-Za-z0-9_]{1,200}$`)
	logTypePattern = regexp.MustCompile(`^[A-Za-z0-9_]{1,100}$`)
)

func (s *azureSettings) check(p Policy, errs *errList) {
	if s.API == "" {
		s.API = AzureLogsIngestion
	}
	if s.API != AzureLogsIngestion && s.API != AzureDataCollector {
		errs.add("api", "invalid", "config.api must be %s (the Logs Ingestion API) or %s (the HTTP Data Collector API), not %q.",
			AzureLogsIngestion, AzureDataCollector, truncate(s.API, 40))
		return
	}
	if s.Cloud == "" {
		s.Cloud = "public"
	}
	if _, ok := azureClouds[s.Cloud]; !ok {
		errs.add("cloud", "invalid", "config.cloud must be public, usgov or china, not %q.", truncate(s.Cloud, 40))
	}
	// Settings of the other API are refused rather than ignored: a
	// half-switched configuration would deliver somewhere unexpected.
	other := func(field, value, api string) {
		if value != "" {
			errs.add(field, "invalid", "config.%s is a setting of the %s API; this stream uses %s (config.api).", field, api, s.API)
		}
	}
	if s.API == AzureDataCollector {
		other("dcr_immutable_id", s.DCRImmutableID, AzureLogsIngestion)
		other("stream_name", s.StreamName, AzureLogsIngestion)
		other("tenant_id", s.TenantID, AzureLogsIngestion)
		other("client_id", s.ClientID, AzureLogsIngestion)
		other("authority", s.Authority, AzureLogsIngestion)
		other("client_secret", s.ClientSecret, AzureLogsIngestion)
		if s.WorkspaceID == "" {
			errs.required("workspace_id", "the Log Analytics workspace's id (a GUID: Agents → Workspace ID)")
		} else if !guidPattern.MatchString(s.WorkspaceID) {
			errs.add("workspace_id", "invalid", "config.workspace_id must be the workspace's id, a GUID such as 0f8f6f2c-5c7e-4c9e-9a59-0c2b0f2e1d3a.")
		}
		if s.LogType == "" {
			s.LogType = "TrailAudit"
		} else if !logTypePattern.MatchString(s.LogType) {
			errs.add("log_type", "invalid", "config.log_type must be 1–100 letters, digits or underscores (the table is <log_type>_CL).")
		}
		if s.SharedKey == "" {
			errs.required("shared_key", "the workspace's primary or secondary key (base64)")
		} else if k, err := base64.StdEncoding.DecodeString(s.SharedKey); err != nil || len(k) == 0 {
			errs.add("shared_key", "invalid", "config.shared_key must be the workspace key as shown by Azure (base64).")
		}
		if s.Endpoint != "" {
			checkBaseURL(p, "endpoint", s.Endpoint, errs)
		}
		return
	}
	other("workspace_id", s.WorkspaceID, AzureDataCollector)
	other("log_type", s.LogType, AzureDataCollector)
	other("shared_key", s.SharedKey, AzureDataCollector)
	if s.Endpoint == "" {
		errs.required("endpoint", "the logs ingestion endpoint of the data collection endpoint or rule, e.g. https://my-dce-a1b2.eastus-1.ingest.monitor.azure.com")
	} else {
		checkBaseURL(p, "endpoint", s.Endpoint, errs)
	}
	if s.DCRImmutableID == "" {
		errs.required("dcr_immutable_id", "the data collection rule's immutable id (dcr-…)")
	} else if !dcrPattern.MatchString(s.DCRImmutableID) {
		errs.add("dcr_immutable_id", "invalid", "config.dcr_immutable_id must be the rule's immutable id: dcr- and 32 lowercase hex digits.")
	}
	if s.StreamName == "" {
		errs.required("stream_name", "the rule's input stream, e.g. Custom-TrailAudit_CL")
	} else if !streamNamePat.MatchString(s.StreamName) {
		errs.add("stream_name", "invalid", "config.stream_name must be a rule's stream name: Custom- (or Microsoft-) and letters, digits or underscores.")
	}
	if s.TenantID == "" {
		errs.required("tenant_id", "the Microsoft Entra tenant (directory) id of the app registration")
	} else if !tenantPattern.MatchString(s.TenantID) {
		errs.add("tenant_id", "invalid", "config.tenant_id must be a tenant id (a GUID) or a tenant's domain name.")
	}
	if s.ClientID == "" {
		errs.required("client_id", "the app registration's application (client) id")
	} else if !guidPattern.MatchString(s.ClientID) {
		errs.add("client_id", "invalid", "config.client_id must be the application (client) id, a GUID.")
	}
	if s.ClientSecret == "" {
		errs.required("client_secret", "a client secret of the app registration")
	}
	if s.Authority != "" {
		checkBaseURL(p, "authority", s.Authority, errs)
	}
}

// checkBaseURL validates a URL setting that Trail appends paths to: no
// path beyond "/", no query or fragment.
func checkBaseURL(p Policy, field, raw string, errs *errList) {
	u := checkURL(p, field, raw, errs)
	if u != nil && (strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.Fragment != "") {
		errs.add(field, "invalid", "config.%s must be a base URL (scheme and host), without a path or query.", field)
	}
}

func (s *azureSettings) redact() []string {
	var names []string
	redactString(&s.ClientSecret, "client_secret", &names)
	redactString(&s.SharedKey, "shared_key", &names)
	return names
}

func (s *azureSettings) open(e *env) (Destination, error) {
	cloud := azureClouds[s.Cloud]
	if s.API == AzureDataCollector {
		key, err := base64.StdEncoding.DecodeString(s.SharedKey)
		if err != nil {
			return nil, permanent("the workspace's shared key is not base64: %v", err)
		}
		base := "https://" + s.WorkspaceID + "." + cloud.ods
		if s.Endpoint != "" {
			base = strings.TrimSuffix(s.Endpoint, "/")
		}
		return &dataCollector{env: e, url: base + "/api/logs?api-version=2016-04-01", workspace: s.WorkspaceID, key: key, logType: s.LogType}, nil
	}
	authority := cloud.authority
	if s.Authority != "" {
		authority = strings.TrimSuffix(s.Authority, "/")
	}
	ts := &tokenSource{env: e, endpoint: authority + "/" + url.PathEscape(s.TenantID) + "/oauth2/v2.0/token",
		form: func(time.Time) (url.Values, error) {
			return url.Values{"grant_type": {"client_credentials"}, "client_id": {s.ClientID},
				"client_secret": {s.ClientSecret}, "scope": {cloud.scope}}, nil
		}}
	u := strings.TrimSuffix(s.Endpoint, "/") + "/dataCollectionRules/" + url.PathEscape(s.DCRImmutableID) +
		"/streams/" + url.PathEscape(s.StreamName) + "?api-version=" + LogsIngestionAPIVersion
	return &logsIngestion{env: e, url: u, tokens: ts}, nil
}

// logsIngestion delivers to the Azure Monitor Logs Ingestion API.
type logsIngestion struct {
	env    *env
	url    string
	tokens *tokenSource
}

// The API takes at most 1 MB a call; room is left for the TimeGenerated
// column of 1,000 entries.
func (d *logsIngestion) Limits() Limits { return Limits{MaxEvents: 1000, MaxBytes: 900_000} }

// LogsIngestionBody is the body of one Logs Ingestion API call: a JSON
// array of the records, each with a TimeGenerated column (the event's
// received_at) in front of its own fields, which follow byte for byte.
func LogsIngestionBody(dst []byte, batch []Event) []byte {
	dst = append(dst, '[')
	for i, ev := range batch {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"TimeGenerated":`...)
		dst = strconv.AppendQuote(dst, recordString(ev.Record, `"received_at":"`))
		rest := bytes.TrimPrefix(ev.Record, []byte("{"))
		if len(bytes.TrimSpace(rest)) > 0 && bytes.TrimSpace(rest)[0] != '}' {
			dst = append(dst, ',')
		}
		dst = append(dst, rest...)
	}
	return append(dst, ']')
}

func (d *logsIngestion) Send(ctx context.Context, batch []Event) error {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	return postBearer(ctx, d.env, d.tokens, d.url, h, LogsIngestionBody(nil, batch))
}

func (d *logsIngestion) Close() error { return nil }

// dataCollector delivers to the HTTP Data Collector API.
type dataCollector struct {
	env       *env
	url       string
	workspace string
	key       []byte
	logType   string
}

// The API takes at most 30 MB a post.
func (d *dataCollector) Limits() Limits { return Limits{MaxEvents: 1000, MaxBytes: 5 << 20} }

// DataCollectorSignature is the Authorization header of a Data Collector
// API post of contentLength bytes at date (RFC 1123, GMT): SharedKey
// <workspace>:<base64 HMAC-SHA256, keyed with the decoded shared key, of
// "POST\n<length>\napplication/json\nx-ms-date:<date>\n/api/logs">.
func DataCollectorSignature(workspace string, key []byte, date string, contentLength int) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("POST\n" + strconv.Itoa(contentLength) + "\napplication/json\nx-ms-date:" + date + "\n/api/logs"))
	return "SharedKey " + workspace + ":" + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func (d *dataCollector) Send(ctx context.Context, batch []Event) error {
	body := WebhookBody(nil, batch, false) // the JSON array of records
	date := d.env.now().UTC().Format(http.TimeFormat)
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("Log-Type", d.logType)
	h.Set("x-ms-date", date)
	h.Set("time-generated-field", "received_at")
	h.Set("Authorization", DataCollectorSignature(d.workspace, d.key, date, len(body)))
	return post(ctx, d.env, d.url, h, body)
}

func (d *dataCollector) Close() error { return nil }
