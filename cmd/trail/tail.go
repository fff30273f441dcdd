package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/trailaudit/trail/client"
	"github.com/trailaudit/trail/internal/textsafe"
)

// tailCommand is `trail tail`: an organization's events as they are
// recorded (docs/LIVETAIL.md).
type tailCommand struct {
	stdout, stderr io.Writer
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// errTailDone stops the tail after --count events.
var errTailDone = errors.New("enough events")

func (c *tailCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("tail", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	var sf serverFlags
	sf.register(fs)
	var actions stringList
	fs.Var(&actions, "action", "only this action, or a prefix such as user.* (repeatable)")
	actorID := fs.String("actor-id", "", "only events of this actor id")
	actorName := fs.String("actor-name", "", "only events of this actor name")
	targetType := fs.String("target-type", "", "only events with a target of this type")
	targetID := fs.String("target-id", "", "only events with this target id (needs --target-type)")
	text := fs.String("q", "", "only events with every one of these words")
	since := fs.Int64("since-seq", -1, "start at this seq (at most 10,000 behind the log's end); default: from now on")
	asJSON := fs.Bool("json", false, "print each record as one line of JSON (the default when the output is not a terminal)")
	count := fs.Int("count", 0, "stop after this many events (0: follow until interrupted)")
	if err := parseFlagsOnly(fs, args); err != nil {
		return err
	}
	if sf.server == "" {
		return usagef("--server is required (or TRAIL_SERVER): the URL of the Trail server")
	}
	if sf.apiKey == "" {
		return usagef("--api-key is required (or TRAIL_API_KEY): a key with the events:read scope")
	}
	cl, err := client.New(sf.server, sf.apiKey, client.WithUserAgent("trail/"+version))
	if err != nil {
		return usagef("--server: %v", err)
	}
	q := client.TailQuery{OrganizationID: sf.org, Actions: actions, ActorID: *actorID, ActorName: *actorName,
		TargetType: *targetType, TargetID: *targetID, Text: *text}
	if *since >= 0 {
		q.From = since
	}
	raw := *asJSON || !isTerminal(c.stdout)
	w := bufio.NewWriter(c.stdout)
	n := 0
	err = cl.Tail(ctx, q, func(ev client.TailEvent) error {
		if raw {
			w.Write(ev.Record.Raw)
			w.WriteByte('\n')
		} else {
			w.WriteString(tailLine(ev))
		}
		// Flush each event: a tail is read as it comes.
		if err := w.Flush(); err != nil {
			return err
		}
		if n++; *count > 0 && n >= *count {
			return errTailDone
		}
		return nil
	})
	if errors.Is(err, errTailDone) || errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// tailLine is one event for a person at a terminal: time, seq, action,
// actor, targets and where from, every field escaped.
func tailLine(ev client.TailEvent) string {
	r := ev.Record
	var b strings.Builder
	fmt.Fprintf(&b, "%s  #%-6d %s  %s", r.OccurredAt.UTC().Format("2006-01-02 15:04:05.000Z"), ev.Seq,
		textsafe.Terminal(r.Action), entityText(r.Actor))
	for i, t := range r.Targets {
		if i == 3 {
			fmt.Fprintf(&b, " +%d", len(r.Targets)-3)
			break
		}
		sep := ", "
		if i == 0 {
			sep = "  → "
		}
		b.WriteString(sep + entityText(t))
	}
	if r.Context.Location != "" {
		b.WriteString("  from " + textsafe.Terminal(r.Context.Location))
	}
	if r.Imported != nil {
		b.WriteString("  (imported from " + textsafe.Terminal(r.Imported.Source) + ")")
	}
	b.WriteByte('\n')
	return b.String()
}

func entityText(e client.Entity) string {
	s := textsafe.Terminal(e.Type) + ":" + textsafe.Terminal(e.ID)
	if e.Name != "" {
		s += " (" + textsafe.Terminal(e.Name) + ")"
	}
	return s
}
