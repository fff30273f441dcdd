// Command trail is the Trail audit log service and its command-line tools.
//
//	trail serve            run the HTTP API and background workers
//	trail migrate [status] bring the database schema up to date, or show where it stands
//	trail org create|list|import  manage organizations (import: WorkOS's, under their ids)
//	trail import --org ORG FILE   an organization's past events from WorkOS's CSV export
//	trail key create|list|revoke  manage API keys
//	trail console link             sign in to the operator console at /console
//	trail log key|checkpoint|pull  fetch the verifier key, checkpoints and bundles
//	trail tail --org ORG           follow an organization's events as they are recorded
//	trail verify FILE --key VKEY   check a bundle offline
//	trail signing-key …            rotate the log's signing keys, freeze the log
//	trail master-key …             rotate the master key, re-encrypt secrets
//	trail export                   export an organization's events through a server
//	trail witness                  cosign other logs' consistent checkpoints
//	trail version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/trailaudit/trail/internal/textsafe"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

type command interface {
	Run(ctx context.Context, args []string) error
}

func commands(stdout, stderr io.Writer) map[string]command {
	return map[string]command{
		"serve":       &serveCommand{stdout: stdout, stderr: stderr},
		"migrate":     &migrateCommand{stdout: stdout, stderr: stderr},
		"org":         &orgCommand{stdout: stdout},
		"import":      &importCommand{stdout: stdout, stderr: stderr},
		"key":         &keyCommand{stdout: stdout},
		"portal":      &portalCommand{stdout: stdout},
		"console":     &consoleCommand{stdout: stdout},
		"deployment":  &deploymentCommand{stdout: stdout},
		"signing-key": &signingKeyCommand{stdout: stdout},
		"master-key":  &masterKeyCommand{stdout: stdout},
		"streams":     &streamsCommand{stdout: stdout},
		"log":         &logCommand{stdout: stdout, stderr: stderr},
		"tail":        &tailCommand{stdout: stdout, stderr: stderr},
		"verify":      &verifyCommand{stdout: stdout, stderr: stderr},
		"export":      &exportCommand{stdout: stdout, stderr: stderr},
		"bench":       &benchCommand{stdout: stdout, stderr: stderr},
		"witness":     &witnessCommand{stdout: stdout, stderr: stderr},
		"backup":      &backupCommand{stdout: stdout, stderr: stderr},
		"restore":     &restoreCommand{stdout: stdout, stderr: stderr},
		"version":     versionCommand{stdout: stdout},
	}
}

const usage = `Trail is an audit log service.

Usage:
  trail serve                 run the API, the Admin Portal and the background workers
  trail migrate [status]      bring the database schema up to date (only this, or serve --migrate, does), or show where it stands
  trail org create|list|import  manage organizations (import FILE: WorkOS's list-organizations JSON)
  trail import --org ID FILE  import an organization's past events from WorkOS's CSV export
  trail key create|list|revoke  manage API keys
  trail portal revoke ORG_ID  end an organization's Admin Portal sessions
  trail portal settings ORG_ID  an organization's Admin Portal brand and framing origins
  trail console link          a single-use sign-in link to the operator console
  trail deployment show|set   the settings every replica must agree on
  trail signing-key list|rotate|retire|revoke|freeze  the log's signing keys (docs/OPERATIONS.md)
  trail master-key list|promote|re-encrypt  rotate the master key (docs/OPERATIONS.md)
  trail streams resume --all [--org ID]  resume the log streams that are invalid or failing
  trail log key|checkpoint|pull  fetch the log's verifier key, a checkpoint or a bundle
  trail tail --server URL --org ID  follow an organization's events as they are recorded
  trail verify FILE --key VKEY  check a bundle offline (see docs/VERIFYING.md)
  trail export --server URL --org ID  export an organization's events (CSV or a verifiable NDJSON bundle)
  trail bench ingest|query|verify|check  measure a server under load, check nothing was lost
  trail witness --log "ORIGIN VKEY"  run a witness that cosigns consistent checkpoints (docs/WITNESS.md)
  trail backup FILE           snapshot the embedded data directory while serve runs (docs/BACKUP.md)
  trail restore --from URL    restore a data directory from a replica or a backup, checked against published checkpoints
  trail version               print the version

Run 'trail COMMAND -h' for a command's flags. Every flag also reads a TRAIL_…
environment variable (for example --data and TRAIL_DATA).
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := commands(stdout, stderr)[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "trail: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err := cmd.Run(ctx, args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		var ue usageError
		// Errors can quote what a server or a file said: escaped, so
		// that they cannot drive the terminal.
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "trail %s: %s\n", args[0], textsafe.TerminalLines(err.Error()))
			return 2
		}
		fmt.Fprintf(stderr, "trail %s: %s\n", args[0], textsafe.TerminalLines(err.Error()))
		return 1
	}
	return 0
}

// usageError is a mistake in the command line (exit status 2).
type usageError struct{ error }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

type versionCommand struct{ stdout io.Writer }

func (v versionCommand) Run(ctx context.Context, args []string) error {
	b := readBuildInfo()
	fmt.Fprintf(v.stdout, "trail %s\n", b.Version)
	modified := ""
	if b.Modified {
		modified = " (with uncommitted changes)"
	}
	fmt.Fprintf(v.stdout, "revision %s%s", b.Revision, modified)
	if b.Time != "" {
		fmt.Fprintf(v.stdout, " of %s", b.Time)
	}
	fmt.Fprintf(v.stdout, "\nbuilt with %s\n", b.GoVersion)
	return nil
}
