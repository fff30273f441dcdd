package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/trailaudit/trail/internal/keyring"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/stream"
)

// masterKeyCheckSetting records the check values of the master keys the
// deployment's secrets may be sealed under, comma-separated, the one new
// secrets are sealed under first (docs/OPERATIONS.md, "Rotating the master
// key").
const masterKeyCheckSetting = "master_key_check"

// checkMasterKeys records this server's master keys on a deployment that
// has none recorded, and otherwise requires it to hold every recorded key
// (so that it opens whatever another replica sealed). It returns the
// keyring with the deployment's sealing key as its primary, so every
// replica seals under the same key.
func checkMasterKeys(ctx context.Context, ds store.DeploymentStore, keys *keyring.Keyring) (*keyring.Keyring, error) {
	recorded, err := ds.ClaimSetting(ctx, masterKeyCheckSetting, strings.Join(keys.CheckValues(), ","))
	if err != nil {
		return nil, err
	}
	held := keys.CheckValues()
	want := strings.Split(recorded, ",")
	for _, c := range want {
		if !slices.Contains(held, c) {
			return nil, usagef("--master-key-file: this server's master keys have check values %s, but the deployment's secrets may be sealed under the key with check value %s (recorded %q); start it with the deployment's master key file — every server of this database must hold every key the deployment records, or it could not open what the others sealed",
				strings.Join(held, ","), c, recorded)
		}
	}
	return keys.WithPrimary(want[0])
}

// masterKeyCommand is trail master-key: list the keys, make the first key
// of this command's key file the one new secrets are sealed under, and
// re-encrypt every secret under it.
type masterKeyCommand struct {
	stdout  io.Writer
	storage storageFlags
}

const masterKeyUsage = `trail master-key list|generate|promote|re-encrypt [--master-key-file FILE]

  list        the deployment's recorded master keys (check values), and this file's
  generate    print a new random master key (base64), to add to every server's key file
  promote     seal new secrets under the first key of --master-key-file from now on
              (restart every server afterwards; each must hold every recorded key)
  re-encrypt  re-seal every stored secret under the promoted key, then record it as the
              only key in use; resumable: run it again after an interruption`

func (c *masterKeyCommand) Run(ctx context.Context, args []string) error {
	if len(args) == 0 || !slices.Contains([]string{"list", "generate", "promote", "re-encrypt"}, args[0]) {
		return usagef("say what to do: %s", masterKeyUsage)
	}
	if args[0] == "generate" {
		if len(args) != 1 {
			return usagef("trail master-key generate takes no arguments")
		}
		k, err := keyring.Generate()
		if err != nil {
			return err
		}
		fmt.Fprintln(c.stdout, k.String())
		return nil
	}
	fs := flag.NewFlagSet("master-key "+args[0], flag.ContinueOnError)
	c.storage.register(fs)
	keyFile := fs.String("master-key-file", envString("TRAIL_MASTER_KEY_FILE", ""), "file of master keys, one per line, the primary first (default: <data>/master.key); TRAIL_MASTER_KEY may hold them [TRAIL_MASTER_KEY_FILE]")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("unexpected argument %q: %s", fs.Arg(0), masterKeyUsage)
	}
	keys, err := readMasterKeys(*keyFile, c.storage.Data)
	if err != nil {
		return err
	}
	st, _, _, err := openBackend(ctx, &c.storage, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer st.Close()
	all, err := st.Settings(ctx)
	if err != nil {
		return err
	}
	recorded := strings.Split(all[masterKeyCheckSetting], ",")
	if all[masterKeyCheckSetting] == "" {
		return errors.New("the deployment records no master key yet: start trail serve once first")
	}
	held := keys.CheckValues()
	switch args[0] {
	case "list":
		fmt.Fprintf(c.stdout, "deployment: %s (new secrets sealed under the first)\n", strings.Join(recorded, ", "))
		fmt.Fprintf(c.stdout, "this key file: %s (primary first)\n", strings.Join(held, ", "))
		return nil
	case "promote":
		for _, r := range recorded {
			if !slices.Contains(held, r) {
				return usagef("--master-key-file lacks the recorded master key %s: it must hold every recorded key, with the new one first", r)
			}
		}
		next := append([]string{held[0]}, slices.DeleteFunc(slices.Clone(recorded), func(s string) bool { return s == held[0] })...)
		if err := st.SetSetting(ctx, masterKeyCheckSetting, strings.Join(next, ",")); err != nil {
			return err
		}
		if err := recordCLIAction(ctx, st, "trail.master_key.promoted", store.SystemOrganizationID, cliTarget{Type: "master_key", ID: held[0]}); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "New secrets are sealed under master key %s once each server restarts (every server must hold %s). Restart them all, then run trail master-key re-encrypt.\n",
			held[0], strings.Join(next, ", "))
		return nil
	}
	// re-encrypt
	keys, err = keys.WithPrimary(recorded[0])
	if err != nil {
		return usagef("--master-key-file lacks the deployment's primary master key %s", recorded[0])
	}
	for _, r := range recorded {
		if !slices.Contains(held, r) {
			return usagef("--master-key-file lacks the recorded master key %s, under which secrets may still be sealed", r)
		}
	}
	n, err := reencryptStreams(ctx, st, keys)
	if err != nil {
		return fmt.Errorf("%w (%d stream secrets re-encrypted so far; run the command again to go on)", err, n)
	}
	m, err := reencryptSigningKeys(ctx, st, keys)
	if err != nil {
		return err
	}
	if len(recorded) > 1 {
		if err := st.SetSetting(ctx, masterKeyCheckSetting, recorded[0]); err != nil {
			return err
		}
	}
	if err := recordCLIAction(ctx, st, "trail.master_key.re_encrypted", store.SystemOrganizationID, cliTarget{Type: "master_key", ID: recorded[0]}); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "Re-encrypted %d stream secrets and %d signing keys under master key %s; it is now the only key the deployment records. The older keys may be removed from every server's key file (restart them).\n",
		n, m, recorded[0])
	return nil
}

// readMasterKeys reads the master keys as trail serve does, without ever
// creating one.
func readMasterKeys(file, dataDir string) (*keyring.Keyring, error) {
	if text := strings.TrimSpace(os.Getenv("TRAIL_MASTER_KEY")); text != "" {
		k, err := keyring.Parse(text)
		if err != nil {
			return nil, usagef("TRAIL_MASTER_KEY: %v", err)
		}
		return k, nil
	}
	if file == "" {
		file = dataDir + "/" + keyring.FileName
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, usagef("couldn't read the master keys (--master-key-file or TRAIL_MASTER_KEY): %v", err)
	}
	k, err := keyring.Parse(string(raw))
	if err != nil {
		return nil, usagef("%s: %v", file, err)
	}
	return k, nil
}

// reencryptStreams re-seals every stream's secrets not sealed under the
// primary master key yet. Each stream is one update: an interrupted run
// keeps what it did, and the next one skips those.
func reencryptStreams(ctx context.Context, st backend, keys *keyring.Keyring) (int, error) {
	var ss store.StreamStore = st
	sealer := keys.Sealer(stream.SealPurpose)
	positions, err := ss.StreamPositions(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, p := range positions {
		s, err := ss.Stream(ctx, p.ID)
		if errors.Is(err, store.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return n, err
		}
		if len(s.Secrets) == 0 || sealer.SealedUnderPrimary(s.Secrets) {
			continue
		}
		plain, err := sealer.Open(s.Secrets, []byte(s.ID))
		if err != nil {
			return n, fmt.Errorf("stream %s of %s: its secrets do not open with these master keys: %w", s.ID, s.OrganizationID, err)
		}
		s.Secrets = sealer.Seal(plain, []byte(s.ID))
		if err := ss.UpdateStream(ctx, s); err != nil && !errors.Is(err, store.ErrNotFound) {
			return n, fmt.Errorf("couldn't store the re-encrypted secrets of stream %s: %w", s.ID, err)
		}
		n++
	}
	return n, nil
}

// reencryptSigningKeys re-seals the private signing keys of the history
// under the primary master key.
func reencryptSigningKeys(ctx context.Context, st backend, keys *keyring.Keyring) (int, error) {
	recorded, _, err := readSigningKeys(ctx, st)
	if err != nil {
		return 0, err
	}
	sealer := keys.Sealer(signingKeySealPurpose)
	n := 0
	for i, k := range recorded {
		sealed, err := base64.StdEncoding.DecodeString(k.Sealed)
		if err != nil {
			return 0, fmt.Errorf("signing key %s: its sealed private key is not base64: %w", k.Key, err)
		}
		if sealer.SealedUnderPrimary(sealed) {
			continue
		}
		s, err := openSigner(keys, k)
		if err != nil {
			return 0, err
		}
		recorded[i].Sealed = sealSigner(keys, s)
		n++
	}
	if n == 0 {
		return 0, nil
	}
	return n, writeSigningKeys(ctx, st, recorded)
}
