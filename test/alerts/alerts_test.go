// Package alerts_test checks the Prometheus alert rules of
// deploy/prometheus: promtool accepts them and their unit tests pass, every
// alert links a runbook that exists in docs/OPERATIONS.md, and every Trail
// metric they name is exported by a real trail serve, on SQLite and on
// PostgreSQL — a renamed metric would otherwise leave an alert that never
// fires.
package alerts_test

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/trailaudit/trail/internal/pgtest"
	"github.com/trailaudit/trail/internal/trailtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var (
	rulesFile = filepath.Join("deploy", "prometheus", "trail-alerts.yml")
	testsFile = filepath.Join("deploy", "prometheus", "trail-alerts.test.yml")
)

// promtool returns the path of promtool (Debian's prometheus package), or
// skips the test when it is missing — unless TRAIL_TEST_REQUIRE_ALL is set,
// as scripts/test sets it, where a missing tool fails.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err == nil {
		return p
	}
	if os.Getenv("TRAIL_TEST_REQUIRE_ALL") != "" {
		t.Fatal("promtool is missing: install Debian's prometheus package (scripts/test does)")
	}
	t.Skip("promtool is missing (Debian's prometheus package); scripts/test installs it")
	return ""
}

func TestPromtool(t *testing.T) {
	bin := promtool(t)
	root := trailtest.ModuleRoot()
	for _, args := range [][]string{
		{"check", "rules", rulesFile},
		{"test", "rules", testsFile},
	} {
		cmd := exec.Command(bin, args...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

func readRepoFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(trailtest.ModuleRoot(), name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// githubSlug is the anchor GitHub gives a Markdown heading.
func githubSlug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
		}
	}
	return b.String()
}

// TestRunbooks: every alert has a runbook_url, and each points at a
// heading of docs/OPERATIONS.md.
func TestRunbooks(t *testing.T) {
	rules := readRepoFile(t, rulesFile)
	anchors := map[string]bool{}
	for line := range strings.SplitSeq(readRepoFile(t, "docs/OPERATIONS.md"), "\n") {
		if h, ok := strings.CutPrefix(line, "#"); ok {
			anchors[githubSlug(strings.TrimLeft(h, "#"))] = true
		}
	}
	alerts := regexp.MustCompile(`(?m)^\s+- alert: (\w+)$`).FindAllStringSubmatch(rules, -1)
	urls := regexp.MustCompile(`(?m)^\s+runbook_url: "([^"]*)"$`).FindAllStringSubmatch(rules, -1)
	if len(alerts) == 0 || len(urls) != len(alerts) {
		t.Fatalf("%d alerts and %d runbook_urls in %s: want one per alert", len(alerts), len(urls), rulesFile)
	}
	const base = "https://github.com/trailaudit/trail/blob/main/docs/OPERATIONS.md#"
	for i, u := range urls {
		anchor, ok := strings.CutPrefix(u[1], base)
		if !ok || !anchors[anchor] {
			t.Errorf("alert %s: runbook_url %s is not a heading of docs/OPERATIONS.md", alerts[i][1], u[1])
		}
	}
}

// TestMetricsExist: every trail_… metric the rules name is on the
// /metrics of a real trail serve, with SQLite (disk guard) or PostgreSQL
// (leases, connection pool).
func TestMetricsExist(t *testing.T) {
	names := map[string]bool{}
	scrape := func(srv *trailtest.Server) {
		t.Helper()
		if srv.MetricsURL == "" {
			t.Fatal("the server has no operator listener")
		}
		// One API request, so that the HTTP series exist.
		if res, err := http.Get(srv.URL + "/healthz"); err != nil {
			t.Fatal(err)
		} else {
			res.Body.Close()
		}
		res, err := http.Get(srv.MetricsURL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("GET /metrics: %d %v", res.StatusCode, err)
		}
		for line := range strings.SplitSeq(string(body), "\n") {
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			names[strings.FieldsFunc(line, func(r rune) bool { return r == '{' || r == ' ' })[0]] = true
		}
	}
	scrape(trailtest.Start(t, trailtest.Options{}))
	scrape(trailtest.Start(t, trailtest.Options{Args: []string{"--database", pgtest.New(t), "--log-origin", "trail.test/alerts"}}))

	used := map[string]bool{}
	for _, m := range regexp.MustCompile(`\btrail_[a-z0-9_]+\b`).FindAllString(readRepoFile(t, rulesFile), -1) {
		used[m] = true
	}
	if len(used) < 10 {
		t.Fatalf("only %d trail_ metrics found in the rules: the pattern is wrong", len(used))
	}
	var missing []string
	for m := range used {
		if !names[m] {
			missing = append(missing, m)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("the alert rules name metrics no trail serve exports: %s", strings.Join(missing, ", "))
	}
}
