package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trailaudit/trail/internal/keyring"
	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/store"
)

// The deployment's checkpoint signing keys live in its identity in the
// database (docs/OPERATIONS.md, "Rotating the signing key"): a history of
// keys, each with its state and validity period, and for every key its
// private half sealed under the master key. Every replica reads the same
// history, so replicas agree on which keys sign without sharing a file,
// and a rotation reaches a running fleet within keyRefresh.
const (
	signingKeysSetting = "signing_keys"
	logFrozenSetting   = "log_frozen"
	// signingKeySealPurpose is the keyring purpose the private keys are
	// sealed under; the verifier key is the associated data.
	signingKeySealPurpose = "trail signing keys v1"
	// keyRefresh is how often a server re-reads the key history and the
	// freeze.
	keyRefresh = 2 * time.Second
)

// storedKey is one key of the history as the deployment records it.
type storedKey struct {
	Key    string          `json:"key"` // verifier key
	State  ledger.KeyState `json:"state"`
	From   time.Time       `json:"from"`
	Until  time.Time       `json:"until,omitzero"`
	Sealed string          `json:"sealed"` // base64 of the sealed private key
}

// readSigningKeys returns the recorded history (nil when none is yet).
func readSigningKeys(ctx context.Context, ds store.DeploymentStore) ([]storedKey, map[string]string, error) {
	all, err := ds.Settings(ctx)
	if err != nil {
		return nil, nil, err
	}
	raw := all[signingKeysSetting]
	if raw == "" {
		return nil, all, nil
	}
	var keys []storedKey
	if err := json.Unmarshal([]byte(raw), &keys); err != nil {
		return nil, nil, fmt.Errorf("the deployment's signing key history is not readable: %w", err)
	}
	return keys, all, nil
}

func writeSigningKeys(ctx context.Context, ds store.DeploymentStore, keys []storedKey) error {
	b, err := json.Marshal(keys)
	if err != nil {
		return fmt.Errorf("couldn't encode the signing key history: %w", err)
	}
	return ds.SetSetting(ctx, signingKeysSetting, string(b))
}

// history turns the recorded keys into a ledger.KeyHistory.
func history(keys []storedKey) (*ledger.KeyHistory, error) {
	h := &ledger.KeyHistory{}
	for _, k := range keys {
		hk, err := ledger.NewHistoryKey(k.Key, k.State, k.From, k.Until)
		if err != nil {
			return nil, fmt.Errorf("the deployment's signing key history: %w", err)
		}
		if err := h.Add(hk); err != nil {
			return nil, fmt.Errorf("the deployment's signing key history: %w", err)
		}
	}
	return h, nil
}

// sealSigner seals s's private key for the history.
func sealSigner(keys *keyring.Keyring, s *ledger.Signer) string {
	return base64.StdEncoding.EncodeToString(keys.Sealer(signingKeySealPurpose).Seal([]byte(s.PrivateKey()), []byte(s.VerifierKey())))
}

// openSigner opens a recorded key's private half.
func openSigner(keys *keyring.Keyring, k storedKey) (*ledger.Signer, error) {
	sealed, err := base64.StdEncoding.DecodeString(k.Sealed)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: its sealed private key is not base64: %w", k.Key, err)
	}
	plain, err := keys.Sealer(signingKeySealPurpose).Open(sealed, []byte(k.Key))
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w (this server lacks the master key it was sealed under)", k.Key, err)
	}
	s, err := ledger.NewSignerFromKey(string(plain))
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", k.Key, err)
	}
	if s.VerifierKey() != k.Key {
		return nil, fmt.Errorf("signing key %s: the sealed private key is of another key", k.Key)
	}
	return s, nil
}

// deploymentKeys is a server's view of the deployment's signing keys: it
// signs each checkpoint with every active key, and refuses while the log is
// frozen. It is refreshed from the database every keyRefresh.
type deploymentKeys struct {
	ds     store.DeploymentStore
	keys   *keyring.Keyring
	logger *slog.Logger

	mu      sync.Mutex
	hist    *ledger.KeyHistory
	signers ledger.Signers
	frozen  string // why, when frozen
	genesis string // the deployment's first key (the signing_key setting)
}

var (
	_ ledger.CheckpointSigner = (*deploymentKeys)(nil)
	_ ledger.SelectionSigner  = (*deploymentKeys)(nil)
)

// errFrozen means the operator froze the log (trail signing-key freeze).
var errFrozen = errors.New("the log is frozen: no checkpoint is signed and no event accepted until the operator unfreezes it")

// Sign signs c with every active key.
func (d *deploymentKeys) Sign(c ledger.Checkpoint) ([]byte, error) {
	d.mu.Lock()
	signers, frozen := d.signers, d.frozen
	d.mu.Unlock()
	if frozen != "" {
		return nil, fmt.Errorf("%w (%s)", errFrozen, frozen)
	}
	return signers.Sign(c)
}

// SignText signs a subset bundle's selection line with an active key of
// the moment (ledger.SelectionSigner).
func (d *deploymentKeys) SignText(text string) (string, error) {
	d.mu.Lock()
	signers := d.signers
	d.mu.Unlock()
	return signers.SignText(text)
}

// Frozen reports whether the log is frozen.
func (d *deploymentKeys) Frozen() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.frozen != ""
}

// admit refuses events while the log is frozen, then asks next.
func (d *deploymentKeys) admit(next func(string) error) func(string) error {
	return func(org string) error {
		d.mu.Lock()
		frozen := d.frozen
		d.mu.Unlock()
		if frozen != "" {
			return fmt.Errorf("%w: %w (%s)", store.ErrUnavailable, errFrozen, frozen)
		}
		return next(org)
	}
}

// History returns the key history.
func (d *deploymentKeys) History() *ledger.KeyHistory {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.hist
}

// NewestKey is the verifier key of the newest active key: what
// GET /v1/log/key serves.
func (d *deploymentKeys) NewestKey() string {
	h := d.History()
	active := h.Active()
	if len(active) == 0 {
		return h.Keys[len(h.Keys)-1].VerifierKey
	}
	return active[len(active)-1].VerifierKey
}

// OpenStored parses a checkpoint this deployment stored, signed by any key
// of its history (a revoked one too: it is the database's own).
func (d *deploymentKeys) OpenStored(msg []byte) (ledger.Checkpoint, error) {
	h := d.History()
	all := &ledger.KeyHistory{}
	for _, k := range h.Keys {
		hk, err := ledger.NewHistoryKey(k.VerifierKey, ledger.KeyActive, k.From, time.Time{})
		if err != nil {
			return ledger.Checkpoint{}, err
		}
		if err := all.Add(hk); err != nil {
			return ledger.Checkpoint{}, err
		}
	}
	c, _, err := all.OpenCheckpoint(msg)
	return c, err
}

// refresh re-reads the history and the freeze.
func (d *deploymentKeys) refresh(ctx context.Context) error {
	recorded, all, err := readSigningKeys(ctx, d.ds)
	if err != nil {
		return err
	}
	if len(recorded) == 0 {
		return errors.New("the deployment records no signing key")
	}
	h, err := history(recorded)
	if err != nil {
		return err
	}
	d.mu.Lock()
	old := d.signers
	d.mu.Unlock()
	var signers ledger.Signers
	for _, k := range recorded {
		if k.State != ledger.KeyActive {
			continue
		}
		var s *ledger.Signer
		for _, o := range old {
			if o.VerifierKey() == k.Key {
				s = o
			}
		}
		if s == nil {
			if s, err = openSigner(d.keys, k); err != nil {
				return err
			}
		}
		signers = append(signers, s)
	}
	d.mu.Lock()
	changed := len(signers) != len(d.signers) || d.frozen != all[logFrozenSetting]
	for i := range signers {
		if !changed && signers[i] != d.signers[i] {
			changed = true
		}
	}
	d.hist, d.signers, d.frozen = h, signers, all[logFrozenSetting]
	d.mu.Unlock()
	if changed && d.logger != nil {
		var ids []string
		for _, k := range h.Active() {
			ids = append(ids, k.ID())
		}
		d.logger.Info("signing keys", "active", strings.Join(ids, ","), "frozen", all[logFrozenSetting])
	}
	return nil
}

// collectors are the metrics of the keys: how many sign, and the freeze.
func (d *deploymentKeys) collectors() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "trail_signing_keys_active",
			Help: "Signing keys every new checkpoint is signed with (2 during a rotation's overlap)."},
			func() float64 { return float64(len(d.History().Active())) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "trail_log_frozen",
			Help: "1 while the log is frozen (trail signing-key freeze): nothing is signed and ingest answers 503."},
			func() float64 {
				if d.Frozen() {
					return 1
				}
				return 0
			}),
	}
}

// run refreshes the keys every keyRefresh until ctx ends.
func (d *deploymentKeys) run(ctx context.Context) {
	t := time.NewTicker(keyRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := d.refresh(ctx); err != nil && ctx.Err() == nil {
			d.logger.Warn("couldn't re-read the signing keys; signing with the ones known", "err", err)
		}
	}
}

// loadDeploymentKeys returns the deployment's signing keys. On a database
// that records none yet, the configured key (TRAIL_SIGNING_KEY,
// --signing-key-file or <data>/signing.key, created on first start)
// becomes the first key of the history. Once there is a history, a
// configured key must be one of its keys; a server configured with none
// signs with the history's keys alone.
func (c *serveCommand) loadDeploymentKeys(ctx context.Context, st backend, origin string, keys *keyring.Keyring, logger *slog.Logger) (*deploymentKeys, error) {
	d := &deploymentKeys{ds: st, keys: keys, logger: logger.With("worker", "keys")}
	recorded, _, err := readSigningKeys(ctx, st)
	if err != nil {
		return nil, err
	}
	if len(recorded) == 0 {
		signer, err := c.loadSigner(origin)
		if err != nil {
			return nil, err
		}
		if err := checkSigningKey(ctx, st, signer); err != nil {
			return nil, err
		}
		first := []storedKey{{Key: signer.VerifierKey(), State: ledger.KeyActive, From: time.Now().UTC(), Sealed: sealSigner(keys, signer)}}
		b, err := json.Marshal(first)
		if err != nil {
			return nil, fmt.Errorf("couldn't encode the signing key history: %w", err)
		}
		// Replicas started together: the first claim wins, the others
		// read it (and their key must be its key).
		if _, err := st.ClaimSetting(ctx, signingKeysSetting, string(b)); err != nil {
			return nil, err
		}
		if recorded, _, err = readSigningKeys(ctx, st); err != nil {
			return nil, err
		}
	}
	d.genesis = recorded[0].Key
	if err := d.refresh(ctx); err != nil {
		return nil, err
	}
	configured, err := c.configuredSigner()
	if err != nil {
		return nil, err
	}
	if configured != nil {
		k, ok := d.History().Find(configured.VerifierKey())
		switch {
		case !ok:
			return nil, usagef("this server's signing key %s is not one of the deployment's signing keys (trail signing-key list): start it with the deployment's key (--signing-key-file or TRAIL_SIGNING_KEY), or with none — the deployment's keys are in its database (remove %s if this server created it); signing with another key would publish checkpoints that no verifier can check",
				configured.VerifierKey(), filepath.Join(c.storage.Data, ledger.SigningKeyFile))
		case k.State == ledger.KeyRevoked:
			d.logger.Warn("this server is configured with a revoked (compromised) signing key; it signs only with the deployment's active keys, but remove the revoked key from its configuration", "key", k.ID())
		}
	}
	if len(d.History().Active()) == 0 {
		return nil, errors.New("the deployment has no active signing key (every key is retired or revoked): add one with trail signing-key rotate")
	}
	return d, nil
}

// configuredSigner returns the key this server was configured with, if
// any, without creating one: TRAIL_SIGNING_KEY, --signing-key-file, or an
// existing <data>/signing.key.
func (c *serveCommand) configuredSigner() (*ledger.Signer, error) {
	if os.Getenv("TRAIL_SIGNING_KEY") != "" || c.signingKey != "" {
		return c.loadSigner("")
	}
	if _, err := os.Stat(filepath.Join(c.storage.Data, ledger.SigningKeyFile)); err == nil {
		return c.loadSigner("")
	}
	return nil, nil
}
