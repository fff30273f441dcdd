package diskguard_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trailaudit/trail/internal/diskguard"
)

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func reserveSize(dir string) int64 {
	fi, err := os.Stat(filepath.Join(dir, diskguard.ReserveFile))
	if err != nil {
		return -1
	}
	return fi.Size()
}

func TestGuardReleasesAndRestoresTheReserve(t *testing.T) {
	dir := t.TempDir()
	var free atomic.Int64
	free.Store(100 << 20)
	g := diskguard.New(dir, diskguard.Options{Reserve: 1 << 20, Interval: time.Millisecond,
		FreeBytes: func(string) (int64, error) { return free.Load(), nil }}, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { g.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	waitFor(t, "the reserve to be placed", func() bool { return reserveSize(dir) == 1<<20 })
	if err := g.Check(); err != nil {
		t.Fatalf("Check with room: %v", err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(g.Collectors()...)
	gauge := func(name string) float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == name {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatalf("no metric %s", name)
		return 0
	}
	waitFor(t, "a poll", func() bool { return gauge("trail_disk_guard_free_bytes") == 100<<20 })
	if v := gauge("trail_disk_guard_short"); v != 0 {
		t.Errorf("trail_disk_guard_short = %v with room, want 0", v)
	}

	// Free space falls under Low (Reserve/2): the reserve goes, ingest stops.
	free.Store(300 << 10)
	waitFor(t, "the guard to trip", g.Short)
	if v := gauge("trail_disk_guard_short"); v != 1 {
		t.Errorf("trail_disk_guard_short = %v while short, want 1", v)
	}
	if err := g.Check(); !errors.Is(err, diskguard.ErrShort) {
		t.Fatalf("Check while short: %v", err)
	}
	if reserveSize(dir) != -1 {
		t.Error("the reserve is still there while the disk is short")
	}

	// Some space returns, not enough for reserve + margin: still short.
	free.Store(1500 << 10)
	time.Sleep(20 * time.Millisecond)
	if !g.Short() {
		t.Fatal("resumed before reserve + margin were free")
	}

	waited := make(chan error, 1)
	go func() { waited <- g.WaitRoom(context.Background()) }()
	free.Store(3 << 20)
	waitFor(t, "the guard to resume", func() bool { return !g.Short() })
	if err := <-waited; err != nil {
		t.Fatalf("WaitRoom: %v", err)
	}
	if reserveSize(dir) != 1<<20 {
		t.Errorf("reserve not placed again: size %d", reserveSize(dir))
	}
}

func TestTripActsBeforeThePoll(t *testing.T) {
	dir := t.TempDir()
	var free atomic.Int64
	free.Store(100 << 20)
	g := diskguard.New(dir, diskguard.Options{Reserve: 1 << 20, Interval: time.Hour,
		FreeBytes: func(string) (int64, error) { return free.Load(), nil }}, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { g.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "the reserve to be placed", func() bool { return reserveSize(dir) == 1<<20 })
	free.Store(0)
	g.Trip()
	waitFor(t, "the trip to take effect", g.Short)
	if reserveSize(dir) != -1 {
		t.Error("a trip did not release the reserve")
	}
}

func TestStartsShortWithoutRoomForTheReserve(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing") // cannot create the reserve here
	g := diskguard.New(dir, diskguard.Options{Reserve: 1 << 20, Interval: time.Hour,
		FreeBytes: func(string) (int64, error) { return 0, nil }}, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { g.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "the guard to start short", g.Short)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	if err := g.WaitRoom(ctx2); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitRoom while short = %v, want the context's deadline", err)
	}
}

func TestRealFilesystem(t *testing.T) {
	// The default free-space reader and fallocate on the test machine's
	// temporary directory.
	dir := t.TempDir()
	g := diskguard.New(dir, diskguard.Options{Reserve: 2 << 20, Interval: 5 * time.Millisecond}, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { g.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "the reserve to be placed", func() bool { return reserveSize(dir) == 2<<20 })
	if g.Short() {
		t.Error("short on a disk with room")
	}
}

// debts is a Debts whose figure the test sets.
type debts struct{ owed atomic.Int64 }

func (d *debts) CheckpointDebt(context.Context) (int64, error) { return d.owed.Load(), nil }

var _ diskguard.Debts = (*debts)(nil)

// TestCountsCheckpointDebt checks that space the checkpoints still need is
// counted as used: with plenty free by statfs, a debt that leaves less
// than Low trips the guard, and ingest resumes only once it is paid.
func TestCountsCheckpointDebt(t *testing.T) {
	dir := t.TempDir()
	d := &debts{}
	g := diskguard.New(dir, diskguard.Options{Reserve: 1 << 20, Interval: time.Millisecond, Debts: d,
		FreeBytes: func(string) (int64, error) { return 10 << 20, nil }}, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { g.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "the reserve to be placed", func() bool { return reserveSize(dir) == 1<<20 })

	for _, step := range []struct {
		owed      int64
		wantShort bool
	}{
		{owed: 9 << 20, wantShort: false},        // 1 MiB left: above Low (512 KiB)
		{owed: 9<<20 + 700<<10, wantShort: true}, // 324 KiB left: trips
		{owed: 9 << 20, wantShort: true},         // 1 MiB: less than reserve + margin (2 MiB)
		{owed: 8<<20 - 1<<10, wantShort: false},  // paid down: resumes
		{owed: 10<<20 + 1<<20, wantShort: true},  // more owed than free: trips
	} {
		d.owed.Store(step.owed)
		if step.wantShort {
			waitFor(t, "the guard to be short", g.Short)
		} else {
			waitFor(t, "the guard to have room", func() bool { return !g.Short() })
		}
		// And it stays so over the polls that follow.
		time.Sleep(20 * time.Millisecond)
		if g.Short() != step.wantShort {
			t.Fatalf("with %d bytes owed of 10 MiB free: short = %v, want %v", step.owed, g.Short(), step.wantShort)
		}
	}
}
