// Package sdk runs the official WorkOS SDKs, unchanged but for their API host,
// against a real trail serve: the proof of the WorkOS-compatible surface.
package sdk

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/trailaudit/trail/internal/trailtest"
)

func TestWorkOSNodeSDK(t *testing.T) {
	dir := filepath.Join(trailtest.ModuleRoot(), "test", "sdk", "node")
	node, err := exec.LookPath("node")
	if err != nil || !exists(filepath.Join(dir, "node_modules", "@workos-inc", "node")) {
		msg := "the WorkOS Node SDK test needs node and `npm ci` in test/sdk/node (./scripts/test does both)"
		if os.Getenv("TRAIL_TEST_REQUIRE_ALL") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	srv := trailtest.Start(t, trailtest.Options{})
	cmd := exec.Command(node, "--test", "--test-reporter=spec", "workos.test.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TRAIL_URL="+srv.URL, "TRAIL_API_KEY="+srv.Key)
	out, err := cmd.CombinedOutput()
	t.Logf("node --test:\n%s", out)
	if err != nil {
		t.Fatalf("the WorkOS Node SDK tests failed: %v\nserver log:\n%s", err, srv.Logs())
	}
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
