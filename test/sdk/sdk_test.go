// Package sdk runs the official WorkOS SDKs, unchanged but for their API host,
// against a real trail serve: the proof of the WorkOS-compatible surface.
package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/trailtest"
)

// minNode is the oldest Node.js the pinned SDKs run on: 8.9.0's
// package.json "engines"; older ones lack globals the SDK uses. 12.3.0
// and 11.0.0 declare 22.11 in their "engines" but use nothing newer than
// 8.9.0 does: their suites (test/sdk/node11, test/sdk/node12) pass on
// Node.js 20, the newest Debian ships.
var minNode = [3]int{20, 15, 0}

// sdkDirs are the pinned WorkOS Node SDKs, each in its own directory with
// its package.json, package-lock.json and *.test.mjs files.
var sdkDirs = []struct{ dir, version string }{
	{"node", "8.9.0"},
	{"node11", "11.0.0"},
	{"node12", "12.3.0"},
}

func TestWorkOSNodeSDK(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		missing(t, "the WorkOS Node SDK test needs node (./scripts/test installs it)")
	}
	if v, err := nodeVersion(node); err != nil {
		missing(t, fmt.Sprintf("couldn't tell the version of %s: %v", node, err))
	} else if less(v, minNode) {
		missing(t, fmt.Sprintf("the WorkOS Node SDK needs Node.js %d.%d or newer; %s is %d.%d.%d",
			minNode[0], minNode[1], node, v[0], v[1], v[2]))
	}
	for _, sdk := range sdkDirs {
		t.Run(sdk.version, func(t *testing.T) {
			dir := filepath.Join(trailtest.ModuleRoot(), "test", "sdk", sdk.dir)
			if !exists(filepath.Join(dir, "node_modules", "@workos-inc", "node", "package.json")) {
				missing(t, "the WorkOS Node SDK "+sdk.version+" test needs `npm ci` in test/sdk/"+sdk.dir+" (./scripts/test does it)")
			}
			raw, err := os.ReadFile(filepath.Join(dir, "node_modules", "@workos-inc", "node", "package.json"))
			var pkg struct{ Version string }
			if err == nil {
				err = json.Unmarshal(raw, &pkg)
			}
			if err != nil || pkg.Version != sdk.version {
				t.Fatalf("test/sdk/%s has @workos-inc/node %q installed (%v), want %s: run npm ci there", sdk.dir, pkg.Version, err, sdk.version)
			}
			runNodeSuite(t, node, dir)
		})
	}
}

// importedOrg is the organization of testdata/workos-organizations.json, a
// page of WorkOS's list of organizations: each suite's main server starts on
// a database where `trail org import` created it and `trail import` brought
// in its history (testdata/workos-audit-log-export.csv), as docs/WORKOS.md
// says to.
const importedOrg = "org_01EHZNVPK3SFK441A1RGBFSHRT"

// runNodeSuite runs every *.test.mjs of dir against fresh servers.
func runNodeSuite(t *testing.T, node, dir string) {
	data := t.TempDir()
	// The CLI never migrates: the database is created first, as
	// `trail serve` would on its first start.
	if out, err := exec.Command(trailtest.Binary(t), "migrate", "--data", data).CombinedOutput(); err != nil {
		t.Fatalf("trail migrate: %v\n%s", err, out)
	}
	imp := exec.Command(trailtest.Binary(t), "org", "import", "--data", data,
		filepath.Join(trailtest.ModuleRoot(), "test", "sdk", "testdata", "workos-organizations.json"))
	if out, err := imp.CombinedOutput(); err != nil || !strings.Contains(string(out), "Imported 1 organizations") {
		t.Fatalf("trail org import: %v\n%s", err, out)
	}
	history := exec.Command(trailtest.Binary(t), "import", "--data", data, "--org", importedOrg,
		filepath.Join(trailtest.ModuleRoot(), "test", "sdk", "testdata", "workos-audit-log-export.csv"))
	if out, err := history.CombinedOutput(); err != nil || !strings.Contains(string(out), "Imported 3 into "+importedOrg) {
		t.Fatalf("trail import: %v\n%s", err, out)
	}
	srv := trailtest.Start(t, trailtest.Options{Data: data})
	// A second server with a small per-key rate limit, for the SDK's 429
	// handling: one request a second, bursts of three.
	limited := trailtest.Start(t, trailtest.Options{Args: []string{"--rate-limit", "1", "--rate-burst", "3"}})
	// A third whose search indexer is held back, for read-your-writes: what
	// it answers at once cannot be owed to the indexer.
	unindexed := trailtest.Start(t, trailtest.Options{Env: []string{"TRAIL_SEARCH_INDEX_DELAY=1h"}})

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	// Every *.test.mjs file in test/sdk/node is one area of the WorkOS
	// surface (events, schemas, exports, retention, …); all run against
	// the same servers.
	files, err := filepath.Glob(filepath.Join(dir, "*.test.mjs"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no *.test.mjs files in %s (%v)", dir, err)
	}
	for i, f := range files {
		files[i] = filepath.Base(f)
	}
	cmd := exec.CommandContext(ctx, node, append([]string{"--test", "--test-reporter=spec"}, files...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"TRAIL_URL="+srv.URL, "TRAIL_METRICS_URL="+srv.MetricsURL, "TRAIL_API_KEY="+srv.Key, "TRAIL_IMPORTED_ORG="+importedOrg,
		"TRAIL_LIMITED_URL="+limited.URL, "TRAIL_LIMITED_API_KEY="+limited.Key,
		"TRAIL_UNINDEXED_URL="+unindexed.URL, "TRAIL_UNINDEXED_API_KEY="+unindexed.Key)
	out, err := cmd.CombinedOutput()
	t.Logf("node --test:\n%s", out)
	if err != nil {
		t.Fatalf("the WorkOS Node SDK tests failed: %v\nserver log:\n%s\nrate-limited server log:\n%s\nunindexed server log:\n%s",
			err, srv.Logs(), limited.Logs(), unindexed.Logs())
	}
	// Every test must have run: a skipped one proves nothing.
	summary := map[string]int{}
	for _, m := range regexp.MustCompile(`(?m)^\s*ℹ (tests|pass|fail|skipped|todo|cancelled) (\d+)\s*$`).FindAllStringSubmatch(string(out), -1) {
		summary[m[1]], _ = strconv.Atoi(m[2])
	}
	if summary["tests"] == 0 || summary["pass"] != summary["tests"] {
		t.Fatalf("node --test ran %d tests and passed %d (skipped %d, todo %d): every test must run and pass",
			summary["tests"], summary["pass"], summary["skipped"], summary["todo"])
	}
}

// missing fails the test when TRAIL_TEST_REQUIRE_ALL is set (as
// ./scripts/test and CI set it), and skips it otherwise.
func missing(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv("TRAIL_TEST_REQUIRE_ALL") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func nodeVersion(node string) ([3]int, error) {
	var v [3]int
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		return v, err
	}
	s := strings.TrimPrefix(strings.TrimSpace(string(out)), "v")
	parts := strings.SplitN(s, ".", 3)
	if len(parts) != 3 {
		return v, fmt.Errorf("unexpected version %q", s)
	}
	for i, p := range parts {
		if v[i], err = strconv.Atoi(p); err != nil {
			return v, fmt.Errorf("unexpected version %q", s)
		}
	}
	return v, nil
}

func less(a, b [3]int) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
