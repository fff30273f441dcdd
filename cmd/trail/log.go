package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/trailaudit/trail/client"
	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/textsafe"
)

// logCommand fetches what an auditor needs from a Trail server's verifiable
// log (docs/DESIGN.md §3): the verifier key, checkpoints and bundles.
type logCommand struct {
	stdout, stderr io.Writer
}

const logUsage = `say what to do:
  trail log key --server URL | --data DIR
  trail log keys --server URL   the log's key history (for trail verify --key FILE)
  trail log checkpoint --server URL --api-key KEY --org ID [--size N] [--out FILE]
  trail log pull --server URL --api-key KEY --org ID [--from A] [--to B] [--size N] [--since CHECKPOINT_FILE] --out FILE`

func (c *logCommand) Run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("%s", logUsage)
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintf(c.stderr, "Usage:\n%s\n\nRun 'trail log COMMAND -h' for a command's flags; docs/VERIFYING.md explains the steps.\n",
			strings.TrimPrefix(logUsage, "say what to do:\n"))
		return flag.ErrHelp
	}
	fs := flag.NewFlagSet("log "+args[0], flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	switch args[0] {
	case "key":
		return c.key(ctx, fs, args[1:])
	case "keys":
		return c.keys(ctx, fs, args[1:])
	case "checkpoint":
		return c.checkpoint(ctx, fs, args[1:])
	case "pull":
		return c.pull(ctx, fs, args[1:])
	}
	return usagef("unknown log command %q: use key, keys, checkpoint or pull", args[0])
}

// serverFlags name a Trail server and what to ask it about.
type serverFlags struct {
	server string
	apiKey string
	org    string
}

func (s *serverFlags) register(fs *flag.FlagSet) {
	setting{fs}.StringVar(&s.server, "server", "TRAIL_SERVER", "", "URL of the Trail server, e.g. https://trail.example.com")
	setting{fs}.StringVar(&s.apiKey, "api-key", "TRAIL_API_KEY", "", "API key with the events:read scope")
	setting{fs}.StringVar(&s.org, "org", "TRAIL_ORG", "", "organization id (org_…)")
}

// client checks the flags and returns a client for the server.
func (s *serverFlags) client() (*client.Client, error) {
	if s.server == "" {
		return nil, usagef("--server is required (or TRAIL_SERVER): the URL of the Trail server")
	}
	if s.apiKey == "" {
		return nil, usagef("--api-key is required (or TRAIL_API_KEY): a key with the events:read scope")
	}
	if s.org == "" {
		return nil, usagef("--org is required: the id of the organization whose log to fetch")
	}
	return newClient(s.server, s.apiKey)
}

// parseFlagsOnly is parseFlags for commands that take no arguments but
// flags: it refuses any other.
func parseFlagsOnly(fs *flag.FlagSet, args []string) error {
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// flagSet reports whether the flag name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// keys prints the log's key history, checked to be one.
func (c *logCommand) keys(ctx context.Context, fs *flag.FlagSet, args []string) error {
	server := fs.String("server", envString("TRAIL_SERVER", ""), "URL of the Trail server to ask for its key history [TRAIL_SERVER]")
	if err := parseFlagsOnly(fs, args); err != nil {
		return err
	}
	if *server == "" {
		return usagef("--server is required (or TRAIL_SERVER)")
	}
	cl, err := client.New(*server, "", client.WithUserAgent("trail/"+version))
	if err != nil {
		return usagef("--server: %v", err)
	}
	body, err := cl.LogKeys(ctx)
	if err != nil {
		return err
	}
	h, err := ledger.ParseKeyHistory(body)
	if err != nil {
		return fmt.Errorf("the server's answer is not a key history: %w", err)
	}
	fmt.Fprint(c.stdout, h.String())
	return nil
}

func (c *logCommand) key(ctx context.Context, fs *flag.FlagSet, args []string) error {
	server := setting{fs}.String("server", "TRAIL_SERVER", "", "URL of the Trail server to ask for its verifier key (the newest active one; trail log keys gives the history)")
	// Only --data of the storage flags: the key is read from the data
	// directory, no database is opened.
	var sf storageFlags
	storage := flag.NewFlagSet("", flag.ContinueOnError)
	sf.register(storage)
	data := storage.Lookup("data")
	fs.Var(data.Value, data.Name, data.Usage)
	if err := parseFlagsOnly(fs, args); err != nil {
		return err
	}
	offline := flagSet(fs, "data")
	if offline && flagSet(fs, "server") {
		return usagef("give --server or --data, not both")
	}
	if !offline && *server != "" {
		cl, err := newClient(*server, "")
		if err != nil {
			return err
		}
		vkey, err := cl.LogKey(ctx)
		if err != nil {
			return serverError(*server, err)
		}
		if _, err := note.NewVerifier(vkey); err != nil {
			return fmt.Errorf("the server's answer is not a verifier key (<name>+<hash>+<key>): %w", err)
		}
		fmt.Fprintln(c.stdout, vkey)
		return nil
	}
	s, err := ledger.LoadSigner(sf.Data)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no signing key in %s (looked for %s): give the data directory of the Trail server with --data, or ask a running server with --server URL", sf.Data, ledger.SigningKeyFile)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, s.VerifierKey())
	return nil
}

func (c *logCommand) checkpoint(ctx context.Context, fs *flag.FlagSet, args []string) error {
	var sf serverFlags
	sf.register(fs)
	size := fs.Int64("size", 0, "the checkpoint of exactly this tree size; 0 means the newest")
	out := fs.String("out", "", "file to save the checkpoint note in; empty or - means standard output")
	if err := parseFlagsOnly(fs, args); err != nil {
		return err
	}
	if *size < 0 {
		return usagef("--size must be a tree size, 0 or more")
	}
	cl, err := sf.client()
	if err != nil {
		return err
	}
	ck, err := cl.GetCheckpoint(ctx, sf.org, *size, "")
	if err != nil {
		if isCallError(err) {
			return serverError(sf.server, err)
		}
		return fmt.Errorf("the server's answer is not a checkpoint note: %w", err)
	}
	msg := ck.Note
	if got := ledger.OrganizationOf(ck.Origin); got != sf.org {
		return fmt.Errorf("the server sent a checkpoint of %s (origin %q), not of %s", got, ck.Origin, sf.org)
	}
	if *out == "" || *out == "-" {
		_, err := c.stdout.Write(msg)
		return err
	}
	if err := writeFileAtomic(*out, msg, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "Saved checkpoint size %s of %s to %s.\n", commas(ck.Size), sf.org, *out)
	return nil
}

func (c *logCommand) pull(ctx context.Context, fs *flag.FlagSet, args []string) error {
	var sf serverFlags
	sf.register(fs)
	from := fs.Int64("from", 0, "first seq to include")
	to := fs.Int64("to", 0, "seq to stop before; default: the checkpoint's size")
	size := fs.Int64("size", 0, "prove against the checkpoint of exactly this tree size; 0 means the newest")
	since := fs.String("since", "", "a checkpoint file you saved earlier (trail log checkpoint): include the proof that the log only grew since")
	out := fs.String("out", "", "file to save the bundle in (required; - means standard output)")
	if err := parseFlagsOnly(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usagef("--out FILE is required: where to save the bundle (- for standard output)")
	}
	toSet := flagSet(fs, "to")
	switch {
	case *from < 0:
		return usagef("--from must be a seq, 0 or more")
	case toSet && *to < *from:
		return usagef("--to (%d) must not be less than --from (%d)", *to, *from)
	case toSet && *to == 0:
		return usagef("--to 0 selects no record: give a seq above --from, or leave --to out for the whole log")
	case *size < 0:
		return usagef("--size must be a tree size, 0 or more")
	}
	cl, err := sf.client()
	if err != nil {
		return err
	}
	var sinceSize int64
	var old ledger.Checkpoint
	var oldNote []byte
	if *since != "" {
		old, oldNote, err = readCheckpointFile(*since)
		if err != nil {
			return err
		}
		if got := ledger.OrganizationOf(old.Origin); got != sf.org {
			return usagef("--since %s is a checkpoint of %s, not of %s", *since, got, sf.org)
		}
		if *size > 0 && old.Size > *size {
			return usagef("--since %s has size %s, more than --size %s", *since, commas(old.Size), commas(*size))
		}
		sinceSize = old.Size
	}

	opts := client.BundleOptions{From: *from, Size: *size}
	if toSet {
		opts.To = *to
	}
	if sinceSize > 0 {
		opts.Since = oldNote
	}
	body, err := cl.OpenBundle(ctx, sf.org, opts)
	if err != nil {
		return serverError(sf.server, err)
	}
	defer body.Close()
	want := bundleWant{org: sf.org, from: *from, to: -1, size: *size, since: sinceSize}
	if toSet {
		want.to = *to
	}
	sum, err := c.save(body, *out, want)
	if err != nil {
		return err
	}

	what := "an empty range at seq " + commas(sum.from)
	if sum.to > sum.from {
		what = fmt.Sprintf("seq %s–%s", commas(sum.from), commas(sum.to-1))
	}
	line := fmt.Sprintf("Saved %s of %s (%s, %s) under checkpoint size %s", plural(sum.records, "record"), sf.org, what,
		byteSize(sum.bytes), commas(sum.checkpoint.Size))
	w := c.stdout
	if *out == "-" {
		w = c.stderr
	} else {
		line += " to " + *out
	}
	if *since != "" {
		// The proof is checked here, not only by trail verify: a server
		// restored from an older data directory signs checkpoints that fork
		// from ones it handed out, and whoever pulls must hear of it now.
		if err := checkSince(old, sum); err != nil {
			where := "it was saved to " + *out + ": keep it and " + *since + ", they prove the fork"
			if *out == "-" {
				where = "it was written to standard output"
			}
			return fmt.Errorf("%w. The server's log does not extend the checkpoint you saved: its history was rewritten since (a server restored from an older data directory or database, or tampering; see docs/VERIFYING.md). The bundle is not trustworthy; %s", err, where)
		}
		line += fmt.Sprintf(", and checked the consistency proof from your checkpoint size %s (root %s): the log only grew", commas(old.Size), old.Hash)
	}
	fmt.Fprintln(w, line+".")
	return nil
}

// checkSince checks that the bundle's checkpoint extends old: same log, not
// smaller, the same root at the same size, else a consistency proof that
// verifies (RFC 6962 §2.1.2, tlog.CheckTree). The checkpoint's signature is
// not checked here (trail verify does, with the key the auditor trusts).
func checkSince(old ledger.Checkpoint, sum bundleSummary) error {
	ck := sum.checkpoint
	switch {
	case old.Origin != ck.Origin:
		return fmt.Errorf("your checkpoint is of log %q, the bundle's of %q", old.Origin, ck.Origin)
	case old.Size > ck.Size:
		return fmt.Errorf("the server's checkpoint has size %s, less than your checkpoint's %s: the log shrank", commas(ck.Size), commas(old.Size))
	case old.Size == ck.Size:
		if old.Hash != ck.Hash {
			return fmt.Errorf("the server's checkpoint and yours both have size %s but different roots (%s, yours %s): two histories were signed", commas(ck.Size), ck.Hash, old.Hash)
		}
		return nil
	case old.Size == 0:
		return nil
	case sum.sinceSize != old.Size:
		return fmt.Errorf("the bundle carries no consistency proof from your checkpoint size %s", commas(old.Size))
	}
	if err := tlog.CheckTree(sum.sinceProof, ck.Size, ck.Hash, old.Size, old.Hash); err != nil {
		return fmt.Errorf("FORK: the server's checkpoint size %s (root %s) does not extend your checkpoint size %s (root %s): %v",
			commas(ck.Size), ck.Hash, commas(old.Size), old.Hash, err)
	}
	return nil
}

// bundleWant is what pull asked the server for, to check the bundle against.
type bundleWant struct {
	org      string
	from, to int64 // to = -1: the checkpoint's size
	size     int64 // 0: the newest checkpoint
	since    int64 // 0: no consistency proof asked for
}

// check reports how a bundle's header differs from what was asked for.
func (w bundleWant) check(ck ledger.Checkpoint, from, to int64) error {
	if got := ledger.OrganizationOf(ck.Origin); got != w.org {
		return fmt.Errorf("the server sent a bundle of %s (checkpoint origin %q), not of %s", got, ck.Origin, w.org)
	}
	if w.size > 0 && ck.Size != w.size {
		return fmt.Errorf("the server sent a bundle under checkpoint size %s, not %s", commas(ck.Size), commas(w.size))
	}
	if from != w.from || (w.to >= 0 && to != w.to) {
		return fmt.Errorf("the server sent a bundle of the range [%d, %d), not the range asked for", from, to)
	}
	return nil
}

// bundleSummary is what pull read from a bundle as it saved it.
type bundleSummary struct {
	checkpoint ledger.Checkpoint
	from, to   int64
	records    int64
	bytes      int64
	sinceSize  int64 // the bundle's since line: the proof's older size
	sinceProof tlog.TreeProof
}

// save streams a bundle from body into the file out (through out.tmp, renamed
// once complete) or to standard output for "-". It reads the bundle as it
// passes, to report on it and to notice one that breaks off; it holds no
// more than a line of it in memory.
func (c *logCommand) save(body io.Reader, out string, want bundleWant) (bundleSummary, error) {
	if out == "-" {
		var w io.Writer = c.stdout
		if isTerminal(w) { // records' free text is shown escaped, never obeyed
			tw := textsafe.NewWriter(w)
			defer tw.Close()
			w = tw
		}
		bw := bufio.NewWriterSize(w, 1<<20)
		sum, err := c.copyBundle(bw, body, want)
		if err == nil {
			err = bw.Flush()
		}
		return sum, err
	}
	tmp := out + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return bundleSummary{}, fmt.Errorf("couldn't create %s: %w", tmp, err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	sum, err := c.copyBundle(bw, body, want)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, out)
	}
	if err != nil {
		os.Remove(tmp)
		return sum, fmt.Errorf("%w; nothing was saved to %s", err, out)
	}
	return sum, nil
}

// copyBundle copies a bundle from src to dst byte for byte, reading it with
// ledger.ReadBundle on the way and checking it is the bundle asked for.
func (c *logCommand) copyBundle(dst io.Writer, src io.Reader, want bundleWant) (bundleSummary, error) {
	var sum bundleSummary
	d := &downloadReader{r: src, w: dst}
	prog := newProgress(c.stderr)
	defer prog.clear()
	problem := func(err error) error {
		switch {
		case d.writeErr != nil:
			return fmt.Errorf("couldn't write the bundle: %w", d.writeErr)
		case d.readErr != nil:
			return fmt.Errorf("the download broke off after %s: %w", byteSize(d.n), d.readErr)
		case errors.Is(err, ledger.ErrBundleTruncated):
			return fmt.Errorf("the server's answer ends after %s, before the bundle's end line (the server may have failed while writing it: see its log)", byteSize(d.n))
		}
		return fmt.Errorf("the server's answer is not a well-formed bundle: %w", err)
	}
	br, err := ledger.ReadBundle(d)
	if err != nil {
		return sum, problem(err)
	}
	if sum.checkpoint, err = checkpointOf(br.Note); err != nil {
		return sum, problem(err)
	}
	sum.from, sum.to = br.From, br.To
	if err := want.check(sum.checkpoint, br.From, br.To); err != nil {
		return sum, err
	}
	for {
		e, err := br.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return sum, problem(err)
		}
		if e.Record != nil {
			if sum.records++; sum.records%1024 == 1 {
				prog.update(" downloaded %s (%s)", plural(sum.records, "record"), byteSize(d.n))
			}
		}
	}
	// ReadBundle checked that nothing follows the end line; this only
	// makes sure every byte read has reached dst.
	if _, err := io.Copy(io.Discard, d); err != nil {
		return sum, problem(err)
	}
	sum.bytes = d.n
	sum.sinceSize, sum.sinceProof = br.SinceSize, br.SinceProof
	if want.since > 0 && br.SinceSize != want.since {
		return sum, fmt.Errorf("the server left out the proof that the log extends your checkpoint size %s", commas(want.since))
	}
	return sum, nil
}

// downloadReader passes what it reads from r on to w, counting the bytes and
// keeping apart the errors of each side.
type downloadReader struct {
	r        io.Reader
	w        io.Writer
	n        int64
	readErr  error
	writeErr error
}

func (d *downloadReader) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	if n > 0 {
		if _, werr := d.w.Write(p[:n]); werr != nil {
			d.writeErr = werr
			return n, werr
		}
		d.n += int64(n)
	}
	if err != nil && err != io.EOF {
		d.readErr = err
	}
	return n, err
}

// checkpointOf parses the body of a checkpoint note (the text before the
// blank line that starts its signatures) without checking the signatures:
// trail verify does that, with the key the auditor trusts.
func checkpointOf(msg []byte) (ledger.Checkpoint, error) {
	i := bytes.Index(msg, []byte("\n\n"))
	if i < 0 {
		return ledger.Checkpoint{}, fmt.Errorf("%w: no blank line before the signatures", ledger.ErrMalformedCheckpoint)
	}
	return ledger.ParseCheckpointBody(msg[:i+1])
}

// readCheckpointFile reads a checkpoint note saved by trail log checkpoint,
// and returns it parsed and as it is.
func readCheckpointFile(path string) (ledger.Checkpoint, []byte, error) {
	msg, err := readSmallFile(path, 64<<10)
	if err != nil {
		return ledger.Checkpoint{}, nil, usageError{fmt.Errorf("--since: %w", err)}
	}
	ck, err := checkpointOf(msg)
	if err != nil {
		return ledger.Checkpoint{}, nil, usagef("--since %s is not a checkpoint note (save one with trail log checkpoint): %w", path, err)
	}
	return ck, msg, nil
}

// readSmallFile reads a file of at most limit bytes.
func readSmallFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("couldn't read %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %s", path, byteSize(limit))
	}
	return b, nil
}

// writeFileAtomic writes data to path.tmp and renames it to path, so path
// is never left half written.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return fmt.Errorf("couldn't create %s: %w", tmp, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("couldn't save %s: %w", path, err)
	}
	return nil
}

// plural returns "1 record", "2 records", "1,000 records".
func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return commas(n) + " " + noun + "s"
}

// newClient returns a client of the Trail server at server (a URL given
// with --server), calling with apiKey ("" for the public endpoints).
func newClient(server, apiKey string) (*client.Client, error) {
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usagef("--server %q: give the server's URL, e.g. https://trail.example.com", server)
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = 2 * time.Minute
	// No overall timeout: a bundle of a large log takes as long as it takes.
	return client.New(server, apiKey, client.WithHTTPClient(&http.Client{Transport: t}),
		client.WithUserAgent("trail/"+version))
}

// isCallError reports whether err is the server's answer or a failure to
// reach it, rather than a problem with what it sent.
func isCallError(err error) bool {
	var ce *client.Error
	return errors.As(err, &ce) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// serverError says in the command's words what the server at server
// answered, or why it could not be reached; other errors pass unchanged.
func serverError(server string, err error) error {
	var ce *client.Error
	if !errors.As(err, &ce) {
		return err
	}
	where := server
	if u, perr := url.Parse(server); perr == nil {
		where = u.Redacted()
	}
	if ce.StatusCode == 0 {
		cause := ce.Err
		var ue *url.Error
		if errors.As(cause, &ue) {
			cause = ue.Err // its message repeats the URL
		}
		return fmt.Errorf("couldn't reach the Trail server at %s (is it running, and is --server right?): %w", where, cause)
	}
	status := fmt.Sprintf("%d %s", ce.StatusCode, http.StatusText(ce.StatusCode))
	if ce.Code != "" || len(ce.Errors) > 0 {
		what := ce.Message
		for _, fe := range ce.Errors {
			what += fmt.Sprintf("; %s: %s", fe.Field, fe.Message)
		}
		if ce.Code != "" {
			status += ", " + ce.Code
		}
		return fmt.Errorf("the server refused: %s (%s)", what, status)
	}
	// Not Trail's JSON error: the client quoted the status and the body.
	text := strings.TrimSpace(strings.TrimPrefix(ce.Message, http.StatusText(ce.StatusCode)))
	if text == "" {
		text = "no message"
	}
	hint := ""
	if ce.StatusCode == http.StatusNotFound {
		hint = "; is --server a Trail server recent enough to serve its log?"
	}
	return fmt.Errorf("the server answered %s: %q%s", status, text, hint)
}
