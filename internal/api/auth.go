package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/trailaudit/trail/internal/access"
	"github.com/trailaudit/trail/internal/store"
)

// authenticate finds the active API key named by the request's
// "Authorization: Bearer sk_…" header.
func (s *Server) authenticate(r *http.Request) (access.Principal, error) {
	secret, ok := bearer(r.Header.Get("Authorization"))
	if !ok || !access.WellFormedSecret(secret) {
		return access.Principal{}, errUnauthorized
	}
	hash := access.HashSecret(secret)
	now := time.Now()
	k, found, cached := s.keys.get(hash, now)
	if !cached {
		var err error
		k, err = s.st.APIKeyByHash(r.Context(), hash)
		switch {
		case errors.Is(err, store.ErrNotFound):
			found = false
		case err != nil:
			// Not the caller's fault: 503 (or 500), never 401, so that a
			// client does not throw away a good key.
			return access.Principal{}, fmt.Errorf("couldn't look up the API key: %w", err)
		default:
			found = true
		}
		s.keys.put(hash, k, found, now)
	}
	if !found || !k.RevokedAt.IsZero() {
		return access.Principal{}, errUnauthorized
	}
	return access.FromKey(k), nil
}

// bearer extracts the token of an "Authorization: Bearer <token>" header.
func bearer(h string) (string, bool) {
	const scheme = "bearer "
	if len(h) <= len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return "", false
	}
	return strings.TrimSpace(h[len(scheme):]), true
}

// keyCache remembers API key lookups, found or not, for a short time so that
// most requests need no database read. It is bounded: when full it drops the
// expired entries, then arbitrary ones.
type keyCache struct {
	ttl time.Duration
	max int

	mu sync.Mutex
	m  map[[32]byte]cachedKey
}

type cachedKey struct {
	key     store.APIKey
	found   bool
	expires time.Time
}

func newKeyCache(ttl time.Duration, max int) *keyCache {
	return &keyCache{ttl: ttl, max: max, m: make(map[[32]byte]cachedKey)}
}

func (c *keyCache) get(hash [32]byte, now time.Time) (k store.APIKey, found, cached bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[hash]
	if !ok || now.After(e.expires) {
		return store.APIKey{}, false, false
	}
	return e.key, e.found, true
}

func (c *keyCache) put(hash [32]byte, k store.APIKey, found bool, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for h, e := range c.m {
			if now.After(e.expires) {
				delete(c.m, h)
			}
		}
		// Still full: forget a quarter, whichever the map yields first.
		for h := range c.m {
			if len(c.m) < c.max*3/4 {
				break
			}
			delete(c.m, h)
		}
	}
	c.m[hash] = cachedKey{key: k, found: found, expires: now.Add(c.ttl)}
}

// forget drops a key from the cache (it was just revoked).
func (c *keyCache) forget(keyID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for h, e := range c.m {
		if e.found && e.key.ID == keyID {
			delete(c.m, h)
		}
	}
}
