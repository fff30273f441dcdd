package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/witness"
)

// TestExportLogCarriesCosignatures: the log reader trail serve gives the
// export service serves checkpoints with their stored witness
// cosignatures, so an NDJSON export meets a quorum offline; its selection
// line is signed.
func TestExportLogCarriesCosignatures(t *testing.T) {
	ctx := context.Background()
	const org = "org_export"
	signer := newTestSigner(t)
	l := newTestLog(t, signer, org, 300)
	ws := newWitnessSigner(t, "witness1.example")
	line := cosign(t, l.checkpoint(t, 300), ws)
	if err := l.st.StoreCosignatures(ctx, []ledger.Cosignature{{OrganizationID: org, Size: 300, Witness: ws.Verifier().String(), Line: line}}, nil); err != nil {
		t.Fatal(err)
	}
	log := cosignedLog{Reader: l.st, cosigned: witness.Cosigned(l.st)}
	var buf bytes.Buffer
	if _, err := ledger.WriteSubset(ctx, &buf, log, org, ledger.SubsetOptions{Selection: "export exp_1", Signer: signer,
		Select: func(seq int64, _ []byte) (bool, error) { return seq%7 == 0, nil }}); err != nil {
		t.Fatal(err)
	}
	rep, err := ledger.Verify(&buf, signer.VerifierKey(), ledger.VerifyOptions{})
	if err != nil {
		t.Fatalf("Verify: %v\n%s", err, rep.String())
	}
	if good, bad := witness.CheckCosignatures(rep.Checkpoint, []*witness.Verifier{ws.Verifier()}); len(good) != 1 || len(bad) != 0 {
		t.Errorf("the export's checkpoint has cosignatures %v valid, %v invalid; want the witness's\n%s", good, bad, rep.Checkpoint)
	}
	if !rep.SelectionSigned || !strings.Contains(rep.String(), "signed with the log key") {
		t.Errorf("the selection is not signed: %s", rep.String())
	}
	// Everything else passes through to the store.
	if next, err := log.NextSeq(ctx, org); err != nil || next != 300 {
		t.Errorf("NextSeq = %d, %v; want 300", next, err)
	}
}
