package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/trailaudit/trail/internal/store"
)

func TestClassify(t *testing.T) {
	pg := func(code string) error { return fmt.Errorf("wrapped: %w", &pgconn.PgError{Code: code, Message: "m"}) }
	for _, c := range []struct {
		name string
		err  error
		want error // nil: no sentinel
	}{
		{"unique violation", pg("23505"), store.ErrConflict},
		{"foreign key violation", pg("23503"), store.ErrConflict},
		{"no rows", pgx.ErrNoRows, store.ErrNotFound},
		{"disk full", pg("53100"), store.ErrUnavailable},
		{"too many connections", pg("53300"), store.ErrUnavailable},
		{"out of memory", pg("53200"), store.ErrUnavailable},
		{"connection failure", pg("08006"), store.ErrUnavailable},
		{"admin shutdown", pg("57P01"), store.ErrUnavailable},
		{"starting up", pg("57P03"), store.ErrUnavailable},
		{"read-only standby", pg("25006"), store.ErrUnavailable},
		{"lock timeout", pg("55P03"), store.ErrUnavailable},
		{"serialization failure", pg("40001"), store.ErrUnavailable},
		{"deadlock", pg("40P01"), store.ErrUnavailable},
		{"connection refused", &net.OpError{Op: "dial", Err: errors.New("connection refused")}, store.ErrUnavailable},
		{"connection cut", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), store.ErrUnavailable},
		{"syntax error", pg("42601"), nil},
		{"check violation", pg("23514"), nil},
		{"canceled", context.Canceled, nil},
		{"deadline", fmt.Errorf("query: %w", context.DeadlineExceeded), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := classify(c.err)
			if !errors.Is(got, c.err) {
				t.Errorf("classify(%v) = %v, which no longer wraps the driver error", c.err, got)
			}
			for _, sentinel := range []error{store.ErrConflict, store.ErrNotFound, store.ErrUnavailable} {
				if errors.Is(got, sentinel) != (sentinel == c.want) {
					t.Errorf("classify(%v) = %v: errors.Is(%v) = %v", c.err, got, sentinel, !(sentinel == c.want))
				}
			}
		})
	}
	if classify(nil) != nil {
		t.Error("classify(nil) != nil")
	}
}

func TestRetryable(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&pgconn.PgError{Code: "40001"}, true},
		{fmt.Errorf("x: %w", &pgconn.PgError{Code: "40P01"}), true},
		{&pgconn.PgError{Code: "23505"}, false},
		{errors.New("other"), false},
	} {
		if got := retryable(c.err); got != c.want {
			t.Errorf("retryable(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
