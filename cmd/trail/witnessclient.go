package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trailaudit/trail/internal/portal"
	"github.com/trailaudit/trail/internal/witness"
)

// witnessClientFlags are trail serve's witness settings (docs/WITNESS.md).
type witnessClientFlags struct {
	witnesses repeatFlag
	file      string
	quorum    int64
}

func (w *witnessClientFlags) register(fs *flag.FlagSet) {
	fs.Var(&w.witnesses, "witness", "a witness to ask for cosignatures of every checkpoint: \"URL VKEY\" (its add-checkpoint URL prefix and verifier key; repeatable)")
	setting{fs}.StringVar(&w.file, "witness-file", "TRAIL_WITNESS_FILE", "", "file of witnesses, one \"URL VKEY\" per line (# comments)")
	setting{fs}.Int64Var(&w.quorum, "witness-quorum", "TRAIL_WITNESS_QUORUM", 0, "cosignatures each checkpoint should get; fewer, for more than 10 s, shows in trail_witness_below_quorum_logs (default: all witnesses)")
}

// configs returns the witnesses configured, checking every one.
func (w *witnessClientFlags) configs() ([]witness.Config, error) {
	var out []witness.Config
	for _, s := range w.witnesses {
		c, err := witness.ParseConfig(s)
		if err != nil {
			return nil, fmt.Errorf("--witness: %w", err)
		}
		out = append(out, c)
	}
	if w.file != "" {
		fromFile, err := witness.ReadConfigFile(w.file)
		if err != nil {
			return nil, fmt.Errorf("--witness-file: %w", err)
		}
		out = append(out, fromFile...)
	}
	switch {
	case w.quorum < 0:
		return nil, fmt.Errorf("--witness-quorum %d: want 0 (all witnesses) or a positive number", w.quorum)
	case w.quorum > int64(len(out)):
		return nil, fmt.Errorf("--witness-quorum %d: only %d witnesses are configured", w.quorum, len(out))
	}
	return out, nil
}

func (w *witnessClientFlags) validate() error {
	_, err := w.configs()
	return err
}

// start returns the submitter that sends every checkpoint the integrator
// signs to the witnesses, or nil when none are configured. Its
// cosignatures are kept in the database (those an earlier version kept in
// <data>/witness-cosignatures.db are copied there on start).
func (w *witnessClientFlags) start(ctx context.Context, dataDir string, st witness.CosigningStorage, refuse func(org, reason string), logger *slog.Logger, reg prometheus.Registerer) (*witness.Submitter, error) {
	configs, err := w.configs()
	if err != nil || len(configs) == 0 {
		return nil, err
	}
	sub, err := witness.NewSubmitter(ctx, dataDir, st, witness.SubmitterOptions{
		Witnesses: configs, Quorum: int(w.quorum), Fork: refuse,
	}, logger, reg)
	if err != nil {
		return nil, fmt.Errorf("couldn't start the witness client: %w", err)
	}
	for _, c := range configs {
		logger.Info("asking a witness for cosignatures", "witness", c.Verifier.Name(), "url", c.URL)
	}
	return sub, nil
}

// runSubmitter runs sub until ctx ends and it has stored the cosignatures
// received; done is closed after. A nil sub is nothing to run.
func runSubmitter(ctx context.Context, sub *witness.Submitter) (done <-chan struct{}) {
	ch := make(chan struct{})
	if sub == nil {
		close(ch)
		return ch
	}
	go func() {
		defer close(ch)
		sub.Run(ctx)
	}()
	return ch
}

// portalWitnesses is what the Admin Portal's integrity page shows of the
// witnesses: nil (an interface, not a typed nil) without any.
func portalWitnesses(sub *witness.Submitter) portal.Witnesses {
	if sub == nil {
		return nil
	}
	return witnessStates{sub}
}

// witnessStates shows the witnesses on the Admin Portal's integrity page.
type witnessStates struct{ sub *witness.Submitter }

func (w witnessStates) WitnessStates(ctx context.Context, org string) ([]portal.WitnessState, error) {
	st, err := w.sub.Status(ctx, org)
	if err != nil {
		return nil, err
	}
	out := make([]portal.WitnessState, len(st))
	for i, s := range st {
		out[i] = portal.WitnessState{Name: s.Name, Key: s.Key, Size: s.Size, At: s.At}
	}
	return out, nil
}

func (w witnessStates) Quorum() int { return w.sub.Quorum() }
