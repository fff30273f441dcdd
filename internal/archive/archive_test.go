package archive

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpenOptions(t *testing.T) {
	env := func(string) string { return "" }
	dir := t.TempDir()
	cases := []struct {
		name string
		opts Options
		want string // "" when valid; else a word of the error
	}{
		{"directory", Options{URL: "file://" + dir}, ""},
		{"bucket", Options{URL: "s3://bucket/prefix"}, ""},
		{"bucket with lock", Options{URL: "s3://bucket/prefix", LockMode: LockCompliance, LockDays: 2555}, ""},
		{"governance", Options{URL: "s3://bucket", LockMode: LockGovernance, LockDays: 1}, ""},
		{"lock on a directory", Options{URL: "file://" + dir, LockMode: LockGovernance, LockDays: 1}, "s3://"},
		{"unknown mode", Options{URL: "s3://bucket", LockMode: "forever", LockDays: 1}, "GOVERNANCE"},
		{"days without mode", Options{URL: "s3://bucket", LockDays: 3}, "lock mode"},
		{"mode without days", Options{URL: "s3://bucket", LockMode: LockCompliance}, "36500"},
		{"too many days", Options{URL: "s3://bucket", LockMode: LockCompliance, LockDays: 40000}, "36500"},
		{"not a URL we know", Options{URL: "ftp://x/y"}, "s3://"},
		{"relative directory", Options{URL: "file://relative/dir"}, "file"},
		{"bad endpoint", Options{URL: "s3://bucket", Endpoint: "minio:9000"}, "endpoint"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.opts.Getenv = env
			_, err := Open(c.opts)
			switch {
			case c.want == "" && err != nil:
				t.Errorf("Open: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("Open = %v, want an error mentioning %q", err, c.want)
			}
		})
	}
}

func TestDirectoryRoundTrip(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(Options{URL: "file://" + dir})
	if err != nil {
		t.Fatal(err)
	}
	name := BundleName("org_01JTARCHIVE0000000000000001", 0, 256)
	if want := "org_01JTARCHIVE0000000000000001/00000000000000000000-00000000000000000256.bundle"; name != want {
		t.Errorf("BundleName = %s, want %s", name, want)
	}
	for _, data := range []string{"trail-bundle v1\nfirst\n", "trail-bundle v1\nreplaced\n"} {
		if err := s.Put(ctx, name, []byte(data)); err != nil {
			t.Fatal(err)
		}
		for _, open := range []func() (io.ReadCloser, error){
			func() (io.ReadCloser, error) { return s.Open(ctx, name) },
			func() (io.ReadCloser, error) { return OpenURL(ctx, "file://"+filepath.Join(dir, name), "", nil) },
		} {
			rc, err := open()
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(rc)
			rc.Close()
			if string(got) != data {
				t.Errorf("read back %q, want %q", got, data)
			}
		}
	}
	if _, err := s.Open(ctx, "org_x/missing.bundle"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open of a missing object: %v, want os.ErrNotExist", err)
	}
	if _, err := OpenURL(ctx, "s3://bucket-only", "", nil); err == nil {
		t.Error("OpenURL of a bucket without a key succeeded")
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, "*", "*.tmp"))
	if len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}
