package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os/user"
	"path"
	"strings"
	"time"

	"github.com/trailaudit/trail/internal/console"
	"github.com/trailaudit/trail/internal/keyring"
	"github.com/trailaudit/trail/internal/selfaudit"
	"github.com/trailaudit/trail/internal/store"
)

// withConsole serves the operator console (docs/CONSOLE.md) under
// /console beside next, which serves everything else. audit records its
// operators' actions; links generates Admin Portal links; ops connects its
// operations pages, whose ingest rate is sampled until workers ends; tail
// serves the live view.
func withConsole(workers context.Context, next http.Handler, st console.Store, keys *keyring.Keyring, publicURL string, logger *slog.Logger,
	audit *selfaudit.Recorder, links console.PortalLinks, ops console.Operations, tail console.Tail) (http.Handler, error) {
	c, err := console.New(console.Config{
		Store: st, Portal: links, BaseURL: publicURL, Operations: ops, Tail: tail,
		SessionKey: keys.Key("trail console sessions v1"),
		Logger:     logger.With("component", "console"),
		Audit: func(r *http.Request, a console.Action) {
			audit.RecordRequest(r, selfaudit.Action{Action: a.Action,
				Actor:  selfaudit.Entity{Type: "operator", ID: a.Operator, Name: a.Operator},
				Target: selfaudit.Entity{Type: a.TargetType, ID: a.TargetID, Name: a.TargetName},
				Orgs:   a.Logs, Metadata: selfaudit.Strings(a.Metadata)})
		},
	})
	if err != nil {
		return nil, err
	}
	go c.RunSampler(workers)
	mux := http.NewServeMux()
	mux.Handle("/console/", c)
	mux.Handle("/console", http.RedirectHandler("/console/", http.StatusSeeOther))
	mux.Handle("/", next)
	return consoleRouter{mux: mux, next: next}, nil
}

// consoleRouter is the console's mux beside next. A request whose path is
// already clean and outside /console goes straight to next, where the mux
// would send it anyway: the API's own mux then routes it, and one lookup
// per request is saved (docs/PERFORMANCE.md, "The request path's fixed
// costs"). Every other request, whose path the mux would clean or
// redirect, goes through the mux as before.
type consoleRouter struct {
	mux  *http.ServeMux
	next http.Handler
}

func (c consoleRouter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodConnect {
		if p := r.URL.EscapedPath(); !strings.HasPrefix(p, "/console") && cleanPath(p) {
			c.next.ServeHTTP(w, r)
			return
		}
	}
	c.mux.ServeHTTP(w, r)
}

// cleanPath reports whether http.ServeMux leaves the escaped path p as it
// is, by its own rule (net/http's cleanPath): p starts with "/" and
// path.Clean changes nothing but a final "/", which the mux keeps.
func cleanPath(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		if len(p) == len(np)+1 && strings.HasPrefix(p, np) {
			np = p
		} else {
			np += "/"
		}
	}
	return np == p
}

type consoleCommand struct {
	stdout  io.Writer
	storage storageFlags
}

// Run is `trail console link [--operator NAME] [--url URL]`: a single-use
// sign-in link to the operator console of the server on this database.
func (c *consoleCommand) Run(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "link" {
		return usagef("say what to do: trail console link [--operator NAME] [--url PUBLIC_URL] (a single-use sign-in link to the operator console)")
	}
	fs := flag.NewFlagSet("console link", flag.ContinueOnError)
	c.storage.register(fs)
	who := "operator"
	if u, err := user.Current(); err == nil && u.Username != "" {
		who = u.Username
	}
	operator := fs.String("operator", who, "the operator the console's actions are attributed to")
	base := fs.String("url", envString("TRAIL_PUBLIC_URL", "http://127.0.0.1:8080"), "the server's public URL, as trail serve's --public-url [TRAIL_PUBLIC_URL]")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("trail console link takes no arguments, only flags")
	}
	if !console.ValidOperator(*operator) {
		return usagef("--operator must be 1 to 200 characters, without control characters")
	}
	st, err := openStore(ctx, &c.storage)
	if err != nil {
		return err
	}
	defer st.Close()
	link, expires, err := console.CreateLink(ctx, st, *base, *operator, time.Now())
	if err != nil {
		return err
	}
	if err := recordCLIAction(ctx, st, "trail.console_link.created", store.SystemOrganizationID,
		cliTarget{Type: "operator", ID: *operator, Name: *operator}); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "Open this link within 5 minutes (it works once, until %s):\n%s\n", expires.UTC().Format("15:04:05 UTC"), link)
	return nil
}
