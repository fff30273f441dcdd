package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/trailaudit/trail/internal/access"
	"github.com/trailaudit/trail/internal/portal"
	"github.com/trailaudit/trail/internal/selfaudit"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/textsafe"
)

// openStore opens the database named by the storage flags, as the server
// would, so the CLI works beside a running server.
func openStore(ctx context.Context, sf *storageFlags) (backend, error) {
	st, _, _, err := openBackend(ctx, sf, slog.New(slog.DiscardHandler))
	return st, err
}

type orgCommand struct {
	stdout  io.Writer
	storage storageFlags
}

func (c *orgCommand) Run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("say what to do: trail org create --name NAME [--external-id ID] | trail org list | trail org import FILE... | trail org update ID ... | trail org delete ID [--force]")
	}
	fs := flag.NewFlagSet("org "+args[0], flag.ContinueOnError)
	c.storage.register(fs)
	switch args[0] {
	case "create":
		name := fs.String("name", "", "organization name (required)")
		ext := fs.String("external-id", "", "your own identifier for it (optional, unique)")
		asJSON := fs.Bool("json", false, "print JSON")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		if strings.TrimSpace(*name) == "" || len(*name) > 200 {
			return usagef("--name is required (1 to 200 characters)")
		}
		if len(*ext) > 200 {
			return usagef("--external-id must be at most 200 characters")
		}
		if textsafe.HasControl(*name) || textsafe.HasControl(*ext) {
			return usagef("--name and --external-id must not contain control characters")
		}
		st, err := openStore(ctx, &c.storage)
		if err != nil {
			return err
		}
		defer st.Close()
		now := time.Now()
		org := store.Organization{ID: access.NewOrganizationID(now), Name: *name, ExternalID: *ext, CreatedAt: now, UpdatedAt: now}
		if err := st.CreateOrganization(ctx, org); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return fmt.Errorf("an organization with external id %q already exists", *ext)
			}
			return err
		}
		t := cliTarget{Type: "organization", ID: org.ID, Name: org.Name}
		for _, log := range []string{org.ID, store.SystemOrganizationID} {
			if err := recordCLIAction(ctx, st, "trail.organization.created", log, t); err != nil {
				return err
			}
		}
		if *asJSON {
			return json.NewEncoder(c.stdout).Encode(map[string]any{"id": org.ID, "name": org.Name, "external_id": org.ExternalID})
		}
		fmt.Fprintf(c.stdout, "Created organization %s (%s)\n", org.ID, textsafe.Terminal(org.Name))
		return nil
	case "list":
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		st, err := openStore(ctx, &c.storage)
		if err != nil {
			return err
		}
		defer st.Close()
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tEXTERNAL ID\tCREATED")
		err = eachListed(ctx, st.ListOrganizations, func(o store.Organization) {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", textsafe.Terminal(o.ID), textsafe.Terminal(o.Name), textsafe.Terminal(o.ExternalID), o.CreatedAt.Format(time.RFC3339))
		})
		if err != nil {
			return err
		}
		return tw.Flush()
	case "import":
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			return usagef("name the file(s) to import: trail org import FILE... (WorkOS's list-organizations JSON, one file per page)")
		}
		orgs, err := readWorkOSOrganizations(fs.Args(), c.stdout)
		if err != nil {
			return err
		}
		st, err := openStore(ctx, &c.storage)
		if err != nil {
			return err
		}
		defer st.Close()
		return importOrganizations(ctx, st, orgs, c.stdout)
	case "update":
		return c.update(ctx, fs, args[1:])
	case "delete":
		return c.delete(ctx, fs, args[1:])
	}
	return usagef("unknown org command %q: use create, list, import, update or delete", args[0])
}

// workosOrganizationList is a page of WorkOS's GET /organizations, as its
// API and SDKs write it; only the fields Trail keeps are read.
type workosOrganizationList struct {
	Object *string `json:"object"`
	Data   []struct {
		Object     *string `json:"object"`
		ID         *string `json:"id"`
		Name       *string `json:"name"`
		ExternalID *string `json:"external_id"`
		CreatedAt  *string `json:"created_at"`
		UpdatedAt  *string `json:"updated_at"`
	} `json:"data"`
	ListMetadata struct {
		After *string `json:"after"`
	} `json:"list_metadata"`
}

// readWorkOSOrganizations reads and checks every file before anything is
// imported: a mistake anywhere is reported with its file and position, and
// nothing is written.
func readWorkOSOrganizations(files []string, stdout io.Writer) ([]store.Organization, error) {
	var out []store.Organization
	var problems []string
	byID := map[string]string{}  // id → where it was first seen
	byExt := map[string]string{} // external_id → id
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("couldn't read %s: %w", file, err)
		}
		var page workosOrganizationList
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		if err := dec.Decode(&page); err != nil {
			return nil, fmt.Errorf("%s is not WorkOS's list-organizations JSON ({\"data\":[{\"object\":\"organization\",\"id\":…}],\"list_metadata\":…}): %w", file, err)
		}
		if page.Object != nil && *page.Object != "list" || page.Data == nil {
			return nil, fmt.Errorf("%s is not WorkOS's list-organizations JSON: want an object with \"data\", the list of organizations", file)
		}
		if page.ListMetadata.After != nil && *page.ListMetadata.After != "" {
			fmt.Fprintf(stdout, "Note: %s is one page of a longer list (list_metadata.after is %q); import every page, e.g. trail org import page1.json page2.json …\n",
				file, *page.ListMetadata.After)
		}
		for i, o := range page.Data {
			where := fmt.Sprintf("%s: data[%d]", file, i)
			bad := func(msg string) { problems = append(problems, where+": "+msg) }
			switch {
			case o.Object != nil && *o.Object != "organization":
				bad(fmt.Sprintf("object is %q, not \"organization\"", *o.Object))
				continue
			case o.ID == nil || !access.ValidOrganizationID(*o.ID):
				bad("id must be a WorkOS organization id (org_ and a 26-character ULID)")
				continue
			case o.Name == nil || *o.Name == "" || utf8.RuneCountInString(*o.Name) > 200 || strings.IndexByte(*o.Name, 0) >= 0:
				bad("name must be 1 to 200 characters, without NUL")
				continue
			case o.ExternalID != nil && (utf8.RuneCountInString(*o.ExternalID) > 200 || strings.IndexByte(*o.ExternalID, 0) >= 0):
				bad("external_id must be at most 200 characters, without NUL")
				continue
			}
			org := store.Organization{ID: *o.ID, Name: *o.Name}
			if o.ExternalID != nil {
				org.ExternalID = *o.ExternalID
			}
			if prev, ok := byID[org.ID]; ok {
				bad(fmt.Sprintf("%s is listed twice (first at %s)", org.ID, prev))
				continue
			}
			if other, ok := byExt[org.ExternalID]; ok && org.ExternalID != "" {
				bad(fmt.Sprintf("external_id %q is also %s's", org.ExternalID, other))
				continue
			}
			byID[org.ID] = where
			if org.ExternalID != "" {
				byExt[org.ExternalID] = org.ID
			}
			// WorkOS's timestamps are kept: the organization existed
			// before it moved.
			now := time.Now().UTC().Truncate(time.Millisecond)
			org.CreatedAt, org.UpdatedAt = now, now
			if o.CreatedAt != nil {
				if t, err := time.Parse(time.RFC3339Nano, *o.CreatedAt); err == nil && !t.After(now) {
					org.CreatedAt, org.UpdatedAt = t.UTC().Truncate(time.Millisecond), t.UTC().Truncate(time.Millisecond)
				}
			}
			if o.UpdatedAt != nil {
				if t, err := time.Parse(time.RFC3339Nano, *o.UpdatedAt); err == nil && !t.After(now) && !t.Before(org.CreatedAt) {
					org.UpdatedAt = t.UTC().Truncate(time.Millisecond)
				}
			}
			out = append(out, org)
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("nothing was imported; fix these and run again:\n  %s", strings.Join(problems, "\n  "))
	}
	return out, nil
}

// importOrganizations creates the organizations not there yet, under their
// WorkOS ids, each recorded in its own log and in org_system as the CLI's
// other actions are. It is idempotent: an organization already there with
// the same id is left as it is (and said so when its name or external id
// differ). An external id held by another organization stops the import
// before anything is created.
func importOrganizations(ctx context.Context, st store.Store, orgs []store.Organization, stdout io.Writer) error {
	var create []store.Organization
	var present, differ int
	for _, o := range orgs {
		have, err := st.Organization(ctx, o.ID)
		switch {
		case err == nil:
			present++
			if have.Name != o.Name || have.ExternalID != o.ExternalID {
				differ++
				fmt.Fprintf(stdout, "Kept %s as it is here (%q, external id %q); the file says %q, external id %q\n",
					o.ID, have.Name, have.ExternalID, o.Name, o.ExternalID)
			}
			continue
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		if o.ExternalID != "" {
			other, err := st.OrganizationByExternalID(ctx, o.ExternalID)
			if err == nil {
				return fmt.Errorf("nothing was imported: %s's external id %q is already %s's here", o.ID, o.ExternalID, other.ID)
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		create = append(create, o)
	}
	for i, o := range create {
		if err := st.CreateOrganization(ctx, o); err != nil {
			return fmt.Errorf("imported %d of %d organizations, then %s failed (run the same command again to go on): %w", i, len(create), o.ID, err)
		}
		t := cliTarget{Type: "organization", ID: o.ID, Name: o.Name}
		for _, log := range []string{o.ID, store.SystemOrganizationID} {
			if err := recordCLIAction(ctx, st, "trail.organization.imported", log, t); err != nil {
				return err
			}
		}
	}
	fmt.Fprintf(stdout, "Imported %d organizations; %d were already here", len(create), present)
	if differ > 0 {
		fmt.Fprintf(stdout, " (%d with another name or external id, kept as they are)", differ)
	}
	fmt.Fprintln(stdout, ".")
	return nil
}

type keyCommand struct {
	stdout  io.Writer
	storage storageFlags
}

func (c *keyCommand) Run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("say what to do: trail key create --name NAME --scope SCOPE[,SCOPE] [--org ORG_ID] | trail key list | trail key revoke KEY_ID")
	}
	fs := flag.NewFlagSet("key "+args[0], flag.ContinueOnError)
	c.storage.register(fs)
	switch args[0] {
	case "create":
		name := fs.String("name", "", "a name to recognise the key by (required)")
		scopes := fs.String("scope", "", "comma-separated scopes: events:write, events:read, exports, admin (required)")
		org := fs.String("org", "", "restrict the key to this organization (optional)")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		if strings.TrimSpace(*name) == "" || textsafe.HasControl(*name) {
			return usagef("--name is required, without control characters")
		}
		sc, err := access.ParseScopes(strings.Split(*scopes, ","))
		if err != nil || *scopes == "" {
			return usagef("--scope: give one or more of events:write, events:read, exports, admin, comma-separated")
		}
		st, err := openStore(ctx, &c.storage)
		if err != nil {
			return err
		}
		defer st.Close()
		if *org != "" {
			if _, err := st.Organization(ctx, *org); err != nil {
				return fmt.Errorf("--org %s: %w", *org, err)
			}
		}
		secret, hash, prefix := access.Generate()
		now := time.Now()
		k := store.APIKey{ID: access.NewKeyID(now), Name: *name, Hash: hash, Prefix: prefix, Scopes: sc, OrganizationID: *org, CreatedAt: now}
		if err := st.CreateAPIKey(ctx, k); err != nil {
			return err
		}
		log := store.SystemOrganizationID
		if *org != "" {
			log = *org
		}
		if err := recordCLIAction(ctx, st, "trail.api_key.created", log, cliTarget{Type: "api_key", ID: k.ID, Name: k.Name}); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "Created API key %s. Its secret is shown only now:\n%s\n", k.ID, secret)
		return nil
	case "list":
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		st, err := openStore(ctx, &c.storage)
		if err != nil {
			return err
		}
		defer st.Close()
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tPREFIX\tSCOPES\tORGANIZATION\tCREATED\tREVOKED")
		err = eachListed(ctx, st.ListAPIKeys, func(k store.APIKey) {
			revoked := ""
			if !k.RevokedAt.IsZero() {
				revoked = k.RevokedAt.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s…\t%s\t%s\t%s\t%s\n", k.ID, textsafe.Terminal(k.Name), k.Prefix, strings.Join(k.Scopes, ","),
				k.OrganizationID, k.CreatedAt.Format(time.RFC3339), revoked)
		})
		if err != nil {
			return err
		}
		return tw.Flush()
	case "revoke":
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return usagef("give the id of the key to revoke: trail key revoke key_…")
		}
		st, err := openStore(ctx, &c.storage)
		if err != nil {
			return err
		}
		defer st.Close()
		k, err := st.APIKey(ctx, fs.Arg(0))
		if err != nil {
			return err
		}
		if err := st.RevokeAPIKey(ctx, k.ID, time.Now()); err != nil {
			return err
		}
		log := store.SystemOrganizationID
		if k.OrganizationID != "" {
			log = k.OrganizationID
		}
		if err := recordCLIAction(ctx, st, "trail.api_key.revoked", log, cliTarget{Type: "api_key", ID: k.ID, Name: k.Name}); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "Revoked API key %s (%s). Servers stop accepting it within seconds.\n", k.ID, textsafe.Terminal(k.Name))
		return nil
	}
	return usagef("unknown key command %q: use create, list or revoke", args[0])
}

type portalCommand struct {
	stdout  io.Writer
	storage storageFlags
}

// Run is `trail portal revoke [--user EXTERNAL_USER_ID] ORG_ID`: the CLI's
// DELETE /v1/organizations/{id}/portal_sessions, or with --user its POST
// /portal/revoke_link, for an operator at the server.
func (c *portalCommand) Run(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "settings" {
		return c.settings(ctx, args[1:])
	}
	if len(args) == 0 || args[0] != "revoke" {
		return usagef("say what to do: trail portal revoke [--user EXTERNAL_USER_ID] ORG_ID (end the organization's, or one admin's, Admin Portal sessions and unopened links), or trail portal settings [flags] ORG_ID (its brand and the origins that may frame it)")
	}
	fs := flag.NewFlagSet("portal revoke", flag.ContinueOnError)
	c.storage.register(fs)
	user := fs.String("user", "", "end only the links and sessions generated for this external_user_id")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("give the id of the organization: trail portal revoke org_…")
	}
	st, err := openStore(ctx, &c.storage)
	if err != nil {
		return err
	}
	defer st.Close()
	var ps store.PortalLinks = st
	org, err := st.Organization(ctx, fs.Arg(0))
	if err == nil && org.ID == store.SystemOrganizationID {
		err = fmt.Errorf("organization %s: %w", org.ID, store.ErrNotFound)
	}
	if errors.Is(err, store.ErrNotFound) {
		return usagef("no organization %s: see trail org list", fs.Arg(0))
	}
	if err != nil {
		return err
	}
	if *user != "" {
		n, err := ps.RevokePortalLinks(ctx, org.ID, *user, time.Now())
		if err != nil {
			return err
		}
		if err := recordCLIAction(ctx, st, "trail.portal_link.revoked", org.ID, cliTarget{Type: "portal_admin", ID: *user, Name: *user}); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "Ended %d Admin Portal sessions and links of %s in %s (%s). Every server refuses them from now on.\n", n, *user, org.ID, org.Name)
		return nil
	}
	n, err := ps.EndPortalSessions(ctx, org.ID, time.Now())
	if err != nil {
		return err
	}
	if err := recordCLIAction(ctx, st, "trail.portal_sessions.revoked", org.ID, cliTarget{Type: "organization", ID: org.ID, Name: org.Name}); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "Ended %d Admin Portal sessions and links of %s (%s). Every server refuses them from now on.\n", n, org.ID, textsafe.Terminal(org.Name))
	return nil
}

// settings is `trail portal settings [flags] ORG_ID`: the organization's
// Admin Portal brand and framing allowlist over the deployment's
// (docs/PORTAL.md). Flags not given keep their stored value; with none it
// prints the settings.
func (c *portalCommand) settings(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("portal settings", flag.ContinueOnError)
	c.storage.register(fs)
	name := fs.String("product-name", "", "the name the organization's portal shows (\"-\" clears it)")
	accent := fs.String("accent", "", "the accent colour, #RRGGBB (\"-\" clears it)")
	logo := fs.String("logo-file", "", "a PNG, JPEG, WebP or SVG file of at most 256 KiB (\"-\" clears it)")
	origins := fs.String("frame-origins", "", "space- or comma-separated https origins whose pages may frame the organization's portal, beside --portal-frame-origins (\"-\" clears them)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("give the id of the organization: trail portal settings [flags] org_…")
	}
	st, err := openStore(ctx, &c.storage)
	if err != nil {
		return err
	}
	defer st.Close()
	org, err := st.Organization(ctx, fs.Arg(0))
	if err == nil && org.ID == store.SystemOrganizationID {
		err = fmt.Errorf("organization %s: %w", org.ID, store.ErrNotFound)
	}
	if errors.Is(err, store.ErrNotFound) {
		return usagef("no organization %s: see trail org list", fs.Arg(0))
	}
	if err != nil {
		return err
	}
	set, err := st.PortalSettings(ctx, org.ID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	set.OrganizationID = org.ID
	changed := map[string]any{}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "product-name", "accent", "logo-file", "frame-origins":
			changed[f.Name] = true
		}
	})
	if len(changed) == 0 {
		fmt.Fprintf(c.stdout, "product name: %s\naccent: %s\nlogo: %d bytes %s\nframe origins: %s\n", textsafe.Terminal(set.ProductName),
			set.Accent, len(set.Logo), set.LogoType, strings.Join(set.FrameOrigins, " "))
		return nil
	}
	clear := func(v string) bool { return v == "-" }
	if changed["product-name"] != nil {
		set.ProductName = strings.TrimSpace(*name)
		if clear(*name) {
			set.ProductName = ""
		}
	}
	if changed["accent"] != nil {
		set.Accent = strings.TrimSpace(*accent)
		if clear(*accent) {
			set.Accent = ""
		}
	}
	if changed["logo-file"] != nil {
		set.Logo, set.LogoType = nil, ""
		if !clear(*logo) {
			if set.LogoType, err = portal.LogoType(*logo); err != nil {
				return usagef("--logo-file: %v", err)
			}
			if set.Logo, err = os.ReadFile(*logo); err != nil {
				return usagef("--logo-file: %v", err)
			}
		}
	}
	if err := portal.CheckBrand(portal.Brand{ProductName: set.ProductName, Accent: set.Accent, Logo: set.Logo, LogoType: set.LogoType}); err != nil {
		return usagef("%v", err)
	}
	if changed["frame-origins"] != nil {
		set.FrameOrigins = nil
		if !clear(*origins) {
			if set.FrameOrigins, err = portal.ParseOrigins(*origins); err != nil {
				return usagef("--frame-origins: %v", err)
			}
		}
	}
	set.UpdatedAt = time.Now()
	if err := st.SetPortalSettings(ctx, set); err != nil {
		return err
	}
	meta := map[string]any{"frame_origins": strings.Join(set.FrameOrigins, " "), "accent": set.Accent, "product_name": set.ProductName,
		"logo_bytes": len(set.Logo)}
	if err := recordCLIActionWith(ctx, st, "trail.portal_settings.updated", org.ID, cliTarget{Type: "organization", ID: org.ID, Name: org.Name}, meta); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "Set the Admin Portal settings of %s (%s); open portal pages show them on their next load.\n", org.ID, textsafe.Terminal(org.Name))
	return nil
}

type cliTarget = selfaudit.Entity

// recordCLIAction audits an administrative action taken on the command line
// (docs/DESIGN.md §8; package selfaudit): the actor is the operating-system
// user who ran it.
func recordCLIAction(ctx context.Context, st store.Store, action, logOrg string, target cliTarget) error {
	return recordCLIActionWith(ctx, st, action, logOrg, target, nil)
}

// recordCLIActionWith is recordCLIAction with the event's metadata (string,
// number or boolean values, WorkOS's limits).
func recordCLIActionWith(ctx context.Context, st store.Store, action, logOrg string, target cliTarget, metadata map[string]any) error {
	who := "unknown"
	if u, err := user.Current(); err == nil {
		who = u.Username
	}
	host, _ := os.Hostname()
	var meta map[string]any
	if len(metadata) > 0 {
		meta = metadata
	}
	rec := selfaudit.New(selfaudit.AppendTo(st), selfaudit.Config{})
	err := rec.Record(ctx, selfaudit.Action{Action: action, Actor: cliTarget{Type: "cli_user", ID: who, Name: who},
		Target: target, Orgs: []string{logOrg}, Metadata: meta, Location: "cli@" + host, UserAgent: "trail/" + version})
	if err != nil {
		return fmt.Errorf("couldn't record audit event %s: %w", action, err)
	}
	return nil
}

// eachListed calls fn for every item of a paginated store listing, oldest
// first, one page of 100 at a time.
func eachListed[T any](ctx context.Context, list func(context.Context, store.ListParams) (store.ListPage[T], error), fn func(T)) error {
	p := store.ListParams{Limit: 100, Order: store.OrderAsc}
	for {
		page, err := list(ctx, p)
		if err != nil {
			return fmt.Errorf("listing: %w", err)
		}
		for _, item := range page.Data {
			fn(item)
		}
		if page.After == "" {
			return nil
		}
		p.After = page.After
	}
}
