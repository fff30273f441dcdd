package main

import (
	"archive/tar"
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// backupCommand is `trail backup FILE`: a consistent snapshot of the
// embedded data directory, taken while serve runs (docs/BACKUP.md).
type backupCommand struct {
	stdout, stderr io.Writer
}

// backupDatabases are the databases a backup holds: the log (with the
// witness cosignatures). The search index is rebuilt from the events.
func backupDatabases() []string { return []string{"trail.db"} }

func (c *backupCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	data := fs.String("data", envString("TRAIL_DATA", "./trail-data"), "data directory to back up [TRAIL_DATA]")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("want one argument, the file to write: trail backup FILE")
	}
	out := fs.Arg(0)
	if !fileExists(filepath.Join(*data, "trail.db")) {
		return usagef("%s holds no trail.db: give the data directory of an embedded deployment with --data", *data)
	}
	start := time.Now()
	tmpDir, err := os.MkdirTemp(filepath.Dir(out), ".trail-backup-")
	if err != nil {
		return fmt.Errorf("couldn't create a temporary directory beside %s: %w", out, err)
	}
	defer os.RemoveAll(tmpDir)
	var entries []string // paths to pack, in order
	for _, name := range backupDatabases() {
		src := filepath.Join(*data, name)
		if !fileExists(src) {
			continue
		}
		dst := filepath.Join(tmpDir, name)
		if err := snapshotDatabase(ctx, src, dst); err != nil {
			return err
		}
		entries = append(entries, dst)
	}
	for _, p := range replicatedFiles(*data) {
		if fileExists(p) {
			entries = append(entries, p)
		}
	}
	n, err := writeTar(out, entries)
	if err != nil {
		return err
	}
	var names []string
	for _, e := range entries {
		names = append(names, filepath.Base(e))
	}
	fmt.Fprintf(c.stdout, "Backed up %s (%s) to %s in %s. It holds the deployment's keys: keep it as safe as them.\n",
		strings.Join(names, ", "), mib(n), out, time.Since(start).Round(time.Millisecond))
	return nil
}

// snapshotDatabase writes a consistent copy of the SQLite database at src
// to dst with VACUUM INTO: one read transaction, beside a running writer.
func snapshotDatabase(ctx context.Context, src, dst string) error {
	v := url.Values{}
	v.Add("mode", "ro")
	v.Add("_pragma", "busy_timeout(10000)")
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: src}).EscapedPath()+"?"+v.Encode())
	if err != nil {
		return fmt.Errorf("couldn't open %s: %w", src, err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, dst); err != nil {
		return fmt.Errorf("couldn't snapshot %s: %w", src, err)
	}
	return nil
}

// writeTar packs files (by base name) into a new tar file at out, only
// its owner may read it, and returns the bytes packed.
func writeTar(out string, files []string) (int64, error) {
	tmp := out + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, fmt.Errorf("couldn't create %s: %w", tmp, err)
	}
	defer os.Remove(tmp)
	tw := tar.NewWriter(f)
	var total int64
	for _, p := range files {
		n, err := addToTar(tw, p)
		if err != nil {
			f.Close()
			return 0, err
		}
		total += n
	}
	if err := tw.Close(); err != nil {
		f.Close()
		return 0, fmt.Errorf("couldn't write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return 0, fmt.Errorf("couldn't sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("couldn't write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return 0, fmt.Errorf("couldn't write %s: %w", out, err)
	}
	return total, nil
}

func addToTar(tw *tar.Writer, p string) (int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, fmt.Errorf("couldn't read %s: %w", p, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("couldn't read %s: %w", p, err)
	}
	if err := tw.WriteHeader(&tar.Header{Name: filepath.Base(p), Mode: 0o600, Size: fi.Size(), ModTime: fi.ModTime(), Typeflag: tar.TypeReg}); err != nil {
		return 0, fmt.Errorf("couldn't pack %s: %w", p, err)
	}
	n, err := io.Copy(tw, f)
	if err != nil {
		return 0, fmt.Errorf("couldn't pack %s: %w", p, err)
	}
	return n, nil
}

// unpackBackup writes the files of a backup into dir; it knows their
// names and refuses any other.
func unpackBackup(file, dir string) (int64, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, fmt.Errorf("couldn't read the backup: %w", err)
	}
	defer f.Close()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, fmt.Errorf("couldn't create %s: %w", dir, err)
	}
	known := append(backupDatabases(), replicatedNames()...)
	tr := tar.NewReader(f)
	var total int64
	sawLog := false
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return 0, fmt.Errorf("%s is not a backup written by trail backup: %w", file, err)
		}
		if h.Typeflag != tar.TypeReg || !slices.Contains(known, h.Name) {
			return 0, fmt.Errorf("%s is not a backup written by trail backup: it holds %q", file, h.Name)
		}
		sawLog = sawLog || h.Name == "trail.db"
		out, err := os.OpenFile(filepath.Join(dir, h.Name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return 0, fmt.Errorf("couldn't write %s: %w", h.Name, err)
		}
		n, err := io.Copy(out, tr)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return 0, fmt.Errorf("couldn't write %s: %w", filepath.Join(dir, h.Name), err)
		}
		total += n
	}
	if !sawLog {
		return 0, fmt.Errorf("%s holds no trail.db: not a backup written by trail backup", file)
	}
	return total, nil
}
