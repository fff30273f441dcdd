package streams_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/trailaudit/trail/client"
	"github.com/trailaudit/trail/internal/trailtest"
)

const (
	tenant       = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	clientID     = "0f8f6f2c-5c7e-4c9e-9a59-0c2b0f2e1d3a"
	clientSecret = "entra-client-secret-value~01"
	dcr          = "dcr-00112233445566778899aabbccddeeff"
	dcrStream    = "Custom-TrailAudit_CL"
	saEmail      = "trail-writer@audit-project.iam.gserviceaccount.com"
	bucket       = "audit-bucket"
)

// tokens are the access tokens a local token endpoint issued.
type tokens struct {
	mu     sync.Mutex
	issued map[string]bool
}

func (tk *tokens) issue(prefix string) string {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	t := fmt.Sprintf("%s-%d", prefix, len(tk.issued)+1)
	tk.issued[t] = true
	return t
}

func (tk *tokens) valid(auth string) bool {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	t, ok := strings.CutPrefix(auth, "Bearer ")
	return ok && tk.issued[t]
}

func oauthError(w http.ResponseWriter, code int, e, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"error":%q,"error_description":%q}`, e, desc)
}

// entraEndpoint checks a client-credentials request exactly.
func entraEndpoint(tk *tokens) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/"+tenant+"/oauth2/v2.0/token" || r.ParseForm() != nil {
			oauthError(w, http.StatusBadRequest, "invalid_request", "AADSTS900144: bad request.")
			return
		}
		f := r.PostForm
		switch {
		case f.Get("grant_type") != "client_credentials" || f.Get("scope") != "https://monitor.azure.com//.default":
			oauthError(w, http.StatusBadRequest, "invalid_request", "AADSTS70011: bad grant or scope.")
		case f.Get("client_id") != clientID || f.Get("client_secret") != clientSecret:
			oauthError(w, http.StatusUnauthorized, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
		default:
			fmt.Fprintf(w, `{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":%q}`, tk.issue("entra"))
		}
	})
}

// ingestion is a Logs Ingestion API endpoint that records each entry,
// TimeGenerated removed: the record as Trail stored it.
type ingestion struct {
	tk   *tokens
	mu   sync.Mutex
	recs [][]byte
	bad  []string
}

func (in *ingestion) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	in.mu.Lock()
	defer in.mu.Unlock()
	if !in.tk.valid(r.Header.Get("Authorization")) {
		http.Error(w, `{"error":{"code":"InvalidToken"}}`, http.StatusUnauthorized)
		return
	}
	if r.URL.Path != "/dataCollectionRules/"+dcr+"/streams/"+dcrStream || r.URL.RawQuery != "api-version=2023-01-01" ||
		r.Header.Get("Content-Type") != "application/json" {
		in.bad = append(in.bad, r.URL.String())
		http.Error(w, `{"error":{"code":"NotFound"}}`, http.StatusNotFound)
		return
	}
	var entries []json.RawMessage
	if err := json.Unmarshal(body, &entries); err != nil {
		in.bad = append(in.bad, "not an array")
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	for _, e := range entries {
		var head struct {
			TimeGenerated string `json:"TimeGenerated"`
			ReceivedAt    string `json:"received_at"`
		}
		json.Unmarshal(e, &head)
		prefix := `{"TimeGenerated":"` + head.ReceivedAt + `",`
		if head.TimeGenerated == "" || !bytes.HasPrefix(e, []byte(prefix)) {
			in.bad = append(in.bad, "entry without TimeGenerated first")
			http.Error(w, "bad entry", http.StatusBadRequest)
			return
		}
		in.recs = append(in.recs, append([]byte("{"), e[len(prefix):]...))
	}
	w.WriteHeader(http.StatusNoContent)
}

// googleToken verifies a service account's JWT bearer assertion with its
// public key.
func googleToken(tk *tokens, pub *rsa.PublicKey, self *string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ParseForm() != nil || r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
			oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "Invalid grant_type.")
			return
		}
		parts := strings.Split(r.PostForm.Get("assertion"), ".")
		if len(parts) != 3 {
			oauthError(w, http.StatusBadRequest, "invalid_grant", "Invalid JWT.")
			return
		}
		sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
		sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
		if rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig) != nil {
			oauthError(w, http.StatusBadRequest, "invalid_grant", "Invalid JWT Signature.")
			return
		}
		var claims struct{ Iss, Aud, Scope string }
		c, _ := base64.RawURLEncoding.DecodeString(parts[1])
		if json.Unmarshal(c, &claims) != nil || claims.Iss != saEmail || claims.Aud != *self ||
			claims.Scope != "https://www.googleapis.com/auth/devstorage.read_write" {
			oauthError(w, http.StatusBadRequest, "invalid_grant", "Invalid JWT claims.")
			return
		}
		fmt.Fprintf(w, `{"access_token":%q,"expires_in":3599,"token_type":"Bearer"}`, tk.issue("ya29"))
	})
}

func keyFile(t *testing.T, key *rsa.PrivateKey, tokenURI string) string {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]string{"type": "service_account", "project_id": "audit-project",
		"private_key_id": "k1", "private_key": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": saEmail, "token_uri": tokenURI})
	return string(b)
}

func serve(t *testing.T, h http.Handler) *httptest.Server {
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

// TestCloudDestinations runs a real server with a stream to Azure Sentinel
// (Logs Ingestion API) and one to Google Cloud Storage, each behind a local
// token endpoint that checks the credentials exactly: every event arrives,
// byte for byte and in seq order, the test action succeeds, and streams with
// refused credentials become invalid with the token endpoint's answer as
// their last error — never the secret.
func TestCloudDestinations(t *testing.T) {
	tk := &tokens{issued: map[string]bool{}}
	login := serve(t, entraEndpoint(tk))
	in := &ingestion{tk: tk}
	dce := serve(t, in)

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	var tokenURL string
	google := serve(t, googleToken(tk, &key.PublicKey, &tokenURL))
	tokenURL = google.URL + "/token"
	fake, err := fakestorage.NewServerWithOptions(fakestorage.Options{NoListener: true, Writer: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Stop()
	fake.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: bucket})
	emu := fake.HTTPHandler()
	gcs := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !tk.valid(r.Header.Get("Authorization")) {
			http.Error(w, `{"error":{"code":401,"message":"Invalid Credentials"}}`, http.StatusUnauthorized)
			return
		}
		emu.ServeHTTP(w, r)
	}))

	srv := trailtest.Start(t, trailtest.Options{Data: t.TempDir(), Args: []string{"--streams-allow-private"}})
	defer func() {
		if t.Failed() {
			t.Logf("server log:\n%s", srv.Logs())
		}
	}()
	ctx := context.Background()
	api := api(t, srv)
	org, err := api.CreateOrganization(ctx, "Cloud", "")
	if err != nil {
		t.Fatal(err)
	}
	azure := func(secret string) string {
		return fmt.Sprintf(`{"type":"azure_sentinel","start":"beginning","config":{"endpoint":%q,"authority":%q,"dcr_immutable_id":%q,"stream_name":%q,"tenant_id":%q,"client_id":%q,"client_secret":%q}}`,
			dce.URL, login.URL, dcr, dcrStream, tenant, clientID, secret)
	}
	gcsStream := func(k *rsa.PrivateKey) string {
		sa, _ := json.Marshal(keyFile(t, k, tokenURL))
		return fmt.Sprintf(`{"type":"gcs","start":"beginning","config":{"bucket":%q,"prefix":"trail/","endpoint":%q,"service_account_json":%s}}`, bucket, gcs.URL, sa)
	}
	type view struct {
		ID        string          `json:"id"`
		State     string          `json:"state"`
		Cursor    int64           `json:"cursor"`
		LagEvents int64           `json:"lag_events"`
		LastError string          `json:"last_error"`
		Secrets   []string        `json:"secrets"`
		Config    json.RawMessage `json:"config"`
	}
	viewOf := func(s *client.Stream) view {
		v := view{ID: s.ID, State: s.State, Cursor: s.Cursor, LagEvents: s.LagEvents, Secrets: s.Secrets, Config: s.Config}
		if s.LastError != nil {
			v.LastError = *s.LastError
		}
		return v
	}
	create := func(body string) view {
		var r client.StreamRequest
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatal(err)
		}
		s, err := api.CreateStream(ctx, org.ID, r)
		if err != nil {
			t.Fatalf("creating a %s stream: %v", r.Type, err)
		}
		return viewOf(s)
	}
	az, gs := create(azure(clientSecret)), create(gcsStream(key))
	if !slices.Equal(az.Secrets, []string{"client_secret"}) || strings.Contains(string(az.Config), clientSecret) {
		t.Errorf("azure stream shows %s, secrets %v", az.Config, az.Secrets)
	}
	if !slices.Equal(gs.Secrets, []string{"service_account_json"}) || strings.Contains(string(gs.Config), "PRIVATE") ||
		!strings.Contains(string(gs.Config), saEmail) {
		t.Errorf("gcs stream shows %s, secrets %v", gs.Config, gs.Secrets)
	}
	badAz, badGs := create(azure("a-wrong-secret-value")), create(gcsStream(other))

	const n = 300
	for i := 0; i < n; i += 100 {
		if _, err := api.CreateEvents(ctx, batch(org.ID, 100, i)); err != nil {
			t.Fatal(err)
		}
	}
	wait := func(id string, done func(view) bool) view {
		deadline := time.Now().Add(3 * time.Minute)
		for {
			s, err := api.GetStream(ctx, org.ID, id)
			if err != nil {
				t.Fatal(err)
			}
			if v := viewOf(s); done(v) {
				return v
			}
			if time.Now().After(deadline) {
				t.Fatalf("stream %s: %+v", id, viewOf(s))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// The log also holds Trail's own events (the streams' creation).
	caughtUp := func(v view) bool { return v.Cursor >= n && v.LagEvents == 0 }
	size := wait(az.ID, caughtUp).Cursor
	if v := wait(gs.ID, caughtUp); v.Cursor != size {
		t.Fatalf("the streams stopped at %d and %d", size, v.Cursor)
	}

	// Both destinations hold the same records, seq 0…size-1, in order, the
	// batch events among them in the order sent.
	var fromGCS [][]byte
	list, err := fake.ListObjectsWithOptionsPaginated(bucket, fakestorage.ListOptions{Prefix: "trail/"})
	if err != nil || list.NextPageToken != "" {
		t.Fatalf("listing the bucket: %v (more pages: %q)", err, list.NextPageToken)
	}
	objs := list.Objects
	slices.SortFunc(objs, func(a, b fakestorage.ObjectAttrs) int { return strings.Compare(a.Name, b.Name) })
	for _, o := range objs {
		obj, err := fake.GetObject(bucket, o.Name)
		if err != nil {
			t.Fatal(err)
		}
		fromGCS = append(fromGCS, bytes.Split(bytes.TrimSuffix(obj.Content, []byte("\n")), []byte("\n"))...)
	}
	in.mu.Lock()
	fromAzure := slices.Clone(in.recs)
	if len(in.bad) > 0 {
		t.Errorf("the ingestion endpoint refused: %q", in.bad)
	}
	in.mu.Unlock()
	for name, recs := range map[string][][]byte{"azure": fromAzure, "gcs": fromGCS} {
		if int64(len(recs)) != size {
			t.Fatalf("%s got %d records, want %d", name, len(recs), size)
		}
		sent := 0
		for i, rec := range recs {
			var r struct {
				Seq      int64
				Action   string
				Metadata struct{ N int }
			}
			if err := json.Unmarshal(rec, &r); err != nil || r.Seq != int64(i) || r.Action == "crash.tested" && r.Metadata.N != sent {
				t.Fatalf("%s record %d: %s (%v)", name, i, rec, err)
			}
			if r.Action == "crash.tested" {
				sent++
			}
			if !bytes.Equal(rec, fromGCS[i]) {
				t.Fatalf("record %d differs between the destinations:\n%s\n%s", i, rec, fromGCS[i])
			}
		}
		if sent != n {
			t.Errorf("%s got %d of the %d events sent", name, sent, n)
		}
	}

	// The test action reaches both.
	for _, id := range []string{az.ID, gs.ID} {
		if res, err := api.TestStream(ctx, org.ID, id); err != nil || !res.Success {
			t.Errorf("test of %s failed: %+v %v", id, res, err)
		}
	}

	// Refused credentials: invalid, with the token endpoint's answer.
	for _, c := range []struct {
		id, quote, secret string
	}{
		{badAz.ID, "invalid_client (AADSTS7000215: Invalid client secret provided.)", "a-wrong-secret-value"},
		{badGs.ID, "invalid_grant (Invalid JWT Signature.)", "PRIVATE KEY"},
	} {
		v := wait(c.id, func(v view) bool { return v.State == "invalid" })
		if !strings.Contains(v.LastError, c.quote) || strings.Contains(v.LastError, c.secret) {
			t.Errorf("stream %s: last_error %q, want it to quote %q", c.id, v.LastError, c.quote)
		}
	}
	cfg, err := api.GetAuditLogConfiguration(ctx, org.ID)
	if err != nil || cfg.LogStream == nil || cfg.LogStream.Type != "AzureSentinel" {
		t.Errorf("audit_log_configuration names the first stream %+v (%v), want AzureSentinel", cfg, err)
	}
}
