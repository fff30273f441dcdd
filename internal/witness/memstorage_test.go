package witness

import (
	"fmt"

	"github.com/trailaudit/trail/internal/ledger/ledgertest"
)

// memStorage is the shared in-memory ledger.Storage.
type memStorage = ledgertest.MemStorage

func newMemStorage() *memStorage { return ledgertest.NewMemStorage() }

// addRecords appends n records to org's log; tag makes their contents
// differ from another history's.
func addRecords(m *memStorage, org, tag string, n int) {
	m.Mu.Lock()
	defer m.Mu.Unlock()
	l := m.Log(org)
	for range n {
		l.Records = append(l.Records, fmt.Appendf(nil, `{"organization_id":%q,"seq":%d,"tag":%q}`, org, len(l.Records), tag))
	}
}
