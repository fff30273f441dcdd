package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/trailaudit/trail/internal/archive"
	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/textsafe"
	"github.com/trailaudit/trail/internal/witness"
)

// verifyCommand checks a bundle offline against a verifier key (docs/DESIGN.md §3)
// and says in plain words what it proved. Exit status: 0 verified, 1 not
// verified (or the check could not be made), 2 a mistake in the command line.
type verifyCommand struct {
	stdin          io.Reader // nil means os.Stdin
	stdout, stderr io.Writer
}

const verifyUsage = "trail verify FILE|s3://BUCKET/KEY --key VERIFIER_KEY|KEYS_FILE [--key …] [--endpoint URL] [--since CHECKPOINT_FILE] [--witness WITNESS_KEY … --quorum N]"

func (c *verifyCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s\n\nFILE is a bundle (trail log pull), or - for standard input; s3://BUCKET/KEY a bundle in the archive (docs/ARCHIVE.md), read with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or the AWS default chain.\n\n", verifyUsage)
		fs.PrintDefaults()
	}
	var keyFlags repeatFlag
	fs.Var(&keyFlags, "key", "the log's verifier key (<name>+<hash>+<key>), obtained out of band, or a file holding one per line, or the log's key history (trail log keys); repeatable: the checkpoint must be signed by one of them [TRAIL_VERIFIER_KEY]")
	sinceFlag := fs.String("since", "", "a checkpoint file you saved earlier: also check that the bundle's checkpoint extends it")
	var witnessFlags repeatFlag
	fs.Var(&witnessFlags, "witness", "a witness's verifier key (or a file of them, one per line): require its cosignature on the bundle's checkpoint (repeatable; see --quorum)")
	quorum := fs.Int("quorum", 0, "how many of the --witness keys must have cosigned the checkpoint (default: all of them)")
	endpoint := setting{fs}.String("endpoint", "TRAIL_ARCHIVE_ENDPOINT", "", "URL of the S3-compatible server an s3:// FILE is on (default: AWS)")
	files, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(files) != 1 {
		return usagef("give one bundle file to verify (- for standard input): %s", verifyUsage)
	}
	keys, err := verifierKeys(keyFlags)
	if err != nil {
		return err
	}
	witnesses, err := witnessKeys(witnessFlags)
	if err != nil {
		return err
	}
	if *quorum < 0 || *quorum > len(witnesses) {
		return usagef("--quorum %d: want between 1 and the number of --witness keys given (%d)", *quorum, len(witnesses))
	}
	if *quorum == 0 {
		*quorum = len(witnesses)
	}
	opts := ledger.VerifyOptions{Keys: keys}
	if *sinceFlag != "" {
		if opts.Since, err = readSmallFile(*sinceFlag, 64<<10); err != nil {
			return usageError{fmt.Errorf("--since: %w", err)}
		}
	}

	var in io.Reader
	switch {
	case files[0] == "-":
		in = c.stdin
		if in == nil {
			in = os.Stdin
		}
	case strings.HasPrefix(files[0], "s3://"):
		rc, err := archive.OpenURL(ctx, files[0], *endpoint, os.Getenv)
		if err != nil {
			return err
		}
		defer rc.Close()
		in = rc
	default:
		f, err := os.Open(files[0])
		if err != nil {
			return usageError{err}
		}
		defer f.Close()
		in = f
	}
	// Stop reading when interrupted: main catches the signal, so the
	// process only ends once Verify returns.
	in = ctxReader{ctx: ctx, r: in}

	prog := newProgress(c.stderr)
	if prog.w != nil {
		opts.ProgressEvery = 4096
		opts.Progress = func(n int64) { prog.update(" verified %s", plural(n, "record")) }
	}
	rep, err := ledger.Verify(in, "", opts)
	prog.clear()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	switch {
	case err == nil:
		fmt.Fprintln(c.stdout, textsafe.TerminalLines(rep.String()))
		if len(witnesses) > 0 {
			return c.checkWitnesses(rep, witnesses, *quorum)
		}
		return nil
	case errors.Is(err, ledger.ErrVerificationFailed):
		fmt.Fprintln(c.stdout, textsafe.TerminalLines(rep.String()))
		return fmt.Errorf("%w: %s, listed above", ledger.ErrVerificationFailed, plural(rep.ProblemCount, "problem"))
	}
	return err
}

// ctxReader reads from r until ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// verifierKeys returns the keys the --key values give: verifier keys
// (active), files of them, and key histories, merged into one history.
func verifierKeys(args []string) (*ledger.KeyHistory, error) {
	if len(args) == 0 {
		return nil, usagef("--key is required (or TRAIL_VERIFIER_KEY): the log's verifier key, obtained out of band (see trail log key), a file holding it, or the log's key history (trail log keys)")
	}
	h := &ledger.KeyHistory{}
	for _, a := range args {
		part, err := verifierKeyArg(a)
		if err != nil {
			return nil, err
		}
		for _, k := range part.Keys {
			if err := h.Add(k); err != nil {
				return nil, usagef("--key: %v", err)
			}
		}
	}
	return h, nil
}

// verifierKeyArg reads one --key value: a verifier key, or a file holding
// verifier keys one per line, or a key history.
func verifierKeyArg(arg string) (*ledger.KeyHistory, error) {
	arg = strings.TrimSpace(arg)
	if arg == "" {
		return nil, usagef("--key is empty: give the log's verifier key, or a file holding it")
	}
	if _, err := note.NewVerifier(arg); err == nil {
		return ledger.PlainKeys(arg)
	}
	if strings.HasPrefix(arg, "PRIVATE+KEY+") {
		// Never echo a private key back.
		return nil, usagef("--key is a private signing key: give its verifier key instead (trail log key prints it); and keep the private key secret")
	}
	raw, err := readSmallFile(arg, 1<<20)
	if errors.Is(err, os.ErrNotExist) {
		return nil, usagef("--key %q is neither a verifier key (<name>+<hash>+<key>) nor a file holding one", arg)
	}
	if err != nil {
		return nil, usageError{fmt.Errorf("--key: %w", err)}
	}
	text := string(raw)
	if strings.Contains(text, "PRIVATE+KEY+") {
		return nil, usagef("--key %s holds a private signing key: give its verifier key instead (trail log key prints it)", arg)
	}
	if ledger.IsKeyHistory(text) {
		h, err := ledger.ParseKeyHistory(text)
		if err != nil {
			return nil, usagef("--key %s: %v", arg, err)
		}
		return h, nil
	}
	var keys []string
	for _, l := range strings.Split(text, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			if _, err := note.NewVerifier(l); err != nil {
				return nil, usagef("--key %s does not hold verifier keys (one per line, <name>+<hash>+<key>): %w", arg, err)
			}
			keys = append(keys, l)
		}
	}
	if len(keys) == 0 {
		return nil, usagef("--key %s holds no verifier key", arg)
	}
	h, err := ledger.PlainKeys(keys...)
	if err != nil {
		return nil, usagef("--key %s: %v", arg, err)
	}
	return h, nil
}

// parseInterleaved parses flags that may come before, between or after the
// positional arguments ("trail verify FILE --key K"), which flag.Parse alone
// stops at. Everything after "--" is positional.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	if err := applyEnv(fs); err != nil {
		return nil, err
	}
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// errNoQuorum means the checkpoint lacks the cosignatures asked for.
var errNoQuorum = errors.New("not enough witness cosignatures")

// checkWitnesses requires quorum valid cosignatures of the given witnesses
// on the bundle's checkpoint and says which witnesses signed.
func (c *verifyCommand) checkWitnesses(rep ledger.Report, vs []*witness.Verifier, quorum int) error {
	good, bad := witness.CheckCosignatures(rep.Checkpoint, vs)
	signed := map[string]bool{}
	for _, g := range good {
		signed[g.Key] = true
		fmt.Fprintf(c.stdout, "Cosigned by witness %s at %s.\n", g.Name, g.Time.Format(time.RFC3339))
	}
	for _, b := range bad {
		fmt.Fprintf(c.stdout, "INVALID cosignature of witness %s: the checkpoint or its cosignature was altered.\n", b)
	}
	var missing []string
	for _, v := range vs {
		if !signed[v.String()] && !slices.Contains(bad, v.Name()) {
			missing = append(missing, v.Name())
		}
	}
	if len(missing) > 0 {
		fmt.Fprintf(c.stdout, "No cosignature of witness %s on this checkpoint.\n", strings.Join(missing, ", "))
	}
	if len(good) < quorum {
		return fmt.Errorf("%w: the checkpoint of size %d has %d valid of the %d required (a witness refuses a checkpoint that forks from one it cosigned; or cosigning has not caught up: pull the bundle again, or at a cosigned size)",
			errNoQuorum, rep.CheckpointSize, len(good), quorum)
	}
	fmt.Fprintf(c.stdout, "Witness quorum met: %d of %d required cosignatures.\n", len(good), quorum)
	return nil
}

// witnessKeys parses --witness values: verifier keys, or files of them.
func witnessKeys(args []string) ([]*witness.Verifier, error) {
	var out []*witness.Verifier
	seen := map[string]bool{}
	add := func(k string) error {
		v, err := witness.ParseVerifierKey(k)
		if err != nil {
			return usagef("--witness: %v", err)
		}
		if !seen[v.String()] {
			seen[v.String()] = true
			out = append(out, v)
		}
		return nil
	}
	for _, a := range args {
		a = strings.TrimSpace(a)
		if _, err := witness.ParseVerifierKey(a); err == nil {
			if err := add(a); err != nil {
				return nil, err
			}
			continue
		}
		raw, err := readSmallFile(a, 64<<10)
		if err != nil {
			return nil, usagef("--witness %q is neither a witness verifier key (<name>+<key id>+<key>) nor a readable file of them: %v", a, err)
		}
		for _, l := range strings.Split(string(raw), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				if err := add(l); err != nil {
					return nil, err
				}
			}
		}
	}
	return out, nil
}
