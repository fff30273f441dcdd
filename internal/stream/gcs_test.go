package stream_test

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
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/trailaudit/trail/internal/stream"
)

const (
	gcsBucket = "audit-bucket"
	gcsEmail  = "trail-writer@audit-project.iam.gserviceaccount.com"
	gcsKeyID  = "3f1c2d7a9b8e6f5a4c3b2a1908f7e6d5c4b3a291"
)

// serviceAccountJSON is a key file as Google issues it.
func serviceAccountJSON(t testing.TB, key *rsa.PrivateKey, tokenURI string) string {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]string{
		"type": "service_account", "project_id": "audit-project", "private_key_id": gcsKeyID,
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": gcsEmail, "client_id": "104935412345678901234",
		"auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": tokenURI,
	})
	return string(b)
}

// googleOAuth is Google's token endpoint for one service account: it
// verifies the JWT bearer assertion's signature with the account's public
// key and its claims, and issues tokens.
type googleOAuth struct {
	pub *rsa.PublicKey
	url string

	mu     sync.Mutex
	issued []string
}

func (g *googleOAuth) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	refuse := func(code int, oauthErr, desc string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"error":%q,"error_description":%q}`, oauthErr, desc)
	}
	if r.URL.Path == "/precondition" {
		http.Error(w, "precondition failed", http.StatusPreconditionFailed)
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/token" || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		refuse(http.StatusBadRequest, "invalid_request", "bad request")
		return
	}
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" || len(r.PostForm) != 2 {
		refuse(http.StatusBadRequest, "unsupported_grant_type", "Invalid grant_type.")
		return
	}
	parts := strings.Split(r.PostForm.Get("assertion"), ".")
	if len(parts) != 3 {
		refuse(http.StatusBadRequest, "invalid_grant", "Invalid JWT.")
		return
	}
	var header struct{ Alg, Typ, Kid string }
	var claims struct {
		Iss, Scope, Aud, Sub string
		Iat, Exp             int64
	}
	h, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	c, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	sig, err3 := base64.RawURLEncoding.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil || json.Unmarshal(h, &header) != nil || json.Unmarshal(c, &claims) != nil {
		refuse(http.StatusBadRequest, "invalid_grant", "Invalid JWT encoding.")
		return
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if header.Alg != "RS256" || header.Typ != "JWT" || header.Kid != gcsKeyID || rsa.VerifyPKCS1v15(g.pub, crypto.SHA256, sum[:], sig) != nil {
		refuse(http.StatusBadRequest, "invalid_grant", "Invalid JWT Signature.")
		return
	}
	now := time.Now().Unix()
	if claims.Iss != gcsEmail || claims.Aud != g.url || claims.Scope != stream.GCSScope || claims.Sub != "" ||
		claims.Exp-claims.Iat != 3600 || claims.Iat > now+300 || claims.Exp < now {
		refuse(http.StatusBadRequest, "invalid_grant", fmt.Sprintf("Invalid JWT claims: %s", c))
		return
	}
	g.mu.Lock()
	tok := fmt.Sprintf("ya29.c.token-%d", len(g.issued)+1)
	g.issued = append(g.issued, tok)
	g.mu.Unlock()
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	fmt.Fprintf(w, `{"access_token":%q,"expires_in":3599,"token_type":"Bearer"}`, tok)
}

func (g *googleOAuth) valid(auth string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, t := range g.issued {
		if auth == "Bearer "+t {
			return true
		}
	}
	return false
}

// gcsRig is a token endpoint and a Cloud Storage emulator (fake-gcs-server)
// behind a front that checks the bearer token and the upload exactly.
type gcsRig struct {
	oauth *googleOAuth
	fake  *fakestorage.Server
	front *httptest.Server
	key   *rsa.PrivateKey

	mu      sync.Mutex
	uploads int
	bad     []string
}

func newGCSRig(t testing.TB) *gcsRig {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rig := &gcsRig{key: key, oauth: &googleOAuth{pub: &key.PublicKey}}
	login := httptest.NewServer(rig.oauth)
	t.Cleanup(login.Close)
	rig.oauth.url = login.URL + "/token"
	rig.fake, err = fakestorage.NewServerWithOptions(fakestorage.Options{NoListener: true, Writer: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rig.fake.Stop)
	rig.fake.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: gcsBucket})
	emu := rig.fake.HTTPHandler()
	rig.front = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !rig.oauth.valid(r.Header.Get("Authorization")) {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":{"code":401,"message":"Invalid Credentials"}}`)
			return
		}
		body, _ := io.ReadAll(r.Body)
		if problem := checkUpload(r, body); problem != "" {
			rig.mu.Lock()
			rig.bad = append(rig.bad, problem)
			rig.mu.Unlock()
			http.Error(w, problem, http.StatusBadRequest)
			return
		}
		rig.mu.Lock()
		rig.uploads++
		rig.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		emu.ServeHTTP(w, r)
	}))
	t.Cleanup(rig.front.Close)
	return rig
}

// checkUpload checks a JSON API multipart upload: the query, and a
// metadata part whose md5Hash matches the media part.
func checkUpload(r *http.Request, body []byte) string {
	q := r.URL.Query()
	if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, "/upload/storage/v1/b/") ||
		q.Get("uploadType") != "multipart" || q.Get("ifGenerationMatch") != "0" {
		return "not a multipart upload with ifGenerationMatch=0: " + r.Method + " " + r.URL.String()
	}
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/related" {
		return "content type " + r.Header.Get("Content-Type")
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	var meta struct{ Name, ContentType, Md5Hash string }
	p, err := mr.NextPart()
	if err != nil || p.Header.Get("Content-Type") != "application/json; charset=UTF-8" || json.NewDecoder(p).Decode(&meta) != nil {
		return "no metadata part"
	}
	p, err = mr.NextPart()
	if err != nil || p.Header.Get("Content-Type") != "application/x-ndjson" {
		return "no media part"
	}
	media, _ := io.ReadAll(p)
	sum := md5.Sum(media)
	if meta.Md5Hash != base64.StdEncoding.EncodeToString(sum[:]) || meta.ContentType != "application/x-ndjson" {
		return fmt.Sprintf("metadata %+v does not match the media", meta)
	}
	if _, err := mr.NextPart(); err != io.EOF {
		return "more than two parts"
	}
	return ""
}

func (rig *gcsRig) config(key *rsa.PrivateKey, bucket string) string {
	sa, _ := json.Marshal(serviceAccountJSON(&testing.T{}, key, rig.oauth.url))
	return fmt.Sprintf(`{"bucket":%q,"prefix":"trail/","endpoint":%q,"service_account_json":%s}`, bucket, rig.front.URL, sa)
}

func TestGCS(t *testing.T) {
	rig := newGCSRig(t)
	c := newCodec(t)
	d := openDest(t, c, stream.TypeGCS, rig.config(rig.key, gcsBucket))
	if err := d.Send(context.Background(), fixed); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if err := d.Send(context.Background(), many(2000)[3:]); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if len(rig.bad) > 0 {
		t.Fatalf("the emulator's front refused: %q", rig.bad)
	}
	name := stream.S3Key("trail/", fixed)
	obj, err := rig.fake.GetObject(gcsBucket, name)
	if err != nil {
		t.Fatalf("no object %s: %v", name, err)
	}
	if !bytes.Equal(obj.Content, stream.WebhookBody(nil, fixed, true)) || obj.ContentType != "application/x-ndjson" {
		t.Errorf("object %s (%s):\n%s\nwant the batch's NDJSON", name, obj.ContentType, obj.Content)
	}
	list, err := rig.fake.ListObjectsWithOptionsPaginated(gcsBucket, fakestorage.ListOptions{Prefix: "trail/"})
	if err != nil || len(list.Objects) != 2 {
		t.Fatalf("%d objects (%v), want 2", len(list.Objects), err)
	}
	if n := len(rig.oauth.issued); n != 1 {
		t.Errorf("%d tokens fetched for two uploads, want 1 (cached)", n)
	}

	// The same batch again (a resend after a crash): the object is there,
	// which counts as delivered; it is not replaced.
	if err := d.Send(context.Background(), fixed); err != nil {
		t.Errorf("Send of a batch already stored = %v, want nil", err)
	}
	again, _ := rig.fake.GetObject(gcsBucket, name)
	if again.Generation != obj.Generation {
		t.Errorf("the object was replaced (generation %d → %d)", obj.Generation, again.Generation)
	}
}

func TestGCSFailures(t *testing.T) {
	rig := newGCSRig(t)
	c := newCodec(t)
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, config string
		quote        string
	}{
		// A key the account does not have: Google refuses the assertion.
		{"another key", rig.config(other, gcsBucket), "400 Bad Request: invalid_grant (Invalid JWT Signature.)"},
		{"missing bucket", rig.config(rig.key, "no-such-bucket"), "gs://no-such-bucket/trail/"},
		// A token endpoint's 412 is not the object's precondition failing.
		{"token endpoint answers 412", strings.Replace(rig.config(rig.key, gcsBucket), "/token", "/precondition", 1), "412 Precondition Failed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := openDest(t, c, stream.TypeGCS, tc.config)
			err := d.Send(context.Background(), fixed)
			var f *stream.Failure
			if !asFailure(err, &f) || !f.Permanent || !strings.Contains(err.Error(), tc.quote) {
				t.Errorf("Send = %v, want a permanent failure quoting %q", err, tc.quote)
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Errorf("the failure shows the key: %v", err)
			}
		})
	}
}

func TestGCSWireFormat(t *testing.T) {
	body, ct := stream.GCSUpload(stream.S3Key("trail/", fixed), stream.WebhookBody(nil, fixed, true))
	golden(t, "gcs.upload", append([]byte("Content-Type: "+ct+"\r\n\r\n"), body...))
}
