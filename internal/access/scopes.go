package access

import (
	"errors"
	"fmt"
	"slices"

	"github.com/trailaudit/trail/internal/store"
)

// Scopes an API key can hold.
const (
	ScopeEventsWrite = "events:write" // send events
	ScopeEventsRead  = "events:read"  // search and read events
	ScopeExports     = "exports"      // request and download exports
	ScopeAdmin       = "admin"        // everything, including organizations and keys
)

// AllScopes lists every scope in its canonical order.
var AllScopes = []string{ScopeEventsWrite, ScopeEventsRead, ScopeExports, ScopeAdmin}

// ErrInvalidScopes is wrapped by every error ParseScopes returns.
var ErrInvalidScopes = errors.New("invalid scopes")

// ParseScopes checks a list of scope names and returns it deduplicated, in
// canonical order. It rejects an empty list and any unknown name.
func ParseScopes(names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, fmt.Errorf("%w: give at least one scope (events:write, events:read, exports or admin)", ErrInvalidScopes)
	}
	for _, n := range names {
		if !slices.Contains(AllScopes, n) {
			return nil, fmt.Errorf("%w: unknown scope %q; the scopes are events:write, events:read, exports and admin", ErrInvalidScopes, n)
		}
	}
	out := make([]string, 0, len(names))
	for _, s := range AllScopes {
		if slices.Contains(names, s) {
			out = append(out, s)
		}
	}
	return out, nil
}

// Principal is the caller of a request: the API key it authenticated with.
type Principal struct {
	ID             string // the key id
	Name           string
	Scopes         []string
	OrganizationID string // "" = every organization
}

// FromKey returns the principal of an (active) API key.
func FromKey(k store.APIKey) Principal {
	return Principal{ID: k.ID, Name: k.Name, Scopes: k.Scopes, OrganizationID: k.OrganizationID}
}

// Can reports whether the principal holds scope; admin implies every scope.
func (p Principal) Can(scope string) bool {
	for _, s := range p.Scopes {
		if s == scope || s == ScopeAdmin {
			return true
		}
	}
	return false
}

// CanAccessOrg reports whether the principal may see organization orgID:
// always for an unrestricted key, otherwise only its own organization.
func (p Principal) CanAccessOrg(orgID string) bool {
	return p.OrganizationID == "" || p.OrganizationID == orgID
}

// Restricted reports whether the key is limited to one organization.
func (p Principal) Restricted() bool { return p.OrganizationID != "" }
