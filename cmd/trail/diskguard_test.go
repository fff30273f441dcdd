package main

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"
	"testing"

	"github.com/trailaudit/trail/internal/store"
)

func TestDiskFull(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("append: %w (%w): database or disk is full", store.ErrUnavailable, store.ErrDiskFull), true},
		{&fs.PathError{Op: "write", Path: "signed-checkpoints.tmp", Err: syscall.ENOSPC}, true},
		{fmt.Errorf("append: %w: database is locked", store.ErrUnavailable), false},
		{errors.New("disk is full, says a message that is not ours"), false},
	} {
		if got := diskFull(tc.err); got != tc.want {
			t.Errorf("diskFull(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
