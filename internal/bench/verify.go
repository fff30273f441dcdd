package bench

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/trailaudit/trail/client"
	"github.com/trailaudit/trail/internal/ledger"
)

// VerifyOptions configure a verify run.
type VerifyOptions struct {
	Org    string // organization whose log to pull; with Seed, created when empty
	Seed   int64  // events to store first
	Runs   int    // timings are the best of this many
	Target string
	// Step, when set, is told what the run is doing (for a progress line).
	Step func(what string)
}

// Verify pulls a bundle of an organization's whole log and times
// ledger.Verify over it beside SHA-256 of the same file, so the ratio holds
// on any machine.
func Verify(ctx context.Context, c *Client, opts VerifyOptions) (Report, error) {
	rep := Report{Mode: "verify", RunID: NewRunID(), Target: opts.Target}
	step := func(s string) {
		if opts.Step != nil {
			opts.Step(s)
		}
	}
	org, err := seedOrganization(ctx, c, rep.RunID, opts.Org, opts.Seed, step)
	if err != nil {
		return rep, err
	}
	if org == "" {
		return rep, fmt.Errorf("name the organization whose log to verify (--org), or store events first with --seed N")
	}
	rep.Orgs = 1
	step("waiting for a checkpoint that covers them")
	if err := waitCheckpoint(ctx, c, org, opts.Seed, 2*time.Minute); err != nil {
		return rep, err
	}
	vkey, err := c.API.LogKey(ctx)
	if err != nil {
		return rep, fmt.Errorf("couldn't fetch the verifier key: %w", err)
	}

	dir, err := os.MkdirTemp("", "trail-bench-bundle-")
	if err != nil {
		return rep, fmt.Errorf("couldn't create a directory for the bundle: %w", err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "bundle")
	step("downloading the bundle")
	t0 := time.Now()
	size, err := download(ctx, c, org, path)
	if err != nil {
		return rep, err
	}
	v := &VerifyStats{Organization: org, Bytes: size, DownloadSeconds: time.Since(t0).Seconds(), Runs: max(opts.Runs, 1)}
	rep.Verify = v

	var bestVerify, bestHash time.Duration
	for run := range v.Runs {
		step(fmt.Sprintf("verifying, run %d of %d", run+1, v.Runs))
		d, vr, err := timeVerify(ctx, path, vkey)
		if err != nil {
			return rep, err
		}
		v.Records, v.Verified = vr.Records, vr.String()
		h, err := timeSHA256(path)
		if err != nil {
			return rep, err
		}
		if run == 0 || d < bestVerify {
			bestVerify = d
		}
		if run == 0 || h < bestHash {
			bestHash = h
		}
	}
	v.VerifySeconds, v.SHA256Seconds = bestVerify.Seconds(), bestHash.Seconds()
	v.RecordsPerSec = float64(v.Records) / v.VerifySeconds
	v.VerifyMBPerSec = float64(v.Bytes) / 1e6 / v.VerifySeconds
	v.SHA256MBPerSec = float64(v.Bytes) / 1e6 / v.SHA256Seconds
	v.RatioToSHA256 = v.VerifySeconds / v.SHA256Seconds
	return rep, nil
}

// timeVerify runs ledger.Verify over the file at path.
func timeVerify(ctx context.Context, path, vkey string) (time.Duration, *ledger.Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, nil, err
	}
	defer f.Close()
	if err := ctx.Err(); err != nil {
		return 0, nil, err
	}
	t0 := time.Now()
	rep, err := ledger.Verify(bufio.NewReaderSize(f, 1<<20), vkey, ledger.VerifyOptions{})
	d := time.Since(t0)
	if err != nil {
		if errors.Is(err, ledger.ErrVerificationFailed) {
			return 0, nil, fmt.Errorf("the bundle does not verify: %s", rep.String())
		}
		return 0, nil, fmt.Errorf("verifying the bundle: %w", err)
	}
	return d, &rep, nil
}

// timeSHA256 hashes the file at path, read the same way Verify reads it.
func timeSHA256(path string) (time.Duration, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	t0 := time.Now()
	h := sha256.New()
	if _, err := io.Copy(h, bufio.NewReaderSize(f, 1<<20)); err != nil {
		return 0, fmt.Errorf("hashing the bundle: %w", err)
	}
	h.Sum(nil)
	return time.Since(t0), nil
}

// download saves the bundle of org's whole log into the file dst.
func download(ctx context.Context, c *Client, org, dst string) (int64, error) {
	body, err := c.API.OpenBundle(ctx, org, client.BundleOptions{})
	if err != nil {
		return 0, fmt.Errorf("couldn't pull the bundle: %w", err)
	}
	defer body.Close()
	f, err := os.Create(dst)
	if err != nil {
		return 0, fmt.Errorf("couldn't save the bundle: %w", err)
	}
	n, err := io.Copy(f, body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("downloading the bundle broke off after %d bytes: %w", n, err)
	}
	return n, nil
}

// waitCheckpoint waits until the organization has a signed checkpoint of at
// least size records (at least one when size is 0).
func waitCheckpoint(ctx context.Context, c *Client, org string, size int64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var got int64
	for {
		cp, err := c.API.GetCheckpoint(ctx, org, 0, "")
		var ce *client.Error
		switch {
		case err == nil:
			if got = cp.Size; got >= max(size, 1) {
				return nil
			}
		case errors.As(err, &ce) && ce.StatusCode == http.StatusNotFound && ce.Code == "checkpoint_not_found":
		default:
			return fmt.Errorf("couldn't read the checkpoint of %s: %w", org, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no checkpoint of %s covers %d events after %v (newest: %d)", org, size, timeout, got)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// seedOrganization stores n events (none when n is 0) in org, or in a new
// organization when org is "", and returns the organization.
func seedOrganization(ctx context.Context, c *Client, runID, org string, n int64, step func(string)) (string, error) {
	if n <= 0 {
		return org, nil
	}
	if org == "" {
		orgs, err := c.CreateOrganizations(ctx, runID, 1)
		if err != nil {
			return "", err
		}
		org = orgs[0]
	}
	step(fmt.Sprintf("storing %d events in %s", n, org))
	if _, err := seed(ctx, c, runID, []string{org}, n, nil); err != nil {
		return "", err
	}
	return org, nil
}
