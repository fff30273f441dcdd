package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/trailaudit/trail/internal/store"
)

// deploymentSetting is one setting every server of a database must agree
// on (docs/OPERATIONS.md, "Deployment identity"). The first server to
// start records it; every other one compares at boot and refuses to start
// on a difference, naming it.
type deploymentSetting struct {
	name  string // key in the deployment's settings
	flag  string // how an operator sets it
	value string // this server's value
	// fleet settings are checked only where replicas share the database
	// (PostgreSQL): one embedded server changes them by restarting. The
	// deployment's identity (origin and keys) is checked everywhere.
	fleet bool
}

// identityKeys are the settings that trail deployment set refuses to
// change: a new origin or key is a new log to every verifier, which key
// rotation, not a setting, must handle.
// The signing keys, the freeze and the master keys have their own commands
// (trail signing-key, trail master-key).
var identityKeys = []string{"log_origin", "signing_key", "master_key_check", signingKeysSetting, logFrozenSetting}

// deploymentSettings lists the settings checked at boot. signing_key is
// the deployment's first signing key (its history is signing_keys, see
// signingkeys.go); the master keys are checked by checkMasterKeys.
func (c *serveCommand) deploymentSettings(origin string, genesisKey string, defaultRetentionDays int) []deploymentSetting {
	return []deploymentSetting{
		{name: "log_origin", flag: "--log-origin", value: origin},
		{name: "signing_key", flag: "--signing-key-file (its verifier key)", value: genesisKey},
		{name: "retention_default_days", flag: "--retention-default-days", value: strconv.Itoa(defaultRetentionDays), fleet: true},
		{name: "streams_allow_private", flag: "--streams-allow-private", value: strconv.FormatBool(c.streamsAllowPrivate), fleet: true},
		{name: "require_schemas", flag: "--require-schemas", value: strconv.FormatBool(c.requireSchemas), fleet: true},
		{name: "rate_limit", flag: "--rate-limit", value: strconv.FormatFloat(c.rateLimit, 'g', -1, 64), fleet: true},
		{name: "rate_burst", flag: "--rate-burst", value: strconv.FormatInt(c.rateBurst, 10), fleet: true},
		{name: "max_body_bytes", flag: "--max-body-bytes", value: strconv.FormatInt(c.maxBody, 10), fleet: true},
		{name: "max_batch_body_bytes", flag: "--max-batch-body-bytes", value: strconv.FormatInt(c.maxBatchBody, 10), fleet: true},
	}
}

// checkDeployment records this server's settings where none are recorded
// yet, and refuses a difference from those recorded.
func checkDeployment(ctx context.Context, ds store.DeploymentStore, settings []deploymentSetting, shared bool) error {
	for _, s := range settings {
		if s.fleet && !shared {
			continue
		}
		recorded, err := ds.ClaimSetting(ctx, s.name, s.value)
		if err != nil {
			return err
		}
		if recorded == s.value {
			continue
		}
		if slices.Contains(identityKeys, s.name) {
			return usagef("%s: this server has %q, but the deployment recorded %q when it first started; every server of this database must use the deployment's (a server with another origin or key would publish checkpoints its verifiers reject, or could not open what the others sealed)", s.flag, s.value, recorded)
		}
		return usagef("%s: this server has %q, but the deployment's setting is %q; start it with the deployment's value, or change it for every replica with 'trail deployment set %s %s' and restart them", s.flag, s.value, recorded, s.name, s.value)
	}
	return nil
}

// requireExplicitOrigin refuses the default log origin (the listen address,
// fixed forever once checkpoints are out) where it would be wrong: with
// replicas on PostgreSQL, each would derive its own, and on a listener
// others reach, the address is not a name verifiers should keep.
func (c *serveCommand) requireExplicitOrigin(shared bool, hasSavedOrigin bool) error {
	if c.logOrigin != "" || hasSavedOrigin {
		return nil
	}
	if shared {
		return usagef("--log-origin is required with --database postgres://…: every replica must sign under one origin, such as trail.example.com/audit (it names the log to verifiers, and is fixed once checkpoints are out)")
	}
	host, _, err := net.SplitHostPort(c.listen)
	if err != nil {
		return nil // --listen is validated elsewhere
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return usagef("--log-origin is required when listening on %s: the default origin would be this address, fixed forever once checkpoints are out; name the log, such as trail.example.com/audit", c.listen)
	}
	return nil
}

type deploymentCommand struct {
	stdout  io.Writer
	storage storageFlags
}

func (c *deploymentCommand) Run(ctx context.Context, args []string) error {
	if len(args) == 0 || (args[0] != "show" && args[0] != "set") {
		return usagef("say what to do: trail deployment show | trail deployment set NAME VALUE")
	}
	fs := flag.NewFlagSet("deployment "+args[0], flag.ContinueOnError)
	c.storage.register(fs)
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	st, _, _, err := openBackend(ctx, &c.storage, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer st.Close()
	ds := store.DeploymentStore(st)
	if args[0] == "show" {
		if fs.NArg() != 0 {
			return usagef("trail deployment show takes no arguments")
		}
		all, err := ds.Settings(ctx)
		if err != nil {
			return err
		}
		names := make([]string, 0, len(all))
		for n := range all {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			v := all[n]
			if n == signingKeysSetting {
				v = "(the signing key history: trail signing-key list)"
			}
			fmt.Fprintf(c.stdout, "%s\t%q\n", n, v) // quoted: a value never moves a terminal
		}
		return nil
	}
	if fs.NArg() != 2 {
		return usagef("trail deployment set NAME VALUE")
	}
	name, value := fs.Arg(0), fs.Arg(1)
	if slices.Contains(identityKeys, name) {
		return usagef("%s is the deployment's identity, not a setting: a new origin or key is a new log to verifiers (see docs/OPERATIONS.md on key rotation)", name)
	}
	all, err := ds.Settings(ctx)
	if err != nil {
		return err
	}
	if _, known := all[name]; !known {
		return usagef("%s is not a recorded setting; 'trail deployment show' lists them", name)
	}
	if err := ds.SetSetting(ctx, name, value); err != nil {
		return err
	}
	if err := recordCLIAction(ctx, st, "trail.deployment_setting.updated", store.SystemOrganizationID, cliTarget{Type: "deployment_setting", ID: name, Name: value}); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "Set %s to %q. Restart every replica with the same value.\n", name, value)
	return nil
}

// savedOrigin reports whether the data directory already holds the origin
// chosen at an earlier start (default origins stay as they were).
func savedOrigin(dataDir string) bool {
	_, err := os.Stat(filepath.Join(dataDir, originFile))
	return err == nil
}

// checkDeploymentIdentity checks this server's settings against the
// deployment's (checkDeployment). The retention flags were validated
// before the database was opened; their default is read as it is.
func (c *serveCommand) checkDeploymentIdentity(ctx context.Context, ds store.DeploymentStore, shared bool, origin string, dk *deploymentKeys) error {
	return checkDeployment(ctx, ds, c.deploymentSettings(origin, dk.genesis, int(c.retention.defaultDays)), shared)
}
