package storetest

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/trailaudit/trail/internal/testclock"
)

// EventEpoch is the occurred_at of the first event Event generates; later
// events are spread after it. It is 18 months before the tests' fixed clock
// (testclock), so generated events pass the "at most 24 h ahead" rule
// against it and against the real clock, whatever the date.
var EventEpoch = testclock.Must().AddDate(0, -18, 0).Truncate(time.Hour)

// Actions are the 20 actions Event draws from.
var Actions = []string{
	"user.signed_in", "user.signed_out", "user.created", "user.updated", "user.deleted",
	"user.password_reset", "user.mfa_enabled", "team.created", "team.member_added", "team.member_removed",
	"document.created", "document.viewed", "document.updated", "document.shared", "document.deleted",
	"api_key.created", "api_key.revoked", "billing.invoice_paid", "billing.plan_changed", "settings.sso_updated",
}

var (
	firstNames = []string{"Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy",
		"Mallory", "Niaj", "Olivia", "Peggy", "Rupert", "Sybil", "Trent", "Victor", "Walter", "Yasmin"}
	lastNames = []string{"Johnson", "Smith", "Garcia", "Kim", "Nguyen", "Okafor", "Rossi", "Schmidt",
		"Tanaka", "Dubois", "Kowalski", "Silva", "Haddad", "Larsen", "Murphy"}
	targetTypes = []string{"team", "document", "project", "invoice", "repository", "user", "api_key"}
	roles       = []string{"owner", "admin", "member", "viewer", "billing"}
	userAgents  = []string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
		"Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
		"Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 Edg/130.0.0.0",
	}
	metadataKeys = []string{"request_id", "session_id", "plan", "region", "mfa", "attempt", "reason", "client_version", "sso", "duration_ms"}
)

// crockford is the ULID alphabet.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// ulidish returns a deterministic 26-character ULID-looking string for n.
func ulidish(n uint64) string {
	var b [26]byte
	x := n*0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019
	for i := range b {
		x ^= x >> 29
		x *= 0xBF58476D1CE4E5B9
		b[i] = crockford[x>>59]
	}
	b[0] = '0' // a ULID starts with 0-7
	return string(b[:])
}

// Event returns the JSON of a realistic audit event (the "event" member of a
// WorkOS create request): one of 20 actions, an actor from a pool of 1,000,
// 1–3 targets, a context with an IPv4 address and a browser user agent, and 3–6
// metadata keys. Its canonical record is about 600–700 bytes. The result
// depends only on rng's state and i; i also spreads occurred_at (about 5 ms
// apart from EventEpoch, with up to 2 s of jitter backwards, so occurred_at
// is not in generation order and some events share a millisecond).
func Event(rng *rand.Rand, i int) []byte {
	actor := rng.IntN(1000)
	first, last := firstNames[actor%len(firstNames)], lastNames[actor/len(firstNames)%len(lastNames)]
	e := spec{
		Action:     Actions[rng.IntN(len(Actions))],
		OccurredAt: EventEpoch.Add(time.Duration(i)*5*time.Millisecond - time.Duration(rng.IntN(2000))*time.Millisecond),
		Actor:      entity{ID: "user_" + ulidish(uint64(actor)), Type: "user", Name: first + " " + last},
		Location:   fmt.Sprintf("%d.%d.%d.%d", 1+rng.IntN(223), rng.IntN(256), rng.IntN(256), 1+rng.IntN(254)),
		UserAgent:  userAgents[rng.IntN(len(userAgents))],
	}
	if rng.IntN(4) == 0 {
		e.Actor.Metadata = map[string]any{"role": roles[actor%len(roles)]}
	}
	targets := 1 // 1 (half the events), 2 (a third) or 3
	if r := rng.IntN(6); r >= 5 {
		targets = 3
	} else if r >= 3 {
		targets = 2
	}
	for range targets {
		typ := targetTypes[rng.IntN(len(targetTypes))]
		t := entity{ID: typ + "_" + ulidish(uint64(rng.IntN(100_000)))[:12], Type: typ}
		if rng.IntN(3) == 0 {
			t.Name = fmt.Sprintf("%s %d", typ, rng.IntN(1000))
		}
		e.Targets = append(e.Targets, t)
	}
	e.Metadata = map[string]any{}
	for _, k := range rng.Perm(len(metadataKeys))[:3+rng.IntN(4)] {
		switch key := metadataKeys[k]; key {
		case "request_id":
			e.Metadata[key] = "req_" + ulidish(rng.Uint64())[:16]
		case "session_id":
			e.Metadata[key] = "sess_" + ulidish(rng.Uint64())[:12]
		case "plan":
			e.Metadata[key] = []string{"free", "pro", "enterprise"}[rng.IntN(3)]
		case "region":
			e.Metadata[key] = []string{"us-east-1", "eu-west-1", "ap-southeast-2"}[rng.IntN(3)]
		case "mfa", "sso":
			e.Metadata[key] = rng.IntN(2) == 0
		case "attempt":
			e.Metadata[key] = json.Number(fmt.Sprint(1 + rng.IntN(5)))
		case "reason":
			e.Metadata[key] = []string{"scheduled rotation", "user request", "policy violation", "offboarding"}[rng.IntN(4)]
		case "client_version":
			e.Metadata[key] = fmt.Sprintf("%d.%d.%d", 1+rng.IntN(3), rng.IntN(20), rng.IntN(10))
		case "duration_ms":
			e.Metadata[key] = json.Number(fmt.Sprintf("%d.%d", rng.IntN(900), rng.IntN(10)))
		}
	}
	return e.json()
}

// spec is an event to encode as the JSON a client sends.
type spec struct {
	Action     string
	OccurredAt time.Time
	Actor      entity
	Targets    []entity
	Location   string
	UserAgent  string
	Metadata   map[string]any
}

type entity struct {
	ID, Type, Name string
	Metadata       map[string]any
}

func (e entity) wire() map[string]any {
	m := map[string]any{"id": e.ID, "type": e.Type}
	if e.Name != "" {
		m["name"] = e.Name
	}
	if len(e.Metadata) > 0 {
		m["metadata"] = e.Metadata
	}
	return m
}

func (s spec) json() []byte {
	targets := make([]any, len(s.Targets))
	for i, t := range s.Targets {
		targets[i] = t.wire()
	}
	ctx := map[string]any{"location": s.Location}
	if s.UserAgent != "" {
		ctx["user_agent"] = s.UserAgent
	}
	m := map[string]any{
		"action":      s.Action,
		"occurred_at": s.OccurredAt.UTC().Format(time.RFC3339Nano),
		"actor":       s.Actor.wire(),
		"targets":     targets,
		"context":     ctx,
	}
	if len(s.Metadata) > 0 {
		m["metadata"] = s.Metadata
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err) // only strings, numbers, booleans and maps of them
	}
	return b
}
