package store

import "context"

// DeploymentStore keeps the deployment's identity: the settings every
// replica on one database must agree on (log origin, signing and master
// keys, deployment-wide limits), recorded by the first replica to start
// and checked by each one at boot (docs/OPERATIONS.md).
type DeploymentStore interface {
	// ClaimSetting records value under name unless a value is recorded
	// already, and returns the recorded one: value itself for the first
	// caller, whatever came first for every other, also when several
	// replicas claim at once.
	ClaimSetting(ctx context.Context, name, value string) (recorded string, err error)
	// SetSetting records value under name, replacing what was there: how
	// an operator changes a setting for the whole deployment.
	SetSetting(ctx context.Context, name, value string) error
	// Settings returns every recorded setting.
	Settings(ctx context.Context) (map[string]string, error)
}
