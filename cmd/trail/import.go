package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/importer"
	"github.com/trailaudit/trail/internal/privacy"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/textsafe"
)

// importBatch is how many events one transaction stores: big enough that
// an import runs at batch-ingest speed, small enough that it never holds
// the database's writer for long while a server is serving.
const importBatch = 1000

// importCommand is `trail import`: an organization's past events from
// another service's export (docs/WORKOS.md, "The history").
type importCommand struct {
	stdout, stderr io.Writer
	storage        storageFlags
}

func (c *importCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	c.storage.register(fs)
	org := fs.String("org", "", "the organization whose history the file is (required)")
	format := fs.String("format", "workos-csv", "the file's format: workos-csv, WorkOS's audit-log CSV export")
	keyFile := fs.String("master-key-file", envString("TRAIL_MASTER_KEY_FILE", ""), "file of the deployment's master keys (default: <data>/master.key; TRAIL_MASTER_KEY may hold them): needed only when the organization has a field policy, whose keyed hashes derive from it [TRAIL_MASTER_KEY_FILE]")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *org == "" || fs.NArg() != 1 {
		return usagef("say which organization and which file: trail import --org ORG_ID FILE.csv")
	}
	if *format != "workos-csv" {
		return usagef("--format %q is not known; the one format is workos-csv (WorkOS's audit-log CSV export)", *format)
	}
	file := fs.Arg(0)
	now := time.Now()

	// First pass: every row is checked before anything is stored, so a
	// mistake anywhere leaves the log as it was.
	rows, ignored, digest, err := checkImportFile(file, now, newProgress(c.stderr))
	if err != nil {
		return err
	}
	if rows == 0 {
		return fmt.Errorf("%s holds no events; nothing was imported", file)
	}

	st, err := openStore(ctx, &c.storage)
	if err != nil {
		return err
	}
	defer st.Close()
	o, err := st.Organization(ctx, *org)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("there is no organization %s here; create it or import it first (trail org import): nothing was imported", textsafe.Terminal(*org))
	}
	if err != nil {
		return err
	}

	protect, err := importPolicy(ctx, st, o.ID, *keyFile, c.storage.Data)
	if err != nil {
		return err
	}
	res, err := importEvents(ctx, st, o.ID, file, now, rows, protect, newProgress(c.stderr))
	if err != nil {
		return err
	}
	if res.stored > 0 {
		meta := map[string]any{"source": importer.SourceWorkOS, "events": res.stored, "already_imported": res.already,
			"file_sha256": digest}
		meta["first_seq"], meta["last_seq"] = res.firstSeq, res.lastSeq
		t := cliTarget{Type: "import", ID: "sha256:" + digest[:16], Name: filepath.Base(file)}
		if err := recordCLIActionWith(ctx, st, "trail.events.imported", o.ID, t, meta); err != nil {
			return err
		}
	}

	fmt.Fprintf(c.stdout, "Read %d events from %s.\n", rows, textsafe.Terminal(file))
	switch {
	case res.stored > 0:
		fmt.Fprintf(c.stdout, "Imported %d into %s (%s), seq %d–%d", res.stored, o.ID, textsafe.Terminal(o.Name), res.firstSeq, res.lastSeq)
	default:
		fmt.Fprintf(c.stdout, "Imported none into %s (%s)", o.ID, textsafe.Terminal(o.Name))
	}
	if res.already > 0 {
		fmt.Fprintf(c.stdout, "; %d were imported before and are left as they are", res.already)
	}
	fmt.Fprintln(c.stdout, ".")
	if len(ignored) > 0 {
		fmt.Fprintf(c.stdout, "Not imported, as the export's own: the columns %s.\n", textsafe.Terminal(strings.Join(ignored, ", ")))
	}
	return nil
}

// checkImportFile reads the whole file once, checking every row. It returns
// how many events the file holds, the columns not imported, and the file's
// SHA-256; or every problem found, each with its line.
func checkImportFile(file string, now time.Time, prog *progress) (rows int, ignored []string, digest string, err error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, nil, "", fmt.Errorf("couldn't open %s: %w", file, err)
	}
	defer f.Close()
	h := sha256.New()
	rd, err := importer.NewReader(io.TeeReader(f, h), now, event.DefaultLimits())
	if err != nil {
		return 0, nil, "", importProblems(file, err)
	}
	var problems importer.ProblemsError
	for {
		_, err := rd.Next()
		if err == io.EOF {
			break
		}
		var pe *importer.ProblemsError
		if errors.As(err, &pe) {
			for _, p := range pe.Problems {
				if len(problems.Problems) < importer.MaxProblems {
					problems.Problems = append(problems.Problems, p)
				} else {
					problems.More++
				}
			}
			if importer.Fatal(err) {
				break
			}
			continue
		}
		if err != nil {
			return 0, nil, "", fmt.Errorf("couldn't read %s: %w", file, err)
		}
		rows++
		prog.update("Checking %s: %d events", file, rows)
	}
	prog.clear()
	if len(problems.Problems) > 0 {
		return 0, nil, "", importProblems(file, &problems)
	}
	return rows, rd.Ignored(), hex.EncodeToString(h.Sum(nil)), nil
}

func importProblems(file string, err error) error {
	var pe *importer.ProblemsError
	if !errors.As(err, &pe) {
		return err
	}
	return fmt.Errorf("nothing was imported; fix these in %s and run again:\n  %s", file,
		strings.ReplaceAll(textsafe.TerminalLines(pe.Error()), "\n", "\n  "))
}

type importResult struct {
	stored, already   int
	firstSeq, lastSeq int64
}

// importEvents reads the checked file again and appends the events not
// imported before, importBatch to a transaction. Each event's id is derived
// from the organization and its id at the source, so a run interrupted
// half-way, or repeated, stores every event exactly once.
func importEvents(ctx context.Context, st store.Store, org, file string, now time.Time, total int, protect func(*event.Draft), prog *progress) (importResult, error) {
	var res importResult
	f, err := os.Open(file)
	if err != nil {
		return res, fmt.Errorf("couldn't open %s: %w", file, err)
	}
	defer f.Close()
	rd, err := importer.NewReader(f, now, event.DefaultLimits())
	if err != nil {
		return res, importProblems(file, err)
	}
	batch := make([]store.PendingEvent, 0, importBatch)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		out, err := st.Append(ctx, []store.Submission{{Events: batch}}, now)
		if err == nil {
			err = out[0].Err
		}
		if err != nil {
			return fmt.Errorf("imported %d of %d events of %s, then storing failed (run the same command again to go on; what is stored is not stored twice): %w",
				res.stored, total, file, err)
		}
		ev := out[0].Events
		if res.stored == 0 {
			res.firstSeq = ev[0].Seq
		}
		res.lastSeq = ev[len(ev)-1].Seq
		res.stored += len(ev)
		batch = batch[:0]
		prog.update("Importing into %s: %d of %d events", org, res.stored+res.already, total)
		return nil
	}
	for {
		row, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			// The file changed since it was checked.
			return res, fmt.Errorf("%s changed while it was imported (%d events stored): %w", file, res.stored, err)
		}
		id := event.DerivedID(row.Draft.OccurredAt, []byte(importer.SourceWorkOS+"\x00"+org+"\x00"+row.SourceID))
		have, err := st.Event(ctx, id)
		switch {
		case err == nil && have.OrganizationID == org:
			res.already++
			continue
		case err == nil:
			return res, fmt.Errorf("line %d: event id %s is taken by another organization's event; nothing more was imported", row.Line, id)
		case !errors.Is(err, store.ErrNotFound):
			return res, fmt.Errorf("couldn't look up event %s: %w", id, err)
		}
		if protect != nil {
			protect(row.Draft)
		}
		batch = append(batch, store.PendingEvent{OrganizationID: org, ID: id, ReceivedAt: now, Tail: row.Draft.Tail, Draft: row.Draft})
		if len(batch) == importBatch {
			if err := flush(); err != nil {
				return res, err
			}
		}
	}
	if err := flush(); err != nil {
		return res, err
	}
	prog.clear()
	return res, nil
}

// importPolicy returns what applies org's field policy to an imported event
// as ingest applies it (docs/PRIVACY.md), or nil when org has none: an
// import must not store what the API would refuse to keep. The keyed
// hashes need the deployment's master keys, with its primary first.
func importPolicy(ctx context.Context, st backend, org, keyFile, dataDir string) (func(*event.Draft), error) {
	doc, _, err := st.PrivacyPolicy(ctx, org)
	if err != nil || doc == nil {
		return nil, err
	}
	pol, err := privacy.Parse(doc)
	if err != nil {
		return nil, fmt.Errorf("the privacy policy of %s: %w", org, err)
	}
	keys, err := readMasterKeys(keyFile, dataDir)
	if err != nil {
		return nil, fmt.Errorf("%s has a field policy, whose keyed hashes need the deployment's master keys: %w", org, err)
	}
	if keys, err = checkMasterKeys(ctx, st, keys); err != nil {
		return nil, err
	}
	h := keys.FieldHasher()
	return func(d *event.Draft) { pol.Apply(d, org, h) }, nil
}
