package client_test

import (
	"strings"
	"testing"

	"github.com/trailaudit/trail/client"
	"github.com/trailaudit/trail/internal/trailtest"
)

// TestPrivacyCalls drives the field policy, hash and erasure calls
// against a real server.
func TestPrivacyCalls(t *testing.T) {
	srv := trailtest.Start(t, trailtest.Options{})
	ctx := trailtest.Context(t)
	c, err := client.New(srv.URL, srv.Key)
	if err != nil {
		t.Fatal(err)
	}
	org, err := c.CreateOrganization(ctx, "Acme", "")
	if err != nil {
		t.Fatal(err)
	}
	set, err := c.SetPrivacyPolicy(ctx, org.ID, client.PrivacyPolicy{Fields: map[string]string{"actor.id": "hmac"},
		Actions: map[string]map[string]string{"user.*": {"context.location": "redact"}}})
	if err != nil || set.Fields["actor.id"] != "hmac" {
		t.Fatalf("SetPrivacyPolicy = %+v, %v", set, err)
	}
	if got, err := c.GetPrivacyPolicy(ctx, org.ID); err != nil || got.Actions["user.*"]["context.location"] != "redact" {
		t.Fatalf("GetPrivacyPolicy = %+v, %v", got, err)
	}
	hashes, err := c.HashValue(ctx, org.ID, "alice@example.com")
	if err != nil || len(hashes) != 1 || !hashes[0].Primary || !strings.HasPrefix(hashes[0].HMAC, "hmac:v1:") {
		t.Fatalf("HashValue = %+v, %v", hashes, err)
	}
	if _, err := c.SetPrivacyPolicy(ctx, org.ID, client.PrivacyPolicy{Fields: map[string]string{"actor.type": "hmac"}}); err == nil {
		t.Error("a policy naming actor.type was accepted")
	}
	if err := c.DeletePrivacyPolicy(ctx, org.ID); err != nil {
		t.Fatal(err)
	}
	e, err := c.CreateErasure(ctx, org.ID, client.ErasureRequest{ActorID: "alice@example.com", Reason: "GDPR", RequestID: "r1"})
	if err != nil || e.ID == "" || e.Subject != hashes[0].HMAC {
		t.Fatalf("CreateErasure = %+v, %v", e, err)
	}
	waitFor(t, "the erasure to complete", func() bool {
		got, err := c.GetErasure(ctx, org.ID, e.ID)
		return err == nil && got.State == "completed" && got.CompletedAt != nil
	})
}
