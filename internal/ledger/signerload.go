package ledger

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// LoadSigner reads the note signing key in <dataDir>/signing.key. Unlike
// LoadOrCreateSigner it never creates one: tools that only need the verifier
// key must not leave a new, unused key behind. A missing file is an error
// wrapping fs.ErrNotExist.
func LoadSigner(dataDir string) (*Signer, error) {
	path := filepath.Join(dataDir, SigningKeyFile)
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("couldn't read signing key %s: %w", path, err)
	}
	s, err := NewSignerFromKey(strings.TrimSpace(string(raw)))
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	return s, nil
}
