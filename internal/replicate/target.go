package replicate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/benbjohnson/litestream"
	lsfile "github.com/benbjohnson/litestream/file"
	lss3 "github.com/benbjohnson/litestream/s3"
)

// Target is where the replica lives: a prefix in an S3-compatible bucket, or
// a directory.
type Target struct {
	// S3: Bucket and Prefix (no leading or trailing slash).
	Bucket, Prefix string
	// Dir is the directory of a file:// target.
	Dir string
	// Endpoint is an S3-compatible server's URL (empty: AWS). Region
	// defaults to us-east-1.
	Endpoint, Region string
	// Credentials; empty means the AWS default chain (AWS_ACCESS_KEY_ID,
	// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, shared files, instance
	// roles).
	AccessKeyID, SecretAccessKey, SessionToken string
}

// ParseTarget reads s3://bucket/prefix or file:///path. endpoint, when not
// empty, names an S3-compatible server (it may also be given as the URL's
// endpoint= query parameter). Credentials come from getenv
// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN; AWS_REGION).
func ParseTarget(raw, endpoint string, getenv func(string) string) (Target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Target{}, fmt.Errorf("%q: want s3://bucket/prefix or file:///path: %w", raw, err)
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return Target{}, fmt.Errorf("%q: a file URL names a local directory: file:///path (three slashes)", raw)
		}
		if u.Path == "" || !filepath.IsAbs(u.Path) {
			return Target{}, fmt.Errorf("%q: want an absolute directory, file:///path", raw)
		}
		return Target{Dir: filepath.Clean(u.Path)}, nil
	case "s3":
		if u.Host == "" {
			return Target{}, fmt.Errorf("%q: want s3://bucket/prefix", raw)
		}
		t := Target{Bucket: u.Host, Prefix: strings.Trim(u.Path, "/"), Endpoint: endpoint,
			Region: u.Query().Get("region")}
		if e := u.Query().Get("endpoint"); e != "" && t.Endpoint == "" {
			t.Endpoint = e
		}
		if t.Endpoint != "" {
			e, err := url.Parse(t.Endpoint)
			if err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" {
				return Target{}, fmt.Errorf("endpoint %q: want an http or https URL such as https://minio.example.com:9000", t.Endpoint)
			}
		}
		if t.Region == "" {
			t.Region = getenv("AWS_REGION")
		}
		if t.Region == "" {
			t.Region = "us-east-1"
		}
		t.AccessKeyID = getenv("AWS_ACCESS_KEY_ID")
		t.SecretAccessKey = getenv("AWS_SECRET_ACCESS_KEY")
		t.SessionToken = getenv("AWS_SESSION_TOKEN")
		if (t.AccessKeyID == "") != (t.SecretAccessKey == "") {
			return Target{}, errors.New("set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither (the AWS default credentials)")
		}
		return t, nil
	}
	return Target{}, fmt.Errorf("%q: want s3://bucket/prefix or file:///path", raw)
}

// String names the target without credentials.
func (t Target) String() string {
	if t.Dir != "" {
		return "file://" + t.Dir
	}
	s := "s3://" + t.Bucket + "/" + t.Prefix
	if t.Endpoint != "" {
		s += " at " + t.Endpoint
	}
	return s
}

// key is name's place under the target: <prefix>/<name>.
func (t Target) key(name string) string {
	if t.Dir != "" {
		return filepath.Join(t.Dir, filepath.FromSlash(name))
	}
	return path.Join(t.Prefix, name)
}

// dbName is where a database's replica lives under the target.
func dbName(file string) string { return "db/" + file }

// ltxClient returns the Litestream client for one database's replica.
func (t Target) ltxClient(file string) litestream.ReplicaClient {
	if t.Dir != "" {
		return lsfile.NewReplicaClient(t.key(dbName(file)))
	}
	c := lss3.NewReplicaClient()
	c.Bucket, c.Path, c.Region, c.Endpoint = t.Bucket, t.key(dbName(file)), t.Region, t.Endpoint
	c.ForcePathStyle = t.Endpoint != ""
	if t.SessionToken == "" {
		// Litestream's static credentials take no session token;
		// temporary ones come from its default chain, which reads the
		// same AWS_… variables.
		c.AccessKeyID, c.SecretAccessKey = t.AccessKeyID, t.SecretAccessKey
	}
	return c
}

// blobs stores the target's small objects: the files copied from the data
// directory and the record of published checkpoints.
type blobs interface {
	put(ctx context.Context, name string, data []byte) error
	// get returns an error wrapping os.ErrNotExist for a missing object.
	get(ctx context.Context, name string) ([]byte, error)
}

func (t Target) blobs() blobs {
	if t.Dir != "" {
		return dirBlobs{t}
	}
	opts := s3.Options{
		Region:                     t.Region,
		UsePathStyle:               t.Endpoint != "",
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	}
	if t.AccessKeyID != "" {
		opts.Credentials = credentials.NewStaticCredentialsProvider(t.AccessKeyID, t.SecretAccessKey, t.SessionToken)
	}
	if t.Endpoint != "" {
		opts.BaseEndpoint = aws.String(t.Endpoint)
	}
	return s3Blobs{t: t, c: s3.New(opts)}
}

type dirBlobs struct{ t Target }

func (d dirBlobs) put(_ context.Context, name string, data []byte) error {
	p := d.t.key(name)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("couldn't create %s: %w", filepath.Dir(p), err)
	}
	tmp := p + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("couldn't write %s: %w", tmp, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("couldn't write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("couldn't sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("couldn't write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("couldn't replace %s: %w", p, err)
	}
	return nil
}

func (d dirBlobs) get(_ context.Context, name string) ([]byte, error) {
	data, err := os.ReadFile(d.t.key(name))
	if err != nil {
		return nil, fmt.Errorf("couldn't read %s: %w", d.t.key(name), err)
	}
	return data, nil
}

type s3Blobs struct {
	t Target
	c *s3.Client
}

func (b s3Blobs) put(ctx context.Context, name string, data []byte) error {
	_, err := b.c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(b.t.Bucket), Key: aws.String(b.t.key(name)),
		Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data))),
	})
	if err != nil {
		return fmt.Errorf("couldn't write s3://%s/%s: %w", b.t.Bucket, b.t.key(name), err)
	}
	return nil
}

func (b s3Blobs) get(ctx context.Context, name string) ([]byte, error) {
	out, err := b.c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b.t.Bucket), Key: aws.String(b.t.key(name))})
	if err != nil {
		var nsk *s3types.NoSuchKey
		if errors.As(err, &nsk) {
			return nil, fmt.Errorf("s3://%s/%s: %w", b.t.Bucket, b.t.key(name), os.ErrNotExist)
		}
		return nil, fmt.Errorf("couldn't read s3://%s/%s: %w", b.t.Bucket, b.t.key(name), err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, fmt.Errorf("couldn't read s3://%s/%s: %w", b.t.Bucket, b.t.key(name), err)
	}
	return data, nil
}
