// Package storeerr holds the errors every storage contract shares: package
// store's and the verifiable log's storage (ledger.Storage). It imports
// nothing of Trail, so that ledger need not import store, and store's
// Backend can include ledger's contract without a cycle. Callers use them
// through their names in package store (store.ErrNotFound is
// storeerr.ErrNotFound); only packages below store name this one.
package storeerr

import "errors"

var (
	// ErrNotFound: the organization, key, event, tile or checkpoint asked
	// for does not exist.
	ErrNotFound = errors.New("not found")
	// ErrUnavailable means the database could not be reached or refused the
	// write for a reason that may pass (disk full, connection lost). Callers map
	// it to 503 with Retry-After; nothing of the failed transaction was stored.
	ErrUnavailable = errors.New("storage unavailable")
)
