// Package archive is Trail's verifiable archive (docs/ARCHIVE.md): before
// retention deletes record bodies, the Archiver writes them as bundles —
// the format `trail verify` checks (package ledger) — to S3-compatible
// storage or a directory, with S3 Object Lock retention where configured,
// and only once the storage has confirmed an object does it let retention
// delete what the object holds (store.ArchiveStore's held position).
//
// A bundle in the archive is checked later like any other: `trail verify
// s3://bucket/key --key <the deployment's verifier key>`.
package archive

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/trailaudit/trail/internal/replicate"
)

// Object Lock modes (S3's x-amz-object-lock-mode).
const (
	LockGovernance = "GOVERNANCE"
	LockCompliance = "COMPLIANCE"
)

// Options configure a Store.
type Options struct {
	// URL is s3://bucket/prefix or file:///directory.
	URL string
	// Endpoint names an S3-compatible server (empty: AWS).
	Endpoint string
	// LockMode, when set, puts every object under S3 Object Lock in that
	// mode (LockGovernance or LockCompliance) until LockDays from its
	// write. The bucket must have Object Lock enabled.
	LockMode string
	LockDays int
	// Getenv reads the AWS credentials (default os.Getenv).
	Getenv func(string) string
	// Now is the clock of the lock's retain-until date (default time.Now).
	Now func() time.Time
}

// Store is where archived bundles are written and read back.
type Store struct {
	t    replicate.Target
	opts Options
	s3   *s3.Client // nil for a directory
}

// Open checks opts and returns the Store they name.
func Open(opts Options) (*Store, error) {
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	t, err := replicate.ParseTarget(opts.URL, opts.Endpoint, opts.Getenv)
	if err != nil {
		return nil, err
	}
	switch opts.LockMode {
	case "":
		if opts.LockDays != 0 {
			return nil, errors.New("a lock period needs a lock mode (GOVERNANCE or COMPLIANCE)")
		}
	case LockGovernance, LockCompliance:
		if t.Dir != "" {
			return nil, fmt.Errorf("object lock %s needs an s3:// archive, not %s", opts.LockMode, opts.URL)
		}
		if opts.LockDays < 1 || opts.LockDays > 36500 {
			return nil, fmt.Errorf("object lock period %d days: give a whole number of days from 1 to 36500", opts.LockDays)
		}
	default:
		return nil, fmt.Errorf("object lock mode %q: want GOVERNANCE or COMPLIANCE", opts.LockMode)
	}
	s := &Store{t: t, opts: opts}
	if t.Dir == "" {
		o := s3.Options{
			Region:                     t.Region,
			UsePathStyle:               t.Endpoint != "",
			RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
			ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
		}
		if t.AccessKeyID != "" {
			o.Credentials = credentials.NewStaticCredentialsProvider(t.AccessKeyID, t.SecretAccessKey, t.SessionToken)
		}
		if t.Endpoint != "" {
			o.BaseEndpoint = aws.String(t.Endpoint)
		}
		s.s3 = s3.New(o)
	}
	return s, nil
}

// String names the store without credentials.
func (s *Store) String() string { return s.t.String() }

// Location is the URL of the object name: s3://bucket/prefix/name, or
// the file's path.
func (s *Store) Location(name string) string {
	if s.s3 == nil {
		return filepath.Join(s.t.Dir, filepath.FromSlash(name))
	}
	return "s3://" + s.t.Bucket + "/" + s.key(name)
}

func (s *Store) key(name string) string { return path.Join(s.t.Prefix, name) }

// Put writes data as the object name and confirms it: it returns only once
// the storage reports the object stored with data's length (and, for S3,
// its MD5, which the storage checked against Content-MD5).
func (s *Store) Put(ctx context.Context, name string, data []byte) error {
	if s.s3 == nil {
		return s.putFile(name, data)
	}
	sum := md5.Sum(data)
	in := &s3.PutObjectInput{
		Bucket:        aws.String(s.t.Bucket),
		Key:           aws.String(s.key(name)),
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
		ContentMD5:    aws.String(base64.StdEncoding.EncodeToString(sum[:])),
		ContentType:   aws.String("text/plain; charset=utf-8"),
	}
	if s.opts.LockMode != "" {
		in.ObjectLockMode = s3types.ObjectLockMode(s.opts.LockMode)
		in.ObjectLockRetainUntilDate = aws.Time(s.opts.Now().UTC().Add(time.Duration(s.opts.LockDays) * 24 * time.Hour).Truncate(time.Second))
	}
	if _, err := s.s3.PutObject(ctx, in); err != nil {
		return fmt.Errorf("couldn't write %s: %w", s.Location(name), err)
	}
	head, err := s.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.t.Bucket), Key: aws.String(s.key(name))})
	if err != nil {
		return fmt.Errorf("couldn't confirm %s was stored: %w", s.Location(name), err)
	}
	if head.ContentLength == nil || *head.ContentLength != int64(len(data)) {
		return fmt.Errorf("%s holds %v bytes after writing %d", s.Location(name), aws.ToInt64(head.ContentLength), len(data))
	}
	return nil
}

func (s *Store) putFile(name string, data []byte) error {
	p := s.Location(name)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("couldn't create %s: %w", filepath.Dir(p), err)
	}
	tmp := p + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("couldn't write %s: %w", tmp, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("couldn't write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("couldn't write %s: %w", p, err)
	}
	if d, err := os.Open(filepath.Dir(p)); err == nil {
		d.Sync() //nolint:errcheck // best effort: the rename is what matters
		d.Close()
	}
	return nil
}

// Open returns the object name for reading. A missing object is an error
// wrapping os.ErrNotExist.
func (s *Store) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	if s.s3 == nil {
		return os.Open(s.Location(name))
	}
	out, err := s.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.t.Bucket), Key: aws.String(s.key(name))})
	if err != nil {
		var nsk *s3types.NoSuchKey
		if errors.As(err, &nsk) {
			return nil, fmt.Errorf("%s: %w", s.Location(name), os.ErrNotExist)
		}
		return nil, fmt.Errorf("couldn't read %s: %w", s.Location(name), err)
	}
	return out.Body, nil
}

// OpenURL opens one object given by its full URL, s3://bucket/key (or
// file:///path), as `trail verify` reads an archived bundle.
func OpenURL(ctx context.Context, url, endpoint string, getenv func(string) string) (io.ReadCloser, error) {
	dir, name := path.Split(strings.TrimRight(url, "/"))
	if name == "" || dir == "s3://" {
		return nil, fmt.Errorf("%q: want s3://bucket/key of one object", url)
	}
	s, err := Open(Options{URL: dir, Endpoint: endpoint, Getenv: getenv})
	if err != nil {
		return nil, err
	}
	return s.Open(ctx, name)
}

// BundleName is the object name of the archived bundle of org's records
// [from, to): seqs zero-padded to 20 digits, so that names sort in log
// order.
func BundleName(org string, from, to int64) string {
	return fmt.Sprintf("%s/%020d-%020d.bundle", org, from, to)
}

// FinalBundleName is the object name of an organization's final bundle,
// written when it was deleted, under its checkpoint of size.
func FinalBundleName(org string, size int64) string {
	return fmt.Sprintf("%s/final-%020d.bundle", org, size)
}
