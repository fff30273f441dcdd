package retention

import (
	"context"

	"github.com/trailaudit/trail/internal/store"
)

// Reader reads organizations' retention periods, the deployment default
// applied: what GET /organizations/{id}/audit_logs_retention answers, and
// what WorkOS's audit_log_configuration shows.
type Reader struct {
	Store       store.RetentionStore
	DefaultDays int // 0: DefaultDays
}

// RetentionDays is org's retention period in days: its own, else the
// default. An unknown organization is an error wrapping store.ErrNotFound.
func (r Reader) RetentionDays(ctx context.Context, org string) (int, error) {
	def := r.DefaultDays
	if def <= 0 {
		def = DefaultDays
	}
	days, set, err := r.Store.Retention(ctx, org)
	if err != nil {
		return 0, err
	}
	return Days(days, set, def), nil
}
