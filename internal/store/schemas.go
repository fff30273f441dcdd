package store

import (
	"context"
	"time"
)

// Kinds of schema. Action schemas are per action name; the actor schema is
// one deployment-wide sequence of versions (Name "") that applies to the
// actor of every event on top of the action's own schema.
const (
	SchemaKindAction = "action"
	SchemaKindActor  = "actor"
)

// Schema is one immutable version of an action's (or the actor) schema.
// Schemas are deployment-wide, as in WorkOS: not per organization.
type Schema struct {
	Kind    string // SchemaKindAction or SchemaKindActor
	Name    string // the action; "" for the actor schema
	Version int    // 1, 2, …: assigned by CreateSchema
	// Body is the schema's definition as JSON, in the form package schema
	// writes it; the store keeps it byte for byte.
	Body      []byte
	CreatedAt time.Time
}

// ActionSchemas summarises one action that has schemas: its latest version
// and when its first one was created.
type ActionSchemas struct {
	Name      string
	Latest    Schema
	CreatedAt time.Time // of version 1
}

// SchemaStore stores versioned schemas. Both backends implement it beside
// Store; it is a separate interface so that the schema feature stays out of
// the core storage contract.
//
// Versions of one (kind, name) are 1, 2, 3, … with no gaps, each immutable
// once created. Implementations are safe for concurrent use, across
// processes sharing one database: two concurrent creates get two versions.
type SchemaStore interface {
	// CreateSchema stores s as the next version of (s.Kind, s.Name),
	// ignoring s.Version, and returns it with its version. It is durable
	// when it returns nil.
	CreateSchema(ctx context.Context, s Schema) (Schema, error)
	// Schema returns one version of (kind, name); version 0 means the
	// latest. ErrNotFound when there is no such version (or none at all).
	Schema(ctx context.Context, kind, name string, version int) (Schema, error)
	// ListSchemas lists the versions of (kind, name) by version, with
	// WorkOS cursors: a page's Before/After are the decimal versions of
	// its first/last schemas (ErrInvalidCursor for a cursor that is not
	// one). ListParams.OrganizationID is ignored.
	ListSchemas(ctx context.Context, kind, name string, p ListParams) (ListPage[Schema], error)
	// ListActions lists the actions that have at least one schema, by
	// name (byte order), with the action names as cursors.
	ListActions(ctx context.Context, p ListParams) (ListPage[ActionSchemas], error)
}
