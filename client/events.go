package client

import (
	"context"
	"encoding/json"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Event is an audit event as an application sends it (WorkOS's shape).
// Action, OccurredAt, Actor (Type and ID), Targets and Context.Location
// are required.
type Event struct {
	Action     string    `json:"action"`
	OccurredAt time.Time `json:"occurred_at"`
	// Version names the action's schema version to check the event
	// against; 0 sends none.
	Version  int            `json:"version,omitempty"`
	Actor    Entity         `json:"actor"`
	Targets  []Entity       `json:"targets"`
	Context  EventContext   `json:"context"`
	Metadata map[string]any `json:"metadata,omitempty"`
}

// Entity is an event's actor or one of its targets. Metadata values are
// strings, numbers or booleans.
type Entity struct {
	Type     string         `json:"type"`
	ID       string         `json:"id"`
	Name     string         `json:"name,omitempty"`
	Metadata map[string]any `json:"metadata,omitempty"`
}

// EventContext is where the action came from.
type EventContext struct {
	Location  string `json:"location"`
	UserAgent string `json:"user_agent,omitempty"`
}

// MarshalJSON writes Targets as [] when nil, as Trail requires the array.
func (e Event) MarshalJSON() ([]byte, error) {
	type plain Event
	p := plain(e)
	if p.Targets == nil {
		p.Targets = []Entity{}
	}
	p.OccurredAt = p.OccurredAt.UTC()
	return json.Marshal(p)
}

// OrgEvent is an event of one organization, as a batch holds them.
type OrgEvent struct {
	OrganizationID string `json:"organization_id"`
	Event          Event  `json:"event"`
}

// Accepted is what Trail assigned to a stored event.
type Accepted struct {
	ID             string    `json:"id"`
	OrganizationID string    `json:"organization_id"`
	Seq            int64     `json:"seq"`
	ReceivedAt     time.Time `json:"received_at"`
}

// CreateEvent stores one event of organization orgID (WorkOS's
// POST /audit_logs/events). It returns once the event is durable. Pass
// IdempotencyKey so that a retry after a lost answer cannot store it twice.
func (c *Client) CreateEvent(ctx context.Context, orgID string, ev Event, opts ...CallOption) error {
	return c.do(ctx, http.MethodPost, "/audit_logs/events", nil, OrgEvent{orgID, ev}, nil, opts...)
}

// CreateEvents stores up to 1000 events, of one or several organizations,
// all together or none (POST /v1/events/batch), and returns what each was
// assigned, in order.
func (c *Client) CreateEvents(ctx context.Context, events []OrgEvent, opts ...CallOption) ([]Accepted, error) {
	var out struct {
		Data []Accepted `json:"data"`
	}
	in := struct {
		Events []OrgEvent `json:"events"`
	}{events}
	if err := c.do(ctx, http.MethodPost, "/v1/events/batch", nil, in, &out, opts...); err != nil {
		return nil, err
	}
	return out.Data, nil
}

// Record is a stored event: its canonical record, decoded. Raw holds the
// record's exact bytes (the Merkle leaf), which the decoded fields are
// read from.
type Record struct {
	ID             string         `json:"id"`
	OrganizationID string         `json:"organization_id"`
	Seq            int64          `json:"seq"`
	ReceivedAt     time.Time      `json:"received_at"`
	Action         string         `json:"action"`
	Version        int            `json:"version,omitempty"`
	OccurredAt     time.Time      `json:"occurred_at"`
	Actor          Entity         `json:"actor"`
	Targets        []Entity       `json:"targets"`
	Context        EventContext   `json:"context"`
	Metadata       map[string]any `json:"metadata,omitempty"`
	// Imported says the event was recorded by another service and
	// imported (trail import); nil for events Trail recorded.
	Imported *ImportedFrom `json:"imported,omitempty"`
	// SchemaMismatch: the event did not match its action's latest schema
	// when it was stored (not part of the record's bytes).
	SchemaMismatch bool `json:"schema_mismatch,omitempty"`
	// Raw is the record as Trail answered it.
	Raw json.RawMessage `json:"-"`
}

// ImportedFrom is where an imported event came from: the service and the
// event's id there.
type ImportedFrom struct {
	Source string `json:"source"`
	ID     string `json:"id"`
}

// UnmarshalJSON decodes a record and keeps its bytes in Raw.
func (r *Record) UnmarshalJSON(b []byte) error {
	type plain Record
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*r = Record(p)
	r.Raw = append(json.RawMessage(nil), b...)
	return nil
}

// EventQuery selects events of one organization for SearchEvents and
// Events. Zero fields select everything.
type EventQuery struct {
	// OrganizationID is required unless the key is restricted to one.
	OrganizationID string
	From, To       time.Time // range_start (inclusive), range_end (exclusive)
	// Actions are exact names, prefixes ending in "*" (user.*), or "*".
	Actions        []string
	ActorID        string
	ActorName      string
	TargetType     string
	TargetID       string // needs TargetType
	Text           string // free text, at most 200 characters
	SchemaMismatch bool   // only the events stored as not matching their schema
	ListOptions
}

func (q EventQuery) values() url.Values {
	v := q.ListOptions.values()
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("organization_id", q.OrganizationID)
	if !q.From.IsZero() {
		v.Set("range_start", q.From.UTC().Format(time.RFC3339Nano))
	}
	if !q.To.IsZero() {
		v.Set("range_end", q.To.UTC().Format(time.RFC3339Nano))
	}
	for _, a := range q.Actions {
		v.Add("action", a)
	}
	set("actor_id", q.ActorID)
	set("actor_name", q.ActorName)
	set("target_type", q.TargetType)
	set("target_id", q.TargetID)
	set("q", q.Text)
	if q.SchemaMismatch {
		v.Set("schema_mismatch", "true")
	}
	return v
}

// SearchEvents answers one page of GET /v1/events.
func (c *Client) SearchEvents(ctx context.Context, q EventQuery) (*List[Record], error) {
	var out List[Record]
	if err := c.do(ctx, http.MethodGet, "/v1/events", q.values(), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Events iterates over every event q selects, page after page, in q's order
// (newest first by default). It stops at the first error, which it yields.
// q.Before and q.After start it from a cursor.
func (c *Client) Events(ctx context.Context, q EventQuery) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		for {
			page, err := c.SearchEvents(ctx, q)
			if err != nil {
				yield(Record{}, err)
				return
			}
			for _, r := range page.Data {
				if !yield(r, nil) {
					return
				}
			}
			// Going on the way the iteration started: after by default.
			next := page.ListMetadata.After
			if q.Before != "" {
				next = page.ListMetadata.Before
			}
			if next == "" || len(page.Data) == 0 {
				return
			}
			if q.Before != "" {
				q.Before = next
			} else {
				q.After = next
			}
		}
	}
}

// GetEvent answers GET /v1/events/{id}.
func (c *Client) GetEvent(ctx context.Context, id string) (*Record, error) {
	var out Record
	if err := c.do(ctx, http.MethodGet, "/v1/events/"+seg(id), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
