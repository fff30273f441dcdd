package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/store"
)

// signingKeyCommand is trail signing-key: the deployment's checkpoint
// signing keys and their rotation (docs/OPERATIONS.md, "Rotating the
// signing key"; "Signing key compromise").
type signingKeyCommand struct {
	stdout  io.Writer
	storage storageFlags
}

const signingKeyUsage = `trail signing-key list|history|rotate|retire|revoke|freeze|unfreeze

  list            the deployment's signing keys, their states and validity periods
  history         the key history in the form trail verify --key takes (docs/VERIFYING.md)
  rotate          add a new signing key: from then on checkpoints carry signatures by
                  every active key (the overlap), until the old one is retired
  retire KEY      stop signing with KEY (a verifier key or <name>+<hash>); checkpoints
                  it signed still verify
  revoke KEY      KEY is compromised: stop signing with it, and tell verifiers that its
                  signatures prove nothing
  freeze REASON   sign no checkpoint and accept no event until unfreeze (a suspected
                  compromise); servers stop within seconds
  unfreeze        sign and accept events again`

func (c *signingKeyCommand) Run(ctx context.Context, args []string) error {
	cmds := []string{"list", "history", "rotate", "retire", "revoke", "freeze", "unfreeze"}
	if len(args) == 0 || !slices.Contains(cmds, args[0]) {
		return usagef("say what to do: %s", signingKeyUsage)
	}
	fs := flag.NewFlagSet("signing-key "+args[0], flag.ContinueOnError)
	c.storage.register(fs)
	keyFile := fs.String("master-key-file", envString("TRAIL_MASTER_KEY_FILE", ""), "with rotate: the deployment's master key file, to seal the new key under (default: <data>/master.key); TRAIL_MASTER_KEY may hold it [TRAIL_MASTER_KEY_FILE]")
	pos, err := parseInterleaved(fs, args[1:])
	if err != nil {
		return err
	}
	st, _, _, err := openBackend(ctx, &c.storage, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer st.Close()
	recorded, all, err := readSigningKeys(ctx, st)
	if err != nil {
		return err
	}
	if len(recorded) == 0 && args[0] != "freeze" && args[0] != "unfreeze" {
		return fmt.Errorf("the deployment records no signing key yet: start trail serve once first")
	}
	now := time.Now().UTC()
	switch args[0] {
	case "list":
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "KEY\tSTATE\tFROM\tUNTIL")
		for _, k := range recorded {
			until := ""
			if !k.Until.IsZero() {
				until = k.Until.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.Key, k.State, k.From.Format(time.RFC3339), until)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if all[logFrozenSetting] != "" {
			fmt.Fprintf(c.stdout, "The log is FROZEN: %q (trail signing-key unfreeze)\n", all[logFrozenSetting])
		}
		return nil
	case "history":
		h, err := history(recorded)
		if err != nil {
			return err
		}
		fmt.Fprint(c.stdout, h.String())
		return nil
	case "rotate":
		if len(pos) != 0 {
			return usagef("trail signing-key rotate takes no arguments")
		}
		keys, err := readMasterKeys(*keyFile, c.storage.Data)
		if err != nil {
			return err
		}
		if keys, err = keys.WithPrimary(strings.Split(all[masterKeyCheckSetting], ",")[0]); err != nil {
			return usagef("--master-key-file is not the deployment's master key (check value %s): the servers could not open a key sealed under it", all[masterKeyCheckSetting])
		}
		h, err := history(recorded)
		if err != nil {
			return err
		}
		name := strings.SplitN(recorded[len(recorded)-1].Key, "+", 2)[0]
		signer, err := ledger.GenerateSigner(name)
		if err != nil {
			return err
		}
		if _, dup := h.Find(signer.VerifierKey()); dup {
			return fmt.Errorf("the new key collides with one of the history: run rotate again")
		}
		recorded = append(recorded, storedKey{Key: signer.VerifierKey(), State: ledger.KeyActive, From: now, Sealed: sealSigner(keys, signer)})
		if err := writeSigningKeys(ctx, st, recorded); err != nil {
			return err
		}
		if err := recordCLIAction(ctx, st, "trail.signing_key.added", store.SystemOrganizationID, cliTarget{Type: "signing_key", ID: signer.VerifierKey()}); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "Added signing key %s.\nEvery server signs new checkpoints with it too within %s. Give it to verifiers and witnesses (GET /v1/log/keys serves the history), then retire the old key with trail signing-key retire.\n",
			signer.VerifierKey(), keyRefresh)
		return nil
	case "retire", "revoke":
		if len(pos) != 1 {
			return usagef("give the key to %s: trail signing-key %s KEY (a verifier key, or <name>+<hash> as trail signing-key list shows)", args[0], args[0])
		}
		h, err := history(recorded)
		if err != nil {
			return err
		}
		k, ok := h.Find(pos[0])
		if !ok {
			return usagef("%s is not one of the deployment's signing keys (trail signing-key list)", pos[0])
		}
		state := ledger.KeyRetired
		if args[0] == "revoke" {
			state = ledger.KeyRevoked
		}
		active := 0
		for _, r := range recorded {
			if r.State == ledger.KeyActive && r.Key != k.VerifierKey {
				active++
			}
		}
		if active == 0 {
			return usagef("%s is the only active signing key: add its successor first (trail signing-key rotate)", k.ID())
		}
		for i := range recorded {
			if recorded[i].Key == k.VerifierKey {
				if recorded[i].State == ledger.KeyRevoked || recorded[i].State == state {
					return usagef("%s is %s already", k.ID(), recorded[i].State)
				}
				recorded[i].State = state
				if recorded[i].Until.IsZero() {
					recorded[i].Until = now
				}
			}
		}
		if err := writeSigningKeys(ctx, st, recorded); err != nil {
			return err
		}
		if err := recordCLIAction(ctx, st, "trail.signing_key."+string(state), store.SystemOrganizationID, cliTarget{Type: "signing_key", ID: k.VerifierKey}); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "Signing key %s is %s: servers stop signing with it within %s.\n", k.ID(), state, keyRefresh)
		return nil
	case "freeze":
		reason := strings.TrimSpace(strings.Join(pos, " "))
		if reason == "" {
			return usagef("say why: trail signing-key freeze REASON (shown in every refusal)")
		}
		if err := st.SetSetting(ctx, logFrozenSetting, reason); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "The log is frozen: within %s no server signs a checkpoint or accepts an event (503) until trail signing-key unfreeze.\n", keyRefresh)
		return recordCLIAction(ctx, st, "trail.log.frozen", store.SystemOrganizationID, cliTarget{Type: "log", ID: "deployment", Name: reason})
	case "unfreeze":
		if len(pos) != 0 {
			return usagef("trail signing-key unfreeze takes no arguments")
		}
		if err := st.SetSetting(ctx, logFrozenSetting, ""); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "The log is unfrozen: servers sign and accept events again within %s.\n", keyRefresh)
		return recordCLIAction(ctx, st, "trail.log.unfrozen", store.SystemOrganizationID, cliTarget{Type: "log", ID: "deployment"})
	}
	return nil
}
