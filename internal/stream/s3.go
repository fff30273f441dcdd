package stream

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// S3-compatible object storage (AWS S3, GCS interoperability, MinIO): one
// NDJSON object per batch (the record lines, as an export has them), at
//
//	<prefix>YYYY-MM-DD/<organization id>/<first seq>-<last seq>.ndjson
//
// dated by the first event's received_at (UTC), seqs zero-padded to 20
// digits so keys sort in log order. A batch sent again after a crash has
// the same first seq and replaces or sits beside the earlier object; the
// records' ids tell repeats apart. Every PUT carries Content-MD5, which
// buckets with Object Lock require.

type s3Settings struct {
	Bucket   string `json:"bucket"`
	Region   string `json:"region,omitempty"`   // default us-east-1
	Endpoint string `json:"endpoint,omitempty"` // S3-compatible service; default AWS
	// PathStyle addresses the bucket as <endpoint>/<bucket>/<key> instead
	// of <bucket>.<endpoint>/<key> (MinIO and most self-hosted stores).
	PathStyle       bool   `json:"path_style,omitempty"`
	Prefix          string `json:"prefix,omitempty"`
	AccessKeyID     string `json:"access_key_id,omitempty"`
	SecretAccessKey string `json:"secret_access_key,omitempty"`
	SessionToken    string `json:"session_token,omitempty"`
}

var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.\-_]{1,61}[a-z0-9]$`)
var regionName = regexp.MustCompile(`^[a-z0-9-]{1,40}$`)

func (s *s3Settings) check(p Policy, errs *errList) {
	if s.Bucket == "" {
		errs.required("bucket", "the bucket's name")
	} else if !bucketName.MatchString(s.Bucket) {
		errs.add("bucket", "invalid", "config.bucket %q is not a valid bucket name (3–63 lowercase letters, digits, dots, hyphens).", truncate(s.Bucket, 70))
	}
	if s.Region == "" {
		s.Region = "us-east-1"
	} else if !regionName.MatchString(s.Region) {
		errs.add("region", "invalid", "config.region %q is not a region name such as eu-west-1.", truncate(s.Region, 50))
	}
	if s.Endpoint != "" {
		checkURL(p, "endpoint", s.Endpoint, errs)
	}
	if len(s.Prefix) > 200 || strings.HasPrefix(s.Prefix, "/") {
		errs.add("prefix", "invalid", "config.prefix must be at most 200 characters and not start with /.")
	}
	if s.AccessKeyID == "" {
		errs.required("access_key_id", "the access key id of credentials allowed to s3:PutObject in the bucket")
	}
	if s.SecretAccessKey == "" {
		errs.required("secret_access_key", "the secret of those credentials")
	}
}

func (s *s3Settings) redact() []string {
	var names []string
	redactString(&s.AccessKeyID, "access_key_id", &names)
	redactString(&s.SecretAccessKey, "secret_access_key", &names)
	redactString(&s.SessionToken, "session_token", &names)
	return names
}

func (s *s3Settings) open(e *env) (Destination, error) {
	opts := s3.Options{
		Region:                     s.Region,
		Credentials:                credentials.NewStaticCredentialsProvider(s.AccessKeyID, s.SecretAccessKey, s.SessionToken),
		HTTPClient:                 e.client,
		UsePathStyle:               s.PathStyle,
		Retryer:                    aws.NopRetryer{}, // the engine retries, with its own backoff
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	}
	if s.Endpoint != "" {
		opts.BaseEndpoint = aws.String(s.Endpoint)
	}
	return &s3dest{client: s3.New(opts), s: *s}, nil
}

type s3dest struct {
	client *s3.Client
	s      s3Settings
}

func (d *s3dest) Limits() Limits { return Limits{MaxEvents: 10_000, MaxBytes: 16 << 20} }

// S3Key is the object key of a batch.
func S3Key(prefix string, batch []Event) string {
	first, last := batch[0], batch[len(batch)-1]
	day := first.ReceivedAt().UTC().Format("2006-01-02")
	return fmt.Sprintf("%s%s/%s/%020d-%020d.ndjson", prefix, day, first.OrganizationID, first.Seq, last.Seq)
}

func (d *s3dest) Send(ctx context.Context, batch []Event) error {
	// A new buffer for each object: the SDK's transport may still read the
	// last one after it answered.
	var buf bytes.Buffer
	for _, ev := range batch {
		buf.Write(ev.Record)
		buf.WriteByte('\n')
	}
	sum := md5.Sum(buf.Bytes())
	key := S3Key(d.s.Prefix, batch)
	_, err := d.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(d.s.Bucket),
		Key:           aws.String(key),
		Body:          bytes.NewReader(buf.Bytes()),
		ContentLength: aws.Int64(int64(buf.Len())),
		ContentMD5:    aws.String(base64.StdEncoding.EncodeToString(sum[:])),
		ContentType:   aws.String("application/x-ndjson"),
	})
	if err == nil {
		return nil
	}
	return s3Failure(d.s.Bucket, key, err)
}

// s3Failure classifies an S3 error: refused credentials, a missing bucket
// or a refused address are permanent; the rest is retried.
func s3Failure(bucket, key string, err error) error {
	f := &Failure{Err: fmt.Errorf("couldn't put s3://%s/%s: %w", bucket, key, err)}
	if dialRefused(err) {
		f.Permanent = true
		return f
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		// The endpoint answered: quoted as its status, error code and a
		// short excerpt of its message, as HTTP destinations' answers are
		// (the SDK's own text can carry much of the body).
		code := re.HTTPStatusCode()
		msg := fmt.Sprintf("couldn't put s3://%s/%s: the endpoint answered %d %s", bucket, key, code, http.StatusText(code))
		var ae smithy.APIError
		if errors.As(err, &ae) {
			msg += ": " + Excerpt(ae.ErrorCode(), maxExcerpt)
			if m := Excerpt(ae.ErrorMessage(), maxExcerpt); m != "" {
				msg += " (" + m + ")"
			}
		}
		f.Err = &quoted{msg: msg, err: err}
		switch code := re.HTTPStatusCode(); {
		case code == 413:
			f.TooLarge = true
		case code == 429 || code == 408 || code >= 500:
		case code >= 400:
			f.Permanent = true
		}
		if ra := re.Response.Header.Get("Retry-After"); ra != "" {
			f.RetryAfter = retryAfter(ra, time.Now())
		}
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "NoSuchBucket", "InvalidBucketName", "AuthorizationHeaderMalformed", "PermanentRedirect":
			f.Permanent = true
		case "SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout":
			f.Permanent = false
		}
	}
	return f
}

func (d *s3dest) Close() error { return nil }

// quoted is an error shown as msg (what the tenant may read) that still
// wraps the error behind it.
type quoted struct {
	msg string
	err error
}

func (q *quoted) Error() string { return q.msg }
func (q *quoted) Unwrap() error { return q.err }
