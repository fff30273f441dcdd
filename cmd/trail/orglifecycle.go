package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/trailaudit/trail/internal/orgdelete"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/store/sqlite"
	"github.com/trailaudit/trail/internal/textsafe"
)

// update is `trail org update ID [--name NAME] [--external-id ID |
// --clear-external-id]` (docs/ORGANIZATIONS.md).
func (c *orgCommand) update(ctx context.Context, fs *flag.FlagSet, args []string) error {
	name := fs.String("name", "", "the new name (1 to 200 characters)")
	ext := fs.String("external-id", "", "the new external id (unique)")
	clearExt := fs.Bool("clear-external-id", false, "remove the external id")
	asJSON := fs.Bool("json", false, "print JSON")
	ids, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(ids) != 1 {
		return usagef("name one organization: trail org update ORG_ID [--name NAME] [--external-id ID | --clear-external-id]")
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	switch {
	case !given["name"] && !given["external-id"] && !*clearExt:
		return usagef("say what to change: --name, --external-id or --clear-external-id")
	case given["external-id"] && *clearExt:
		return usagef("give --external-id or --clear-external-id, not both")
	case given["name"] && (strings.TrimSpace(*name) == "" || utf8.RuneCountInString(*name) > 200):
		return usagef("--name must be 1 to 200 characters")
	case given["external-id"] && (*ext == "" || utf8.RuneCountInString(*ext) > 200):
		return usagef("--external-id must be 1 to 200 characters (--clear-external-id removes it)")
	case textsafe.HasControl(*name) || textsafe.HasControl(*ext):
		return usagef("--name and --external-id must not contain control characters")
	}
	st, err := openStore(ctx, &c.storage)
	if err != nil {
		return err
	}
	defer st.Close()
	org, err := st.Organization(ctx, ids[0])
	if errors.Is(err, store.ErrNotFound) || ids[0] == store.SystemOrganizationID {
		return fmt.Errorf("no organization %s", textsafe.Terminal(ids[0]))
	}
	if err != nil {
		return err
	}
	before := org
	if given["name"] {
		org.Name = *name
	}
	if given["external-id"] {
		org.ExternalID = *ext
	}
	if *clearExt {
		org.ExternalID = ""
	}
	org.UpdatedAt = time.Now().UTC().Truncate(time.Millisecond)
	if err := st.UpdateOrganization(ctx, org); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("an organization with external id %q already exists", org.ExternalID)
		}
		return err
	}
	meta := map[string]any{}
	if org.Name != before.Name {
		meta["previous_name"] = before.Name
	}
	if org.ExternalID != before.ExternalID {
		meta["previous_external_id"], meta["external_id"] = before.ExternalID, org.ExternalID
	}
	t := cliTarget{Type: "organization", ID: org.ID, Name: org.Name}
	for _, log := range []string{org.ID, store.SystemOrganizationID} {
		if err := recordCLIActionWith(ctx, st, "trail.organization.updated", log, t, meta); err != nil {
			return err
		}
	}
	if *asJSON {
		return json.NewEncoder(c.stdout).Encode(map[string]any{"id": org.ID, "name": org.Name, "external_id": org.ExternalID})
	}
	fmt.Fprintf(c.stdout, "Updated organization %s (%s)\n", org.ID, textsafe.Terminal(org.Name))
	return nil
}

// delete is `trail org delete ID [--force] [--reason TEXT]`: it records
// the deletion and carries it as far as it can; a running trail serve
// finishes what waits for its integrator.
func (c *orgCommand) delete(ctx context.Context, fs *flag.FlagSet, args []string) error {
	force := fs.Bool("force", false, "stop the organization's running log streams and exports instead of refusing")
	reason := fs.String("reason", "", "why, recorded with the deletion (at most 500 characters)")
	ids, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(ids) != 1 {
		return usagef("name one organization: trail org delete ORG_ID [--force] [--reason TEXT]")
	}
	if utf8.RuneCountInString(*reason) > 500 || textsafe.HasControl(*reason) {
		return usagef("--reason must be at most 500 characters, without control characters")
	}
	db, err := openDatabase(ctx, &c.storage, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer db.Close()
	var exports store.ExportStore
	if db.pg != nil {
		exports = db.pg
	} else if path := sqlite.ExportsPath(c.storage.databasePath()); fileExists(path) {
		xs, err := sqlite.OpenExportsCurrent(ctx, path)
		if err != nil {
			return err
		}
		defer xs.Close()
		exports = xs
	}
	org, err := db.Organization(ctx, ids[0])
	if errors.Is(err, store.ErrNotFound) || ids[0] == store.SystemOrganizationID {
		if d, derr := db.OrganizationDeletion(ctx, ids[0]); derr == nil {
			return fmt.Errorf("organization %s was deleted on %s (step %s)", d.OrganizationID, d.RequestedAt.Format(time.RFC3339), d.Step)
		}
		return fmt.Errorf("no organization %s", textsafe.Terminal(ids[0]))
	}
	if err != nil {
		return err
	}
	who := "cli"
	if u := os.Getenv("USER"); u != "" {
		who = "cli:" + u
	}
	svc := orgdelete.New(orgdelete.Config{Store: db, Exports: exports})
	d, _, err := svc.Begin(ctx, orgdelete.Request{OrganizationID: org.ID, RequestedBy: who, Reason: *reason, Force: *force})
	var running *orgdelete.RunningError
	if errors.As(err, &running) {
		return fmt.Errorf("organization %s still has work running: %s; pause or delete it first, or give --force", org.ID, strings.Join(running.Running, ", "))
	}
	if err != nil {
		return err
	}
	meta := map[string]any{"forced": d.Forced, "final_bundle": false}
	if *reason != "" {
		meta["reason"] = *reason
	}
	if err := recordCLIActionWith(ctx, db, "trail.organization.deleted", store.SystemOrganizationID,
		cliTarget{Type: "organization", ID: org.ID, Name: org.Name}, meta); err != nil {
		return err
	}
	if err := svc.Pass(ctx); err != nil {
		return fmt.Errorf("the deletion of %s is recorded; a running trail serve carries it on: %w", org.ID, err)
	}
	if d, err = db.OrganizationDeletion(ctx, org.ID); err != nil {
		return err
	}
	if d.FinishedAt.IsZero() {
		fmt.Fprintf(c.stdout, "Deleted organization %s (%s): its credentials are gone; a running trail serve deletes its records once they are signed (step %s).\n",
			org.ID, textsafe.Terminal(org.Name), d.Step)
		return nil
	}
	fmt.Fprintf(c.stdout, "Deleted organization %s (%s): records and credentials gone; its log's last checkpoint (size %d) stays, so earlier bundles still verify.\n",
		org.ID, textsafe.Terminal(org.Name), d.FinalSize)
	return nil
}
