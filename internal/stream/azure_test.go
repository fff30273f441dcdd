package stream_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/stream"
)

const (
	entraTenant   = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	entraClient   = "0f8f6f2c-5c7e-4c9e-9a59-0c2b0f2e1d3a"
	entraSecret   = "s3cr3t~client.secret_value"
	dcrID         = "dcr-00112233445566778899aabbccddeeff"
	dcrStream     = "Custom-TrailAudit_CL"
	workspaceID   = "b8d6a2f0-1c2e-4c8b-9d3e-7a6f5e4d3c2b"
	workspaceKey  = "c2hhcmVkLWtleS1vZi10aGUtd29ya3NwYWNlLTAxMjM0NTY3ODk="
	monitorScope  = "https://monitor.azure.com//.default"
	ingestVersion = "2023-01-01"
)

// entra is a Microsoft Entra token endpoint for one app registration: it
// checks the client-credentials request exactly and issues tokens.
type entra struct {
	mu        sync.Mutex
	issued    []string
	expiresIn string // JSON value of expires_in
	status    int    // when set, answer this instead (with an OAuth error)
	bad       []string
}

func (e *entra) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	refuse := func(code int, oauthErr, desc string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"error":%q,"error_description":%q,"error_codes":[7000215],"trace_id":"t"}`, oauthErr, desc)
	}
	if e.status != 0 {
		refuse(e.status, "temporarily_unavailable", "AADSTS50196: The server is busy.")
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/"+entraTenant+"/oauth2/v2.0/token" ||
		r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		e.bad = append(e.bad, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type"))
		refuse(400, "invalid_request", "AADSTS900144: bad request.")
		return
	}
	if err := r.ParseForm(); err != nil || len(r.PostForm) != 4 {
		e.bad = append(e.bad, fmt.Sprintf("form %v", r.PostForm))
		refuse(400, "invalid_request", "AADSTS900144: The request body must contain the following parameter.")
		return
	}
	f := r.PostForm
	switch {
	case f.Get("grant_type") != "client_credentials":
		refuse(400, "unsupported_grant_type", "AADSTS70003: unsupported grant type.")
	case f.Get("client_id") != entraClient:
		refuse(400, "unauthorized_client", "AADSTS700016: Application not found in the directory.")
	case f.Get("client_secret") != entraSecret:
		refuse(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
	case f.Get("scope") != monitorScope:
		e.bad = append(e.bad, "scope "+f.Get("scope"))
		refuse(400, "invalid_scope", "AADSTS70011: The provided scope is not valid.")
	default:
		tok := fmt.Sprintf("eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.token-%d", len(e.issued)+1)
		e.issued = append(e.issued, tok)
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		fmt.Fprintf(w, `{"token_type":"Bearer","expires_in":%s,"ext_expires_in":%s,"access_token":%q}`, e.expiresIn, e.expiresIn, tok)
	}
}

func (e *entra) valid(tok string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, t := range e.issued {
		if "Bearer "+t == tok {
			return true
		}
	}
	return false
}

func (e *entra) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.issued)
}

// logsIngestion is a Logs Ingestion API endpoint for one data collection
// rule: it checks the bearer token, path, api-version, content type and
// that every entry is a record with a TimeGenerated column.
type logsIngestion struct {
	tokens *entra
	s      *sink
	mu     sync.Mutex
	bodies [][]byte
	bad    []string
	// unauthorized, when positive, answers that many requests 401.
	unauthorized int
}

func (li *logsIngestion) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	li.mu.Lock()
	defer li.mu.Unlock()
	fail := func(code int, what string) {
		li.bad = append(li.bad, what)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"error":{"code":"Invalid","message":%q}}`, what)
	}
	if li.unauthorized > 0 {
		li.unauthorized--
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":{"code":"InvalidToken","message":"The token has expired."}}`)
		return
	}
	if !li.tokens.valid(r.Header.Get("Authorization")) {
		fail(http.StatusUnauthorized, "no valid bearer token: "+r.Header.Get("Authorization"))
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/dataCollectionRules/"+dcrID+"/streams/"+dcrStream {
		fail(http.StatusNotFound, "path "+r.URL.Path)
		return
	}
	if q := r.URL.Query(); q.Get("api-version") != ingestVersion || len(q) != 1 {
		fail(http.StatusBadRequest, "query "+r.URL.RawQuery)
		return
	}
	if r.Header.Get("Content-Type") != "application/json" || r.Header.Get("Content-Encoding") != "" {
		fail(http.StatusUnsupportedMediaType, "content type "+r.Header.Get("Content-Type"))
		return
	}
	body, _ := io.ReadAll(r.Body)
	if len(body) > 1_000_000 {
		fail(http.StatusRequestEntityTooLarge, "body over 1 MB")
		return
	}
	var entries []json.RawMessage
	if err := json.Unmarshal(body, &entries); err != nil || len(entries) == 0 {
		fail(http.StatusBadRequest, "not a JSON array of entries")
		return
	}
	var recs [][]byte
	for _, e := range entries {
		var row map[string]json.RawMessage
		if err := json.Unmarshal(e, &row); err != nil {
			fail(http.StatusBadRequest, "entry not an object")
			return
		}
		var tg, recv string
		json.Unmarshal(row["TimeGenerated"], &tg)
		json.Unmarshal(row["received_at"], &recv)
		if _, err := time.Parse(time.RFC3339Nano, tg); err != nil || tg != recv {
			fail(http.StatusBadRequest, "TimeGenerated "+tg+" is not the event's received_at "+recv)
			return
		}
		for _, col := range []string{"id", "organization_id", "seq", "action", "occurred_at", "actor", "targets", "context", "metadata"} {
			if _, ok := row[col]; !ok {
				fail(http.StatusBadRequest, "entry without the column "+col)
				return
			}
		}
		// Past TimeGenerated, the entry is the record byte for byte.
		prefix := `{"TimeGenerated":"` + tg + `",`
		if !bytes.HasPrefix(e, []byte(prefix)) {
			fail(http.StatusBadRequest, "TimeGenerated is not the entry's first column")
			return
		}
		recs = append(recs, append([]byte("{"), e[len(prefix):]...))
	}
	li.bodies = append(li.bodies, body)
	if li.s != nil {
		li.s.add(recs...)
	}
	w.WriteHeader(http.StatusNoContent)
}

// azureRig is a token endpoint and an ingestion endpoint.
type azureRig struct {
	entra  *entra
	ingest *logsIngestion
	login  *httptest.Server
	dce    *httptest.Server
}

func newAzureRig(t testing.TB, s *sink) *azureRig {
	e := &entra{expiresIn: "3599"}
	li := &logsIngestion{tokens: e, s: s}
	rig := &azureRig{entra: e, ingest: li, login: httptest.NewServer(e), dce: httptest.NewServer(li)}
	t.Cleanup(rig.login.Close)
	t.Cleanup(rig.dce.Close)
	return rig
}

func (rig *azureRig) config(secret string) string {
	return fmt.Sprintf(`{"endpoint":%q,"authority":%q,"dcr_immutable_id":%q,"stream_name":%q,"tenant_id":%q,"client_id":%q,"client_secret":%q}`,
		rig.dce.URL, rig.login.URL, dcrID, dcrStream, entraTenant, entraClient, secret)
}

func TestAzureLogsIngestion(t *testing.T) {
	rig := newAzureRig(t, nil)
	c := newCodec(t)
	d := openDest(t, c, stream.TypeAzureSentinel, rig.config(entraSecret))
	if l := d.Limits(); l.MaxBytes+l.MaxEvents*64 > 1_000_000 {
		t.Errorf("limits %+v can exceed the API's 1 MB a call", l)
	}
	for _, b := range [][]stream.Event{fixed, many(1000)} {
		if err := d.Send(context.Background(), b); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	if len(rig.ingest.bad) > 0 || len(rig.entra.bad) > 0 {
		t.Fatalf("the receivers refused: %q %q", rig.ingest.bad, rig.entra.bad)
	}
	if !bytes.Equal(rig.ingest.bodies[0], stream.LogsIngestionBody(nil, fixed)) {
		t.Errorf("the wire body is not LogsIngestionBody")
	}
	if n := rig.entra.count(); n != 1 {
		t.Errorf("%d tokens fetched for two deliveries, want 1 (cached)", n)
	}

	// The destination refuses the token once: it is dropped and a new one
	// fetched for the next attempt.
	rig.ingest.unauthorized = 1
	var f *stream.Failure
	if err := d.Send(context.Background(), fixed); !asFailure(err, &f) || !f.Permanent || !strings.Contains(err.Error(), "401 Unauthorized") {
		t.Errorf("Send with a refused token = %v, want a permanent 401", err)
	}
	if err := d.Send(context.Background(), fixed); err != nil {
		t.Errorf("Send after a refused token: %v", err)
	}
	if n := rig.entra.count(); n != 2 {
		t.Errorf("%d tokens fetched, want 2 (the refused one replaced)", n)
	}

	// A token about to expire (expires_in as a string, as older endpoints
	// send it) is not kept: each delivery fetches one.
	rig.entra.expiresIn = `"60"`
	short := openDest(t, c, stream.TypeAzureSentinel, rig.config(entraSecret))
	for range 2 {
		if err := short.Send(context.Background(), fixed); err != nil {
			t.Fatal(err)
		}
	}
	if n := rig.entra.count(); n != 4 {
		t.Errorf("%d tokens fetched, want 4", n)
	}
}

func TestAzureTokenFailures(t *testing.T) {
	rig := newAzureRig(t, nil)
	c := newCodec(t)
	cases := []struct {
		name      string
		config    string
		status    int
		permanent bool
		quote     string
	}{
		{"wrong secret", rig.config("not-the-secret"), 0, true, "invalid_client (AADSTS7000215: Invalid client secret provided.)"},
		{"unknown client", strings.Replace(rig.config(entraSecret), entraClient, "11111111-2222-3333-4444-555555555555", 1), 0, true, "unauthorized_client"},
		{"wrong tenant", strings.Replace(rig.config(entraSecret), entraTenant, "contoso.onmicrosoft.com", 1), 0, true, "400 Bad Request: invalid_request"},
		{"busy", rig.config(entraSecret), 503, false, "503 Service Unavailable: temporarily_unavailable"},
		{"throttled", rig.config(entraSecret), 429, false, "429 Too Many Requests"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rig.entra.mu.Lock()
			rig.entra.status = tc.status
			rig.entra.mu.Unlock()
			d := openDest(t, c, stream.TypeAzureSentinel, tc.config)
			err := d.Send(context.Background(), fixed)
			var f *stream.Failure
			if !asFailure(err, &f) || f.Permanent != tc.permanent || !strings.Contains(err.Error(), tc.quote) {
				t.Errorf("Send = %v (permanent %v), want permanent=%v quoting %q", err, f != nil && f.Permanent, tc.permanent, tc.quote)
			}
			if strings.Contains(err.Error(), entraSecret) || strings.Contains(err.Error(), "not-the-secret") {
				t.Errorf("the failure shows the secret: %v", err)
			}
		})
	}
	if len(rig.ingest.bodies) != 0 {
		t.Errorf("events were delivered without a token")
	}
}

// dataCollector is an HTTP Data Collector API endpoint: it recomputes the
// SharedKey signature over the canonical string.
type dataCollector struct {
	mu     sync.Mutex
	bodies [][]byte
}

func (dc *dataCollector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if r.Method != http.MethodPost || r.URL.Path != "/api/logs" || r.URL.Query().Get("api-version") != "2016-04-01" {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	date := r.Header.Get("x-ms-date")
	at, err := http.ParseTime(date)
	if err != nil || time.Since(at).Abs() > 15*time.Minute {
		http.Error(w, `{"Error":"InvalidDate"}`, http.StatusForbidden)
		return
	}
	key, _ := base64.StdEncoding.DecodeString(workspaceKey)
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "POST\n%d\napplication/json\nx-ms-date:%s\n/api/logs", len(body), date)
	want := "SharedKey " + workspaceID + ":" + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	if r.Header.Get("Authorization") != want {
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `{"Error":"InvalidAuthorization","Message":"An invalid scheme was specified in the Authorization header"}`)
		return
	}
	if r.Header.Get("Content-Type") != "application/json" || r.Header.Get("Log-Type") != "TrailAudit" ||
		r.Header.Get("time-generated-field") != "received_at" || r.ContentLength != int64(len(body)) {
		http.Error(w, `{"Error":"InvalidHeaders"}`, 400)
		return
	}
	var recs []json.RawMessage
	if err := json.Unmarshal(body, &recs); err != nil {
		http.Error(w, `{"Error":"InvalidDataFormat"}`, 400)
		return
	}
	dc.mu.Lock()
	dc.bodies = append(dc.bodies, body)
	dc.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func TestAzureDataCollector(t *testing.T) {
	dc := &dataCollector{}
	srv := httptest.NewServer(dc)
	defer srv.Close()
	c := newCodec(t)
	cfg := fmt.Sprintf(`{"api":"data_collector","endpoint":%q,"workspace_id":%q,"shared_key":%q}`, srv.URL, workspaceID, workspaceKey)
	d := openDest(t, c, stream.TypeAzureSentinel, cfg)
	if err := d.Send(context.Background(), fixed); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if len(dc.bodies) != 1 || !bytes.Equal(dc.bodies[0], stream.WebhookBody(nil, fixed, false)) {
		t.Errorf("the workspace got %q, want the JSON array of the records", dc.bodies)
	}
	other := base64.StdEncoding.EncodeToString([]byte("another workspace's key"))
	bad := openDest(t, c, stream.TypeAzureSentinel, strings.Replace(cfg, workspaceKey, other, 1))
	var f *stream.Failure
	if err := bad.Send(context.Background(), fixed); !asFailure(err, &f) || !f.Permanent || !strings.Contains(err.Error(), "InvalidAuthorization") {
		t.Errorf("Send with another key = %v, want a permanent failure quoting the answer", err)
	}
}

// TestAzureWireFormats pins the bodies and the SharedKey signature.
func TestAzureWireFormats(t *testing.T) {
	golden(t, "azure.logs_ingestion.json", stream.LogsIngestionBody(nil, fixed))
	key, _ := base64.StdEncoding.DecodeString(workspaceKey)
	body := stream.WebhookBody(nil, fixed, false)
	sig := stream.DataCollectorSignature(workspaceID, key, "Wed, 25 Nov 2026 18:43:09 GMT", len(body))
	golden(t, "azure.data_collector.signature", []byte(sig+"\n"))
	var entries []map[string]any
	if err := json.Unmarshal(stream.LogsIngestionBody(nil, fixed), &entries); err != nil || len(entries) != 3 ||
		entries[2]["TimeGenerated"] != "2026-11-26T00:00:00.000Z" || entries[1]["action"] != "team.renamed" {
		t.Errorf("the logs ingestion body: %v %v", err, entries)
	}
}
